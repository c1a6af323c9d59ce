//! One caller's `getToken` (docs/DESIGN.md, "The effect loop"), as a
//! sans-IO state machine over the client's [`TokenState`]: the executor
//! asks [`Call::poll`] what to do, does it (serve, wait, run or join an
//! acquisition, throw), and asks again after any wait. The call waits once
//! for a hold-back to end within its deadline, and asks for at most
//! [`MAX_ACQUISITIONS_PER_CALL`] acquisitions.

use crate::client::{Client, Start, Started};
use crate::clock::Now;
use crate::error::TokenError;
use crate::state::Decision;
use serde::Serialize;

/// A call asks for a token to be acquired at most this many times: enough
/// for a token adopted from KV that falls short of `minValidSeconds` and
/// one fetched instead, never a loop.
pub const MAX_ACQUISITIONS_PER_CALL: u32 = 3;

/// What the caller does next.
#[derive(Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Step {
    /// Serve the token held.
    Serve {
        /// Served from memory without waiting: a cache hit.
        hit: bool,
        /// A background refresh was begun: the executor runs it.
        refresh: bool,
    },
    /// Wait `ms` for the hold-back to end, then ask again.
    Wait {
        /// How long.
        ms: f64,
    },
    /// An acquisition was begun: run it, then ask again.
    Run,
    /// Wait for the acquisition in flight, then ask again.
    Join,
    /// Fail with this error.
    Fail {
        /// Why.
        error: TokenError,
    },
}

/// One `getToken` call.
#[derive(Clone, Debug)]
pub struct Call {
    /// When the call began (monotonic ms), while it may still wait for a hold-back.
    started: Option<f64>,
    /// Acquisitions asked for so far.
    acquisitions: u32,
    /// The validity the caller needs, ms.
    min_valid_ms: f64,
}

impl Call {
    /// A call at `now` for a token valid `min_valid_ms` more.
    pub fn new(now: Now, min_valid_ms: f64) -> Self {
        Self {
            started: Some(now.mono),
            acquisitions: 0,
            min_valid_ms,
        }
    }

    /// What the caller does next at `now`.
    pub fn poll(&mut self, client: &mut Client, now: Now) -> Step {
        let deadline_ms = client.config.retry.deadline_ms;
        let wait_limit = self.started.map_or(f64::NEG_INFINITY, |s| s + deadline_ms);
        let state = &mut client.state;
        match state.decide(now, self.min_valid_ms, wait_limit) {
            decision @ (Decision::Serve | Decision::ServeAndRefresh) => {
                let refresh = decision == Decision::ServeAndRefresh
                    && client.start(now, Start::Background) == Ok(Started::Begun);
                Step::Serve {
                    hit: self.acquisitions == 0,
                    refresh,
                }
            }
            Decision::Wait => {
                self.started = None;
                Step::Wait {
                    ms: state.hold_ms(now),
                }
            }
            Decision::Fail => Step::Fail {
                error: state.refusal(now, self.min_valid_ms),
            },
            Decision::Read => self.acquire(client, now, Start::Read),
            Decision::Fetch | Decision::Join if self.acquisitions >= MAX_ACQUISITIONS_PER_CALL => {
                Step::Fail {
                    error: TokenError::invalid_response(format!(
                        "no token valid for minValidSeconds ({}) after {} acquisitions",
                        self.min_valid_ms / 1000.0,
                        self.acquisitions
                    )),
                }
            }
            Decision::Fetch | Decision::Join => self.acquire(client, now, Start::Fetch),
        }
    }

