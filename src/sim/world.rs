//! The simulated world (docs/DESIGN.md, "The simulator"): the store with
//! the semantics `deno/kv_store.ts` relies on (versionstamped checks,
//! expiry, lagging replicas), the isolates with their skewed clocks and
//! shipped core, the callers, the token server's bookkeeping, and the
//! event queue one seeded scheduler pops.

use super::rng::Rng;
use super::scenario::Scenario;
use crate::call::Call;
use crate::client::Client;
use crate::clock::Now;
use crate::config::Config;
use crate::driver::Outcome;
use crate::pool::SlotView;
use crate::shared::TokenRecord;
use crate::store_guard::StoreGuard;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

pub(super) const WALL0: f64 = 1_700_000_000_000.0;
/// Steps kept for the trace of a violation.
pub(super) const TRACE: usize = 200;

/// The simulated store: one client's entries. Each slot of a pool keeps
/// its own token and lease (`KvStore`'s `slot` option: slot k > 0 under
/// `${id}.${k}`); the back-off entry and the metadata copy are the
/// client's, one for every slot (docs/DESIGN.md, "Token pools").
#[derive(Default)]
pub(super) struct Store {
    pub(super) version: u64,
    /// Each slot's token and lease entries, slot 0 first.
    pub(super) slots: Vec<SlotEntries>,
    pub(super) backoff: Option<(f64, u64, f64)>,
    /// The issuer's metadata copy.
    pub(super) metadata: Option<String>,
}

/// One slot's token and lease entries.
#[derive(Default)]
pub(super) struct SlotEntries {
    pub(super) token: Option<(StoredToken, u64)>,
    /// Token entries replaced, each with when (true ms), oldest first: what a
    /// lagging replica still shows.
    pub(super) replaced: VecDeque<(f64, Option<StoredToken>)>,
    pub(super) lease: Option<(StoredLease, u64, f64)>,
}

#[derive(Clone)]
pub(super) enum StoredToken {
    /// A token, with its true expiry, when it was written (true ms) and how far
    /// its writer's clock was ahead of the truth.
    Token(TokenRecord, f64, f64, f64),
    Garbage,
}

#[derive(Clone)]
pub(super) struct StoredLease {
    pub(super) holder: String,
    pub(super) until: f64,
    pub(super) taken_at: f64,
}

/// What one isolate saw at its last read (the versions the lease's check compares).
#[derive(Clone, Copy, Default, PartialEq)]
pub(super) struct Versions {
    pub(super) token: u64,
    pub(super) lease: u64,
    pub(super) backoff: u64,
}

impl Store {
    /// A store with the entries of a pool of `slots`.
    pub(super) fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots).map(|_| SlotEntries::default()).collect(),
            ..Self::default()
        }
    }

    pub(super) fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Replaces slot `slot`'s token entry at true time `t`.
    pub(super) fn set_token(&mut self, slot: usize, t: f64, token: Option<StoredToken>) {
        let v = self.next_version();
        let entries = &mut self.slots[slot];
        let old = std::mem::replace(&mut entries.token, token.map(|s| (s, v)));
        entries.replaced.push_back((t, old.map(|(s, _)| s)));
        if entries.replaced.len() > 16 {
            entries.replaced.pop_front();
        }
    }

    /// Slot `slot`'s token entry as a replica `lag` ms behind shows it at
    /// true time `t` (expired entries dropped, as the primary drops them).
    pub(super) fn token_behind(&self, slot: usize, t: f64, lag: f64) -> Option<&StoredToken> {
        let then = t - lag;
        let entries = &self.slots[slot];
        let entry = match entries.replaced.iter().find(|(at, _)| *at > then) {
            Some((_, old)) => old.as_ref(),
            None => entries.token.as_ref().map(|(s, _)| s),
        };
        entry.filter(|s| !matches!(s, StoredToken::Token(_, e, _, _) if *e <= t))
    }

    /// Drops what has expired by true time `t`.
    pub(super) fn expire(&mut self, t: f64) {
        for slot in 0..self.slots.len() {
            let entries = &mut self.slots[slot];
            if entries
                .token
                .as_ref()
                .is_some_and(|(s, _)| matches!(s, StoredToken::Token(_, e, _, _) if *e <= t))
            {
                self.set_token(slot, t, None);
            }
            let entries = &mut self.slots[slot];
            if entries.lease.as_ref().is_some_and(|l| l.2 <= t) {
                entries.lease = None;
            }
        }
        if self.backoff.as_ref().is_some_and(|b| b.2 <= t) {
            self.backoff = None;
        }
    }

    /// The versions slot `slot`'s lease take checks: its token and lease, and the shared back-off.
    pub(super) fn versions(&self, slot: usize) -> Versions {
        let entries = &self.slots[slot];
        Versions {
            token: entries.token.as_ref().map_or(0, |t| t.1),
            lease: entries.lease.as_ref().map_or(0, |l| l.1),
            backoff: self.backoff.as_ref().map_or(0, |b| b.1),
        }
    }
}

