//! freshtoken's core: OAuth 2.0 client-credentials tokens ([RFC 6749 §4.4])
//! that stay fresh.
//!
//! Everything outside [`wasm`] is sans-IO: it builds requests, reads
//! responses and decides what to do next as pure functions of its inputs.
//! The clock (`now`, epoch milliseconds) and randomness (`rand` in `[0, 1)`)
//! come in as arguments, so every rule is tested natively with a fake clock.
//! The [`wasm`] module is the one place that talks to JavaScript: it drives
//! [`acquire::Acquisition`] with the host's `fetch`.
//!
//! [RFC 6749 §4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
#![warn(missing_docs)]

pub mod acquire;
pub mod config;
pub mod error;
pub mod lifecycle;
pub mod request;
pub mod response;
pub mod retry_after;
pub mod secret;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
