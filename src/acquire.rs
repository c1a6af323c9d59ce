//! One token acquisition with retries (SPEC §4), as a sans-IO state
//! machine: it says what to send, how long to wait, and when it is done.
//!
//! ```text
//! begin_attempt(now) -> timeout ──send──> finish_attempt(now, outcome)
//!        ^                                   │ Retry { delay_ms } ── sleep ──┐
//!        └───────────────────────────────────┴───────────────────────────────┘
//!                                            │ Done(Issued) / Failed(TokenError)
//! ```

use crate::config::Config;
use crate::error::{ErrorCode, TokenError};
use crate::lifecycle::{schedule, Schedule};
use crate::request::form_encode;
use crate::response::TokenResponse;
use crate::secret::ClientSecret;

/// Retry settings: attempts, full-jitter exponential backoff and a deadline
/// for the whole acquisition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in one acquisition, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt, before jitter.
    pub base_delay_ms: f64,
    /// Largest backoff step, before jitter.
    pub max_delay_ms: f64,
    /// Bound on the whole acquisition, waits included.
    pub deadline_ms: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay_ms: 250.0,
            max_delay_ms: 10_000.0,
            deadline_ms: 30_000.0,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff after `failed` attempts: a uniform draw from
    /// `[0, min(max_delay, base × 2^(failed−1)))`.
    pub fn backoff_ms(&self, failed: u32, rand: f64) -> f64 {
        let doubling = f64::from(1u32 << failed.saturating_sub(1).min(30));
        rand * (self.base_delay_ms * doubling).min(self.max_delay_ms)
    }
}

/// A token and its schedule, as issued.
#[derive(Clone, Debug, PartialEq)]
pub struct Issued {
    /// The token response.
    pub token: TokenResponse,
    /// When to refresh it and when it stops being usable.
    pub schedule: Schedule,
    /// Attempts it took.
    pub attempts: u32,
}

/// What the driver does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Sleep `delay_ms`, then call [`Acquisition::begin_attempt`] again.
    Retry {
        /// How long to wait.
        delay_ms: f64,
        /// Why the last attempt failed.
        error: TokenError,
    },
    /// A token.
    Done(Issued),
    /// No token; the error is final for this acquisition.
    Failed(TokenError),
}

/// What acquisitions need from a client's configuration: all a client
/// keeps besides its token request.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Retry policy.
    pub policy: RetryPolicy,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: f64,
    /// Fixed refresh window in seconds, if set.
    pub refresh_ahead_seconds: Option<f64>,
    /// The secret, to redact it from server error messages.
    pub secret: ClientSecret,
}

impl Settings {
    /// The settings of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            policy: config.retry,
            timeout_ms: config.timeout_ms,
            refresh_ahead_seconds: config.refresh_ahead_seconds,
            secret: config.client_secret.clone(),
        }
    }
}

/// The state of one acquisition.
#[derive(Debug)]
pub struct Acquisition {
    settings: Settings,
    started_at: f64,
    attempts: u32,
    sent_at: f64,
}