/// One slot client of a simulated process (an isolate): with `poolSize`
/// 1 the process's client itself, else slot `slot` of its pool. Its
/// process's slots share its clock, crashes and epoch.
pub(super) struct Isolate {
    /// The shipped core of one client.
    pub(super) client: Client,
    /// The process it belongs to.
    pub(super) process: usize,
    /// Its slot in the process's pool.
    pub(super) slot: usize,
    /// When a call last took this slot, monotonic ms (the pool keeps it, as
    /// `PoolClient` does).
    pub(super) last_used: f64,
    /// A cron check's read of this empty slot is under way: the check
    /// (with this period) follows if it finds a token.
    pub(super) cron_after_read: Option<f64>,
    /// Bumped by a crash: outcomes of effects begun before it are dropped.
    pub(super) epoch: u32,
    pub(super) seen: Versions,
    /// The lease this isolate holds (its holder name and version).
    pub(super) lease: Option<(String, u64)>,
    /// Callers waiting for the acquisition in flight.
    pub(super) waiting: Vec<usize>,
    /// Holders this driver's reads showed, with when it first saw each (true ms).
    pub(super) holders_seen: HashMap<String, f64>,
    /// The holder its last read showed, while no take-over was tried since.
    pub(super) last_holder: Option<String>,
    /// The shared back-off its last read showed (0 for none).
    pub(super) backoff_seen: f64,
    /// Whether the acquisition in flight sent a token request.
    pub(super) sent: bool,
    /// When the acquisition in flight last read the store (true ms).
    pub(super) read_at: f64,
    /// When its last acquisition that sent a request failed (true ms), and
    /// the least hold-back that follows (shorter only as its token ends).
    pub(super) failed_at: Option<(f64, f64)>,
    pub(super) skew: f64,
    /// Whether its last read showed a token due by its clock but not by its
    /// writer's (clocks further apart than a refresh window).
    pub(super) skewed: bool,
    /// Whether its last read showed a token it could not share, with clocks
    /// further apart than the core allows a record to be ahead
    /// (`shared::max_record_ahead_ms`): refused as from the future, or due
    /// by this clock but not by its writer's (whose token may replace one a
    /// third isolate refused).
    pub(super) apart: bool,
    /// Its store's failure policy, as `KvStore` keeps it (it survives acquisitions).
    pub(super) store_guard: StoreGuard,
    /// Tokens it invalidated or saw refused with a 401: never served again.
    pub(super) rejected: Vec<String>,
    /// Whether the acquisition in flight is a cron check's.
    pub(super) cron: bool,
}

