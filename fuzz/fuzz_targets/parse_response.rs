//! Any bytes as a token endpoint's answer: a status from the first two
//! bytes, a Retry-After from the next, the rest as the body, through the
//! same decoder the wasm uses.
#![no_main]

use freshtoken::response::{decode, read_answer, HttpAnswer, MAX_LIFETIME_SECONDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 600;
    let split = usize::from(data[2]).min(data.len() - 3);
    let retry_after = std::str::from_utf8(&data[3..3 + split])
        .ok()
        .map(str::to_owned);
    let answer = HttpAnswer {
        status,
        retry_after,
        body: decode(&data[3 + split..]),
    };
    match read_answer(&answer, 1_700_000_000_000.0) {
        Ok(token) => {
            assert!((200..300).contains(&status));
            assert!(freshtoken::response::is_header_safe(
                token.access_token.secret()
            ));
            assert!((1.0..=MAX_LIFETIME_SECONDS).contains(&token.expires_in));
        }
        Err(error) => {
            assert!(error
                .retry_after_seconds
                .is_none_or(|s| s.is_finite() && s >= 0.0));
            let _ = error.message();
        }
    }
});
