//! One client's core (docs/DESIGN.md, "The effect loop"): its checked
//! configuration, its [`TokenState`] (which holds the acquisition in
//! flight, driver and all: the one record of it), the issuer's metadata and
//! the events to report. The wasm binding and the simulator both run it:
//! [`Client::start`] begins an acquisition or joins the one in flight,
//! [`Client::poll`] names the next effect, [`Client::handle`] takes its
//! outcome; `invalidate` and a 401 name the store's delete.

use crate::clock::Now;
use crate::config::Config;
use crate::discovery::Metadata;
use crate::driver::Event;
use crate::driver::{Driver, Effect, Outcome, Parts};
use crate::error::{Source, TokenError};
use crate::pool::SlotView;
use crate::rate_limit::{cooling_ms, ApiCall, ApiStep};
use crate::request::HttpRequest;
use crate::state::{TokenState, Unauthorized};
use serde::Serialize;

/// What an acquisition is started for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    /// A caller with no token to serve (`getToken`).
    Fetch,
    /// A refresh while the token is still served (stale-while-revalidate).
    Background,
    /// `refresh()`: a stored token is taken only if newer than the one held.
    Refresh,
    /// Held back, with a store: only a read of it (`Decision::Read`).
    Read,
    /// A cron check: refresh when the token is due within `ahead_ms`.
    Cron {
        /// The job's period, ms.
        ahead_ms: f64,
    },
}

/// Whether [`Client::start`] began an acquisition or found one in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Started {
    /// Begun: the executor runs it (`poll` / `handle`).
    Begun,
    /// One is in flight already: wait for that one.
    Joined,
}

/// One client's core.
pub struct Client {
    /// The checked configuration.
    pub config: Config,
    /// The token, its schedule and the acquisition in flight.
    pub state: TokenState,
    /// With `issuer`: its metadata, once read.
    pub metadata: Option<Box<Metadata>>,
    /// What the transitions reported, until the executor takes it.
    events: Vec<Event>,
    /// The host's URL parser (WHATWG in the wasm).
    parse_url: fn(&str) -> Option<String>,
}

impl Client {
    /// A client with no token.
    pub fn new(config: Config, parse_url: fn(&str) -> Option<String>) -> Self {
        let state = TokenState::new(config.refresh_ahead_seconds).sharing(config.shared);
        Self {
            config,
            state,
            metadata: None,
            events: Vec::new(),
            parse_url,
        }
    }

    /// Where this client's errors come from: the token endpoint, once known.
    pub fn source(&self) -> Source {
        match &self.metadata {
            Some(metadata) => Source::new(
                metadata.token_endpoint(self.config.mutual_tls),
                &self.config.identity.client_id,
            ),
            None => self.config.source(),
        }
    }

    /// Begins an acquisition of kind `start`, or joins the one in flight;
    /// a token request refused while they are held back after failures
    /// (a read of the store and a cron check are never refused: they
    /// decide for themselves).
    pub fn start(&mut self, now: Now, start: Start) -> Result<Started, TokenError> {
        if self.state.in_flight() {
            return Ok(Started::Joined);
        }
        let config = &self.config;
        let store = config.shared;
        let driver = match start {
            Start::Read => {
                self.state.begin_reading();
                Driver::reading(config, now)
            }
            Start::Cron { ahead_ms } => {
                self.state.begin_reading();
                Driver::checking(config, now, store, ahead_ms)
            }
            Start::Fetch | Start::Refresh | Start::Background => {
                self.state.begin(now, start == Start::Background)?;
                Driver::new(config, now, store, start == Start::Refresh)
            }
        };
        self.state.carry(Box::new(driver));
        Ok(Started::Begun)
    }

