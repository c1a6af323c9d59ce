//! One acquisition, from the store to the token, as a sans-IO state machine
//! (docs/DESIGN.md, "The effect loop"): the executor asks [`Driver::poll`]
//! for the next [`Effect`], performs it, and hands the result back to
//! [`Driver::handle`]; [`Driver::take_events`] gives what to report.
//!
//! The driver decides everything about the acquisition: when to read the
//! store, take, renew and release the lease, wait for another isolate and
//! for how long, take over a dead holder, give up waiting and fetch alone,
//! read the issuer's metadata, sign, send, retry and back off, write the
//! token and set the shared back-off. The executor only does the I/O it is
//! told to do and reads no clock but to hand the time in.
//!
//! Besides a caller's acquisition ([`Driver::new`]) and a read of the store
//! alone ([`Driver::reading`]), it runs a cron check ([`Driver::checking`]):
//! fresh for the job's period ends it; else the replica's token, then the
//! primary's, may settle it; else it refreshes. An effect the executor could
//! not perform comes back as [`Outcome::Broken`] and ends the acquisition.
//!
//! ```text
//!  ┌──────────── ReadStore ◄──────── Sleep (poll, back-off) ◄──┐
//!  │ token to adopt │ back-off │ lease held         no lease │  │
//!  ▼                ▼          ▼                     ▼        │
//! Done         Sleep / Fail   Sleep ──(one attempt)──► TakeLease ── held ──┘
//!                                                      │ taken / KV down / give up
//!                      ┌───────────────────────────────┘
//!                      ▼
//!   [ReadMetadata] → [Send metadata GET]… → [Sign | Credential] → Send → Retry: [RenewLease] → Sleep ─┐
//!                      ▲                                                                   │
//!                      └───────────────────────────────────────────────────────────────────┘
//!                                                    Done: [WriteStore] → [ReleaseLease] → Done
//!                                                    Failed: [SetBackoff] → [ReleaseLease] → Fail
//! ```
//!
//! Its parts, in the order an acquisition meets them: `lease.rs` (the
//! store: a cron check's question, reads, waiting on, taking, renewing and
//! releasing the lease, the last look), `attempt.rs` (discovery, signing,
//! sending, the answer, retries and the end of an attempt), [`retry`] (the
//! retry budget the attempts share), and `event.rs` ([`Event`], what it
//! reports).

mod attempt;
mod credential;
mod event;
mod lease;
pub mod retry;

pub use event::Event;
pub use lease::{LeaseResult, Seen, MAX_CONFLICTS};

use crate::clock::Now;
use crate::config::{Config, Endpoint};
use crate::discovery::Metadata;
use crate::error::{ErrorCode, TokenError};
use crate::request::HttpRequest;
use crate::response::Received;
use crate::secret::ClientSecret;
use crate::shared::TokenRecord;
use crate::state::TokenState;
use attempt::metadata_copy;
use lease::last_look;
use retry::RetryBudget;
use serde::Serialize;

