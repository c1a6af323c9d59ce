//! The API's 429 in `client.fetch` (docs/DESIGN.md, "The API's rate
//! limit"): a 429 marks the token that got it as cooling until its
//! `Retry-After` ([RFC 6585 §4], [RFC 9110 §10.2.3]); the call sends again
//! after the wait when the wait fits its `retry.deadlineMs` and its body can
//! be replayed, and otherwise hands the 429 to its caller. A call that finds
//! the token cooling before it sends waits the same way. Pure decisions:
//! the wrapper performs the waits and the sends.
//!
//! [RFC 6585 §4]: https://www.rfc-editor.org/rfc/rfc6585#section-4
//! [RFC 9110 §10.2.3]: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3

use crate::clock::Now;
use crate::config::RetryPolicy;
use crate::retry_after::parse_retry_after;
use crate::shared::MAX_SHARED_BACKOFF_MS;
use serde::Serialize;

/// How long a token cools after a 429 that names no (readable) `Retry-After`.
pub const DEFAULT_COOLING_MS: f64 = 3_000.0;

/// The longest cooling, whatever the API asks: the cap of the token
/// endpoint's shared back-off.
pub const MAX_COOLING_MS: f64 = MAX_SHARED_BACKOFF_MS;

/// How long a token cools after a 429 whose `Retry-After` reads
/// `retry_after` (absent: `None`), received at wall time `now_ms`.
pub fn cooling_ms(retry_after: Option<&str>, now_ms: f64) -> f64 {
    retry_after
        .and_then(|value| parse_retry_after(value, now_ms))
        .map_or(DEFAULT_COOLING_MS, |seconds| seconds * 1000.0)
        .min(MAX_COOLING_MS)
}

/// `ms` as whole milliseconds, rounded up, ignoring the float noise of
/// subtracting two clock readings (below a nanosecond).
fn whole_ms(ms: f64) -> f64 {
    (ms - 1e-6).ceil().max(0.0)
}

/// What a `client.fetch` call does about the API's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ApiStep {
    /// Send (again) now.
    Send,
    /// Wait `ms` for the token to stop cooling, then send again.
    Wait {
        /// How long, ms.
        ms: f64,
    },
    /// Hand the 429 received to the caller.
    Return,
}

/// One `client.fetch` call, as far as the API's rate limit is concerned:
/// when it began and how often it has sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApiCall {
    /// When the call began, monotonic ms.
    pub started: f64,
    /// Requests sent so far.
    pub sends: u32,
}

impl ApiCall {
    /// Whether waiting `ms` from `now` keeps the call within its
    /// `retry.deadlineMs`.
    fn fits(&self, now: Now, ms: f64, policy: &RetryPolicy) -> bool {
        now.mono + ms <= self.started + policy.deadline_ms
    }

    /// Before a send, with the token cooling until `cooling_until`
    /// (monotonic ms): wait for it when that fits the deadline, else send
    /// at once (the API then answers for itself).
    pub fn before_send(&self, now: Now, cooling_until: f64, policy: &RetryPolicy) -> ApiStep {
        let ms = whole_ms(cooling_until - now.mono);
        if ms > 0.0 && self.fits(now, ms, policy) {
            ApiStep::Wait { ms }
        } else {
            ApiStep::Send
        }
    }

    /// A 429 arrived at `now`; the token cools until `cooling_until`
    /// (monotonic ms). Send again after the wait when the body can be
    /// replayed, the call has sent fewer than `retry.maxAttempts` times and
    /// the wait fits its deadline; otherwise return the 429.
    pub fn rate_limited(
        &self,
        now: Now,
        cooling_until: f64,
        replayable: bool,
        policy: &RetryPolicy,
    ) -> ApiStep {
        let ms = whole_ms(cooling_until - now.mono);
        if replayable && self.sends < policy.max_attempts && self.fits(now, ms, policy) {
            ApiStep::Wait { ms }
        } else {
            ApiStep::Return
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Now = Now {
        wall: 1_700_000_000_000.0,
        mono: 5_000.0,
    };

    fn call(sends: u32) -> ApiCall {
        ApiCall {
            started: T0.mono,
            sends,
        }
    }

    #[test]
    fn cooling_reads_seconds_or_a_date_caps_them_and_defaults_when_absent() {
        assert_eq!(cooling_ms(Some("2"), T0.wall), 2_000.0);
        assert_eq!(cooling_ms(Some("0"), T0.wall), 0.0);
        assert_eq!(cooling_ms(Some("86400"), T0.wall), MAX_COOLING_MS);
        assert_eq!(cooling_ms(None, T0.wall), DEFAULT_COOLING_MS);
        assert_eq!(cooling_ms(Some("soon"), T0.wall), DEFAULT_COOLING_MS);
        // Tue, 14 Nov 2023 22:13:25 GMT is T0 + 5 s.
        assert_eq!(
            cooling_ms(Some("Tue, 14 Nov 2023 22:13:25 GMT"), T0.wall),
            5_000.0
        );
    }

    #[test]
    fn a_429_waits_when_the_wait_fits_the_deadline_and_the_body_replays() {
        let policy = RetryPolicy::default(); // 30 s deadline, 4 attempts
        let now = T0.plus(1_000.0);
        assert_eq!(
            call(1).rate_limited(now, now.mono + 2_000.0, true, &policy),
            ApiStep::Wait { ms: 2_000.0 }
        );
        assert_eq!(
            call(1).rate_limited(now, now.mono + 29_000.0, true, &policy),
            ApiStep::Wait { ms: 29_000.0 }
        );
        assert_eq!(
            call(1).rate_limited(now, now.mono + 29_001.0, true, &policy),
            ApiStep::Return
        );
        assert_eq!(
            call(1).rate_limited(now, now.mono + 2_000.0, false, &policy),
            ApiStep::Return
        );
        assert_eq!(
            call(4).rate_limited(now, now.mono + 2_000.0, true, &policy),
            ApiStep::Return
        );
    }

    #[test]
    fn a_call_finding_the_token_cooling_waits_only_when_that_fits() {
        let policy = RetryPolicy::default();
        assert_eq!(call(0).before_send(T0, 0.0, &policy), ApiStep::Send);
        assert_eq!(
            call(0).before_send(T0, T0.mono + 1_500.0, &policy),
            ApiStep::Wait { ms: 1_500.0 }
        );
        assert_eq!(
            call(0).before_send(T0, T0.mono + 60_000.0, &policy),
            ApiStep::Send
        );
    }
}
