//! Any bytes as a token endpoint's answer: a status from the first two
//! bytes, a Retry-After from the next, the rest as the body.
#![no_main]

use freshtoken::response::{read_answer, HttpAnswer, RawResponse, MAX_LIFETIME_SECONDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 600;
    let split = usize::from(data[2]).min(data.len() - 3);
    let retry_after = std::str::from_utf8(&data[3..3 + split]).ok();
    let body: Option<RawResponse> = serde_json::from_slice(&data[3 + split..]).ok();
    let answer = HttpAnswer {
        status,
        retry_after,
        body: body.as_ref(),
    };
    match read_answer(&answer, 1_700_000_000_000.0) {
        Ok(token) => {
            assert!((200..300).contains(&status));
            assert!(!token.access_token.secret().is_empty());
            assert!(token
                .access_token
                .secret()
                .bytes()
                .all(|b| b.is_ascii_graphic()));
            assert!((1.0..=MAX_LIFETIME_SECONDS).contains(&token.expires_in));
            assert_eq!(token.token_type, "Bearer");
        }
        Err(error) => {
            assert!(error
                .retry_after_seconds
                .map_or(true, |s| s.is_finite() && s >= 0.0));
            let _ = error.message();
        }
    }
});