/// What the executor does next.
#[derive(Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Effect {
    /// Read the stored token, the lease and the shared back-off, then
    /// [`Outcome::Snapshot`] (`None` when the store failed).
    ReadStore {
        /// Whether a nearby replica may answer (KV's `consistency:
        /// "eventual"`): only a token is taken from such a read; the lease
        /// needs a strong one.
        eventual: bool,
    },
    /// Take the lease for `ttl_ms` if nothing changed since the last read;
    /// then [`Outcome::Lease`].
    TakeLease {
        /// How long it lasts.
        ttl_ms: f64,
    },
    /// Renew the lease held for `ttl_ms`; then [`Outcome::Renewed`].
    RenewLease {
        /// How long it lasts from now.
        ttl_ms: f64,
    },
    /// Release the lease held; then [`Outcome::Stored`].
    ReleaseLease,
    /// Store the token for every isolate; then [`Outcome::Stored`]. The
    /// client holds it already: callers may be served it now.
    WriteStore {
        /// The token.
        record: TokenRecord,
    },
    /// Delete the stored token (only if it is still `only`, when given);
    /// then [`Outcome::Removed`]. Named by `invalidate()` and by a 401
    /// ([`crate::client::Client::invalidate`], `unauthorized`), apart from any acquisition.
    RemoveStore {
        /// The token refused with a 401: another isolate may have stored a new one since.
        #[serde(skip_serializing_if = "Option::is_none")]
        only: Option<String>,
    },
    /// Hold every isolate back until `until` (epoch ms); then [`Outcome::Stored`].
    SetBackoff {
        /// The end of the back-off.
        until: f64,
    },
    /// Read the stored copy of the issuer's metadata; then [`Outcome::MetadataCopy`].
    ReadMetadata,
    /// Store this copy of the issuer's metadata; then [`Outcome::Stored`].
    WriteMetadata {
        /// The copy (JSON text).
        copy: String,
    },
    /// Wait `ms`, then [`Outcome::Slept`].
    Sleep {
        /// How long.
        ms: f64,
        /// What for.
        why: Wait,
    },
    /// Sign the client assertion (for [`Driver::audience`]); then [`Outcome::Signed`].
    Sign,
    /// Ask the host for the credential of the next token request (a
    /// `clientSecret` function, `clientAssertion`) within `timeout_ms`;
    /// then [`Outcome::Credential`].
    Credential {
        /// How long the host may take.
        timeout_ms: f64,
    },
    /// Send the request [`Driver::take_request`] gives within `timeout_ms`;
    /// then [`Outcome::Answer`].
    Send {
        /// The exchange's time limit.
        timeout_ms: f64,
    },
    /// The acquisition ends with this token.
    Done {
        /// The token, as the client now holds it.
        record: TokenRecord,
        /// Where it came from.
        source: TokenSource,
    },
    /// The acquisition ends with this error.
    Fail {
        /// Why.
        error: TokenError,
    },
}

/// What a [`Effect::Sleep`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// Another isolate's lease: read the store again.
    Lease,
    /// The shared back-off another isolate set.
    Backoff,
    /// A retry's back-off.
    Retry,
}

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// A token request.
    Network,
    /// Another isolate, through the store.
    Kv,
    /// The token already held: a cron check found it fresh.
    Held,
}

/// What the executor hands back after an effect.
pub enum Outcome {
    /// After `ReadStore`: what was read, or `None` when the store failed.
    Snapshot(Option<Seen>),
    /// After `TakeLease`.
    Lease(LeaseResult),
    /// After `RenewLease`: whether the lease is still this isolate's.
    Renewed(bool),
    /// After `ReadMetadata`: the stored copy, if a sound one was there.
    MetadataCopy(Option<String>),
    /// After `Sign`: the assertion, or why there is none.
    Signed(Result<String, TokenError>),
    /// After `Credential`: what the host's function gave, or `None` when it
    /// threw, gave no string or took too long.
    Credential(Option<String>),
    /// After `Send`: the answer, or why there is none.
    Answer(Result<Received, TokenError>),
    /// After `Sleep`.
    Slept,
    /// After `WriteStore`, `SetBackoff`, `ReleaseLease` or `WriteMetadata`
    /// (a store failure changes nothing: the executor reports it).
    Stored,
    /// After `RemoveStore`.
    Removed,
    /// The executor could not perform the effect (its own code threw): the
    /// acquisition ends as a failure, through the driver like any other end.
    Broken,
}

/// A client's core state, as the driver works on it.
pub struct Parts<'a> {
    /// The checked configuration.
    pub config: &'a Config,
    /// The token and its schedule.
    pub state: &'a mut TokenState,
    /// With `issuer`: its metadata, once read.
    pub metadata: &'a mut Option<Box<Metadata>>,
    /// The host's URL parser (WHATWG in the wasm).
    pub parse_url: fn(&str) -> Option<String>,
}

impl Parts<'_> {
    /// The issuer, when its metadata is missing or past its time at `now_ms`.
    pub fn issuer_to_ask(&self, now_ms: f64) -> Option<&str> {
        issuer_to_ask(self.config, self.metadata.as_deref(), now_ms)
    }
}

