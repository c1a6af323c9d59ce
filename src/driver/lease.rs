//! The driver's side of the store (docs/DESIGN.md, "Shared state"): a
//! cron check's question, what a read found ([`Seen`], judged by
//! [`Seen::judged`]), waiting on another isolate's lease, taking it,
//! renewing it before a retry, and the last look before failing.

use super::{Driver, End, Event, Parts, Phase, Role, TokenSource, Wait};
use crate::clock::Now;
use crate::error::{ErrorCode, TokenError};
use crate::shared::{self, TokenRecord, MAX_CLOCK_SPREAD_MS};

/// Failed attempts at a free lease before a waiter fetches without it: entries
/// that change under every try while no lease shows are a co-tenant's doing.
pub const MAX_CONFLICTS: u32 = 3;
/// A waiter reads the store again after 40 ms and up to 80 ms more (jittered).
const POLL_MS: (f64, f64) = (40.0, 80.0);
/// Holders a waiter remembers seeing (each with when it first saw it).
const MAX_HOLDERS_SEEN: usize = 64;

/// What a read of the store found, as the store holds it: the store is
/// untrusted (docs/DESIGN.md, "Shared state"), so the core checks the token
/// and judges the lease and the back-off ([`Seen::judged`]).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The stored token, if one decoded as a record.
    pub token: Option<TokenRecord>,
    /// When another isolate's lease ends, epoch ms, as its value says.
    pub lease_until: Option<f64>,
    /// Who holds it, as its value says.
    pub lease_holder: Option<String>,
    /// When its holder says it took it, epoch ms.
    pub lease_taken_at: Option<f64>,
    /// Until when every isolate holds token requests back; 0 for none.
    pub backoff_until: f64,
    /// Until when the token cools after an API's 429 (src/rate_limit.rs),
    /// epoch ms; 0 for none.
    pub cooling_until: f64,
}

impl Seen {
    /// The lease and the back-off this client believes, on a wall clock
    /// reading `now_ms`: a lease that is over, or further ahead than
    /// `max_lease_ms` (the longest this client writes) on clocks that may
    /// disagree, reads as absent, and so does a back-off beyond the cap
    /// (`shared::lease_is_plausible`, `shared::backoff_is_plausible`).
    pub fn judged(mut self, now_ms: f64, max_lease_ms: f64) -> Self {
        let live = |until| shared::lease_is_plausible(until, now_ms, max_lease_ms);
        if !self.lease_until.is_some_and(live) {
            self.lease_until = None;
            self.lease_holder = None;
            self.lease_taken_at = None;
        }
        if !shared::backoff_is_plausible(self.backoff_until, now_ms) {
            self.backoff_until = 0.0;
        }
        if !shared::backoff_is_plausible(self.cooling_until, now_ms) {
            self.cooling_until = 0.0; // a cooling is capped as a back-off is
        }
        self
    }
}

/// How an attempt to take the lease went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LeaseResult {
    /// This isolate holds it.
    Taken,
    /// Something changed since the read: read again.
    Held,
    /// The store failed: fetch without it, for this isolate alone.
    Failed,
}

impl Driver {
    /// The start of a cron check: fresh, or read the store, or refresh.
    #[inline(never)]
    pub(super) fn check(&mut self, c: &mut Parts<'_>, now: Now) -> Phase {
        if let Some(end) = self.fresh(c, now, None) {
            return end;
        }
        if self.store {
            return Phase::FirstRead;
        }
        self.refresh_due(c, now).unwrap_or(Phase::Attempt)
    }

    /// A read's token taken; else, after an eventual read a strong one, after
    /// a strong one: wait, take the lease, or fetch.
    pub(super) fn after_read(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        mut seen: Seen,
        eventual: bool,
        rand: f64,
    ) -> Phase {
        let mut adopted = None;
        let cooling = seen
            .clone()
            .judged(now.wall, c.config.max_lease_ms())
            .cooling_until;
        c.state.cool_until_wall(now, cooling);
        if let Some(record) = seen.token.take() {
            adopted = c.state.adopt(now, record, self.force, rand);
            if let (Some(taken), None) = (&adopted, self.cron) {
                return Phase::Ending {
                    steps: Vec::new(),
                    end: End::Token(taken.clone(), TokenSource::Kv),
                };
            }
        }
        if self.cron.is_some() {
            self.took |= adopted.is_some();
            if let Some(end) = self.fresh(c, now, adopted) {
                return end;
            }
            if !eventual {
                if let Some(refused) = self.refresh_due(c, now) {
                    return refused;
                }
                return self.nothing_to_take(c, now, seen, rand);
            }
        }
        if eventual {
            return Phase::Read; // A replica may lag: the lease's check needs the primary.
        }
        if self.read_only {
            return self.refused(c, now);
        }
        self.nothing_to_take(c, now, seen, rand)
    }

    /// A cron check's question: the token is fresh for its period (held,
    /// or just `adopted` from the store), which ends the check; `None` when due.
    #[inline(never)]
    fn fresh(&self, c: &mut Parts<'_>, now: Now, adopted: Option<TokenRecord>) -> Option<Phase> {
        if c.state.due(now, self.cron?) {
            return None;
        }
        let (record, source) = match adopted {
            Some(record) => (record, TokenSource::Kv),
            None => (c.state.held_record()?, TokenSource::Held),
        };
        Some(Phase::Ending {
            steps: Vec::new(),
            end: End::Token(record, source),
        })
    }

