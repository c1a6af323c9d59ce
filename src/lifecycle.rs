//! When to serve, refresh or fetch (SPEC §3): pure functions of the token's
//! schedule and `now`, in epoch milliseconds.

use crate::acquire::RetryPolicy;

/// The moments that matter in a token's life, in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
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
// max/min rather than f64::clamp, whose assertion drags float formatting into the wasm.
#[allow(clippy::manual_clamp)]
pub fn refresh_ahead_seconds(lifetime: f64) -> f64 {
    (0.1 * lifetime).max(30.0).min(600.0).min(0.5 * lifetime)
}

/// Allowance for clocks that disagree: `min(30, 0.05 × L)` seconds.
pub fn skew_seconds(lifetime: f64) -> f64 {
    (0.05 * lifetime).min(30.0)
}

/// The schedule of a token of `lifetime` seconds requested at `t0_ms`.
/// `override_seconds` replaces the computed window; `jitter` in `[0, 1)`
/// widens the window by up to 10 % so that many clients do not refresh in
/// lockstep. The refresh moment never falls before `t0_ms` or after the
/// token stops being usable.
pub fn schedule(t0_ms: f64, lifetime: f64, override_seconds: Option<f64>, jitter: f64) -> Schedule {
    let expires_at = t0_ms + lifetime * 1000.0;
    let usable_until = expires_at - skew_seconds(lifetime) * 1000.0;
    let ahead = override_seconds.unwrap_or_else(|| refresh_ahead_seconds(lifetime));
    let refresh_at = libm::floor(expires_at - ahead * (1.0 + 0.1 * jitter) * 1000.0)
        .max(t0_ms)
        .min(usable_until);
    Schedule {
        expires_at,
        refresh_at,
        usable_until,
    }
}

/// What a caller asking for a token should get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve the cached token.
    Serve,
    /// Serve the cached token and start one background refresh.
    ServeAndRefresh,
    /// No usable token and no request in flight: start one and wait for it.
    Fetch,
    /// No usable token, but a request is in flight: wait for that one.
    Join,
}

impl Decision {
    /// The decision as a small number for the JavaScript boundary.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Serve => 0,
            Self::ServeAndRefresh => 1,
            Self::Fetch => 2,
            Self::Join => 3,
        }
    }
}

/// Decides for a caller at `now` who needs the token to stay valid for
/// `min_valid_ms` more. `refresh_not_before` holds background refreshes
/// back after a failure (see [`background_retry_delay_ms`]);
/// `in_flight` says a token request is already running, which every caller
/// shares (single-flight: never two requests at once).
pub fn decide(
    now: f64,
    token: Option<&Schedule>,
    min_valid_ms: f64,
    refresh_not_before: f64,
    in_flight: bool,
) -> Decision {
    let usable = token.is_some_and(|s| now < s.usable_until.min(s.expires_at - min_valid_ms));
    match token {
        _ if !usable && in_flight => Decision::Join,
        _ if !usable => Decision::Fetch,
        Some(s) if now < s.refresh_at || now < refresh_not_before || in_flight => Decision::Serve,
        _ => Decision::ServeAndRefresh,
    }
}

/// Until when [`decide`] answers [`Decision::Serve`] to callers with no
/// `min_valid_ms`, as long as `refresh_not_before` and `in_flight` stay as
/// they are. The wrapper's hot path compares the clock with this number and
/// asks [`decide`] only past it.
pub fn serve_until(token: &Schedule, refresh_not_before: f64, in_flight: bool) -> f64 {
    let usable_until = token.usable_until.min(token.expires_at);
    if in_flight {
        usable_until
    } else {
        token.refresh_at.max(refresh_not_before).min(usable_until)
    }
}

