//! One client's token state as a sans-IO state machine (docs/DESIGN.md,
//! "The state machine"): the cached token and its schedule, the
//! acquisition in flight, failures in a row and the hold-back they impose,
//! and the 401 back-off of `client.fetch`. Events move it; it answers
//! "serve / serve and refresh in the background / fetch / join / fail" and
//! until when the answer stays "serve". It reads no clock: every call says
//! what time it is, on both clocks ([`Now`]).

use crate::clock::Now;
use crate::driver::Driver;
use crate::error::{ErrorCode, TokenError};
use crate::redact::Redactor;
use crate::response::TokenResponse;
use crate::schedule::{asked_hold_back_ms, hold_back_left_ms, hold_back_ms, schedule, Schedule};
use crate::secret::AccessToken;
use crate::shared::TokenRecord;
use serde::Serialize;

/// What a caller asking for a token gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve the cached token.
    Serve,
    /// Serve the cached token and start one background refresh.
    ServeAndRefresh,
    /// No token to serve and no request in flight: start one and wait for it.
    Fetch,
    /// No token to serve, but an acquisition is in flight: wait for that one.
    Join,
    /// No token to serve, and token requests are held back after a failure
    /// until a moment within the caller's deadline: wait
    /// [`TokenState::hold_ms`], then ask again.
    Wait,
    /// Fail at once with [`TokenState::refusal`]: held back after failures,
    /// or asked for more validity than the server ever grants.
    Fail,
    /// Held back after failures, with a store another isolate may have
    /// filled since: read it (no token request), taking a stored token,
    /// else failing with [`TokenState::refusal`].
    Read,
}

/// What to do after `client.fetch` got a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unauthorized {
    /// Another token is held by now: send again with it.
    RetryWithCurrent,
    /// The token was forgotten: send again with a new one.
    Refresh,
    /// 401s keep coming within the back-off: hand the 401 to the caller.
    GiveUp,
}

/// What `status()` reports: never the token.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Whether a usable token is cached.
    pub has_token: bool,
    /// Expiry of the cached token, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<f64>,
    /// When the cached token is refreshed, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_at: Option<f64>,
    /// How long the server's tokens live: the cached token's `expires_in`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime_seconds: Option<f64>,
    /// Until when the cached token is served, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usable_until: Option<f64>,
    /// Token requests made (acquisitions; retries inside one count once).
    pub fetches: u32,
    /// Why the last acquisition failed, while no other has succeeded since;
    /// else, while a sibling slot's failure holds this slot's token
    /// requests back (docs/DESIGN.md, "Token pools"), why that one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<TokenError>,
}

/// The cached token.
struct Held {
    token: AccessToken,
    scope: Option<String>,
    lifetime_seconds: f64,
    schedule: Schedule,
    /// `wall − mono` when the token was taken: adding it to the monotonic
    /// clock gives the wall time the token's age says it is.
    offset: f64,
}

/// The acquisition in flight: its one record (docs/DESIGN.md, "The effect
/// loop"). It ends only through its driver's end (`Done` / `Fail`), which
/// calls [`TokenState::finish`].
struct Flight {
    /// Started to refresh a token still being served.
    background: bool,
    /// A caller with no token to serve waits for it.
    waited: bool,
    /// What drives it, between the executor's steps (out only while one runs).
    driver: Option<Box<Driver>>,
}

/// Tokens invalidated or refused remembered, so that none comes back from a
/// store whose delete failed.
const REJECTED_KEPT: usize = 8;

/// One client's token state.
#[derive(Default)]
pub struct TokenState {
    refresh_ahead_seconds: Option<f64>,
    /// Whether a store is shared with other isolates (`Decision::Read`).
    shared: bool,
    held: Option<Held>,
    in_flight: Option<Flight>,
    failures: u32,
    /// No new acquisition before this, monotonic ms.
    hold_until: f64,
    /// Of `hold_until`, the part the server's `Retry-After` asked for,
    /// monotonic ms: never cut short at a token's end.
    asked_until: f64,
    last_error: Option<TokenError>,
    /// In a pool without a store, the failure of the sibling slot that
    /// holds this slot back (`hold_back_as`): what a refusal says while
    /// that lasts. Apart from `last_error`, which says how this slot's own
    /// token requests went.
    held_by: Option<TokenError>,
    unauthorized: u32,
    /// No refresh for a 401 before this, monotonic ms.
    unauthorized_until: f64,
    /// The API answered 429: the token cools (no call sends with it) until
    /// this, monotonic ms (docs/DESIGN.md, "The API's rate limit").
    cooling_until: f64,
    fetches: u32,
    /// Fingerprints of the last tokens invalidated or refused with a 401,
    /// oldest first: never taken again, from any read. More than one, as
    /// the delete of each may have failed; empty (no allocation) for the
    /// many clients that never reject one.
    rejected: Vec<u64>,
    /// The next read of the store is a strong one: the token was just
    /// invalidated or refused, and a replica may still show it.
    read_strongly: bool,
}