    /// Asks for an acquisition: begins one, or joins the one in flight.
    fn acquire(&mut self, client: &mut Client, now: Now, start: Start) -> Step {
        self.acquisitions += 1;
        match client.start(now, start) {
            Ok(Started::Begun) => Step::Run,
            Ok(Started::Joined) => Step::Join,
            Err(error) => Step::Fail { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Effect, Outcome};
    use crate::error::ErrorCode;
    use crate::response::Received;
    use serde_json::json;

    const T0: Now = Now {
        wall: 1_700_000_000_000.0,
        mono: 5_000.0,
    };

    fn client(options: serde_json::Value) -> Client {
        let config = crate::config::tests::config(options).unwrap();
        Client::new(config, |url| Some(url.to_owned()))
    }

    /// The token server's answer.
    fn answer(status: u16, lifetime_s: f64) -> Outcome {
        let body =
            json!({ "access_token": "tok", "token_type": "Bearer", "expires_in": lifetime_s });
        Outcome::Answer(Ok(Received {
            status,
            retry_after: None,
            cache_control: None,
            body: body.to_string().into_bytes(),
        }))
    }

    /// Runs the acquisition in flight (no store) with the server answering `status`; its end.
    fn run(client: &mut Client, now: Now, status: u16, lifetime_s: f64) -> Effect {
        loop {
            match client.poll(now, 0.5) {
                Effect::Send { .. } => client.handle(now, answer(status, lifetime_s), 0.5),
                Effect::Sleep { .. } => client.handle(now, Outcome::Slept, 0.5),
                end @ (Effect::Done { .. } | Effect::Fail { .. }) => return end,
                other => panic!("a client without a store asked for {other:?}"),
            }
        }
    }

    fn later(now: Now, ms: f64) -> Now {
        Now {
            wall: now.wall + ms,
            mono: now.mono + ms,
        }
    }

    #[test]
    fn a_call_runs_an_acquisition_then_is_served_and_the_next_call_is_a_hit() {
        let mut c = client(json!({}));
        let mut call = Call::new(T0, 0.0);
        assert_eq!(call.poll(&mut c, T0), Step::Run);
        // A second caller meanwhile joins the acquisition in flight.
        assert_eq!(Call::new(T0, 0.0).poll(&mut c, T0), Step::Join);
        assert!(matches!(run(&mut c, T0, 200, 3600.0), Effect::Done { .. }));
        let served = Step::Serve {
            hit: false,
            refresh: false,
        };
        assert_eq!(call.poll(&mut c, T0), served);
        let hit = Step::Serve {
            hit: true,
            refresh: false,
        };
        assert_eq!(Call::new(T0, 0.0).poll(&mut c, T0), hit);
    }

    #[test]
    fn a_due_token_is_served_while_a_background_refresh_is_begun() {
        let mut c = client(json!({}));
        Call::new(T0, 0.0).poll(&mut c, T0);
        run(&mut c, T0, 200, 60.0);
        let refresh_at = c.state.status(T0).refresh_at.unwrap();
        let due = later(T0, refresh_at - T0.wall);
        let step = Call::new(due, 0.0).poll(&mut c, due);
        assert_eq!(
            step,
            Step::Serve {
                hit: true,
                refresh: true
            }
        );
        assert!(
            c.state.in_flight(),
            "the core began the refresh the executor runs"
        );
        // The next caller is served without beginning another.
        let step = Call::new(due, 0.0).poll(&mut c, due);
        assert_eq!(
            step,
            Step::Serve {
                hit: true,
                refresh: false
            }
        );
    }

    #[test]
    fn a_call_waits_once_for_a_hold_back_within_its_deadline_then_fails() {
        let mut c = client(json!({ "retry": { "maxAttempts": 1 } }));
        let mut call = Call::new(T0, 0.0);
        assert_eq!(call.poll(&mut c, T0), Step::Run);
        assert!(matches!(run(&mut c, T0, 503, 60.0), Effect::Fail { .. }));
        // Held back about a second: within the deadline, the call waits once.
        let Step::Wait { ms } = call.poll(&mut c, T0) else {
            panic!("the call waits for the hold-back");
        };
        assert!(ms > 0.0 && ms <= 1_000.0, "{ms}");
        let then = later(T0, ms);
        assert_eq!(call.poll(&mut c, then), Step::Run);
        assert!(matches!(run(&mut c, then, 503, 60.0), Effect::Fail { .. }));
        // Held back again: it may not wait twice.
        let Step::Fail { error } = call.poll(&mut c, then) else {
            panic!("the call fails");
        };
        assert_eq!(error.code, ErrorCode::ServerError);
    }

    #[test]
    fn a_call_asks_for_three_acquisitions_at_most() {
        // Each token arrives 2 s after the call asked: 59 s of 60 are never left.
        let mut c = client(json!({}));
        let mut call = Call::new(T0, 59_000.0);
        let mut now = T0;
        for _ in 0..MAX_ACQUISITIONS_PER_CALL {
            assert_eq!(call.poll(&mut c, now), Step::Run);
            assert!(matches!(run(&mut c, now, 200, 60.0), Effect::Done { .. }));
            now = later(now, 2_000.0);
        }
        let Step::Fail { error } = call.poll(&mut c, now) else {
            panic!("the call gives up");
        };
        assert_eq!(error.code, ErrorCode::InvalidResponse);
        assert_eq!(
            error.description.as_deref(),
            Some("no token valid for minValidSeconds (59) after 3 acquisitions")
        );
    }

    #[test]
    fn more_validity_than_the_server_grants_fails_without_an_acquisition() {
        let mut c = client(json!({}));
        Call::new(T0, 0.0).poll(&mut c, T0);
        run(&mut c, T0, 200, 60.0);
        let Step::Fail { error } = Call::new(T0, 60_000.0).poll(&mut c, T0) else {
            panic!("refused");
        };
        assert_eq!(error.code, ErrorCode::Config);
        assert!(!c.state.in_flight());
    }
}