/// How long to hold background refreshes back after `failures` failed ones
/// in a row: doubling from at least 1 s up to `max_delay_ms`, with equal
/// jitter (half fixed, half random) so attempts stay spaced, and never
/// sooner than the server's `Retry-After`.
pub fn background_retry_delay_ms(
    policy: &RetryPolicy,
    failures: u32,
    retry_after_seconds: Option<f64>,
    rand: f64,
) -> f64 {
    let doubling = f64::from(1u32 << failures.saturating_sub(1).min(30));
    let step = policy.base_delay_ms.max(1000.0) * doubling;
    let capped = step.min(policy.max_delay_ms.max(1000.0));
    let delay = capped * (0.5 + 0.5 * rand);
    delay.max(retry_after_seconds.unwrap_or(0.0) * 1000.0)
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
        // A window longer than the token refreshes at once, never before t0.
        assert_eq!(schedule(T0, 60.0, Some(600.0), 0.0).refresh_at, T0);
        // A zero window still refreshes before the token is unusable.
        let s = schedule(T0, 60.0, Some(0.0), 0.0);
        assert_eq!(s.refresh_at, s.usable_until);
    }

    #[test]
    fn decide_serves_refreshes_in_background_then_fetches() {
        let s = schedule(T0, 3600.0, None, 0.0);
        assert_eq!(decide(T0, None, 0.0, 0.0, false), Decision::Fetch);
        assert_eq!(
            decide(T0 + 1000.0, Some(&s), 0.0, 0.0, false),
            Decision::Serve
        );
        assert_eq!(
            decide(s.refresh_at - 1.0, Some(&s), 0.0, 0.0, false),
            Decision::Serve
        );
        // Stale-while-revalidate: inside the window, serve at once and refresh.
        assert_eq!(
            decide(s.refresh_at, Some(&s), 0.0, 0.0, false),
            Decision::ServeAndRefresh
        );
        assert_eq!(
            decide(s.usable_until - 1.0, Some(&s), 0.0, 0.0, false),
            Decision::ServeAndRefresh
        );
        // Past usable (skew), callers wait for a new token.
        assert_eq!(
            decide(s.usable_until, Some(&s), 0.0, 0.0, false),
            Decision::Fetch
        );
        assert_eq!(
            decide(s.expires_at + 1.0, Some(&s), 0.0, 0.0, false),
            Decision::Fetch
        );
    }

    #[test]
    fn failed_background_refresh_keeps_serving_the_valid_token() {
        let s = schedule(T0, 3600.0, None, 0.0);
        let failed_at = s.refresh_at + 1000.0;
        let hold = failed_at + background_retry_delay_ms(&RetryPolicy::default(), 1, None, 0.5);
        // While held back: serve without starting another refresh.
        assert_eq!(
            decide(failed_at + 10.0, Some(&s), 0.0, hold, false),
            Decision::Serve
        );
        assert_eq!(
            decide(hold, Some(&s), 0.0, hold, false),
            Decision::ServeAndRefresh
        );
        // Holding back never makes an unusable token servable.
        assert_eq!(
            decide(s.usable_until, Some(&s), 0.0, f64::INFINITY, false),
            Decision::Fetch
        );
    }

    #[test]
    fn single_flight_callers_join_the_request_in_flight() {
        let s = schedule(T0, 3600.0, None, 0.0);
        // No token: the first caller fetches, every later one joins.
        assert_eq!(decide(T0, None, 0.0, 0.0, false), Decision::Fetch);
        assert_eq!(decide(T0, None, 0.0, 0.0, true), Decision::Join);
        assert_eq!(
            decide(s.usable_until, Some(&s), 0.0, 0.0, true),
            Decision::Join
        );
        // In the window with a refresh running: serve, start nothing more.
        assert_eq!(
            decide(s.refresh_at, Some(&s), 0.0, 0.0, true),
            Decision::Serve
        );
    }

    #[test]
    fn min_valid_forces_a_fetch_when_the_token_would_expire_too_soon() {
        let s = schedule(T0, 3600.0, None, 0.0);
        let now = T0 + 3_300_000.0;
        assert_eq!(
            decide(now, Some(&s), 0.0, 0.0, false),
            Decision::ServeAndRefresh
        );
        assert_eq!(
            decide(now, Some(&s), 200_000.0, 0.0, false),
            Decision::ServeAndRefresh
        );
        assert_eq!(
            decide(now, Some(&s), 300_000.0, 0.0, false),
            Decision::Fetch
        );
    }

    #[test]
    fn background_retries_back_off_doubling_with_equal_jitter() {
        let p = RetryPolicy::default();
        let delays: Vec<f64> = (1..=6)
            .map(|n| background_retry_delay_ms(&p, n, None, 0.0))
            .collect();
        assert_eq!(delays, vec![500.0, 1000.0, 2000.0, 4000.0, 5000.0, 5000.0]);
        assert_eq!(
            background_retry_delay_ms(&p, 6, None, 0.999_999).round(),
            10_000.0
        );
        assert_eq!(background_retry_delay_ms(&p, 1, Some(30.0), 0.0), 30_000.0);
        assert!(background_retry_delay_ms(&p, u32::MAX, None, 1.0).is_finite());
    }

    #[test]
    fn serve_until_is_where_decide_stops_serving() {
        let token = schedule(T0, 3600.0, None, 0.5);
        let holds = [0.0, token.refresh_at + 60_000.0, token.usable_until + 1.0];
        for refresh_not_before in holds {
            for in_flight in [false, true] {
                let until = serve_until(&token, refresh_not_before, in_flight);
                let at = |now: f64| decide(now, Some(&token), 0.0, refresh_not_before, in_flight);
                assert_eq!(at(T0), Decision::Serve);
                assert_eq!(at(until - 1.0), Decision::Serve);
                assert_ne!(
                    at(until),
                    Decision::Serve,
                    "{refresh_not_before} {in_flight}"
                );
            }
        }
    }
}