    /// The next effect of the acquisition in flight. Without one (an
    /// executor driven out of order), a failure.
    pub fn poll(&mut self, now: Now, rand: f64) -> Effect {
        let effect = self.drive(|driver, parts| driver.poll(parts, now, rand));
        effect.unwrap_or_else(|| {
            // The executor's bug: polled with no acquisition begun.
            let error = TokenError::internal("no acquisition is in flight");
            self.events.push(Event::internal(now, &error));
            if self.state.in_flight() {
                self.state.finish(now, Some(&error), rand); // a flight with no driver ends
            }
            Effect::Fail { error }
        })
    }

    /// The outcome of the effect polled last: the one input of the executor.
    pub fn handle(&mut self, now: Now, outcome: Outcome, rand: f64) {
        if let Outcome::Removed = outcome {
            return; // A delete's outcome changes nothing: the token was forgotten first.
        }
        self.drive(|driver, parts| driver.handle(parts, now, outcome, rand));
    }

    /// The events reported since they were last taken.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// How many events wait to be taken.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The request of the `Send` just polled (once).
    pub fn take_request(&mut self) -> Option<HttpRequest> {
        let mut driver = self.state.take_driver()?;
        let request = driver.take_request();
        self.state.carry(driver);
        request
    }

    /// The `aud` of the assertion the `Sign` just polled asks for.
    pub fn audience(&self) -> Option<String> {
        self.state.driver()?.audience().map(str::to_owned)
    }

    /// `invalidate()`: forgets the cached token, and names the delete of
    /// the stored one when there is a store (docs/DESIGN.md, "Shared state").
    pub fn invalidate(&mut self) -> Option<Effect> {
        self.state.invalidate();
        self.config
            .shared
            .then_some(Effect::RemoveStore { only: None })
    }

    /// `client.fetch` got a 401 with `token`: what to do next, and, when
    /// the token is forgotten, the delete of that token from the store
    /// (only that one: another isolate may have stored a new one since).
    pub fn unauthorized(
        &mut self,
        now: Now,
        token: &str,
        rand: f64,
    ) -> (Unauthorized, Option<Effect>) {
        let next = self.state.unauthorized(now, token, rand);
        let remove =
            (next == Unauthorized::Refresh && self.config.shared).then(|| Effect::RemoveStore {
                only: Some(token.to_owned()),
            });
        (next, remove)
    }

    /// `client.fetch` is about to send for `call`: it waits first while
    /// the token cools, when that fits its deadline (src/rate_limit.rs).
    pub fn before_send(&self, now: Now, call: &ApiCall) -> ApiStep {
        call.before_send(now, self.state.cooling_until(), &self.config.retry)
    }

    /// `client.fetch` got a 429 for `call`, its `Retry-After` reading
    /// `retry_after`: the token cools for the time the API asks (capped;
    /// a default when absent), and the call waits or returns the 429.
    /// Also returns how long this 429 cools the token, ms, and, with a
    /// store, until when (epoch ms) every isolate is to know it cools
    /// (docs/DESIGN.md, "The API's rate limit").
    pub fn rate_limited(
        &mut self,
        now: Now,
        call: &ApiCall,
        retry_after: Option<&str>,
        replayable: bool,
    ) -> (ApiStep, f64, Option<f64>) {
        let ms = cooling_ms(retry_after, now.wall);
        let until = self.state.cool(now, ms);
        let share = self.config.shared.then_some(now.wall + ms);
        (
            call.rate_limited(now, until, replayable, &self.config.retry),
            ms,
            share,
        )
    }

    /// Another slot of this client's pool, `sibling`, may hold its token
    /// requests back after failures: without a store, this slot takes that
    /// hold-back as its own (`TokenState::hold_back_as`); with one, the
    /// shared back-off entry already covers every slot.
    pub fn hold_back_as(&mut self, sibling: &Client, now: Now) {
        if !self.config.shared {
            self.state.hold_back_as(&sibling.state, now);
        }
    }