/// The issuer of `config`, when `metadata` is missing or past its time at `now_ms`.
pub fn issuer_to_ask<'a>(
    config: &'a Config,
    metadata: Option<&Metadata>,
    now_ms: f64,
) -> Option<&'a str> {
    match &config.identity.endpoint {
        Endpoint::Issuer(issuer) if metadata.is_none_or(|m| m.until <= now_ms) => Some(issuer),
        _ => None,
    }
}

/// Where the acquisition stands.
#[derive(Debug)]
enum Phase {
    /// Next: a cron check asks whether the token is due within its period.
    Check,
    /// Next: the acquisition's first read of the store, an eventual one
    /// unless the token was just invalidated.
    FirstRead,
    /// Next: read the store (strongly).
    Read,
    /// Next: take the lease.
    TakeLease,
    /// Next: sleep `ms`, then go to `then`.
    Sleep {
        ms: f64,
        why: Wait,
        then: Box<Phase>,
    },
    /// Next: an attempt begins.
    Attempt,
    /// Next: find the token endpoint of this attempt (metadata), then sign or send.
    Endpoint,
    /// Next: read the stored metadata copy.
    ReadMetadata,
    /// Next: the metadata GET of `location`.
    Discover { location: usize },
    /// Next: store the metadata copy just read from the issuer.
    WriteMetadata { copy: String },
    /// Next: sign for the token request to `token_url`.
    Sign { token_url: String },
    /// Next: ask the host for the credential of the request to `token_url`
    /// (`again`: once more, after this refusal).
    Ask {
        token_url: String,
        again: Option<TokenError>,
    },
    /// Next: send `request`.
    Send { request: HttpRequest },
    /// Next: renew the lease before a retry wait of `delay_ms`.
    Renew { delay_ms: f64 },
    /// Next: the remaining I/O of the end, then the end.
    Ending { steps: Vec<Effect>, end: End },
    /// Next: a last read of the store before failing with `error`.
    LastLook { error: TokenError },
    /// Waiting for the executor's outcome.
    Awaiting(Awaiting),
    /// Ended.
    Over,
}

/// What the executor is doing, and what its outcome leads to.
#[derive(Debug)]
enum Awaiting {
    Snapshot {
        eventual: bool,
    },
    LastLook(TokenError),
    Lease,
    Renewal {
        delay_ms: f64,
    },
    MetadataCopy,
    Metadata {
        location: usize,
    },
    Signature {
        token_url: String,
    },
    Credential {
        token_url: String,
        again: Option<TokenError>,
    },
    Answer,
    Sleep(Box<Phase>),
    Store(Box<Phase>),
}

/// How the acquisition ends.
#[derive(Debug)]
enum End {
    Token(TokenRecord, TokenSource),
    Error(TokenError),
    /// Fail with this error unless a last read of the store finds a token.
    ErrorUnlessStored(TokenError),
}

/// Who this acquisition is, towards the other isolates.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// No store, or the store failed: fetch for this isolate alone, write nothing.
    Alone,
    /// A store: read it, take the lease or wait.
    Waiter,
    /// This isolate holds the lease: fetch, write, release.
    Holder,
    /// No lease came of waiting: fetch and write for the others.
    Unleased,
}

/// One acquisition of one client.
pub struct Driver {
    phase: Phase,
    role: Role,
    /// A stored token is taken only if newer than the one held (`refresh()`).
    force: bool,
    /// Only a read of the store (`Decision::Read`): no token request.
    read_only: bool,
    /// A cron check, with its period (ms): it refreshes only a token due within it.
    cron: Option<f64>,
    /// A cron check took a newer token from the store: if it then fails
    /// (held back, a shared back-off, the refresh failed), it ends with that
    /// token, for the callers that joined it.
    took: bool,
    /// Whether there is a store to read.
    store: bool,
    /// When it began, monotonic ms; a waiter fetches alone `wait_ms` later.
    started: f64,
    lease_ms: f64,
    wait_ms: f64,
    /// Holders seen, and when each was first seen (wall ms).
    holders_seen: Vec<(String, f64)>,
    /// Whether the last read showed a lease.
    lease_seen: bool,
    conflicts: u32,
    /// Whether the `lease_wait` event went out.
    waited: bool,
    /// Whether the stored metadata copy was asked for.
    metadata_read: bool,
    /// This attempt serves from a metadata copy past its time (the issuer did not answer).
    stale_metadata: bool,
    /// When this attempt must be over, monotonic ms.
    attempt_deadline: f64,
    /// The retries of the token request, once one is made.
    budget: Option<RetryBudget>,
    /// The `aud` of the assertion to sign.
    audience: Option<String>,
    /// The request of the `Send` just polled.
    request: Option<HttpRequest>,
    /// The credential the host gave for the last request, and where it went.
    sent: Option<ClientSecret>,
    sent_to: Option<String>,
    /// Whether the secret was asked for once more after a refusal.
    asked_again: bool,
    events: Vec<Event>,
}