impl TokenState {
    /// The same state, sharing a store with other isolates.
    pub fn sharing(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// A state with no token. `refresh_ahead_seconds` overrides the refresh window.
    pub fn new(refresh_ahead_seconds: Option<f64>) -> Self {
        Self {
            refresh_ahead_seconds,
            ..Self::default()
        }
    }

    /// The time for the cached token: the wall clock, or, when the wall
    /// clock has gone back since the token was taken, what the monotonic
    /// clock says its age is. A clock set back never makes a token younger.
    fn time(&self, now: Now) -> f64 {
        match &self.held {
            Some(held) => now.wall.max(now.mono + held.offset),
            None => now.wall,
        }
    }

    /// The decision for a caller at `now` who needs the token to stay
    /// valid for `min_valid_ms` more and may wait until `wait_limit`
    /// (monotonic ms: its deadline; `-inf` when it may not wait): a caller
    /// with no usable token never gets a remembered error while it could
    /// wait for the hold-back to end and try.
    pub fn decide(&mut self, now: Now, min_valid_ms: f64, wait_limit: f64) -> Decision {
        let t = self.time(now);
        if let Some(held) = &self.held {
            let s = &held.schedule;
            if t < s.usable_until {
                if t < s.expires_at - min_valid_ms {
                    let due = t >= s.refresh_at && self.in_flight.is_none() && !self.held_back(now);
                    return if due {
                        Decision::ServeAndRefresh
                    } else {
                        Decision::Serve
                    };
                }
                if min_valid_ms >= held.lifetime_seconds * 1000.0 {
                    return Decision::Fail;
                }
            }
        }
        if let Some(flight) = &mut self.in_flight {
            flight.waited = true;
            return Decision::Join;
        }
        match self.held_back(now) {
            false => Decision::Fetch,
            true if self.hold_until <= wait_limit => Decision::Wait,
            true if self.shared => Decision::Read,
            true => Decision::Fail,
        }
    }

    /// How long token requests stay held back, ms.
    pub fn hold_ms(&self, now: Now) -> f64 {
        (self.hold_until - now.mono).max(0.0)
    }

    /// Whether token requests are held back after failures.
    pub fn held_back(&self, now: Now) -> bool {
        now.mono < self.hold_until
    }

    /// Why [`TokenState::decide`] answered [`Decision::Fail`].
    pub fn refusal(&self, now: Now, min_valid_ms: f64) -> TokenError {
        if let Some(held) = &self.held {
            if min_valid_ms >= held.lifetime_seconds * 1000.0 {
                return TokenError::config(format!(
                    "minValidSeconds {} cannot be met: the token endpoint grants tokens valid for {} s",
                    (min_valid_ms / 1000.0).ceil() as u64,
                    held.lifetime_seconds.floor() as u64
                ));
            }
        }
        self.held_back_error(now)
    }

    /// The last failure again, with how long token requests stay held back.
    fn held_back_error(&self, now: Now) -> TokenError {
        let cause = self.held_by.as_ref().or(self.last_error.as_ref());
        let mut error = cause.cloned().unwrap_or_else(|| {
            TokenError::new(ErrorCode::RateLimited, "token requests are held back")
        });
        if error.retryable {
            error.retry_after_seconds = Some(((self.hold_until - now.mono) / 1000.0).ceil());
        }
        error
    }

    /// Until when (wall clock, epoch ms) [`TokenState::decide`] keeps
    /// answering "serve" to callers with no `minValidSeconds`, as long as
    /// nothing else happens and the wall clock does not go back: the
    /// wrapper's hot path compares the clock with this and asks only past it.
    pub fn serve_until(&self, now: Now) -> f64 {
        let Some(held) = &self.held else {
            return f64::NEG_INFINITY;
        };
        let s = &held.schedule;
        let t = self.time(now);
        let until = if self.in_flight.is_some() {
            s.usable_until
        } else {
            let hold_ends = t + (self.hold_until - now.mono);
            s.refresh_at.max(hold_ends).min(s.usable_until)
        };
        // On the wall clock, which may run behind the token's time.
        until - (t - now.wall)
    }

    /// An acquisition starts. Refused while token requests are held back
    /// after failures, whoever asks.
    pub fn begin(&mut self, now: Now, background: bool) -> Result<(), TokenError> {
        if self.held_back(now) {
            return Err(self.held_back_error(now));
        }
        self.start(background);
        Ok(())
    }

    /// A store read begins (`Decision::Read`): it sends no token request,
    /// so it is not refused while they are held back.
    pub fn begin_reading(&mut self) {
        self.start(false);
    }

    fn start(&mut self, background: bool) {
        self.in_flight = Some(Flight {
            background,
            waited: !background,
            driver: None,
        });
    }

    /// The flight begun (`begin`, `begin_reading`) is driven by `driver`.
    pub fn carry(&mut self, driver: Box<Driver>) {
        if let Some(flight) = &mut self.in_flight {
            flight.driver = Some(driver);
        }
    }

    /// The driver of the flight, taken out for one step (`carry` puts it back).
    pub fn take_driver(&mut self) -> Option<Box<Driver>> {
        self.in_flight.as_mut()?.driver.take()
    }

    /// The driver of the flight, if one is carried.
    pub fn driver(&self) -> Option<&Driver> {
        self.in_flight.as_ref()?.driver.as_deref()
    }

    /// The token held as a record, if one is held (a cron check that found it fresh).
    pub fn held_record(&self) -> Option<TokenRecord> {
        self.held.as_ref().map(record)
    }

    /// The token held as a record, if it is still usable.
    pub fn usable_record(&self, now: Now) -> Option<TokenRecord> {
        let held = self.held.as_ref()?;
        (self.time(now) < held.schedule.usable_until).then(|| record(held))
    }

    /// The token held, if any (for the simulator's checks).
    pub fn held_token(&self) -> Option<&str> {
        self.held.as_ref().map(|held| held.token.secret())
    }

    /// Whether `token` is the token held (not forgotten since it was taken).
    pub fn holds(&self, token: &str) -> bool {
        self.held_token() == Some(token)
    }

    /// Whether an acquisition is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// A token request is about to be sent (counted once per acquisition).
    pub fn fetching(&mut self) {
        self.fetches += 1;
    }

    /// Whether the acquisition in flight should stop after one failed
    /// attempt: it refreshes in the background, nobody waits for it, and
    /// the current token is still served.
    pub fn one_attempt(&self, now: Now) -> bool {
        let usable = self
            .held
            .as_ref()
            .is_some_and(|held| self.time(now) < held.schedule.usable_until);
        matches!(&self.in_flight, Some(f) if f.background && !f.waited) && usable
    }

    /// A token response arrived at `now` for the request sent at
    /// `sent_at`; `jitter` in `[0, 1)` widens the refresh window. A token
    /// no longer usable on arrival is refused.
    pub fn issued(
        &mut self,
        now: Now,
        token: TokenResponse,
        sent_at: Now,
        jitter: f64,
    ) -> Result<TokenRecord, TokenError> {
        let schedule = schedule(
            sent_at.wall,
            token.expires_in,
            self.refresh_ahead_seconds,
            jitter,
        );
        let offset = sent_at.wall - sent_at.mono;
        if now.wall.max(now.mono + offset) >= schedule.usable_until {
            return Err(TokenError::invalid_response(format!(
                "the token (valid {} s) was no longer usable when it arrived",
                token.expires_in.floor() as u64
            )));
        }
        self.hold_until = 0.0;
        self.asked_until = 0.0;
        self.failures = 0;
        self.last_error = None;
        self.held_by = None;
        Ok(self.hold(Held {
            token: token.access_token,
            scope: token.scope,
            lifetime_seconds: token.expires_in,
            schedule,
            offset,
        }))
    }

    /// A token read from KV: taken if it passes the checks of a token
    /// response, is not the one held, expires later, and is fresh (or,
    /// unless `force`, merely usable when the held one is not). Returns it
    /// as taken, with this client's own refresh window and `jitter`, timed
    /// from when it was requested but never from later than now
    /// (`TokenRecord::requested_at`): a writer's clock that runs ahead
    /// never makes it live longer than its lifetime on this one.
    pub fn adopt(
        &mut self,
        now: Now,
        record: TokenRecord,
        force: bool,
        jitter: f64,
    ) -> Option<TokenRecord> {
        if record.fault(now.wall).is_some()
            || self.rejected.contains(&fingerprint(&record.access_token))
        {
            return None;
        }
        let t = self.time(now);
        let requested_at = record.requested_at(now.wall);
        let held_usable = match &self.held {
            Some(held) if held.token.secret() == record.access_token => return None,
            Some(held) if t < held.schedule.usable_until => {
                if requested_at + record.lifetime_seconds * 1000.0 <= held.schedule.expires_at {
                    return None;
                }
                true
            }
            _ => false,
        };
        let schedule = schedule(
            requested_at,
            record.lifetime_seconds,
            self.refresh_ahead_seconds,
            jitter,
        );
        let fresh = now.wall < schedule.refresh_at;
        let usable = now.wall < schedule.usable_until;
        let takeable = fresh || (usable && !held_usable && !force);
        if !takeable {
            return None;
        }
        Some(self.take(
            now,
            Held {
                token: AccessToken::new(record.access_token),
                scope: record.scope,
                lifetime_seconds: record.lifetime_seconds,
                schedule,
                offset: now.wall - now.mono,
            },
        ))
    }

    /// Holds `held`.
    fn hold(&mut self, held: Held) -> TokenRecord {
        let record = record(&held);
        self.held = Some(held);
        self.read_strongly = false;
        record
    }

    /// A token taken from the store ends no hold-back running, nor the run
    /// of failures: it says nothing of how the token endpoint answers this
    /// client (docs/DESIGN.md, "The state machine"). A hold-back this client
    /// chose ends before the token does, as while any token is served.
    fn take(&mut self, now: Now, held: Held) -> TokenRecord {
        if self.held_back(now) {
            let usable_left = held.schedule.usable_until - now.wall;
            self.hold_until = within_token(self.hold_until, self.asked_until, now, usable_left);
        }
        self.hold(held)
    }

    /// In a pool without a store, `sibling` is another slot of the same
    /// client: while its token requests are held back after failures, this
    /// slot's are too, since they go to the same token endpoint with the
    /// same credentials (docs/DESIGN.md, "Token pools"; with a store, the
    /// shared back-off entry does this). As after a failure of its own,
    /// the server's `Retry-After` holds it in full, and the rest of the
    /// hold-back ends before this slot's token does. While held back, a
    /// refusal and `status()` give the sibling's error, which this slot
    /// does not keep as its own (`last_error`).
    pub fn hold_back_as(&mut self, sibling: &TokenState, now: Now) {
        if !sibling.held_back(now) || sibling.hold_until <= self.hold_until {
            return;
        }
        let t = self.time(now);
        let until = match &self.held {
            Some(held) if held.schedule.usable_until > t => within_token(
                sibling.hold_until,
                sibling.asked_until,
                now,
                held.schedule.usable_until - t,
            ),
            _ => sibling.hold_until,
        };
        self.hold_until = self.hold_until.max(until);
        self.asked_until = self.asked_until.max(sibling.asked_until);
        self.held_by = sibling
            .last_error
            .clone()
            .or_else(|| sibling.held_by.clone());
    }

    /// The acquisition in flight ended, with a token (`None`) or an error.
    /// A failure holds new acquisitions back: 1 s doubling to 60 s, or the
    /// server's `Retry-After` (at most 10 minutes); `rand` jitters it.
    /// While a token is still served, the hold-back ends before it stops
    /// being usable (see [`hold_back_ms`]).
    pub fn finish(&mut self, now: Now, error: Option<&TokenError>, rand: f64) {
        self.in_flight = None;
        if let Some(error) = error {
            self.failures += 1;
            let t = self.time(now);
            let usable_left = self
                .held
                .as_ref()
                .map(|held| held.schedule.usable_until - t)
                .filter(|left| *left > 0.0);
            self.hold_until = now.mono
                + hold_back_ms(self.failures, error.retry_after_seconds, rand, usable_left);
            self.asked_until = self
                .asked_until
                .max(now.mono + asked_hold_back_ms(error.retry_after_seconds));
            self.last_error = Some(error.clone());
            self.held_by = None;
        }
    }

    /// Forgets the cached token, for good.
    pub fn invalidate(&mut self) {
        self.reject();
    }

    /// Drops the token held and remembers it as one never to take again:
    /// a store's replica may lag behind its deletion (docs/DESIGN.md,
    /// "Shared state").
    fn reject(&mut self) {
        if let Some(held) = self.held.take() {
            if self.rejected.len() == REJECTED_KEPT {
                self.rejected.remove(0);
            }
            self.rejected.push(fingerprint(held.token.secret()));
        }
        self.read_strongly = true;
    }

    /// Whether the next read of the store may be an eventual one (a nearby
    /// replica): not right after the token was invalidated or refused.
    pub fn reads_eventually(&self) -> bool {
        !self.read_strongly
    }

    /// `client.fetch` got a 401 with `token`. Forgets it so that a new one
    /// is fetched, at most once per back-off period (1 s doubling to a
    /// minute) while 401s go on; `rand` jitters the period.
    pub fn unauthorized(&mut self, now: Now, token: &str, rand: f64) -> Unauthorized {
        match &self.held {
            Some(held) if held.token.secret() == token => {}
            _ => return Unauthorized::RetryWithCurrent,
        }
        if now.mono < self.unauthorized_until {
            return Unauthorized::GiveUp;
        }
        self.unauthorized += 1;
        self.unauthorized_until = now.mono + hold_back_ms(self.unauthorized, None, rand, None);
        self.reject();
        Unauthorized::Refresh
    }

    /// A request sent again after a 401 was accepted: the 401 back-off starts over.
    pub fn authorized(&mut self) {
        self.unauthorized = 0;
        self.unauthorized_until = 0.0;
    }

    /// The API answered 429 at `now`: the token cools for `ms` more (a
    /// later end already known stands). Returns the end, monotonic ms.
    pub fn cool(&mut self, now: Now, ms: f64) -> f64 {
        self.cooling_until = self.cooling_until.max(now.mono + ms);
        self.cooling_until
    }

    /// Another isolate's 429 cools the token until `until` (epoch ms, as
    /// the store holds it, judged: at most the cap ahead).
    pub fn cool_until_wall(&mut self, now: Now, until: f64) {
        if until > now.wall {
            self.cool(now, until - now.wall);
        }
    }

    /// Whether a token is held that is served now.
    pub fn usable(&self, now: Now) -> bool {
        self.held
            .as_ref()
            .is_some_and(|held| self.time(now) < held.schedule.usable_until)
    }

    /// Until when the token cools, monotonic ms (in the past: it does not).
    pub fn cooling_until(&self) -> f64 {
        self.cooling_until
    }

    /// Whether the cached token is missing, or inside its refresh window
    /// within `ahead_ms` (a job running every `ahead_ms` refreshes now what
    /// would otherwise fall due before its next run).
    pub fn due(&self, now: Now, ahead_ms: f64) -> bool {
        match &self.held {
            Some(held) => self.time(now) + ahead_ms >= held.schedule.refresh_at,
            None => true,
        }
    }

    /// A redactor for the client's secret and the token now held.
    pub fn redactor(&self, client_id: &str, secret: Option<&str>) -> Redactor {
        let mut redactor = Redactor::new(client_id, secret);
        if let Some(held) = &self.held {
            redactor.add(held.token.secret());
        }
        redactor
    }

    /// What `status()` reports.
    pub fn status(&self, now: Now) -> Status {
        let t = self.time(now);
        let schedule = self.held.as_ref().map(|h| h.schedule);
        Status {
            lifetime_seconds: self.held.as_ref().map(|h| h.lifetime_seconds),
            usable_until: schedule.map(|s| s.usable_until),
            has_token: schedule.is_some_and(|s| t < s.usable_until),
            expires_at: schedule.map(|s| s.expires_at),
            refresh_at: schedule.map(|s| s.refresh_at),
            fetches: self.fetches,
            last_error: self
                .last_error
                .clone()
                .or_else(|| self.held_back(now).then(|| self.held_by.clone()).flatten()),
        }
    }
}

/// `until`, the end of a hold-back, while a token usable `usable_left_ms`
/// more is served: the part the client chose ends before that token does
/// ([`hold_back_left_ms`]); the part the server's `Retry-After` asked for,
/// until `asked_until`, stands in full, as [`hold_back_ms`] has it.
fn within_token(until: f64, asked_until: f64, now: Now, usable_left_ms: f64) -> f64 {
    until
        .min(now.mono + hold_back_left_ms(usable_left_ms))
        .max(asked_until.min(until))
}

/// The token `held`, as callers and the store get it.
fn record(held: &Held) -> TokenRecord {
    TokenRecord {
        access_token: held.token.secret().to_owned(),
        token_type: "Bearer".to_owned(),
        scope: held.scope.clone(),
        lifetime_seconds: held.lifetime_seconds,
        expires_at: held.schedule.expires_at,
        refresh_at: held.schedule.refresh_at,
        usable_until: held.schedule.usable_until,
    }
}

/// A 64-bit FNV-1a digest of `token`, never 0: enough to know a token
/// again without keeping it.
fn fingerprint(token: &str) -> u64 {
    let digest = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    digest.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    /// A caller that may not wait for a hold-back to end.
    const NO_WAIT: f64 = f64::NEG_INFINITY;

    const T0: Now = Now {
        wall: 1_700_000_000_000.0,
        mono: 1_000.0,
    };

    fn response(token: &str, lifetime: f64) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new(token.into()),
            expires_in: lifetime,
            scope: None,
        }
    }

    /// A state holding a token of `lifetime` seconds fetched at T0.
    fn holding(lifetime: f64) -> (TokenState, Schedule) {
        let mut state = TokenState::new(None);
        assert_eq!(state.decide(T0, 0.0, NO_WAIT), Fetch);
        state.begin(T0, false).unwrap();
        let record = state
            .issued(T0.plus(20.0), response("tok-1", lifetime), T0, 0.0)
            .unwrap();
        state.finish(T0.plus(20.0), None, 0.5);
        let s = schedule(T0.wall, lifetime, None, 0.0);
        assert_eq!(record.expires_at, s.expires_at);
        (state, s)
    }

    fn at(wall: f64) -> Now {
        T0.plus(wall - T0.wall)
    }

    fn fail(state: &mut TokenState, now: Now, error: TokenError) {
        state.finish(now, Some(&error), 0.0);
    }

    #[test]
    fn serves_refreshes_in_the_background_then_fetches() {
        let (mut state, s) = holding(3600.0);
        assert_eq!(state.decide(at(T0.wall + 1000.0), 0.0, NO_WAIT), Serve);
        assert_eq!(state.decide(at(s.refresh_at - 1.0), 0.0, NO_WAIT), Serve);
        // Stale-while-revalidate: inside the window, serve at once and refresh.
        assert_eq!(
            state.decide(at(s.refresh_at), 0.0, NO_WAIT),
            ServeAndRefresh
        );
        assert_eq!(
            state.decide(at(s.usable_until - 1.0), 0.0, NO_WAIT),
            ServeAndRefresh
        );
        // Past usable (skew), callers wait for a new token.
        assert_eq!(state.decide(at(s.usable_until), 0.0, NO_WAIT), Fetch);
        assert_eq!(state.decide(at(s.expires_at + 1.0), 0.0, NO_WAIT), Fetch);
    }

    #[test]
    fn single_flight_callers_join_the_acquisition_in_flight() {
        let mut state = TokenState::new(None);
        assert_eq!(state.decide(T0, 0.0, NO_WAIT), Fetch);
        state.begin(T0, false).unwrap();
        assert_eq!(state.decide(T0, 0.0, NO_WAIT), Join);
        let (mut state, s) = holding(3600.0);
        state.begin(at(s.refresh_at), true).unwrap();
        // In the window with a refresh running: serve, start nothing more.
        assert_eq!(state.decide(at(s.refresh_at), 0.0, NO_WAIT), Serve);
        assert_eq!(state.decide(at(s.usable_until), 0.0, NO_WAIT), Join);
    }

    #[test]
    fn a_background_refresh_makes_one_attempt_unless_someone_waits() {
        let (mut state, s) = holding(3600.0);
        let now = at(s.refresh_at + 1.0);
        assert_eq!(state.decide(now, 0.0, NO_WAIT), ServeAndRefresh);
        state.begin(now, true).unwrap();
        assert!(state.one_attempt(now));
        // The token stops being usable while it runs: now callers wait, so it keeps trying.
        assert!(!state.one_attempt(at(s.usable_until)));
        let (mut state, s) = holding(3600.0);
        let now = at(s.refresh_at + 1.0);
        state.begin(now, true).unwrap();
        assert_eq!(state.decide(now, 3_000_000.0, NO_WAIT), Join);
        assert!(
            !state.one_attempt(now),
            "a caller with minValidSeconds waits for it"
        );
    }

    #[test]
    fn failures_hold_new_acquisitions_back_then_clear_on_success() {
        let (mut state, s) = holding(3600.0);
        let now = at(s.refresh_at + 1.0);
        state.begin(now, true).unwrap();
        fail(
            &mut state,
            now,
            TokenError::new(ErrorCode::ServerError, "down"),
        );
        // Held back 0.5–1 s: serve without starting another refresh.
        assert_eq!(state.decide(now.plus(10.0), 0.0, NO_WAIT), Serve);
        assert_eq!(state.serve_until(now.plus(10.0)), now.wall + 500.0);
        assert_eq!(state.decide(now.plus(500.0), 0.0, NO_WAIT), ServeAndRefresh);
        // A second failure in a row doubles it.
        state.begin(now.plus(500.0), true).unwrap();
        fail(
            &mut state,
            now.plus(500.0),
            TokenError::new(ErrorCode::ServerError, "down"),
        );
        assert_eq!(state.decide(now.plus(1499.0), 0.0, NO_WAIT), Serve);
        assert_eq!(
            state.decide(now.plus(1500.0), 0.0, NO_WAIT),
            ServeAndRefresh
        );
        // Holding back never makes an unusable token servable; callers get the error at once.
        assert_eq!(
            state.decide(at(s.usable_until).plus(0.0), 0.0, NO_WAIT),
            Fetch
        );
        let (mut state, _) = holding(3600.0);
        state.invalidate();
        state.begin(T0, false).unwrap();
        fail(
            &mut state,
            T0,
            TokenError::new(ErrorCode::Network, "refused"),
        );
        assert_eq!(state.decide(T0.plus(100.0), 0.0, NO_WAIT), Fail);
        let e = state.refusal(T0.plus(100.0), 0.0);
        assert_eq!(
            (e.code, e.retry_after_seconds),
            (ErrorCode::Network, Some(1.0))
        );
        assert!(
            state.begin(T0.plus(100.0), false).is_err(),
            "refresh() is held back too"
        );
        // With a store another isolate may have filled, a held-back caller reads it instead.
        state.shared = true;
        assert_eq!(state.decide(T0.plus(100.0), 0.0, NO_WAIT), Read);
        state.begin_reading();
        assert_eq!(state.decide(T0.plus(100.0), 0.0, NO_WAIT), Join);
        state.finish(T0.plus(110.0), None, 0.5); // the read found nothing: no failure counted
        state.shared = false;
        assert_eq!(state.decide(T0.plus(500.0), 0.0, NO_WAIT), Fetch);
        state.begin(T0.plus(500.0), false).unwrap();
        state
            .issued(T0.plus(510.0), response("tok-2", 60.0), T0.plus(500.0), 0.0)
            .unwrap();
        state.finish(T0.plus(510.0), None, 0.0);
        assert_eq!(state.status(T0.plus(510.0)).last_error, None);
    }

    #[test]
    fn a_retry_after_of_a_year_holds_back_ten_minutes_at_most() {
        let mut state = TokenState::new(None);
        state.begin(T0, false).unwrap();
        let mut e = TokenError::new(ErrorCode::RateLimited, "slow down");
        e.retry_after_seconds = Some(31_536_000.0);
        fail(&mut state, T0, e);
        assert_eq!(state.decide(T0.plus(599_999.0), 0.0, NO_WAIT), Fail);
        assert_eq!(state.decide(T0.plus(600_000.0), 0.0, NO_WAIT), Fetch);
    }

    #[test]
    fn min_valid_fetches_when_the_token_would_expire_too_soon() {
        let (mut state, _) = holding(3600.0);
        let now = at(T0.wall + 3_300_000.0);
        assert_eq!(state.decide(now, 0.0, NO_WAIT), ServeAndRefresh);
        assert_eq!(state.decide(now, 200_000.0, NO_WAIT), ServeAndRefresh);
        assert_eq!(state.decide(now, 300_000.0, NO_WAIT), Fetch);
    }

    #[test]
    fn min_valid_beyond_what_the_server_grants_fails_without_a_request() {
        let (mut state, _) = holding(20.0);
        assert_eq!(state.decide(T0.plus(100.0), 60_000.0, NO_WAIT), Fail);
        let e = state.refusal(T0.plus(100.0), 60_000.0);
        assert_eq!(e.code, ErrorCode::Config);
        assert!(e.message().contains("valid for 20 s"), "{}", e.message());
        // Once the token is no longer usable, one request finds out whether that changed.
        assert_eq!(state.decide(T0.plus(19_500.0), 60_000.0, NO_WAIT), Fetch);
    }

    #[test]
    fn serve_until_is_where_decide_stops_serving() {
        let (mut state, s) = holding(3600.0);
        for now in [T0, at(s.refresh_at - 10.0)] {
            let until = state.serve_until(now);
            assert_eq!(state.decide(at(until - 1.0), 0.0, NO_WAIT), Serve);
            assert_ne!(state.decide(at(until), 0.0, NO_WAIT), Serve);
        }
        state.begin(at(s.refresh_at), true).unwrap();
        assert_eq!(state.serve_until(at(s.refresh_at)), s.usable_until);
    }

    #[test]
    fn a_wall_clock_set_back_does_not_make_a_token_younger() {
        let (mut state, s) = holding(60.0);
        // An hour of real time passes, but the wall clock was set back a minute.
        let now = Now {
            wall: T0.wall - 60_000.0,
            mono: T0.mono + 3_600_000.0,
        };
        assert_eq!(state.decide(now, 0.0, NO_WAIT), Fetch);
        assert!(!state.status(now).has_token);
        // 10 s of real time with the wall clock set back an hour: still 10 s old.
        let (mut state, _) = holding(60.0);
        let now = Now {
            wall: T0.wall - 3_600_000.0,
            mono: T0.mono + 10_000.0,
        };
        assert_eq!(state.decide(now, 0.0, NO_WAIT), Serve);
        // The hot path's threshold, on the wall clock that now runs an hour behind.
        assert_eq!(state.serve_until(now), s.refresh_at - 3_610_000.0);
    }

    #[test]
    fn a_token_unusable_on_arrival_is_refused() {
        let mut state = TokenState::new(None);
        state.begin(T0, false).unwrap();
        let e = state
            .issued(T0.plus(2_000.0), response("tok", 2.0), T0, 0.0)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse);
    }

    fn record(token: &str, expires_at: f64, lifetime: f64) -> TokenRecord {
        TokenRecord {
            access_token: token.into(),
            token_type: "Bearer".into(),
            scope: None,
            lifetime_seconds: lifetime,
            expires_at,
            refresh_at: expires_at - lifetime * 500.0,
            usable_until: expires_at - lifetime * 10.0,
        }
    }

    #[test]
    fn a_stored_token_is_taken_only_when_sound_newer_and_fresh() {
        let (mut state, s) = holding(3600.0);
        let later = T0.plus(60_000.0);
        let fresher = record("tok-kv", s.expires_at + 60_000.0, 3600.0);
        // While the held one is fresh, a newer one is taken too.
        assert!(state.adopt(later, fresher.clone(), false, 0.0).is_some());
        assert!(
            state.adopt(later, fresher.clone(), false, 0.0).is_none(),
            "already held"
        );
        let older = record("tok-old", s.expires_at - 60_000.0, 3600.0);
        assert!(state.adopt(later, older, false, 0.0).is_none());
        let later = T0.plus(120_000.0);
        let mut bad = record("tok bad", s.expires_at + 120_000.0, 3600.0);
        assert!(state.adopt(later, bad.clone(), false, 0.0).is_none());
        bad.access_token = "tok-bad".into();
        bad.token_type = "bearer".into();
        assert!(state.adopt(later, bad.clone(), false, 0.0).is_none());
        bad.token_type = "Bearer".into();
        assert!(state.adopt(later, bad, false, 0.0).is_some(), "sound");
        // Usable but in its window: taken only when ours is gone and we are not refreshing.
        let mut state = TokenState::new(None);
        let due = record("tok-due", T0.wall + 100_000.0, 3600.0);
        assert!(state.adopt(T0, due.clone(), true, 0.0).is_none());
        let taken = state.adopt(T0, due, false, 0.0).unwrap();
        assert!(taken.refresh_at <= T0.wall, "this client's own window");
        assert_eq!(state.decide(T0, 0.0, NO_WAIT), ServeAndRefresh);
    }

    #[test]
    fn a_token_taken_from_the_store_does_not_end_a_hold_back_running() {
        // This client's request failed: held back 0.5–1 s.
        let mut state = TokenState::new(None).sharing(true);
        state.begin(T0, false).unwrap();
        fail(&mut state, T0, TokenError::new(ErrorCode::Network, "down"));
        let held_back = state.hold_ms(T0);
        assert!(held_back >= 500.0);
        // Another isolate's token, read while held back, is taken and served...
        let stored = record("tok-kv", T0.wall + 3_600_000.0, 3600.0);
        state.begin_reading();
        assert!(state.adopt(T0.plus(100.0), stored, false, 0.0).is_some());
        state.finish(T0.plus(100.0), None, 0.5);
        assert_eq!(state.decide(T0.plus(100.0), 0.0, NO_WAIT), Serve);
        // ...but this client's own requests stay held back as long as before,
        // with the error that held them back.
        assert_eq!(state.hold_ms(T0.plus(100.0)), held_back - 100.0);
        state.invalidate();
        assert!(state.begin(T0.plus(100.0), false).is_err());
        assert_eq!(state.decide(T0.plus(100.0), 0.0, NO_WAIT), Read);
        let refusal = state.refusal(T0.plus(100.0), 0.0);
        assert_eq!(
            (refusal.code, refusal.retryable),
            (ErrorCode::Network, true)
        );
        assert!(state.status(T0.plus(100.0)).last_error.is_some());
        // A token of its own ends it.
        assert_eq!(state.decide(T0.plus(held_back), 0.0, NO_WAIT), Fetch);
        state.begin(T0.plus(held_back), false).unwrap();
        state
            .issued(
                T0.plus(held_back),
                response("tok-2", 60.0),
                T0.plus(held_back),
                0.0,
            )
            .unwrap();
        state.finish(T0.plus(held_back), None, 0.0);
        assert!(!state.held_back(T0.plus(held_back)));
    }

    #[test]
    fn a_sibling_slots_hold_back_holds_this_slot_back_as_long_but_not_past_its_token() {
        // Slot 0's request failed: the hold-back freshtoken chose, 60 s.
        let mut failed = TokenState::new(None);
        failed.begin(T0, false).unwrap();
        fail(&mut failed, T0, TokenError::new(ErrorCode::Network, "down"));
        // Slot 1 holds a due token: it serves without refreshing, as long.
        let (mut sibling, s) = holding(3600.0);
        let due = at(s.refresh_at + 1.0);
        failed.hold_until = due.mono + 60_000.0;
        assert_eq!(sibling.decide(due, 0.0, NO_WAIT), ServeAndRefresh);
        sibling.hold_back_as(&failed, due);
        assert_eq!(sibling.decide(due, 0.0, NO_WAIT), Serve);
        assert_eq!(sibling.hold_ms(due), 60_000.0);
        assert_eq!(
            sibling.decide(due.plus(60_000.0), 0.0, NO_WAIT),
            ServeAndRefresh
        );
        // Not past the end of its token: one last try stays possible.
        let late = at(s.usable_until - 30_000.0);
        let (mut sibling, _) = holding(3600.0);
        failed.hold_until = late.mono + 60_000.0;
        sibling.hold_back_as(&failed, late);
        assert!(sibling.hold_ms(late) < 30_000.0);
        // A sibling not held back changes nothing, nor does a shorter hold.
        let (mut sibling, _) = holding(3600.0);
        sibling.hold_back_as(&TokenState::new(None), due);
        assert!(!sibling.held_back(due));
        failed.hold_until = due.mono + 1_000.0;
        sibling.hold_until = due.mono + 5_000.0;
        sibling.hold_back_as(&failed, due);
        assert_eq!(sibling.hold_ms(due), 5_000.0);
        // An empty slot held back refuses with the sibling's error.
        let mut empty = TokenState::new(None);
        failed.hold_until = due.mono + 60_000.0;
        empty.hold_back_as(&failed, due);
        assert_eq!(empty.decide(due, 0.0, NO_WAIT), Fail);
        assert_eq!(empty.refusal(due, 0.0).code, ErrorCode::Network);
    }

    #[test]
    fn a_siblings_failure_shows_in_status_only_while_it_holds_this_slot_back() {
        let mut failed = TokenState::new(None);
        failed.begin(T0, false).unwrap();
        let mut error = TokenError::new(ErrorCode::ServerError, "down");
        error.retry_after_seconds = Some(60.0);
        fail(&mut failed, T0, error);
        let (mut sibling, _) = holding(3600.0);
        sibling.hold_back_as(&failed, T0);
        let during = sibling.status(T0.plus(59_000.0)).last_error;
        assert_eq!(during.map(|e| e.code), Some(ErrorCode::ServerError));
        // Once the hold-back ends, this slot, which never failed, reports nothing.
        assert_eq!(sibling.status(T0.plus(60_000.0)).last_error, None);
        // Its own failure is its own: reported until a token request succeeds.
        sibling.begin(T0.plus(60_000.0), true).unwrap();
        fail(
            &mut sibling,
            T0.plus(60_000.0),
            TokenError::new(ErrorCode::Network, "down"),
        );
        let later = sibling.status(T0.plus(600_000.0)).last_error;
        assert_eq!(later.map(|e| e.code), Some(ErrorCode::Network));
    }

    #[test]
    fn a_siblings_retry_after_holds_this_slot_back_as_its_own_failure_would() {
        let (mut own, s) = holding(3600.0);
        let late = at(s.usable_until - 30_000.0);
        let mut error = TokenError::new(ErrorCode::ServerError, "down");
        error.retry_after_seconds = Some(600.0);
        // This slot's own failure, its token usable 30 s more: held 600 s.
        own.begin(late, true).unwrap();
        fail(&mut own, late, error.clone());
        assert_eq!(own.hold_ms(late), 600_000.0);
        // The same failure, of a sibling (an empty slot's fill): as long.
        let mut failed = TokenState::new(None);
        failed.begin(late, false).unwrap();
        fail(&mut failed, late, error);
        assert_eq!(failed.hold_ms(late), 600_000.0);
        let (mut sibling, _) = holding(3600.0);
        sibling.hold_back_as(&failed, late);
        assert_eq!(sibling.hold_ms(late), 600_000.0);
    }

    #[test]
    fn failures_in_a_row_go_on_doubling_across_a_token_taken_from_the_store() {
        let mut state = TokenState::new(None).sharing(true);
        let mut now = T0;
        for _ in 0..6 {
            now = now.plus(state.hold_ms(now));
            state.begin(now, false).unwrap();
            fail(&mut state, now, TokenError::new(ErrorCode::Network, "down"));
        }
        let stored = record("tok-kv", now.wall + 3_600_000.0, 3600.0);
        assert!(state.adopt(now, stored, false, 0.0).is_some());
        state.invalidate();
        now = now.plus(state.hold_ms(now));
        state.begin(now, false).unwrap();
        fail(&mut state, now, TokenError::new(ErrorCode::Network, "down"));
        assert_eq!(
            state.hold_ms(now),
            30_000.0,
            "the 7th failure in a row: 60 s, jittered"
        );
    }

    #[test]
    fn a_hold_back_this_client_chose_ends_before_a_token_taken_from_the_store_does() {
        let mut state = TokenState::new(None).sharing(true);
        for _ in 0..7 {
            let now = T0.plus(state.hold_ms(T0));
            state.begin(now, false).unwrap();
            fail(&mut state, T0, TokenError::new(ErrorCode::Network, "down"));
        }
        assert_eq!(state.hold_ms(T0), 30_000.0);
        // A 20 s token, usable 19 s more: the hold-back ends a second before.
        let short = record("tok-short", T0.wall + 20_000.0, 20.0);
        let taken = state.adopt(T0, short, false, 0.0).unwrap();
        assert_eq!(state.hold_ms(T0), taken.usable_until - T0.wall - 1_000.0);
        // A server's Retry-After is honoured as given.
        let mut state = TokenState::new(None).sharing(true);
        state.begin(T0, false).unwrap();
        let mut slow_down = TokenError::new(ErrorCode::RateLimited, "slow down");
        slow_down.retry_after_seconds = Some(60.0);
        fail(&mut state, T0, slow_down);
        let short = record("tok-short", T0.wall + 20_000.0, 20.0);
        state.adopt(T0, short, false, 0.0).unwrap();
        assert_eq!(state.hold_ms(T0), 60_000.0);
    }

    #[test]
    fn a_stored_token_from_a_clock_ahead_lives_its_lifetime_from_now_at_most() {
        // A writer 20 s ahead: the 1 h token looks requested 20 s from now.
        let mut state = TokenState::new(None);
        let ahead = record("tok-ahead", T0.wall + 3_620_000.0, 3600.0);
        let taken = state.adopt(T0, ahead, false, 0.0).unwrap();
        assert_eq!(taken.expires_at, T0.wall + 3_600_000.0);
        assert!(state.status(T0.plus(3_600_000.0)).usable_until <= Some(T0.wall + 3_600_000.0));
        assert_ne!(state.decide(T0.plus(3_600_000.0), 0.0, NO_WAIT), Serve);
        // Beyond the allowance (30 s for 1 h), it is refused outright.
        let mut state = TokenState::new(None);
        let far = record("tok-far", T0.wall + 3_631_000.0, 3600.0);
        assert!(state.adopt(T0, far, false, 0.0).is_none());
        // A 5 s token's allowance is 0.25 s: from a writer 20 s ahead it is refused.
        let mut state = TokenState::new(None);
        let short = record("tok-short", T0.wall + 25_000.0, 5.0);
        assert!(state.adopt(T0, short, false, 0.0).is_none());
        // Held, a record from a clock ahead is newer only by what it is from now.
        let (mut state, s) = holding(3600.0);
        let same_age = record("tok-same", s.expires_at + 20_000.0, 3600.0);
        assert!(state.adopt(T0, same_age, false, 0.0).is_none());
    }

    #[test]
    fn the_last_eight_tokens_invalidated_stay_refused() {
        let mut state = TokenState::new(None);
        let token = |i: u32| record(&format!("tok-{i}"), T0.wall + 3_600_000.0, 3600.0);
        for i in 0..9 {
            assert!(state.adopt(T0, token(i), false, 0.0).is_some());
            state.invalidate();
        }
        for i in 1..9 {
            assert!(state.adopt(T0, token(i), false, 0.0).is_none(), "tok-{i}");
        }
        // The oldest gave its place: the memory of a client stays bounded.
        assert!(state.adopt(T0, token(0), false, 0.0).is_some());
    }

    #[test]
    fn a_token_invalidated_or_refused_is_never_taken_again_and_the_next_read_is_strong() {
        let (mut state, s) = holding(3600.0);
        assert!(state.reads_eventually());
        state.invalidate();
        assert!(
            !state.reads_eventually(),
            "the read after an invalidation is strong"
        );
        // A lagging replica still shows the invalidated token: refused.
        let same = record("tok-1", s.expires_at, 3600.0);
        assert!(state.adopt(T0, same.clone(), false, 0.0).is_none());
        let next = record("tok-2", s.expires_at + 1_000.0, 3600.0);
        assert!(state.adopt(T0, next, false, 0.0).is_some());
        assert!(state.reads_eventually());
        assert!(state.adopt(T0, same, false, 0.0).is_none(), "still refused");
        // Invalidated while holding nothing: the next read is strong all the same.
        let mut empty = TokenState::new(None);
        empty.invalidate();
        assert!(!empty.reads_eventually());
        // A token refused with a 401 likewise.
        assert_eq!(state.unauthorized(T0, "tok-2", 0.0), Unauthorized::Refresh);
        assert!(!state.reads_eventually());
        let again = record("tok-2", s.expires_at + 2_000.0, 3600.0);
        assert!(state.adopt(T0, again, false, 0.0).is_none());
        // The token invalidated before it stays refused too: its delete may have failed.
        let first = record("tok-1", s.expires_at + 3_000.0, 3600.0);
        assert!(state.adopt(T0, first, false, 0.0).is_none());
    }

    #[test]
    fn unauthorized_refreshes_at_most_once_per_back_off_period() {
        let (mut state, _) = holding(3600.0);
        assert_eq!(
            state.unauthorized(T0, "someone-else", 0.0),
            Unauthorized::RetryWithCurrent
        );
        assert_eq!(state.unauthorized(T0, "tok-1", 0.0), Unauthorized::Refresh);
        assert_eq!(state.decide(T0, 0.0, NO_WAIT), Fetch);
        state.begin(T0, false).unwrap();
        state
            .issued(T0, response("tok-2", 3600.0), T0, 0.0)
            .unwrap();
        state.finish(T0, None, 0.0);
        // The new token gets a 401 too, within the back-off (0.5 s): no refresh.
        assert_eq!(
            state.unauthorized(T0.plus(100.0), "tok-2", 0.0),
            Unauthorized::GiveUp
        );
        assert_eq!(
            state.unauthorized(T0.plus(500.0), "tok-2", 0.0),
            Unauthorized::Refresh
        );
        state.authorized();
        assert_eq!(state.unauthorized_until, 0.0);
    }

    #[test]
    fn due_looks_ahead_by_the_given_time() {
        let (state, s) = holding(300.0);
        assert!(!state.due(T0, 0.0));
        assert!(!state.due(at(s.refresh_at - 300_001.0), 300_000.0));
        assert!(state.due(at(s.refresh_at - 300_000.0), 300_000.0));
        assert!(TokenState::new(None).due(T0, 0.0));
    }

    #[test]
    fn status_never_holds_the_token() {
        let (state, s) = holding(3600.0);
        let status = state.status(T0);
        assert!(status.has_token);
        assert_eq!(status.expires_at, Some(s.expires_at));
        assert_eq!(status.fetches, 0);
        let json = serde_json::to_string(&status).unwrap();
        assert!(!json.contains("tok-1"), "{json}");
    }
}
