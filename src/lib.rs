//! freshtoken's core: OAuth 2.0 client-credentials tokens ([RFC 6749 §4.4])
//! that stay fresh.
//!
//! Everything outside [`wasm`] is sans-IO: it builds requests, reads
//! responses and decides what to do next as pure functions of its inputs.
//! The clock (`now`, epoch milliseconds) and randomness (`rand` in `[0, 1)`)
//! come in as arguments, so every rule is tested natively with a fake clock.
//! The [`wasm`] module is the one place that talks to JavaScript: it drives
//! [`acquire::Acquisition`], sending through the Deno wrapper's transport,
//! which calls the host's `fetch`.
//!
//! [RFC 6749 §4.4]: https://www.rfc-editor.org/rfc/rfc6749#section-4.4
#![warn(missing_docs)]
// The wasm build has no `std`: its panic machinery and formatting would be
// most of the module. Native builds (tests, fuzzers) keep `std`.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

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

/// A small allocator: the standard one is a sixth of the module.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// A panic is a bug; in the wasm it traps and JavaScript sees a
/// `RuntimeError`. Nothing is formatted, so no formatting code ships.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