impl Driver {
    /// An acquisition begun at `now`: through the store when `store`; a
    /// stored token is taken only if newer when `force`.
    pub fn new(config: &Config, now: Now, store: bool, force: bool) -> Self {
        let lease_ms = config.lease_ms();
        Self {
            phase: if store {
                Phase::FirstRead
            } else {
                Phase::Attempt
            },
            role: if store { Role::Waiter } else { Role::Alone },
            force,
            read_only: false,
            cron: None,
            took: false,
            store,
            started: now.mono,
            lease_ms,
            // The longest lease a holder may keep: its deadline and one more attempt.
            wait_ms: config.max_lease_ms(),
            holders_seen: Vec::new(),
            lease_seen: false,
            conflicts: 0,
            waited: false,
            metadata_read: false,
            stale_metadata: false,
            attempt_deadline: now.mono,
            budget: None,
            audience: None,
            request: None,
            sent: None,
            sent_to: None,
            asked_again: false,
            events: Vec::new(),
        }
    }

    /// A read of the store alone, for a caller held back after failures
    /// (`Decision::Read`): a stored token is taken, else the acquisition
    /// fails with the hold-back's refusal, counting no failure.
    pub fn reading(config: &Config, now: Now) -> Self {
        Self {
            read_only: true,
            ..Self::new(config, now, true, false)
        }
    }

    /// A cron check (docs/DESIGN.md, "The cron job"): when the token is
    /// missing or due within `ahead_ms`, the nearest replica's token, then
    /// the primary's, may settle it; if neither does, a refresh (taking a
    /// stored token only if newer). Held back after failures, it fails
    /// with the hold-back's refusal, counting no failure.
    pub fn checking(config: &Config, now: Now, store: bool, ahead_ms: f64) -> Self {
        Self {
            phase: Phase::Check,
            cron: Some(ahead_ms),
            ..Self::new(config, now, store, false)
        }
    }

    /// The events of the transitions so far, to report after them.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The request of the `Send` just polled (once).
    pub fn take_request(&mut self) -> Option<HttpRequest> {
        self.request.take()
    }