/// A `getToken` or `refresh()` caller.
pub(super) struct Caller {
    /// The process it calls.
    pub(super) process: usize,
    /// The slot client serving it (its process's first until it picks).
    pub(super) isolate: usize,
    /// Whether it took its slot (`pool::pick`).
    pub(super) picked: bool,
    /// Whether its slot failed it and another serves it instead (`pool::instead`).
    pub(super) moved: bool,
    pub(super) started: f64,
    /// The core's call, made when a `getToken` caller first asks.
    pub(super) call: Option<Call>,
    /// Served, failed, aborted, or gone with its isolate.
    pub(super) over: bool,
    pub(super) min_valid_ms: f64,
    /// `refresh()` rather than `getToken()`.
    pub(super) force: bool,
    /// `refresh()`: the acquisition it waits for was begun or joined.
    pub(super) refreshing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Happening {
    Ask(usize),
    /// A caller gives up waiting (its `AbortSignal`): the acquisition goes on.
    Abort(usize),
    Effect {
        isolate: usize,
        epoch: u32,
    },
    /// A process crashes, with every slot.
    Crash(usize),
    Hostile,
    /// `invalidate()` (`false`) or a 401 from a resource server (`true`) on a process.
    Reject(usize, bool),
    /// A store delete's outcome reaches the isolate, in its epoch.
    Removed {
        isolate: usize,
        epoch: u32,
    },
    /// A cron check on a process.
    Cron(usize),
}

pub(super) struct Sim {
    pub(super) s: Scenario,
    pub(super) config: Config,
    pub(super) rng: Rng,
    pub(super) t: f64,
    pub(super) queue: BinaryHeap<Reverse<(u64, u64, Happening)>>,
    pub(super) order: u64,
    pub(super) store: Store,
    /// Every process's slot clients: process p's slot k at `p * pool_size + k`.
    pub(super) isolates: Vec<Isolate>,
    /// Slots per process (`poolSize`).
    pub(super) pool_size: usize,
    pub(super) calls: Vec<Caller>,
    /// Per slot: what invariant 3 counts and allows.
    pub(super) per_slot: Vec<SlotCounts>,
    /// Outcomes waiting for their effect's completion, per isolate.
    pub(super) pending: HashMap<usize, VecDeque<Outcome>>,
    /// Token requests in flight: (isolate, answered at, sent without the
    /// lease from a clock that shares no window with the stored token's writer).
    pub(super) in_flight: Vec<(usize, f64, bool)>,
    /// Tokens the server issued: token → true expiry.
    pub(super) issued: HashMap<String, f64>,
    /// Tokens the server issued: token → the slot whose request it answered.
    pub(super) issued_to: HashMap<String, usize>,
    /// Token requests the server received, from every slot.
    pub(super) requests: u32,
    pub(super) duplicates: u32,
    /// Token requests sent during the token server's outage.
    pub(super) requests_in_outage: u32,
    pub(super) trace: VecDeque<String>,
    /// Whether steps are kept for the trace.
    pub(super) tracing: bool,
    pub(super) served: u32,
    pub(super) errors: u32,
    pub(super) max_retry_after_ms: f64,
}

/// One slot's token requests, and the ones invariant 3 allows beside its refresh windows.
#[derive(Clone, Copy, Default)]
pub(super) struct SlotCounts {
    pub(super) requests: u32,
    /// Requests by an isolate whose clock made the stored token due early.
    pub(super) skewed: u32,
    /// `refresh()` calls that took this slot.
    pub(super) refresh_calls: u32,
    /// Token requests a rejection (an `invalidate()` or a 401) called for.
    pub(super) rejections: u32,
    /// Acquisitions begun by a cron check that sent a token request.
    pub(super) cron_refreshes: u32,
}

impl Isolate {
    /// Slot `slot` of process `process` of `config`'s client (with a store when it names one).
    pub(super) fn new(config: &Config, process: usize, slot: usize, skew: f64) -> Self {
        Self {
            client: Client::new(config.clone(), |url| Some(url.to_owned())),
            process,
            slot,
            last_used: f64::NEG_INFINITY,
            cron_after_read: None,
            epoch: 0,
            seen: Versions::default(),
            lease: None,
            waiting: Vec::new(),
            holders_seen: HashMap::new(),
            last_holder: None,
            backoff_seen: 0.0,
            sent: false,
            read_at: f64::NEG_INFINITY,
            failed_at: None,
            skewed: false,
            apart: false,
            store_guard: StoreGuard::new(),
            rejected: Vec::new(),
            cron: false,
            skew,
        }
    }
}

impl Sim {
    pub(super) fn at(&mut self, t: f64, what: Happening) {
        self.order += 1;
        self.queue
            .push(Reverse(((t * 1000.0) as u64, self.order, what)));
    }

    /// The clocks of `isolate`'s process.
    pub(super) fn now(&self, isolate: usize) -> Now {
        let iso = &self.isolates[isolate];
        Now {
            wall: WALL0 + self.t + iso.skew,
            mono: 1_000_000.0 * (iso.process as f64 + 1.0) + self.t,
        }
    }

    /// The slot clients of `process`.
    pub(super) fn slots_of(&self, process: usize) -> std::ops::Range<usize> {
        process * self.pool_size..(process + 1) * self.pool_size
    }

    /// How traces and violations name `isolate`: its process, and its slot in a pool.
    pub(super) fn name(&self, isolate: usize) -> String {
        let iso = &self.isolates[isolate];
        match self.pool_size {
            1 => format!("isolate {}", iso.process),
            _ => format!("isolate {} slot {}", iso.process, iso.slot),
        }
    }

    /// Slot `isolate`'s token and lease entries.
    pub(super) fn entries(&self, isolate: usize) -> &SlotEntries {
        &self.store.slots[self.isolates[isolate].slot]
    }

    /// Every slot of `process` as the pool sees it when it picks
    /// (`core.slotView`, with the pool's `last_used`).
    pub(super) fn views(&self, process: usize) -> Vec<SlotView> {
        self.slots_of(process)
            .map(|i| {
                let iso = &self.isolates[i];
                SlotView {
                    last_used: iso.last_used,
                    ..iso.client.slot_view(self.now(i))
                }
            })
            .collect()
    }

    pub(super) fn log(&mut self, text: String) {
        if !self.tracing {
            return;
        }
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>12.1} ms  {text}", self.t));
    }
}
