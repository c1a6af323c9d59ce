//! Small text helpers shared by the options, the response and `Retry-After`.

/// A plain decimal such as `3600` or `299.5`: ASCII digits with at most one
/// inner point. No sign, exponent, spaces, `inf` or `NaN`. Read digit by
/// digit: `str::parse::<f64>` would bring a full float parser into the wasm
/// for a value that is a whole number of seconds in practice.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let value = |s: &str| s.bytes().fold(0.0, |n, b| n * 10.0 + f64::from(b - b'0'));
    Some(value(whole) + value(fraction) / 10f64.powi(fraction.len() as i32))
}

/// The candidate closest to `name`, ignoring case, `_` and `-`, so that
/// `encryption_key` finds `encryptionKey`.
pub fn closest<'a>(name: &str, candidates: &[&'a str]) -> &'a str {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let folded = fold(name);
    candidates
        .iter()
        .min_by_key(|c| strsim::osa_distance(&folded, &fold(c)))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decimal_reads_plain_decimals_only() {
        assert_eq!(parse_decimal("3600"), Some(3600.0));
        assert_eq!(parse_decimal("299.5"), Some(299.5));
        assert_eq!(parse_decimal("007"), Some(7.0));
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1e3", "1.2.3", " 1", "0x10", "１", "inf", "NaN",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn closest_finds_misspellings_and_other_spellings() {
        let names = ["tokenUrl", "encryptionKey", "maxAttempts", "timeoutMs"];
        assert_eq!(closest("encryption_key", &names), "encryptionKey");
        assert_eq!(closest("maxAttemps", &names), "maxAttempts");
        assert_eq!(closest("token-url", &names), "tokenUrl");
        assert_eq!(closest("timeout", &names), "timeoutMs");
    }
}
