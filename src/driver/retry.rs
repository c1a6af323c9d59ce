//! The retry budget of one acquisition (RFC 6749 §4.4; retry rules in
//! docs/DESIGN.md, "Retries"), as a sans-IO state machine the driver keeps
//! from its first token request: it says how long each attempt may take,
//! how long to wait before the next, and when the acquisition is done.
//!
//! ```text
//! begin_attempt(now) -> timeout ──send──> finish_attempt(now, outcome)
//!        ^                                   │ Retry { delay_ms } ── sleep ──┐
//!        └───────────────────────────────────┴───────────────────────────────┘
//!                                            │ Done { token } / Failed(error)
//! ```

use crate::clock::Now;
use crate::config::{Config, RetryPolicy};
use crate::error::{ErrorCode, TokenError};
use crate::redact::Redactor;
use crate::response::TokenResponse;

/// What the driver does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Sleep `delay_ms`, then call [`RetryBudget::begin_attempt`] again.
    Retry {
        /// How long to wait.
        delay_ms: f64,
        /// Why the last attempt failed.
        error: TokenError,
    },
    /// A token, with the moment its request was sent (its lifetime counts from there).
    Done {
        /// The token response.
        token: TokenResponse,
        /// When the request that got it was sent.
        sent_at: Now,
    },
    /// No token; the error is final for this acquisition.
    Failed(TokenError),
}

/// An acquisition's retry budget: the attempts made and the deadline they share.
pub struct RetryBudget {
    policy: RetryPolicy,
    timeout_ms: f64,
    redactor: Redactor,
    started_at: f64,
    attempts: u32,
    sent_at: Now,
}

impl RetryBudget {
    /// The budget of an acquisition whose first attempt begins at `now`.
    /// `redactor` cleans the errors it returns of every credential the
    /// server might echo.
    pub fn new(config: &Config, redactor: Redactor, now: Now) -> Self {
        Self {
            policy: config.retry,
            timeout_ms: config.timeout_ms,
            redactor,
            started_at: now.mono,
            attempts: 0,
            sent_at: now,
        }
    }

    /// Also removes `credential` (this attempt's signed assertion) from the
    /// errors it returns.
    pub fn also_redact(&mut self, credential: &str) {
        self.redactor.add(credential);
    }

    /// Also removes `secret`, read for this attempt, and its Basic pair with
    /// `client_id` from the errors it returns.
    pub fn also_redact_secret(&mut self, client_id: &str, secret: &str) {
        self.redactor.add_secret(client_id, secret);
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Call just before sending: returns the timeout for this attempt,
    /// which never reaches past the deadline.
    pub fn begin_attempt(&mut self, now: Now) -> f64 {
        self.attempts += 1;
        self.sent_at = now;
        let left = self.started_at + self.policy.deadline_ms - now.mono;
        self.timeout_ms.min(left).max(1.0)
    }

    /// Call with what the attempt produced: a token, or why there is none.
    /// `one_attempt` ends the acquisition on any failure (a background
    /// refresh while the current token is still usable). `rand` is uniform
    /// in `[0, 1)`, for backoff jitter.
    pub fn finish_attempt(
        &mut self,
        now: Now,
        outcome: Result<TokenResponse, TokenError>,
        one_attempt: bool,
        rand: f64,
    ) -> Step {
        let mut error = match outcome {
            Ok(token) => {
                return Step::Done {
                    token,
                    sent_at: self.sent_at,
                }
            }
            Err(error) => error,
        };
        error.redact(&self.redactor);
        if !error.retryable || one_attempt || self.attempts >= self.policy.max_attempts {
            return Step::Failed(error);
        }
        let backoff = self.policy.backoff_ms(self.attempts, rand).ceil();
        let delay_ms = match error.retry_after_seconds {
            Some(seconds) => (seconds * 1000.0).max(backoff),
            None => backoff,
        };
        if now.mono + delay_ms >= self.started_at + self.policy.deadline_ms {
            // Waiting would pass the deadline: fail now, saying how long the server wants.
            if error.retry_after_seconds.is_some() {
                error.code = ErrorCode::RateLimited;
            }
            return Step::Failed(error);
        }
        Step::Retry { delay_ms, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::secret::AccessToken;
    use serde_json::json;

    const T0: Now = Now {
        wall: 1_000_000.0,
        mono: 5.0,
    };

    fn budget(extra: serde_json::Value) -> RetryBudget {
        let mut options = json!({ "clientSecret": "s3cr3t value" });
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let config = config(options).unwrap();
        let redactor = Redactor::new("id", Some("s3cr3t value"));
        RetryBudget::new(&config, redactor, T0)
    }

    fn token(lifetime: f64) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("tok".into()),
            expires_in: lifetime,
            scope: None,
        }
    }

    fn failure(code: ErrorCode, status: u16) -> TokenError {
        TokenError::new(code, "x").with_status(status)
    }

    #[test]
    fn backoff_is_exponential_with_full_jitter() {
        let p = RetryPolicy::default();
        let top: Vec<f64> = (1..=8).map(|n| p.backoff_ms(n, 1.0)).collect();
        assert_eq!(
            top,
            vec![250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 10_000.0, 10_000.0]
        );
        assert_eq!(p.backoff_ms(3, 0.0), 0.0);
        assert_eq!(p.backoff_ms(3, 0.5), 500.0);
        assert!(p.backoff_ms(u32::MAX, 1.0) <= p.max_delay_ms);
    }

    #[test]
    fn expiry_is_measured_from_the_attempt_that_succeeded() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let step = a.finish_attempt(
            T0.plus(50.0),
            Err(failure(ErrorCode::ServerError, 503)),
            false,
            0.5,
        );
        assert!(matches!(step, Step::Retry { .. }));
        a.begin_attempt(T0.plus(1000.0));
        let step = a.finish_attempt(T0.plus(1200.0), Ok(token(300.0)), false, 0.0);
        let Step::Done { sent_at, .. } = step else {
            panic!("expected a token");
        };
        assert_eq!(a.attempts(), 2);
        assert_eq!(sent_at, T0.plus(1000.0));
    }