    /// A cron check found the token due: it refreshes now (a stored token
    /// taken only if newer), unless token requests are held back.
    #[inline(never)]
    pub(super) fn refresh_due(&mut self, c: &mut Parts<'_>, now: Now) -> Option<Phase> {
        if c.state.held_back(now) {
            self.read_only = true; // the refusal counts no failure, as `begin`'s does not
            return Some(self.refused(c, now));
        }
        self.cron = None;
        self.force = true;
        None
    }

    /// A read found no token to take: wait out a back-off, wait on a lease, or take it.
    #[inline(never)]
    fn nothing_to_take(&mut self, c: &mut Parts<'_>, now: Now, seen: Seen, rand: f64) -> Phase {
        let seen = seen.judged(now.wall, c.config.max_lease_ms());
        if seen.backoff_until > now.wall {
            let wait_ms = seen.backoff_until - now.wall;
            if c.state.status(now).has_token || now.mono + wait_ms > self.started + self.wait_ms {
                let mut error = TokenError::new(
                    ErrorCode::RateLimited,
                    "token requests are held back after a 429 or outage seen by another isolate",
                );
                error.retry_after_seconds = Some((wait_ms / 1000.0).ceil());
                return Phase::Ending {
                    steps: Vec::new(),
                    end: End::Error(error),
                };
            }
            return Phase::Sleep {
                ms: wait_ms,
                why: Wait::Backoff,
                then: Box::new(Phase::Read),
            };
        }
        self.lease_seen = seen.lease_until.is_some();
        if self.lease_seen {
            self.wait_on_lease(now);
            if now.mono >= self.started + self.wait_ms {
                self.role = Role::Unleased; // No token came within the longest lease.
                return Phase::Attempt;
            }
            // A lease is waited on one attempt at most, however often it is renewed:
            // from when this waiter first saw that holder, or when the holder says it
            // took it (on a clock that may be up to the spread behind ours), if earlier.
            let first_seen = self.first_seen(seen.lease_holder.unwrap_or_default(), now.wall);
            let taken_at = seen
                .lease_taken_at
                .map_or(f64::INFINITY, |t| t + MAX_CLOCK_SPREAD_MS);
            let since = first_seen.min(taken_at);
            if now.wall - since < self.lease_ms {
                return self.poll_again(rand);
            }
        }
        Phase::TakeLease
    }

    /// A read found nothing to take: the hold-back's refusal.
    #[inline(never)]
    pub(super) fn refused(&self, c: &mut Parts<'_>, now: Now) -> Phase {
        let error = c.state.refusal(now, 0.0);
        Phase::Ending {
            steps: Vec::new(),
            end: End::Error(error),
        }
    }

    #[inline(never)]
    pub(super) fn after_lease(&mut self, now: Now, result: LeaseResult, rand: f64) -> Phase {
        match result {
            LeaseResult::Taken => {
                self.role = Role::Holder;
                Phase::Attempt
            }
            LeaseResult::Failed => {
                self.role = Role::Alone;
                Phase::Attempt
            }
            LeaseResult::Held => {
                if !self.lease_seen {
                    self.conflicts += 1;
                    if self.conflicts >= MAX_CONFLICTS {
                        self.role = Role::Unleased;
                        return Phase::Attempt;
                    }
                }
                self.wait_on_lease(now);
                self.poll_again(rand)
            }
        }
    }

    fn poll_again(&self, rand: f64) -> Phase {
        Phase::Sleep {
            ms: POLL_MS.0 + rand * POLL_MS.1,
            why: Wait::Lease,
            then: Box::new(Phase::Read),
        }
    }

    fn wait_on_lease(&mut self, now: Now) {
        if !self.waited {
            self.waited = true;
            self.events.push(Event::LeaseWait { at: now.wall });
        }
    }

    /// When `holder` was first seen (now, if it was not). Past
    /// [`MAX_HOLDERS_SEEN`] names (a co-tenant inventing them), a new one
    /// counts as seen at the first: it is taken over sooner, never later.
    #[inline(never)]
    fn first_seen(&mut self, holder: String, now_ms: f64) -> f64 {
        if let Some((_, at)) = self.holders_seen.iter().find(|(h, _)| *h == holder) {
            return *at;
        }
        if self.holders_seen.len() >= MAX_HOLDERS_SEEN {
            return self.holders_seen.first().map_or(now_ms, |(_, at)| *at);
        }
        self.holders_seen.push((holder, now_ms));
        now_ms
    }

    /// A holder renewed its lease (`kept`) or lost it before a retry wait.
    #[inline(never)]
    pub(super) fn after_renewal(&mut self, delay_ms: f64, kept: bool) -> Phase {
        // A holder whose lease was taken over waits for the new holder's token.
        let then = match kept {
            true => Phase::Attempt,
            false => {
                self.role = Role::Waiter;
                Phase::Read
            }
        };
        Phase::Sleep {
            ms: delay_ms,
            why: Wait::Retry,
            then: Box::new(then),
        }
    }
}

/// The last read before failing with `error`: a stored token, else the error.
#[inline(never)]
pub(super) fn last_look(
    c: &mut Parts<'_>,
    now: Now,
    seen: Option<Seen>,
    error: TokenError,
    rand: f64,
) -> Phase {
    let stored = seen.and_then(|seen| seen.token);
    let end = match stored.and_then(|record| c.state.adopt(now, record, false, rand)) {
        Some(taken) => End::Token(taken, TokenSource::Kv),
        None => End::Error(error),
    };
    Phase::Ending {
        steps: Vec::new(),
        end,
    }
}