    /// The `aud` of the assertion the `Sign` just polled asks for.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Whether the acquisition has ended.
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Over)
    }

    /// The next effect. Call once after [`Driver::new`] and after each
    /// [`Driver::handle`]; `Done` and `Fail` end the acquisition (and tell the state).
    pub fn poll(&mut self, c: &mut Parts<'_>, now: Now, rand: f64) -> Effect {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Over) {
                Phase::Check => self.phase = self.check(c, now),
                phase @ (Phase::FirstRead | Phase::Read) => {
                    // Only an acquisition's first read may go to a replica.
                    let eventual = matches!(phase, Phase::FirstRead) && c.state.reads_eventually();
                    return self.wait_for(
                        Awaiting::Snapshot { eventual },
                        Effect::ReadStore { eventual },
                    );
                }
                Phase::TakeLease => {
                    let ttl_ms = self.lease_ms;
                    return self.wait_for(Awaiting::Lease, Effect::TakeLease { ttl_ms });
                }
                Phase::Sleep { ms, why, then } => {
                    return self.wait_for(Awaiting::Sleep(then), Effect::Sleep { ms, why })
                }
                Phase::Attempt => self.phase = self.begin_attempt(c, now),
                Phase::Endpoint => self.phase = self.endpoint(c, now),
                Phase::ReadMetadata => {
                    self.metadata_read = true;
                    return self.wait_for(Awaiting::MetadataCopy, Effect::ReadMetadata);
                }
                Phase::Discover { location } => match self.discover(c, now, location, rand) {
                    Ok(effect) => return effect,
                    Err(next) => self.phase = *next,
                },
                Phase::WriteMetadata { copy } => {
                    let then = Box::new(Phase::Endpoint);
                    return self.wait_for(Awaiting::Store(then), Effect::WriteMetadata { copy });
                }
                Phase::Sign { token_url } => return self.sign(c, token_url),
                Phase::Ask { token_url, again } => return self.ask(now, token_url, again),
                Phase::Send { request } => {
                    self.request = Some(request);
                    let timeout_ms = self.time_left(now);
                    return self.wait_for(Awaiting::Answer, Effect::Send { timeout_ms });
                }
                Phase::LastLook { error } => {
                    let effect = Effect::ReadStore { eventual: false };
                    return self.wait_for(Awaiting::LastLook(error), effect);
                }
                Phase::Renew { delay_ms } => {
                    let ttl_ms = delay_ms + self.lease_ms;
                    return self.wait_for(
                        Awaiting::Renewal { delay_ms },
                        Effect::RenewLease { ttl_ms },
                    );
                }
                Phase::Ending { mut steps, end } => {
                    if !steps.is_empty() {
                        let step = steps.remove(0);
                        let then = Box::new(Phase::Ending { steps, end });
                        return self.wait_for(Awaiting::Store(then), step);
                    }
                    return match end {
                        End::Token(record, _) if !c.state.holds(&record.access_token) => {
                            self.acquire_again(c, now);
                            continue;
                        }
                        End::Token(record, source) => {
                            c.state.finish(now, None, rand);
                            Effect::Done { record, source }
                        }
                        End::ErrorUnlessStored(error) => {
                            self.phase = Phase::LastLook { error };
                            continue;
                        }
                        End::Error(error) => {
                            if error.code == ErrorCode::Internal {
                                self.events.push(Event::internal(now, &error));
                            }
                            let failure = (!self.read_only).then_some(&error);
                            c.state.finish(now, failure, rand);
                            match self.took.then(|| c.state.usable_record(now)).flatten() {
                                Some(record) => Effect::Done {
                                    record,
                                    source: TokenSource::Kv,
                                },
                                None => Effect::Fail { error },
                            }
                        }
                    };
                }
                Phase::Awaiting(_) | Phase::Over => return self.out_of_order(c, now, rand),
            }
        }
    }

    /// The executor's outcome of the effect polled last.
    pub fn handle(&mut self, c: &mut Parts<'_>, now: Now, outcome: Outcome, rand: f64) {
        // The cold start's path (a read that finds a token) apart, so that the
        // wasm compiles little code for it (docs/DESIGN.md, "The effect loop").
        match (&self.phase, outcome) {
            (Phase::Awaiting(Awaiting::Snapshot { eventual }), Outcome::Snapshot(Some(seen))) => {
                let eventual = *eventual;
                self.phase = Phase::Over;
                self.phase = self.after_read(c, now, seen, eventual, rand);
            }
            (_, outcome) => self.handle_other(c, now, outcome, rand),
        }
    }

    #[inline(never)]
    fn handle_other(&mut self, c: &mut Parts<'_>, now: Now, outcome: Outcome, rand: f64) {
        let Phase::Awaiting(awaiting) = std::mem::replace(&mut self.phase, Phase::Over) else {
            // Nothing was asked (or the executor could not begin): `poll` fails it.
            self.phase = Phase::Awaiting(Awaiting::Answer);
            return;
        };
        self.phase = match (awaiting, outcome) {
            (_, Outcome::Broken) => {
                // The executor's own code threw: a bug, not an outage.
                let error = TokenError::internal("token acquisition failed unexpectedly");
                self.events.push(Event::internal(now, &error));
                Phase::Ending {
                    steps: Vec::new(),
                    end: End::Error(error),
                }
            }
            (Awaiting::LastLook(error), Outcome::Snapshot(seen)) => {
                last_look(c, now, seen, error, rand)
            }
            (Awaiting::Snapshot { .. }, Outcome::Snapshot(None)) if self.read_only => {
                self.refused(c, now)
            }
            (Awaiting::Snapshot { .. }, Outcome::Snapshot(None)) => {
                self.role = Role::Alone; // The store failed: this isolate alone, in memory.
                match self.cron {
                    // A cron check still due refreshes, unless held back.
                    Some(_) => self.refresh_due(c, now).unwrap_or(Phase::Attempt),
                    None => Phase::Attempt,
                }
            }
            (Awaiting::Snapshot { eventual }, Outcome::Snapshot(Some(seen))) => {
                self.after_read(c, now, seen, eventual, rand)
            }
            (Awaiting::Lease, Outcome::Lease(result)) => self.after_lease(now, result, rand),
            (Awaiting::Renewal { delay_ms }, Outcome::Renewed(kept)) => {
                self.after_renewal(delay_ms, kept)
            }
            (Awaiting::MetadataCopy, Outcome::MetadataCopy(copy)) => metadata_copy(c, now, copy),
            (Awaiting::Metadata { location }, Outcome::Answer(answer)) => {
                self.after_metadata(c, now, location, answer, rand)
            }
            (Awaiting::Signature { token_url }, Outcome::Signed(Ok(assertion))) => {
                self.signed(c, &token_url, &assertion)
            }
            (Awaiting::Signature { .. }, Outcome::Signed(Err(error))) => {
                self.finish_attempt(c, now, Err(error), rand)
            }
            (Awaiting::Credential { token_url, again }, Outcome::Credential(read)) => {
                self.credential_read(c, now, token_url, again, read, rand)
            }
            (Awaiting::Answer, Outcome::Answer(answer)) => self.answered(c, now, answer, rand),
            (Awaiting::Sleep(then), Outcome::Slept) | (Awaiting::Store(then), Outcome::Stored) => {
                *then
            }
            (_, _) => Phase::Awaiting(Awaiting::Answer), // Out of order: `poll` fails it.
        };
    }

    /// The token this acquisition got was forgotten (`invalidate()`, a 401)
    /// while its write or release was out: it is served to no one, and the
    /// acquisition starts over, taking a stored token only if newer; the
    /// new token's write replaces the forgotten one in the store, where the
    /// delete may have come before that write (docs/DESIGN.md, "Shared state").
    /// The lease holders it saw are remembered: none is waited on longer
    /// than one attempt in all.
    #[cold]
    #[inline(never)]
    fn acquire_again(&mut self, c: &mut Parts<'_>, now: Now) {
        let again = Driver::new(c.config, now, self.store, true);
        let old = std::mem::replace(self, again);
        self.events = old.events;
        self.holders_seen = old.holders_seen;
    }

    fn wait_for(&mut self, awaiting: Awaiting, effect: Effect) -> Effect {
        self.phase = Phase::Awaiting(awaiting);
        effect
    }

    /// The executor polled without handing back an outcome, or after the
    /// end: a bug in the executor, so an `internal` error, reported.
    #[cold]
    #[inline(never)]
    fn out_of_order(&mut self, c: &mut Parts<'_>, now: Now, rand: f64) -> Effect {
        let error = TokenError::internal("the acquisition was driven out of order");
        self.events.push(Event::internal(now, &error));
        c.state.finish(now, Some(&error), rand);
        Effect::Fail { error }
    }
}

/// A phase the driver never reaches: the acquisition fails (with an
/// `internal` error, a bug) rather than panics.
fn unreachable_phase() -> Phase {
    Phase::Ending {
        steps: Vec::new(),
        end: End::Error(TokenError::internal(
            "the acquisition reached an impossible state",
        )),
    }
}

#[cfg(test)]
mod internal_tests;

#[cfg(test)]
mod judged_tests;

#[cfg(test)]
mod transition_tests;

#[cfg(test)]
mod credential_tests;