    /// This client as a slot of a pool sees it (src/pool.rs); `last_used` is the pool's.
    pub fn slot_view(&self, now: Now) -> SlotView {
        SlotView {
            usable: self.state.usable(now),
            filling: self.state.in_flight(),
            held_back: self.state.held_back(now),
            cooling_until: self.state.cooling_until(),
            last_used: 0.0,
        }
    }

    /// Runs `step` on the driver in flight with this client's parts, and
    /// keeps the events it produced; `None` without one. The driver goes
    /// back into the flight unless the step ended it.
    fn drive<T>(&mut self, step: impl FnOnce(&mut Driver, &mut Parts<'_>) -> T) -> Option<T> {
        let mut driver = self.state.take_driver()?;
        let mut parts = Parts {
            config: &self.config,
            state: &mut self.state,
            metadata: &mut self.metadata,
            parse_url: self.parse_url,
        };
        let result = step(&mut driver, &mut parts);
        collect_events(&mut self.events, &mut driver);
        if !driver.is_over() {
            self.state.carry(driver);
        }
        Some(result)
    }
}

/// Moves the events a transition produced to where the executor takes them.
/// Apart from the transitions, so that the cold start's short path compiles
/// only what it runs.
#[inline(never)]
fn collect_events(events: &mut Vec<Event>, driver: &mut Driver) {
    events.extend(driver.take_events());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{LeaseResult, Seen, TokenSource};
    use crate::error::ErrorCode;
    use crate::response::Received;
    use crate::shared::TokenRecord;
    use serde_json::json;

    const T0: Now = Now {
        wall: 1_700_000_000_000.0,
        mono: 5_000.0,
    };

    fn client(kv: bool) -> Client {
        let options = match kv {
            true => json!({ "kv": {} }),
            false => json!({}),
        };
        let config = crate::config::tests::config(options).unwrap();
        Client::new(config, |url| Some(url.to_owned()))
    }

    fn answer(token: &str) -> Outcome {
        let body = json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 });
        Outcome::Answer(Ok(Received {
            status: 200,
            retry_after: None,
            cache_control: None,
            body: body.to_string().into_bytes(),
        }))
    }

    /// A token another isolate stored at `now`.
    fn stored(token: &str, now: Now) -> TokenRecord {
        TokenRecord {
            access_token: token.into(),
            token_type: "Bearer".into(),
            scope: None,
            lifetime_seconds: 3600.0,
            expires_at: now.wall + 3_600_000.0,
            refresh_at: now.wall + 3_000_000.0,
            usable_until: now.wall + 3_590_000.0,
        }
    }

    /// A client with a store that makes one attempt per acquisition.
    fn one_attempt() -> Client {
        let options = json!({ "kv": {}, "retry": { "maxAttempts": 1 } });
        Client::new(crate::config::tests::config(options).unwrap(), |url| {
            Some(url.to_owned())
        })
    }

    /// `one_attempt()` held back: its fetch failed, and so did both reads of the store.
    fn held_back_with_a_store() -> Client {
        let mut c = one_attempt();
        c.start(T0, Start::Fetch).unwrap();
        assert!(matches!(c.poll(T0, 0.5), Effect::ReadStore { .. }));
        c.handle(T0, Outcome::Snapshot(None), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        let down = TokenError::new(ErrorCode::Network, "down");
        c.handle(T0, Outcome::Answer(Err(down)), 0.5);
        // A last look at the store before failing: it fails too.
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(None), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        c
    }

    /// Fetches a token into `c` (no store: straight to the server).
    fn holding(c: &mut Client, token: &str) {
        assert_eq!(c.start(T0, Start::Fetch), Ok(Started::Begun));
        loop {
            match c.poll(T0, 0.5) {
                Effect::Send { .. } => c.handle(T0, answer(token), 0.5),
                Effect::ReadStore { .. } => c.handle(T0, Outcome::Snapshot(None), 0.5),
                Effect::Done { .. } => return,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn invalidate_names_the_delete_only_with_a_store() {
        let mut alone = client(false);
        holding(&mut alone, "a");
        assert_eq!(alone.invalidate(), None);
        assert_eq!(alone.state.held_token(), None);
        let mut shared = client(true);
        holding(&mut shared, "a");
        assert_eq!(
            shared.invalidate(),
            Some(Effect::RemoveStore { only: None })
        );
        assert_eq!(shared.state.held_token(), None);
    }

    #[test]
    fn a_401_names_the_delete_of_that_token_only() {
        let mut c = client(true);
        holding(&mut c, "a");
        let (next, remove) = c.unauthorized(T0, "a", 0.5);
        assert_eq!(next, Unauthorized::Refresh);
        let only = Some("a".to_owned());
        assert_eq!(remove, Some(Effect::RemoveStore { only }));
        // Its outcome changes nothing, and reaches no acquisition.
        c.handle(T0, Outcome::Removed, 0.5);
        assert!(!c.state.in_flight());
        // A 401 for a token no longer held deletes nothing.
        assert_eq!(c.unauthorized(T0, "old", 0.5).1, None);
    }

    #[test]
    fn a_429_cools_the_token_for_every_call_until_its_retry_after() {
        use crate::rate_limit::{ApiCall, ApiStep};
        let mut c = client(false);
        let call = ApiCall {
            started: T0.mono,
            sends: 1,
        };
        assert_eq!(c.before_send(T0, &call), ApiStep::Send);
        let (step, cooling, share) = c.rate_limited(T0, &call, Some("2"), true);
        assert_eq!((step, cooling), (ApiStep::Wait { ms: 2_000.0 }, 2_000.0));
        assert_eq!(share, None, "no store, nothing to share");
        // Another call, begun later, finds the token cooling and waits the rest.
        let later = ApiCall {
            started: T0.mono + 500.0,
            sends: 0,
        };
        assert_eq!(
            c.before_send(T0.plus(500.0), &later),
            ApiStep::Wait { ms: 1_500.0 }
        );
        // A shorter Retry-After does not end the cooling earlier.
        c.rate_limited(T0.plus(500.0), &later, Some("0"), true);
        assert_eq!(c.state.cooling_until(), T0.mono + 2_000.0);
        assert_eq!(c.before_send(T0.plus(2_000.0), &later), ApiStep::Send);
    }

    #[test]
    fn a_429_is_shared_through_the_store_and_a_read_of_it_cools_the_token() {
        use crate::rate_limit::{ApiCall, ApiStep};
        let call = ApiCall {
            started: T0.mono,
            sends: 1,
        };
        let mut a = client(true);
        let (_, _, share) = a.rate_limited(T0, &call, Some("5"), true);
        assert_eq!(share, Some(T0.wall + 5_000.0));
        // Another isolate reads the store while starting: its token cools as well.
        let mut b = client(true);
        b.start(T0, Start::Fetch).unwrap();
        assert!(matches!(b.poll(T0, 0.5), Effect::ReadStore { .. }));
        let seen = Seen {
            token: Some(stored("shared", T0)),
            cooling_until: T0.wall + 5_000.0,
            ..Seen::default()
        };
        b.handle(T0, Outcome::Snapshot(Some(seen)), 0.5);
        let fresh = ApiCall {
            started: T0.mono + 1_000.0,
            sends: 0,
        };
        assert_eq!(
            b.before_send(T0.plus(1_000.0), &fresh),
            ApiStep::Wait { ms: 4_000.0 }
        );
        // A cooling beyond the cap is not believed.
        let mut c = client(true);
        c.start(T0, Start::Fetch).unwrap();
        c.poll(T0, 0.5);
        let seen = Seen {
            cooling_until: T0.wall + 3_600_000.0,
            ..Seen::default()
        };
        c.handle(T0, Outcome::Snapshot(Some(seen)), 0.5);
        assert_eq!(c.state.cooling_until(), 0.0);
    }

    #[test]
    fn a_removal_outcome_does_not_disturb_the_acquisition_in_flight() {
        let mut c = client(true);
        c.start(T0, Start::Fetch).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        c.handle(T0, Outcome::Removed, 0.5);
        c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
    }

    #[test]
    fn a_cron_check_of_a_fresh_token_reads_nothing() {
        let mut c = client(true);
        holding(&mut c, "a");
        assert_eq!(
            c.start(T0, Start::Cron { ahead_ms: 60_000.0 }),
            Ok(Started::Begun)
        );
        let Effect::Done { record, source } = c.poll(T0, 0.5) else {
            panic!("fresh");
        };
        assert_eq!(
            (record.access_token.as_str(), source),
            ("a", TokenSource::Held)
        );
        assert!(!c.state.in_flight());
    }

    #[test]
    fn a_cron_check_reads_the_replica_then_the_primary_before_it_refreshes() {
        let mut c = client(true);
        c.start(T0, Start::Cron { ahead_ms: 60_000.0 }).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        // Still due: it refreshes, through the lease like any acquisition.
        assert_eq!(c.poll(T0, 0.5), Effect::TakeLease { ttl_ms: 11_000.0 });
        c.handle(T0, Outcome::Lease(LeaseResult::Taken), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        c.handle(T0, answer("b"), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::WriteStore { .. }));
        c.handle(T0, Outcome::Stored, 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReleaseLease);
        c.handle(T0, Outcome::Stored, 0.5);
        let Effect::Done { source, .. } = c.poll(T0, 0.5) else {
            panic!("refreshed");
        };
        assert_eq!(source, TokenSource::Network);
    }

    #[test]
    fn a_cron_check_settled_by_the_replicas_token_ends_there() {
        let mut c = client(true);
        c.start(T0, Start::Cron { ahead_ms: 60_000.0 }).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        let seen = Seen {
            token: Some(stored("s", T0)),
            ..Seen::default()
        };
        c.handle(T0, Outcome::Snapshot(Some(seen)), 0.5);
        let Effect::Done { source, .. } = c.poll(T0, 0.5) else {
            panic!("fresh from the store");
        };
        assert_eq!(source, TokenSource::Kv);
        assert_eq!(c.state.held_token(), Some("s"));
    }

    #[test]
    fn a_held_back_cron_check_fails_without_counting_a_failure() {
        let config = crate::config::tests::config(json!({ "retry": { "maxAttempts": 1 } }));
        let mut c = Client::new(config.unwrap(), |url| Some(url.to_owned()));
        c.start(T0, Start::Fetch).unwrap();
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        c.handle(
            T0,
            Outcome::Answer(Err(TokenError::new(ErrorCode::Network, "down"))),
            0.5,
        );
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        let hold = c.state.hold_ms(T0);
        c.start(T0, Start::Cron { ahead_ms: 0.0 }).unwrap();
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        assert_eq!(c.state.hold_ms(T0), hold, "no further failure counted");
    }

    #[test]
    fn a_held_back_cron_check_that_takes_a_newer_stored_token_ends_with_it() {
        let mut c = held_back_with_a_store();
        // Held back, the check takes another isolate's token, due within its
        // period: it sends nothing, and ends with that token for its callers.
        let now = Now {
            wall: T0.wall + 100.0,
            mono: T0.mono + 100.0,
        };
        c.start(
            now,
            Start::Cron {
                ahead_ms: 3_600_000.0,
            },
        )
        .unwrap();
        let seen = || Seen {
            token: Some(stored("s", now)),
            ..Seen::default()
        };
        assert_eq!(c.poll(now, 0.5), Effect::ReadStore { eventual: true });
        c.handle(now, Outcome::Snapshot(Some(seen())), 0.5);
        assert_eq!(c.poll(now, 0.5), Effect::ReadStore { eventual: false });
        c.handle(now, Outcome::Snapshot(Some(seen())), 0.5);
        let Effect::Done { record, source } = c.poll(now, 0.5) else {
            panic!("held back: no request, and the token taken is served");
        };
        assert_eq!(
            (record.access_token.as_str(), source),
            ("s", TokenSource::Kv)
        );
        assert!(c.state.held_back(now), "the hold-back still runs");
    }

    #[test]
    fn a_token_invalidated_while_its_write_was_out_is_not_served_and_another_is_acquired() {
        let mut c = client(true);
        c.start(T0, Start::Refresh).unwrap();
        for eventual in [true, false] {
            assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual });
            c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        }
        assert!(matches!(c.poll(T0, 0.5), Effect::TakeLease { .. }));
        c.handle(T0, Outcome::Lease(LeaseResult::Taken), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        c.handle(T0, answer("b"), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::WriteStore { .. }));
        // `invalidate()` while the write is out: "b" is forgotten.
        assert_eq!(c.invalidate(), Some(Effect::RemoveStore { only: None }));
        c.handle(T0, Outcome::Stored, 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReleaseLease);
        c.handle(T0, Outcome::Stored, 0.5);
        // Not served: the acquisition goes on, from the primary (a replica
        // may lag behind the delete), and "b", still stored, is not taken.
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        let b = Seen {
            token: Some(stored("b", T0)),
            ..Seen::default()
        };
        c.handle(T0, Outcome::Snapshot(Some(b)), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::TakeLease { .. }));
        c.handle(T0, Outcome::Lease(LeaseResult::Taken), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        c.handle(T0, answer("c"), 0.5);
        let Effect::WriteStore { record } = c.poll(T0, 0.5) else {
            panic!("the new token replaces the forgotten one in the store");
        };
        assert_eq!(record.access_token, "c");
        c.handle(T0, Outcome::Stored, 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReleaseLease);
        c.handle(T0, Outcome::Stored, 0.5);
        let Effect::Done { record, .. } = c.poll(T0, 0.5) else {
            panic!("a token");
        };
        assert_eq!(record.access_token, "c");
        assert_eq!(c.state.held_token(), Some("c"));
    }

    #[test]
    fn an_acquisition_started_over_waits_on_a_holder_no_longer_than_it_did() {
        let mut c = client(true);
        let leased = |token: Option<TokenRecord>| Seen {
            token,
            lease_until: Some(T0.wall + 60_000.0),
            lease_holder: Some("h".into()),
            ..Seen::default()
        };
        c.start(T0, Start::Fetch).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(Some(leased(None))), 0.5);
        assert!(
            matches!(c.poll(T0, 0.5), Effect::Sleep { .. }),
            "waits on h"
        );
        // One attempt later, h still holds it: taken over, fetched, written.
        let later = Now {
            wall: T0.wall + 11_000.0,
            mono: T0.mono + 11_000.0,
        };
        c.handle(later, Outcome::Slept, 0.5);
        assert_eq!(c.poll(later, 0.5), Effect::ReadStore { eventual: false });
        c.handle(later, Outcome::Snapshot(Some(leased(None))), 0.5);
        assert!(matches!(c.poll(later, 0.5), Effect::TakeLease { .. }));
        c.handle(later, Outcome::Lease(LeaseResult::Taken), 0.5);
        assert!(matches!(c.poll(later, 0.5), Effect::Send { .. }));
        c.handle(later, answer("b"), 0.5);
        assert!(matches!(c.poll(later, 0.5), Effect::WriteStore { .. }));
        c.invalidate();
        c.handle(later, Outcome::Stored, 0.5);
        assert_eq!(c.poll(later, 0.5), Effect::ReleaseLease);
        c.handle(later, Outcome::Stored, 0.5);
        // Started over, it finds h's lease again: no second wait on it.
        assert_eq!(c.poll(later, 0.5), Effect::ReadStore { eventual: false });
        c.handle(later, Outcome::Snapshot(Some(leased(None))), 0.5);
        assert!(matches!(c.poll(later, 0.5), Effect::TakeLease { .. }));
    }

    #[test]
    fn a_cron_check_that_took_a_token_ends_with_it_whatever_fails_after() {
        let ahead = Start::Cron {
            ahead_ms: 3_600_000.0,
        };
        let seen = || Seen {
            token: Some(stored("s", T0)),
            ..Seen::default()
        };
        // The replica's token is taken; the primary's read then fails.
        let mut c = one_attempt();
        c.start(T0, ahead).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        c.handle(T0, Outcome::Snapshot(Some(seen())), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(None), 0.5);
        assert!(
            matches!(c.poll(T0, 0.5), Effect::Send { .. }),
            "due: it refreshes"
        );
        let down = || Outcome::Answer(Err(TokenError::new(ErrorCode::Network, "down")));
        c.handle(T0, down(), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false }); // a last look
        c.handle(T0, Outcome::Snapshot(None), 0.5);
        let Effect::Done { record, source } = c.poll(T0, 0.5) else {
            panic!("the token taken, for the callers that joined");
        };
        assert_eq!(
            (record.access_token.as_str(), source),
            ("s", TokenSource::Kv)
        );
        assert!(c.state.held_back(T0), "the failed request is counted");
        assert!(c.state.due(T0, 3_600_000.0), "and the token is still due");
        // The primary's token is taken; the refresh through the lease fails.
        let mut c = one_attempt();
        c.start(T0, ahead).unwrap();
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: true });
        c.handle(T0, Outcome::Snapshot(Some(Seen::default())), 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(Some(seen())), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::TakeLease { .. }));
        c.handle(T0, Outcome::Lease(LeaseResult::Taken), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Send { .. }));
        c.handle(T0, down(), 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::SetBackoff { .. }));
        c.handle(T0, Outcome::Stored, 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReleaseLease);
        c.handle(T0, Outcome::Stored, 0.5);
        assert_eq!(c.poll(T0, 0.5), Effect::ReadStore { eventual: false });
        c.handle(T0, Outcome::Snapshot(Some(seen())), 0.5);
        let Effect::Done { source, .. } = c.poll(T0, 0.5) else {
            panic!("the token taken, for the callers that joined");
        };
        assert_eq!(source, TokenSource::Kv);
        assert!(c.state.held_back(T0));
    }

    #[test]
    fn an_acquisition_the_executor_cannot_begin_ends_at_its_first_poll() {
        let mut c = client(true);
        c.start(T0, Start::Fetch).unwrap();
        c.handle(T0, Outcome::Broken, 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        assert!(!c.state.in_flight());
    }

    #[test]
    fn a_held_back_cron_check_whose_store_fails_still_sends_nothing() {
        let mut c = held_back_with_a_store();
        c.start(T0, Start::Cron { ahead_ms: 0.0 }).unwrap();
        assert!(matches!(
            c.poll(T0, 0.5),
            Effect::ReadStore { eventual: true }
        ));
        c.handle(T0, Outcome::Snapshot(None), 0.5);
        assert!(
            matches!(c.poll(T0, 0.5), Effect::Fail { .. }),
            "held back: no request"
        );
    }

    #[test]
    fn a_broken_effect_ends_the_acquisition_through_its_driver() {
        let mut c = client(true);
        c.start(T0, Start::Fetch).unwrap();
        c.poll(T0, 0.5);
        c.handle(T0, Outcome::Broken, 0.5);
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        assert!(!c.state.in_flight(), "the one record of the flight is gone");
        // Driven out of order with nothing in flight: a failure, not a panic.
        assert!(matches!(c.poll(T0, 0.5), Effect::Fail { .. }));
        assert_eq!(c.start(T0, Start::Read), Ok(Started::Begun));
    }
}
