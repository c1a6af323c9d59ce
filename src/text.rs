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
    nearest(name, candidates).map_or("", |(c, _)| c)
}

/// The candidate closest to `name` (as [`closest`] finds it) when it is
/// within `max` edits: a near miss gets its name, anything further gets
/// none, so that a value typed into the wrong place is not matched to a
/// name it merely resembles.
pub fn near<'a>(name: &str, candidates: &[&'a str], max: usize) -> Option<&'a str> {
    nearest(name, candidates).and_then(|(c, edits)| (edits <= max).then_some(c))
}

/// The candidate closest to `name`, ignoring case, `_` and `-`, and its
/// distance in edits (a swap of two neighbours counts as one).
fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<(&'a str, usize)> {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let folded = fold(name);
    candidates
        .iter()
        .map(|c| (*c, strsim::osa_distance(&folded, &fold(c))))
        .min_by_key(|(_, edits)| *edits)
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

    #[test]
    fn near_names_only_what_is_close() {
        let regions = ["eu_west_1", "eu_west_2", "us_east_1", "mypurecloud.ie"];
        assert_eq!(near("eu_wset_1", &regions, 2), Some("eu_west_1"));
        assert_eq!(near("EU-WEST-1", &regions, 2), Some("eu_west_1"));
        assert_eq!(near("mypurecloud.i", &regions, 2), Some("mypurecloud.ie"));
        assert_eq!(near("r4-canary-secret-in-region", &regions, 2), None);
        assert_eq!(near("nowhere", &regions, 2), None);
        assert_eq!(near("x", &[], 2), None);
    }
}
