//! A token's schedule: when to refresh it and when to stop serving it.
//! Pure functions of its lifetime and the time it was requested.

use serde::Serialize;

/// The moments that matter in a token's life, in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// `t0 + expires_in`: the server's expiry, measured from when the request was sent.
    pub expires_at: f64,
    /// From here on, serve the token but refresh it in the background.
    pub refresh_at: f64,
    /// From here on the token is not served (expiry minus clock skew).
    pub usable_until: f64,
}

/// The computed refresh window for a lifetime `L` in seconds:
/// `min(clamp(0.1 × L, 30, 600), 0.5 × L)`.
pub fn refresh_ahead_seconds(lifetime: f64) -> f64 {
    (0.1 * lifetime).clamp(30.0, 600.0).min(0.5 * lifetime)
}

/// Allowance for clocks that disagree: `min(30, 0.05 × L)` seconds.
pub fn skew_seconds(lifetime: f64) -> f64 {
    (0.05 * lifetime).min(30.0)
}

/// The schedule of a token of `lifetime` seconds requested at `t0_ms`.
/// `override_seconds` replaces the computed window, but like it reaches
/// back at most half the lifetime: a window as long as the token would
/// refresh on every call. `jitter` in `[0, 1)`
/// widens the window by up to 10 % so that many clients do not refresh in
/// lockstep. The refresh moment never falls before `t0_ms` or after the
/// token stops being usable.
pub fn schedule(t0_ms: f64, lifetime: f64, override_seconds: Option<f64>, jitter: f64) -> Schedule {
    let expires_at = t0_ms + lifetime * 1000.0;
    let usable_until = expires_at - skew_seconds(lifetime) * 1000.0;
    let ahead = override_seconds.map_or_else(
        || refresh_ahead_seconds(lifetime),
        |seconds| seconds.min(0.5 * lifetime),
    );
    let refresh_at = (expires_at - ahead * (1.0 + 0.1 * jitter) * 1000.0)
        .floor()
        .max(t0_ms)
        .min(usable_until);
    Schedule {
        expires_at,
        refresh_at,
        usable_until,
    }
}

/// Shortest pause after a failure.
const FIRST_HOLD_BACK_MS: f64 = 1_000.0;
/// Longest pause after failures in a row, unless the server asks for more.
const MAX_HOLD_BACK_MS: f64 = 60_000.0;
/// Longest pause a server's `Retry-After` can impose on this client; a
/// longer one fails each call fast until then, but never locks it out for
/// longer than this.
pub const MAX_RETRY_AFTER_HOLD_MS: f64 = 600_000.0;

/// A hold-back chosen while a token is still usable ends at least this
/// long before the token stops being usable, so that one more background
/// attempt fits in before callers have to wait.
const LAST_TRY_MARGIN_MS: f64 = 1_000.0;
/// ... but attempts are never spaced closer than this.
const MIN_SPACING_MS: f64 = FIRST_HOLD_BACK_MS / 2.0;

/// How long to pause token requests after `failures` failed ones in a row:
/// 1 s doubling to 60 s, with equal jitter (half fixed, half random) so
/// that attempts stay spaced, and never sooner than the server's
/// `Retry-After` (itself capped at 10 minutes).
///
/// `usable_left_ms`, when a token is still being served: the pause this
/// client chooses for itself never outlasts that token. It ends a second
/// before the token stops being usable (the last background attempt), or,
/// that close to the end, at least half a second after the last attempt
/// and at the latest when the token stops being usable. The server's
/// `Retry-After` is still honoured as given.
pub fn hold_back_ms(
    failures: u32,
    retry_after_seconds: Option<f64>,
    rand: f64,
    usable_left_ms: Option<f64>,
) -> f64 {
    let doubling = f64::from(1u32 << failures.saturating_sub(1).min(30));
    let step = (FIRST_HOLD_BACK_MS * doubling).min(MAX_HOLD_BACK_MS) * (0.5 + 0.5 * rand);
    let own = match usable_left_ms {
        Some(left) if step > left - LAST_TRY_MARGIN_MS => (left - LAST_TRY_MARGIN_MS)
            .max(MIN_SPACING_MS)
            .min(left.max(0.0)),
        _ => step,
    };
    own.max(asked_hold_back_ms(retry_after_seconds))
}

/// The part of a hold-back the server asked for: its `Retry-After`
/// (RFC 9110 §10.2.3), at most 10 minutes.
pub fn asked_hold_back_ms(retry_after_seconds: Option<f64>) -> f64 {
    (retry_after_seconds.unwrap_or(0.0) * 1000.0).min(MAX_RETRY_AFTER_HOLD_MS)
}

