//! freshtoken's core: OAuth 2.0 client-credentials tokens ([RFC 6749 §4.4])
//! that stay fresh. docs/DESIGN.md walks through the data flow.
//!
//! Everything outside [`wasm`] is sans-IO: it reads options, builds
//! requests, reads responses and decides what to do next as pure functions
//! of its inputs. The time ([`clock::Now`]) and randomness (`rand` in
//! `[0, 1)`) come in as arguments, so every rule is tested natively with a
//! fake clock. [`wasm`] is the one module that talks to JavaScript: it
//! performs the token request through the host's `fetch` and hands tokens,
//! errors and events back to the Deno wrapper.
//!
//! [RFC 6749 §4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
#![warn(missing_docs)]

pub mod assertion;
#[cfg(test)]
mod boundary;
pub mod call;
pub mod client;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod driver;
pub mod error;
pub mod notify;
pub mod options;
pub mod pool;
pub mod rate_limit;
pub mod redact;
pub mod request;
pub mod response;
pub mod retry_after;
pub mod schedule;
pub mod secret;
pub mod shared;
#[cfg(not(target_arch = "wasm32"))]
pub mod sim;
pub mod state;
pub mod store_guard;
pub mod text;
pub mod token_files;
pub mod transport;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