impl Acquisition {
    /// Starts an acquisition at `now`.
    pub fn new(settings: &Settings, now: f64) -> Self {
        Self {
            settings: settings.clone(),
            started_at: now,
            attempts: 0,
            sent_at: now,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Call just before sending: returns the timeout for this attempt,
    /// which never reaches past the deadline.
    pub fn begin_attempt(&mut self, now: f64) -> f64 {
        self.attempts += 1;
        self.sent_at = now;
        let left = self.started_at + self.settings.policy.deadline_ms - now;
        self.settings.timeout_ms.min(left).max(1.0)
    }

    /// Call with what the attempt produced: a parsed answer, or a transport
    /// error (`network`, `timeout`). `rand` values are uniform in `[0, 1)`:
    /// one for backoff jitter, one for refresh-window jitter.
    pub fn finish_attempt(
        &mut self,
        now: f64,
        outcome: Result<TokenResponse, TokenError>,
        rand_backoff: f64,
        rand_window: f64,
    ) -> Step {
        let mut error = match outcome {
            Ok(token) => {
                let schedule = schedule(
                    self.sent_at,
                    token.expires_in,
                    self.settings.refresh_ahead_seconds,
                    rand_window,
                );
                return Step::Done(Issued {
                    token,
                    schedule,
                    attempts: self.attempts,
                });
            }
            Err(error) => error,
        };
        error.redact(self.settings.secret.secret());
        error.redact(&form_encode(self.settings.secret.secret()));
        if !error.retryable || self.attempts >= self.settings.policy.max_attempts {
            return Step::Failed(error);
        }
        let backoff = libm::ceil(self.settings.policy.backoff_ms(self.attempts, rand_backoff));
        let delay_ms = match error.retry_after_seconds {
            Some(seconds) => (seconds * 1000.0).max(backoff),
            None => backoff,
        };
        let deadline = self.started_at + self.settings.policy.deadline_ms;
        if now + delay_ms >= deadline {
            // Waiting would pass the deadline: fail now, saying how long the server wants.
            if error.code == ErrorCode::RateLimited || error.retry_after_seconds.is_none() {
                return Step::Failed(error);
            }
            error.code = ErrorCode::RateLimited;
            return Step::Failed(error);
        }
        Step::Retry { delay_ms, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;
    use crate::error::ErrorCode;
    use crate::secret::AccessToken;

    const T0: f64 = 1_000_000.0;

    fn settings(edit: impl FnOnce(&mut Options)) -> Settings {
        let mut o = Options {
            token_url: "https://login.example.com/oauth/token".into(),
            client_id: "id".into(),
            client_secret: "s3cr3t value".into(),
            ..Options::default()
        };
        edit(&mut o);
        Settings::new(&Config::new(o).unwrap())
    }

    fn token(lifetime: f64) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("tok".into()),
            token_type: "Bearer".into(),
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
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let step = a.finish_attempt(
            T0 + 50.0,
            Err(failure(ErrorCode::ServerError, 503)),
            0.5,
            0.0,
        );
        assert!(matches!(step, Step::Retry { .. }));
        a.begin_attempt(T0 + 1000.0);
        let Step::Done(issued) = a.finish_attempt(T0 + 1200.0, Ok(token(300.0)), 0.0, 0.0) else {
            panic!("expected a token");
        };
        assert_eq!(issued.attempts, 2);
        assert_eq!(issued.schedule.expires_at, T0 + 1000.0 + 300_000.0);
    }

    #[test]
    fn retryable_failures_retry_up_to_max_attempts() {
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        let mut now = T0;
        let mut retries = 0;
        loop {
            a.begin_attempt(now);
            match a.finish_attempt(now, Err(failure(ErrorCode::Network, 0)), 1.0, 0.0) {
                Step::Retry { delay_ms, .. } => {
                    retries += 1;
                    now += delay_ms;
                }
                Step::Failed(e) => {
                    assert_eq!(e.code, ErrorCode::Network);
                    break;
                }
                Step::Done(_) => unreachable!(),
            }
        }
        assert_eq!((retries, a.attempts()), (3, 4));
    }

    #[test]
    fn oauth_errors_are_not_retried() {
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let e = TokenError::new(ErrorCode::InvalidClient, "bad").with_status(401);
        let step = a.finish_attempt(
            T0,
            Err(TokenError {
                retryable: false,
                ..e
            }),
            0.5,
            0.0,
        );
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
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::RateLimited, 429);
        e.retry_after_seconds = Some(5.0);
        let step = a.finish_attempt(T0, Err(e), 0.9, 0.0);
        assert!(matches!(step, Step::Retry { delay_ms, .. } if delay_ms == 5000.0));
    }

    #[test]
    fn a_wait_past_the_deadline_fails_fast_as_rate_limited() {
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::RateLimited, 429);
        e.retry_after_seconds = Some(31_536_000.0);
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), 0.5, 0.0) else {
            panic!("expected failure");
        };
        assert_eq!(
            (e.code, e.retry_after_seconds),
            (ErrorCode::RateLimited, Some(31_536_000.0))
        );
        // A 503 asking for more than the deadline is reported the same way.
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let mut e = failure(ErrorCode::ServerError, 503);
        e.retry_after_seconds = Some(60.0);
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), 0.5, 0.0) else {
            panic!("expected failure");
        };
        assert_eq!(
            (e.code, e.status, e.retry_after_seconds),
            (ErrorCode::RateLimited, Some(503), Some(60.0))
        );
    }

    #[test]
    fn attempt_timeouts_never_reach_past_the_deadline() {
        let c = settings(|o| {
            o.timeout_ms = Some(10_000.0);
            o.deadline_ms = Some(12_000.0);
        });
        let mut a = Acquisition::new(&c, T0);
        assert_eq!(a.begin_attempt(T0), 10_000.0);
        assert!(matches!(
            a.finish_attempt(
                T0 + 10_000.0,
                Err(failure(ErrorCode::Timeout, 0)),
                0.001,
                0.0
            ),
            Step::Retry { .. }
        ));
        assert_eq!(a.begin_attempt(T0 + 10_500.0), 1_500.0);
        // Backoff that would pass the deadline ends the acquisition.
        let step = a.finish_attempt(T0 + 11_999.0, Err(failure(ErrorCode::Timeout, 0)), 1.0, 0.0);
        assert!(matches!(
            step,
            Step::Failed(TokenError {
                code: ErrorCode::Timeout,
                ..
            })
        ));
    }

    #[test]
    fn errors_leaving_the_acquisition_never_carry_the_secret() {
        let mut a = Acquisition::new(&settings(|_| {}), T0);
        a.begin_attempt(T0);
        let mut e = TokenError::new(
            ErrorCode::InvalidClient,
            "got s3cr3t value and s3cr3t+value",
        );
        e.retryable = false;
        let Step::Failed(e) = a.finish_attempt(T0, Err(e), 0.0, 0.0) else {
            panic!("expected failure");
        };
        let text = e.message();
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
