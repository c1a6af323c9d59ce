//! Any text as a Retry-After value, received at any time.
#![no_main]

use freshtoken::retry_after::{parse_retry_after, MAX_RETRY_AFTER_SECONDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    // Any moment from 1970 to about 2255.
    let now = (u64::from_le_bytes(data[..8].try_into().unwrap()) % 9_000_000_000_000) as f64;
    if let Ok(text) = std::str::from_utf8(&data[8..]) {
        if let Some(seconds) = parse_retry_after(text, now) {
            assert!(seconds.is_finite() && seconds >= 0.0);
            assert!(seconds <= MAX_RETRY_AFTER_SECONDS);
        }
    }
});
