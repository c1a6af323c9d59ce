//! The `Retry-After` header ([RFC 9110 §10.2.3]): delay-seconds or an HTTP-date.
//!
//! [RFC 9110 §10.2.3]: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3

use alloc::vec::Vec;

/// Longer waits are capped: the caller fails fast with this figure either way.
pub const MAX_RETRY_AFTER_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// Seconds to wait, from a `Retry-After` value received at `now_ms`.
/// A date in the past gives `0`; an unreadable value gives `None`.
pub fn parse_retry_after(value: &str, now_ms: f64) -> Option<f64> {
    let value = value.trim();
    if !value.contains('.') {
        if let Some(seconds) = crate::response::parse_decimal(value) {
            return Some(seconds.min(MAX_RETRY_AFTER_SECONDS));
        }
    }
    let at_ms = parse_http_date(value)?;
    Some(libm::ceil(((at_ms - now_ms) / 1000.0).max(0.0)).min(MAX_RETRY_AFTER_SECONDS))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Epoch milliseconds of an HTTP-date in any of the three forms RFC 9110
/// §5.6.7 requires recipients to accept:
/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate),
/// `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850) and
/// `Sun Nov  6 08:49:37 1994` (asctime).
pub fn parse_http_date(value: &str) -> Option<f64> {
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words.as_slice() {
        [weekday, day, month, year, time, "GMT"] if weekday.ends_with(',') => {
            (*day, *month, parse_year(year, 4)?, *time)
        }
        [weekday, date, time, "GMT"] if weekday.ends_with(',') => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let year = parse_year(year, 2)?;
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            (
                day,
                month,
                if year < 70 { 2000 + year } else { 1900 + year },
                *time,
            )
        }
        [_weekday, month, day, time, year] => (*day, *month, parse_year(year, 4)?, *time),
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day = small_number(day, 1, 31)?;
    let mut clock = time.split(':');
    let hour = small_number(clock.next()?, 0, 23)?;
    let minute = small_number(clock.next()?, 0, 59)?;
    let second = small_number(clock.next()?, 0, 60)?;
    if clock.next().is_some() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1000) as f64)
}

fn parse_year(text: &str, digits: usize) -> Option<i64> {
    (text.len() == digits).then(|| whole_number(text)).flatten()
}

fn small_number(text: &str, min: i64, max: i64) -> Option<i64> {
    let n = whole_number(text).filter(|_| text.len() <= 2)?;
    (min..=max).contains(&n).then_some(n)
}

/// Up to four ASCII digits.
fn whole_number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0, |n, b| n * 10 + i64::from(b - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known `days_from_civil` arithmetic).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
