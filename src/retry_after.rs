//! The `Retry-After` header ([RFC 9110 §10.2.3]): delay-seconds or an HTTP-date.
//!
//! [RFC 9110 §10.2.3]: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3

use crate::text::parse_decimal;
use std::time::UNIX_EPOCH;

/// Longer waits are reported as this: the caller fails fast either way.
/// (What isolates share is capped far lower, see [`crate::shared`].)
pub const MAX_RETRY_AFTER_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// Seconds to wait, from a `Retry-After` value received at `now_ms`.
/// A date in the past gives `0`; an unreadable value gives `None`.
pub fn parse_retry_after(value: &str, now_ms: f64) -> Option<f64> {
    let value = value.trim();
    if !value.contains('.') {
        if let Some(seconds) = parse_decimal(value) {
            return Some(seconds.min(MAX_RETRY_AFTER_SECONDS));
        }
    }
    let at_ms = parse_http_date(value)?;
    Some(
        ((at_ms - now_ms) / 1000.0)
            .max(0.0)
            .ceil()
            .min(MAX_RETRY_AFTER_SECONDS),
    )
}

/// Epoch milliseconds of an HTTP-date in any of the three forms RFC 9110
/// §5.6.7 asks recipients to accept (IMF-fixdate, RFC 850, asctime).
pub fn parse_http_date(value: &str) -> Option<f64> {
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1994-11-06T08:49:37Z
    const RFC_EXAMPLE_MS: f64 = 784_111_777_000.0;

    #[test]
    fn retry_after_seconds_are_read_as_is() {
        assert_eq!(parse_retry_after("120", 0.0), Some(120.0));
        assert_eq!(parse_retry_after(" 0 ", 0.0), Some(0.0));
        assert_eq!(parse_retry_after("31536000", 0.0), Some(31_536_000.0));
        assert_eq!(
            parse_retry_after(&"9".repeat(400), 0.0),
            Some(MAX_RETRY_AFTER_SECONDS)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0.0),
            Some(MAX_RETRY_AFTER_SECONDS)
        );
        assert_eq!(parse_retry_after("-5", 0.0), None);
        assert_eq!(parse_retry_after("1.5", 0.0), None);
        assert_eq!(parse_retry_after("", 0.0), None);
        assert_eq!(parse_retry_after("soon", 0.0), None);
    }

    #[test]
    fn retry_after_http_date_in_all_three_forms() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(form), Some(RFC_EXAMPLE_MS), "{form}");
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", RFC_EXAMPLE_MS),
            Some(30.0)
        );
        // A date already past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE_MS + 5000.0),
            Some(0.0)
        );
    }

    #[test]
    fn retry_after_http_date_edge_cases() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400_000.0)
        );
        for bad in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:01 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