/// What is left of a hold-back this client chose once a token usable
/// `usable_left_ms` more is served: as [`hold_back_ms`] has it, it ends a
/// second before that token stops being usable, and no sooner than half a
/// second from now.
pub fn hold_back_left_ms(usable_left_ms: f64) -> f64 {
    (usable_left_ms - LAST_TRY_MARGIN_MS).max(MIN_SPACING_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000_000.0;

    fn window_seconds(lifetime: f64, jitter: f64) -> f64 {
        let s = schedule(T0, lifetime, None, jitter);
        (s.expires_at - s.refresh_at) / 1000.0
    }

    #[test]
    fn expiry_counts_from_when_the_request_was_sent() {
        let s = schedule(T0, 300.0, None, 0.0);
        assert_eq!(s.expires_at, T0 + 300_000.0);
    }

    #[test]
    fn refresh_window_for_8_300_3600_and_86400_second_tokens() {
        assert_eq!(window_seconds(8.0, 0.0), 4.0);
        assert_eq!(window_seconds(300.0, 0.0), 30.0);
        assert_eq!(window_seconds(3600.0, 0.0), 360.0);
        assert_eq!(window_seconds(86_400.0, 0.0), 600.0);
        assert_eq!(refresh_ahead_seconds(40.0), 20.0);
    }

    #[test]
    fn jitter_widens_the_window_by_at_most_10_percent() {
        for lifetime in [8.0, 300.0, 3600.0, 86_400.0] {
            let base = window_seconds(lifetime, 0.0);
            for jitter in [0.0, 0.25, 0.5, 0.999_999] {
                let w = window_seconds(lifetime, jitter);
                assert!(
                    w >= base && w < base * 1.1 + 1e-9,
                    "{lifetime} {jitter} {w}"
                );
            }
            assert!((window_seconds(lifetime, 0.999_999) - base * 1.1).abs() < 0.01);
        }
    }

    #[test]
    fn skew_is_min_of_30_seconds_and_5_percent() {
        assert_eq!(skew_seconds(8.0), 0.4);
        assert_eq!(skew_seconds(300.0), 15.0);
        assert_eq!(skew_seconds(3600.0), 30.0);
        let s = schedule(T0, 3600.0, None, 0.0);
        assert_eq!(s.usable_until, s.expires_at - 30_000.0);
    }

    #[test]
    fn refresh_ahead_override_replaces_the_computed_window_within_bounds() {
        let s = schedule(T0, 3600.0, Some(120.0), 0.0);
        assert_eq!(s.expires_at - s.refresh_at, 120_000.0);
        // A window as long as the token or longer reaches back half its life,
        // like the computed one: never a refresh on every call.
        assert_eq!(
            schedule(T0, 60.0, Some(600.0), 0.0).refresh_at,
            T0 + 30_000.0
        );
        assert_eq!(
            schedule(T0, 300.0, Some(300.0), 0.0).refresh_at,
            T0 + 150_000.0
        );
        // A zero window still refreshes before the token is unusable.
        let s = schedule(T0, 60.0, Some(0.0), 0.0);
        assert_eq!(s.refresh_at, s.usable_until);
    }

    #[test]
    fn hold_back_doubles_from_1_to_60_seconds_with_equal_jitter() {
        let lowest: Vec<f64> = (1..=8).map(|n| hold_back_ms(n, None, 0.0, None)).collect();
        assert_eq!(
            lowest,
            [500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16_000.0, 30_000.0, 30_000.0]
        );
        assert_eq!(hold_back_ms(8, None, 0.999_999, None).round(), 60_000.0);
        assert!(hold_back_ms(u32::MAX, None, 1.0, None) <= 60_000.0);
    }

    #[test]
    fn hold_back_honours_retry_after_up_to_ten_minutes() {
        assert_eq!(hold_back_ms(1, Some(30.0), 0.0, None), 30_000.0);
        assert_eq!(hold_back_ms(1, Some(31_536_000.0), 0.0, None), 600_000.0);
        // Even with a token about to stop being usable: the server's word counts.
        assert_eq!(hold_back_ms(1, Some(30.0), 0.0, Some(2_000.0)), 30_000.0);
    }

    #[test]
    fn a_hold_back_never_outlasts_the_token_being_served() {
        // 2–4 s chosen, 3 s left: the last background attempt a second before the end.
        assert_eq!(hold_back_ms(3, None, 0.999, Some(3_000.0)), 2_000.0);
        // Close to the end: spaced by half a second, ending when the token does.
        assert_eq!(hold_back_ms(5, None, 0.5, Some(1_200.0)), 500.0);
        assert_eq!(hold_back_ms(5, None, 0.5, Some(300.0)), 300.0);
        // Plenty of time left: the doubling as it is.
        assert_eq!(hold_back_ms(3, None, 0.0, Some(60_000.0)), 2_000.0);
    }
}