    #[test]
    fn retryable_failures_retry_up_to_max_attempts() {
        let mut a = budget(json!({}));
        let mut now = T0;
        let mut retries = 0;
        loop {
            a.begin_attempt(now);
            match a.finish_attempt(now, Err(failure(ErrorCode::Network, 0)), false, 1.0) {
                Step::Retry { delay_ms, .. } => {
                    retries += 1;
                    now = now.plus(delay_ms);
                }
                Step::Failed(e) => {
                    assert_eq!(e.code, ErrorCode::Network);
                    break;
                }
                Step::Done { .. } => unreachable!(),
            }
        }
        assert_eq!((retries, a.attempts()), (3, 4));
    }

    #[test]
    fn a_background_attempt_while_the_token_is_usable_is_the_only_one() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let step = a.finish_attempt(T0, Err(failure(ErrorCode::ServerError, 503)), true, 0.5);
        assert!(matches!(step, Step::Failed(_)));
        assert_eq!(a.attempts(), 1);
    }

    #[test]
    fn oauth_errors_are_not_retried() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let mut e = TokenError::new(ErrorCode::InvalidClient, "bad").with_status(401);
        e.retryable = false;
        let step = a.finish_attempt(T0, Err(e), false, 0.5);
        assert!(matches!(
            step,
            Step::Failed(TokenError {
                code: ErrorCode::InvalidClient,
                ..
            })
        ));
        assert_eq!(a.attempts(), 1);
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::RateLimited, 429);
        e.retry_after_seconds = Some(5.0);
        let step = a.finish_attempt(T0, Err(e), false, 0.9);
        assert!(matches!(step, Step::Retry { delay_ms, .. } if delay_ms == 5000.0));
    }

    #[test]
    fn a_wait_past_the_deadline_fails_fast_as_rate_limited() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::RateLimited, 429);
        e.retry_after_seconds = Some(31_536_000.0);
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), false, 0.5) else {
            panic!("expected failure");
        };
        assert_eq!(
            (e.code, e.retry_after_seconds),
            (ErrorCode::RateLimited, Some(31_536_000.0))
        );
        // A 503 asking for more than the deadline is reported the same way.
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::ServerError, 503);
        e.retry_after_seconds = Some(60.0);
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), false, 0.5) else {
            panic!("expected failure");
        };
        assert_eq!(
            (e.code, e.status, e.retry_after_seconds),
            (ErrorCode::RateLimited, Some(503), Some(60.0))
        );
    }

    #[test]
    fn attempt_timeouts_never_reach_past_the_deadline() {
        let mut a = budget(json!({ "timeoutMs": 10_000, "retry": { "deadlineMs": 12_000 } }));
        assert_eq!(a.begin_attempt(T0), 10_000.0);
        assert!(matches!(
            a.finish_attempt(
                T0.plus(10_000.0),
                Err(failure(ErrorCode::Timeout, 0)),
                false,
                0.001
            ),
            Step::Retry { .. }
        ));
        assert_eq!(a.begin_attempt(T0.plus(10_500.0)), 1_500.0);
        // Backoff that would pass the deadline ends the acquisition.
        let step = a.finish_attempt(
            T0.plus(11_999.0),
            Err(failure(ErrorCode::Timeout, 0)),
            false,
            1.0,
        );
        assert!(matches!(
            step,
            Step::Failed(TokenError {
                code: ErrorCode::Timeout,
                ..
            })
        ));
    }

    #[test]
    fn the_deadline_is_kept_on_the_monotonic_clock() {
        let mut a = budget(json!({ "retry": { "deadlineMs": 5_000 } }));
        // The wall clock jumps back an hour; the deadline still passes on time.
        let later = Now {
            wall: T0.wall - 3_600_000.0,
            mono: T0.mono + 4_999.0,
        };
        assert_eq!(a.begin_attempt(later), 1.0);
    }

    #[test]
    fn errors_leaving_the_acquisition_never_carry_the_secret() {
        let mut a = budget(json!({}));
        a.begin_attempt(T0);
        let mut e = TokenError::new(
            ErrorCode::InvalidClient,
            "got s3cr3t value and s3cr3t+value",
        );
        e.retryable = false;
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), false, 0.0) else {
            panic!("expected failure");
        };
        let text = e.message();
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
