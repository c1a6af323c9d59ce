//! A deterministic simulation of many isolates sharing one store (docs/DESIGN.md,
//! "The simulator"), in the spirit of FoundationDB's and TigerBeetle's
//! simulation testing. Each isolate runs the shipped core — a [`Client`]
//! with a [`Call`] per caller (the caller's loop) and a driver per
//! acquisition, invalidations, 401s and cron checks — natively, against a
//! simulated store with the semantics `deno/kv_store.ts` relies on
//! (versionstamped atomic checks, expiry; what it holds goes to the driver
//! unjudged, as the executor hands it over; its failures, timeouts and
//! locked retries go through the same [`StoreGuard`]), a simulated token
//! server, and skewed clocks, all driven by one seeded scheduler. What the
//! executor does here is what `deno/_executor.ts` does: perform the
//! effect, hand back the outcome.
//!
//! Each seed draws its scenario (isolates, token lifetime, faults) and the
//! invariants are checked as it runs; [`run`] returns the first violation
//! with a trace of the steps before it.

use crate::call::{Call, Step};
use crate::client::{Client, Start, Started};
use crate::clock::Now;
use crate::config::Config;
use crate::driver::{Effect, LeaseResult, Outcome, Seen, Wait};
use crate::error::{ErrorCode, TokenError};
use crate::response::Received;
use crate::shared::{self, TokenRecord, MAX_SHARED_BACKOFF_MS};
use crate::state::Unauthorized;
use crate::store_guard::{StoreGuard, STORE_TIMEOUT_MS};
use crate::transport::Exchange;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt::Write;

mod invariants;
mod trace;

/// A small seeded generator (xorshift64*): the same seed, the same run.
pub struct Rng(u64);

impl Rng {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high)`.
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Log-uniform in `[low, high)`: as many short values as long ones.
    pub fn log_between(&mut self, low: f64, high: f64) -> f64 {
        (low.ln() + (high.ln() - low.ln()) * self.uniform()).exp()
    }
}

const WALL0: f64 = 1_700_000_000_000.0;
/// Steps kept for the trace of a violation.
const TRACE: usize = 200;

/// What the token server does in an outage.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    ServerError,
    /// 429 with `Retry-After` in seconds.
    RateLimited(u32),
    /// 429 with `Retry-After` as an HTTP date.
    RateLimitedDate(u32),
    Unauthorized,
    Hang,
    SlowBody,
}

/// One seed's scenario.
#[derive(Debug)]
struct Scenario {
    isolates: usize,
    lifetime_s: f64,
    timeout_ms: f64,
    skews: Vec<f64>,
    outage: Option<(f64, f64, Fault)>,
    store_fault_rate: f64,
    store_faults_until: f64,
    crashes: Vec<(f64, usize)>,
    hostile: Option<(f64, f64, Hostile)>,
    min_valid: bool,
    run_ms: f64,
    /// One client without a store, through a 5 s outage inside its refresh
    /// window (invariant 7).
    lone: bool,
    /// The token endpoint comes from the issuer's metadata (discovery).
    issuer: bool,
    /// The client signs an assertion for each token request (`Sign`).
    jwt: bool,
    /// Of the signings in the faults' time, the share that fail.
    sign_fault_rate: f64,
    /// Some callers call `refresh()`.
    refreshes: bool,
    /// `invalidate()` calls and 401s from a resource server: (when, isolate, a 401?).
    rejections: Vec<(f64, usize, bool)>,
    /// A cron check on every isolate, with this period (ms).
    cron_ms: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hostile {
    /// Writes a token entry that is not a token.
    Garbage,
    /// Holds a plausible lease, renewed forever.
    Lease,
    /// Writes a shared back-off far in the future.
    Backoff,
}

impl Scenario {
    fn draw(rng: &mut Rng) -> Self {
        let isolates = 1 + (rng.uniform() * 16.0) as usize;
        let lifetime_s = rng.log_between(8.0, 86_400.0).round();
        let timeout_ms = rng.between(200.0, 2_000.0).round();
        let skewed = rng.chance(0.3);
        let skews = (0..isolates)
            .map(|_| {
                if skewed {
                    rng.between(-30_000.0, 30_000.0)
                } else {
                    0.0
                }
            })
            .collect();
        let window_ms = lifetime_s * 1000.0;
        let fault_start = rng.between(0.3, 1.5) * window_ms;
        let outage = rng.chance(0.5).then(|| {
            let length = rng.log_between(200.0, 900_000.0);
            let fault = match (rng.uniform() * 6.0) as u32 {
                0 => Fault::ServerError,
                1 => Fault::RateLimited(1 + (rng.uniform() * 30.0) as u32),
                2 => Fault::RateLimitedDate(1 + (rng.uniform() * 30.0) as u32),
                3 => Fault::Unauthorized,
                4 => Fault::Hang,
                _ => Fault::SlowBody,
            };
            (fault_start, fault_start + length, fault)
        });
        let store_fault_rate = if rng.chance(0.25) {
            rng.between(0.01, 0.3)
        } else {
            0.0
        };
        let store_faults_until = fault_start + rng.between(0.0, 0.5) * window_ms;
        let crashes = (0..(if rng.chance(0.25) {
            1 + (rng.uniform() * 3.0) as usize
        } else {
            0
        }))
            .map(|_| {
                (
                    rng.between(0.0, 2.0) * window_ms,
                    (rng.uniform() * isolates as f64) as usize,
                )
            })
            .collect();
        let hostile = rng.chance(0.15).then(|| {
            let kind = match (rng.uniform() * 3.0) as u32 {
                0 => Hostile::Garbage,
                1 => Hostile::Lease,
                _ => Hostile::Backoff,
            };
            (
                fault_start,
                fault_start + rng.between(0.2, 1.0) * window_ms,
                kind,
            )
        });
        let faults_end = [
            outage.map_or(0.0, |o| o.1),
            store_faults_until,
            hostile.map_or(0.0, |h| h.1),
        ]
        .into_iter()
        .fold(0.0, f64::max);
        let rejections = (0..(if rng.chance(0.2) {
            1 + (rng.uniform() * 4.0) as usize
        } else {
            0
        }))
            .map(|_| {
                (
                    rng.between(0.0, 3.0) * window_ms,
                    (rng.uniform() * isolates as f64) as usize,
                    rng.chance(0.5),
                )
            })
            .collect();
        let cron_ms = rng.chance(0.2).then(|| rng.between(0.05, 0.5) * window_ms);
        Self {
            isolates,
            lifetime_s,
            timeout_ms,
            skews,
            outage,
            store_fault_rate,
            store_faults_until,
            crashes,
            hostile,
            min_valid: rng.chance(0.3),
            run_ms: (faults_end + 2.5 * window_ms).max(3.0 * window_ms) + RECOVERY_MS,
            lone: false,
            issuer: rng.chance(0.25),
            jwt: rng.chance(0.25),
            sign_fault_rate: match rng.chance(0.1) {
                true => rng.between(0.05, 0.5),
                false => 0.0,
            },
            refreshes: rng.chance(0.2),
            rejections,
            cron_ms,
        }
    }

    /// The outage of a client without a store: 12 s tokens (refreshed 6 to
    /// 6.6 s after they are requested, unusable at 11.4 s), the token server
    /// down for 5 s from a moment inside the first token's refresh window,
    /// callers arriving all the time for a minute.
    fn outage(rng: &mut Rng) -> Self {
        let start = rng.between(5_500.0, 9_000.0);
        Self {
            isolates: 1,
            lifetime_s: 12.0,
            timeout_ms: 10_000.0,
            skews: vec![0.0],
            outage: Some((start, start + LONE_OUTAGE_MS, Fault::ServerError)),
            store_fault_rate: 0.0,
            store_faults_until: 0.0,
            crashes: Vec::new(),
            hostile: None,
            min_valid: false,
            run_ms: 60_000.0,
            lone: true,
            issuer: false,
            jwt: false,
            sign_fault_rate: 0.0,
            refreshes: false,
            rejections: Vec::new(),
            cron_ms: None,
        }
    }

    /// Whether `t` (true ms) is in the token server's outage.
    fn down(&self, t: f64) -> bool {
        self.outage
            .is_some_and(|(start, end, _)| (start..end).contains(&t))
    }

    /// Whether a signing at `t` may fail (in the faults' time).
    fn signing_faulty(&self, t: f64) -> bool {
        self.sign_fault_rate > 0.0 && t < self.store_faults_until
    }

    fn faults_end(&self) -> f64 {
        [
            self.outage.map_or(0.0, |o| o.1),
            if self.store_fault_rate > 0.0 {
                self.store_faults_until
            } else {
                0.0
            },
            self.hostile.map_or(0.0, |h| h.1),
            self.crashes.iter().map(|c| c.0).fold(0.0, f64::max),
            if self.sign_fault_rate > 0.0 {
                self.store_faults_until
            } else {
                0.0
            },
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }

    fn healthy(&self) -> bool {
        self.outage.is_none()
            && self.store_fault_rate == 0.0
            && self.crashes.is_empty()
            && self.hostile.is_none()
            && self.sign_fault_rate == 0.0
    }
}

/// The lone client's outage: 5 s.
const LONE_OUTAGE_MS: f64 = 5_000.0;

/// The closest a failed acquisition's next request may come: the shortest
/// hold-back (half a second, near a token's end).
const MIN_SPACING_MS: f64 = 499.0;

/// After the faults end, every caller is served within this (a hold-back
/// period of a minute, and an attempt's time).
const RECOVERY_MS: f64 = 70_000.0;

/// The simulated store: one client's token, lease and back-off entries.
#[derive(Default)]
struct Store {
    version: u64,
    token: Option<(StoredToken, u64)>,
    /// Token entries replaced, each with when (true ms), oldest first: what a
    /// lagging replica still shows.
    replaced: VecDeque<(f64, Option<StoredToken>)>,
    lease: Option<(StoredLease, u64, f64)>,
    backoff: Option<(f64, u64, f64)>,
    /// The issuer's metadata copy.
    metadata: Option<String>,
}

#[derive(Clone)]
enum StoredToken {
    /// A token, with its true expiry, when it was written (true ms) and how far
    /// its writer's clock was ahead of the truth.
    Token(TokenRecord, f64, f64, f64),
    Garbage,
}

#[derive(Clone)]
struct StoredLease {
    holder: String,
    until: f64,
    taken_at: f64,
}

/// What one isolate saw at its last read (the versions the lease's check compares).
#[derive(Clone, Copy, Default, PartialEq)]
struct Versions {
    token: u64,
    lease: u64,
    backoff: u64,
}

impl Store {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Replaces the token entry at true time `t`.
    fn set_token(&mut self, t: f64, token: Option<StoredToken>) {
        let v = self.next_version();
        let old = std::mem::replace(&mut self.token, token.map(|s| (s, v)));
        self.replaced.push_back((t, old.map(|(s, _)| s)));
        if self.replaced.len() > 16 {
            self.replaced.pop_front();
        }
    }

    /// The token entry a replica `lag` ms behind shows at true time `t`
    /// (expired entries dropped, as the primary drops them).
    fn token_behind(&self, t: f64, lag: f64) -> Option<&StoredToken> {
        let then = t - lag;
        let entry = match self.replaced.iter().find(|(at, _)| *at > then) {
            Some((_, old)) => old.as_ref(),
            None => self.token.as_ref().map(|(s, _)| s),
        };
        entry.filter(|s| !matches!(s, StoredToken::Token(_, e, _, _) if *e <= t))
    }

    /// Drops what has expired by true time `t`.
    fn expire(&mut self, t: f64) {
        if self
            .token
            .as_ref()
            .is_some_and(|(s, _)| matches!(s, StoredToken::Token(_, e, _, _) if *e <= t))
        {
            self.set_token(t, None);
        }
        if self.lease.as_ref().is_some_and(|l| l.2 <= t) {
            self.lease = None;
        }
        if self.backoff.as_ref().is_some_and(|b| b.2 <= t) {
            self.backoff = None;
        }
    }

    fn versions(&self) -> Versions {
        Versions {
            token: self.token.as_ref().map_or(0, |t| t.1),
            lease: self.lease.as_ref().map_or(0, |l| l.1),
            backoff: self.backoff.as_ref().map_or(0, |b| b.1),
        }
    }
}

struct Isolate {
    /// The shipped core of one client.
    client: Client,
    /// Bumped by a crash: outcomes of effects begun before it are dropped.
    epoch: u32,
    seen: Versions,
    /// The lease this isolate holds (its holder name and version).
    lease: Option<(String, u64)>,
    /// Callers waiting for the acquisition in flight.
    waiting: Vec<usize>,
    /// Holders this driver's reads showed, with when it first saw each (true ms).
    holders_seen: HashMap<String, f64>,
    /// The holder its last read showed, while no take-over was tried since.
    last_holder: Option<String>,
    /// The shared back-off its last read showed (0 for none).
    backoff_seen: f64,
    /// Whether the acquisition in flight sent a token request.
    sent: bool,
    /// When the acquisition in flight last read the store (true ms).
    read_at: f64,
    /// When its last acquisition that sent a request failed (true ms), and
    /// the least hold-back that follows (shorter only as its token ends).
    failed_at: Option<(f64, f64)>,
    skew: f64,
    /// Whether its last read showed a token due by its clock but not by its
    /// writer's (clocks further apart than a refresh window).
    skewed: bool,
    /// Whether its last read showed a token it could not share, with clocks
    /// further apart than the core allows a record to be ahead
    /// (`shared::max_record_ahead_ms`): refused as from the future, or due
    /// by this clock but not by its writer's (whose token may replace one a
    /// third isolate refused).
    apart: bool,
    /// Its store's failure policy, as `KvStore` keeps it (it survives acquisitions).
    store_guard: StoreGuard,
    /// Tokens it invalidated or saw refused with a 401: never served again.
    rejected: Vec<String>,
    /// Whether the acquisition in flight is a cron check's.
    cron: bool,
}

/// A `getToken` or `refresh()` caller.
struct Caller {
    isolate: usize,
    started: f64,
    /// The core's call, made when a `getToken` caller first asks.
    call: Option<Call>,
    /// Served, failed, aborted, or gone with its isolate.
    over: bool,
    min_valid_ms: f64,
    /// `refresh()` rather than `getToken()`.
    force: bool,
    /// `refresh()`: the acquisition it waits for was begun or joined.
    refreshing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Happening {
    Ask(usize),
    /// A caller gives up waiting (its `AbortSignal`): the acquisition goes on.
    Abort(usize),
    Effect {
        isolate: usize,
        epoch: u32,
    },
    Crash(usize),
    Hostile,
    /// `invalidate()` (`false`) or a 401 from a resource server (`true`) on an isolate.
    Reject(usize, bool),
    /// A store delete's outcome reaches the isolate, in its epoch.
    Removed {
        isolate: usize,
        epoch: u32,
    },
    /// A cron check on an isolate.
    Cron(usize),
}

struct Sim {
    s: Scenario,
    config: Config,
    rng: Rng,
    t: f64,
    queue: BinaryHeap<Reverse<(u64, u64, Happening)>>,
    order: u64,
    store: Store,
    isolates: Vec<Isolate>,
    calls: Vec<Caller>,
    /// Acquisitions begun by a cron check that sent a token request.
    cron_refreshes: u32,
    /// Token requests a rejection (an `invalidate()` or a 401) called for.
    rejections: u32,
    /// Outcomes waiting for their effect's completion, per isolate.
    pending: HashMap<usize, VecDeque<Outcome>>,
    /// Token requests in flight: (isolate, answered at).
    in_flight: Vec<(usize, f64)>,
    /// Tokens the server issued: token → true expiry.
    issued: HashMap<String, f64>,
    requests: u32,
    duplicates: u32,
    /// Requests by an isolate whose clock made the stored token due early.
    skewed_requests: u32,
    /// Token requests sent during the token server's outage.
    requests_in_outage: u32,
    /// `refresh()` calls made.
    refresh_calls: u32,
    trace: VecDeque<String>,
    /// Whether steps are kept for the trace.
    tracing: bool,
    served: u32,
    errors: u32,
    max_retry_after_ms: f64,
}

/// What a seed found.
pub struct Report {
    /// Callers served a token.
    pub served: u32,
    /// Callers that got an error (allowed by the invariants).
    pub errors: u32,
    /// Token requests the server received.
    pub requests: u32,
    /// Of those, requests invariant 3 spared: from an isolate whose clock made
    /// the stored token due while its writer's did not, after lost lease races,
    /// or whose clock is further from the writer's than a record may be ahead.
    pub skewed_requests: u32,
    /// Token requests sent during the token server's outage.
    pub requests_in_outage: u32,
    /// The first invariant violated, with the trace before it.
    pub violation: Option<String>,
}

/// The simulated issuer, and the token endpoint its metadata names.
const ISSUER: &str = "https://login.example.com";
const TOKEN_URL: &str = "https://login.example.com/oauth/token";

fn config(s: &Scenario) -> Config {
    let mut options = serde_json::json!({
        "clientId": "simulated",
        "clientSecret": "simulated-secret-of-at-least-32-bytes",
        "timeoutMs": s.timeout_ms,
    });
    let endpoint = match s.issuer {
        true => ("issuer", ISSUER),
        false => ("tokenUrl", TOKEN_URL),
    };
    options[endpoint.0] = endpoint.1.into();
    if s.jwt {
        options["authMethod"] = "client_secret_jwt".into();
    }
    if !s.lone {
        options["kv"] = serde_json::json!({}); // the store the isolates share
    }
    let options = crate::options::read(options).expect("the simulated options read");
    Config::new(options, |url| Some(url.to_owned())).expect("the simulated options are sound")
}

/// Runs seed `seed` to its end or its first violation: one in ten is a
/// client without a store through an outage ([`run_outage`]).
pub fn run(seed: u64) -> Report {
    let draw = |mut rng: Rng| {
        let s = match rng.chance(0.1) {
            true => Scenario::outage(&mut rng),
            false => Scenario::draw(&mut rng),
        };
        (s, rng)
    };
    replayed(seed, draw)
}

/// Runs seed `seed` of the outage of a client without a store.
pub fn run_outage(seed: u64) -> Report {
    replayed(seed, |mut rng| (Scenario::outage(&mut rng), rng))
}

/// Runs the scenario `draw` makes of seed `seed`; a violation is run again,
/// the same, with its trace kept (formatting every step of every seed
/// would cost more than the run).
fn replayed(seed: u64, draw: impl Fn(Rng) -> (Scenario, Rng)) -> Report {
    let (s, rng) = draw(Rng::new(seed));
    let report = run_scenario(s, rng, false);
    if report.violation.is_none() {
        return report;
    }
    let (s, rng) = draw(Rng::new(seed));
    run_scenario(s, rng, true)
}

fn run_scenario(s: Scenario, rng: Rng, tracing: bool) -> Report {
    let config = config(&s);
    let isolates = (0..s.isolates)
        .map(|i| Isolate::new(&config, s.skews[i]))
        .collect();
    let mut sim = Sim {
        config,
        rng,
        t: 0.0,
        queue: BinaryHeap::new(),
        order: 0,
        store: Store::default(),
        isolates,
        calls: Vec::new(),
        cron_refreshes: 0,
        rejections: 0,
        pending: HashMap::new(),
        in_flight: Vec::new(),
        issued: HashMap::new(),
        requests: 0,
        duplicates: 0,
        skewed_requests: 0,
        requests_in_outage: 0,
        refresh_calls: 0,
        trace: VecDeque::new(),
        tracing,
        served: 0,
        errors: 0,
        max_retry_after_ms: 0.0,
        s,
    };
    let violation = sim.run().err();
    Report {
        served: sim.served,
        errors: sim.errors,
        requests: sim.requests,
        skewed_requests: sim.skewed_requests,
        requests_in_outage: sim.requests_in_outage,
        violation: violation.map(|v| {
            let mut text = format!("{v}\n  scenario: {:?}\n  last steps:\n", sim.s);
            for step in &sim.trace {
                let _ = writeln!(text, "    {step}");
            }
            text
        }),
    }
}

impl Isolate {
    /// An isolate of `config`'s client (with a store when it names one).
    fn new(config: &Config, skew: f64) -> Self {
        Self {
            client: Client::new(config.clone(), |url| Some(url.to_owned())),
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

type Checked = Result<(), String>;

impl Sim {
    fn at(&mut self, t: f64, what: Happening) {
        self.order += 1;
        self.queue
            .push(Reverse(((t * 1000.0) as u64, self.order, what)));
    }

    fn now(&self, isolate: usize) -> Now {
        Now {
            wall: WALL0 + self.t + self.isolates[isolate].skew,
            mono: 1_000_000.0 * (isolate as f64 + 1.0) + self.t,
        }
    }

    fn log(&mut self, text: String) {
        if !self.tracing {
            return;
        }
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>12.1} ms  {text}", self.t));
    }

    fn run(&mut self) -> Checked {
        // Callers: each isolate gets a caller every 1/40 of a token lifetime
        // on average (at least every 5 s), with bursts, and tight loops.
        let window = self.s.lifetime_s * 1000.0;
        // Callers arrive in the order of their times, beside the queue: a
        // queue holding every arrival of a day-long run is slow to pop.
        let mut arrivals = Vec::new();
        for i in 0..self.s.isolates {
            let mut t = self.rng.between(0.0, 100.0);
            while t < self.s.run_ms {
                let min_valid_ms = match self.s.min_valid && self.rng.chance(0.2) {
                    true => (self.rng.uniform() * 0.4 * window).min(60_000.0).floor(),
                    false => 0.0,
                };
                let force = self.s.refreshes && self.rng.chance(0.02);
                self.refresh_calls += u32::from(force);
                self.calls.push(Caller {
                    isolate: i,
                    started: t,
                    call: None,
                    over: false,
                    min_valid_ms: if force { 0.0 } else { min_valid_ms },
                    force,
                    refreshing: false,
                });
                let call = self.calls.len() - 1;
                self.order += 1;
                arrivals.push(((t * 1000.0) as u64, self.order, Happening::Ask(call)));
                if self.rng.chance(0.05) {
                    let after = self.rng.between(0.0, 2_000.0);
                    self.at(t + after, Happening::Abort(call));
                }
                let gap = (window / 40.0).min(5_000.0);
                if self.s.lone {
                    t += self.rng.between(20.0, 300.0); // the outage's callers: all the time
                    continue;
                }
                t += match self.rng.chance(0.1) {
                    true => self.rng.between(0.0, 5.0), // a tight loop
                    false => self.rng.between(0.1, 2.0) * gap,
                };
            }
        }
        for &(t, isolate) in &self.s.crashes.clone() {
            self.at(t, Happening::Crash(isolate));
        }
        if let Some((start, _, _)) = self.s.hostile {
            self.at(start, Happening::Hostile);
        }
        for &(t, isolate, unauthorized) in &self.s.rejections.clone() {
            self.at(t, Happening::Reject(isolate, unauthorized));
        }
        if let Some(period) = self.s.cron_ms {
            for isolate in 0..self.s.isolates {
                let first = self.rng.between(0.0, period);
                self.at(first, Happening::Cron(isolate));
            }
        }
        arrivals.sort(); // one ascending run per isolate, merged
        let mut arrivals = arrivals.into_iter().peekable();
        loop {
            let arrival_first = match (self.queue.peek(), arrivals.peek()) {
                (Some(Reverse(queued)), Some(arrival)) => arrival < queued,
                (queued, arrival) => queued.is_none() && arrival.is_some(),
            };
            let next = match arrival_first {
                true => arrivals.next(),
                false => self.queue.pop().map(|Reverse(next)| next),
            };
            let Some((micros, _, what)) = next else {
                break;
            };
            self.t = micros as f64 / 1000.0;
            self.store.expire(self.t);
            match what {
                Happening::Ask(call) => self.ask(call)?,
                Happening::Abort(call) => {
                    let isolate = self.calls[call].isolate;
                    self.isolates[isolate].waiting.retain(|c| *c != call);
                    self.calls[call].over = true;
                }
                Happening::Effect { isolate, epoch } => {
                    if epoch != self.isolates[isolate].epoch {
                        continue; // Begun before a crash: the isolate is gone.
                    }
                    let outcome = self.pending.get_mut(&isolate).and_then(VecDeque::pop_front);
                    if let Some(outcome) = outcome {
                        if self.tracing {
                            let text = trace::outcome(&outcome);
                            self.log(format!("isolate {isolate}: ← {text}"));
                        }
                        self.handle(isolate, outcome)?;
                    }
                }
                Happening::Crash(isolate) => self.crash(isolate),
                Happening::Hostile => self.hostile(),
                Happening::Reject(isolate, unauthorized) => self.reject(isolate, unauthorized)?,
                Happening::Removed { isolate, epoch } => {
                    if epoch == self.isolates[isolate].epoch {
                        self.removed(isolate);
                    }
                }
                Happening::Cron(isolate) => self.cron(isolate)?,
            }
        }
        invariants::requests_per_window(self)
    }

    fn crash(&mut self, isolate: usize) {
        self.log(format!("isolate {isolate} crashes"));
        let waiting = std::mem::take(&mut self.isolates[isolate].waiting);
        let skew = self.isolates[isolate].skew;
        let epoch = self.isolates[isolate].epoch + 1;
        self.isolates[isolate] = Isolate {
            epoch,
            ..Isolate::new(&self.config, skew)
        };
        self.in_flight.retain(|(i, _)| *i != isolate);
        self.pending.remove(&isolate);
        // Its callers are gone with it.
        for call in waiting {
            self.calls[call].over = true;
        }
    }

    fn hostile(&mut self) {
        let Some((_, end, kind)) = self.s.hostile else {
            return;
        };
        if self.t > end {
            return;
        }
        let wall = WALL0 + self.t;
        match kind {
            Hostile::Garbage => {
                self.store.set_token(self.t, Some(StoredToken::Garbage));
            }
            Hostile::Lease => {
                let v = self.store.next_version();
                let lease = StoredLease {
                    holder: "co-tenant".into(),
                    until: wall + 2_000.0,
                    taken_at: wall,
                };
                self.store.lease = Some((lease, v, self.t + 2_000.0));
            }
            Hostile::Backoff => {
                let v = self.store.next_version();
                let until = wall + MAX_SHARED_BACKOFF_MS * 10.0;
                self.store.backoff = Some((until, v, self.t + 3_600_000.0));
            }
        }
        self.log(format!("co-tenant writes {kind:?}"));
        let next = self.t + 500.0;
        self.at(next, Happening::Hostile);
    }

    /// A caller asks (again): the core's caller loop ([`Call`]) says what it does.
    fn ask(&mut self, call: usize) -> Checked {
        if self.calls[call].over {
            return Ok(());
        }
        if self.calls[call].force {
            return self.refresh(call);
        }
        let isolate = self.calls[call].isolate;
        let now = self.now(isolate);
        let min_valid_ms = self.calls[call].min_valid_ms;
        let mut core_call = self.calls[call]
            .call
            .take()
            .unwrap_or_else(|| Call::new(now, min_valid_ms));
        let step = core_call.poll(&mut self.isolates[isolate].client, now);
        self.calls[call].call = Some(core_call);
        match step {
            Step::Serve { refresh, .. } => {
                self.served(call)?;
                if refresh {
                    self.run_flight(isolate)?;
                }
            }
            Step::Wait { ms } => self.at(self.t + ms, Happening::Ask(call)),
            Step::Run => {
                self.isolates[isolate].waiting.push(call);
                self.run_flight(isolate)?;
            }
            Step::Join => self.isolates[isolate].waiting.push(call),
            Step::Fail { error } => self.failed(call, &error)?,
        }
        Ok(())
    }

    /// A `refresh()` call: an acquisition that takes a stored token only if
    /// newer, or joins the one in flight; its caller is served what it ends with.
    fn refresh(&mut self, call: usize) -> Checked {
        if self.calls[call].refreshing {
            return self.served(call); // The acquisition ended with a token.
        }
        self.calls[call].refreshing = true;
        let isolate = self.calls[call].isolate;
        self.log(format!("call {call} on isolate {isolate}: refresh()"));
        let now = self.now(isolate);
        match self.isolates[isolate].client.start(now, Start::Refresh) {
            Ok(Started::Begun) => {
                self.isolates[isolate].waiting.push(call);
                self.run_flight(isolate)
            }
            Ok(Started::Joined) => {
                self.isolates[isolate].waiting.push(call);
                Ok(())
            }
            Err(error) => self.failed(call, &error),
        }
    }

    /// An acquisition was begun on `isolate` (`Client::start`): the executor runs it.
    fn run_flight(&mut self, isolate: usize) -> Checked {
        let iso = &mut self.isolates[isolate];
        iso.holders_seen.clear();
        iso.backoff_seen = 0.0;
        iso.last_holder = None;
        iso.sent = false;
        iso.read_at = f64::NEG_INFINITY;
        self.step(isolate, None)
    }

    /// `invalidate()`, or a 401 from a resource server for the token the
    /// isolate serves (`client.fetch`): the core forgets it and names the
    /// delete, performed as a store operation; with a 401, the request is
    /// sent again with a new token.
    fn reject(&mut self, isolate: usize, unauthorized: bool) -> Checked {
        let now = self.now(isolate);
        let rand = self.rng.uniform();
        let client = &mut self.isolates[isolate].client;
        let Some(token) = client.state.held_token().map(str::to_owned) else {
            return Ok(());
        };
        let remove = match unauthorized {
            false => client.invalidate(),
            true => match client.unauthorized(now, &token, rand) {
                (Unauthorized::Refresh, remove) => remove,
                _ => return Ok(()),
            },
        };
        self.rejections += 1;
        self.log(format!(
            "isolate {isolate}: {} its token",
            match unauthorized {
                true => "a 401 for",
                false => "invalidate()s",
            }
        ));
        self.isolates[isolate].rejected.push(token.clone());
        invariants::rejection_names_the_delete(
            self,
            isolate,
            unauthorized,
            &token,
            remove.as_ref(),
        )?;
        if let Some(remove) = remove {
            self.perform(isolate, remove, None)?;
        }
        if unauthorized {
            // `client.fetch` sends again with a new token: a caller of its own.
            self.calls.push(Caller {
                isolate,
                started: self.t,
                call: None,
                over: false,
                min_valid_ms: 0.0,
                force: false,
                refreshing: false,
            });
            let call = self.calls.len() - 1;
            self.ask(call)?;
        }
        Ok(())
    }

    /// A delete's outcome goes back to the core (apart from any acquisition).
    fn removed(&mut self, isolate: usize) {
        if self.tracing {
            let text = trace::outcome(&Outcome::Removed);
            self.log(format!("isolate {isolate}: ← {text}"));
        }
        let now = self.now(isolate);
        let rand = self.rng.uniform();
        self.isolates[isolate]
            .client
            .handle(now, Outcome::Removed, rand);
    }

    /// A cron check on `isolate` (`refreshIfDue`), then the next one.
    fn cron(&mut self, isolate: usize) -> Checked {
        let Some(period) = self.s.cron_ms else {
            return Ok(());
        };
        if self.t + period < self.s.run_ms {
            self.at(self.t + period, Happening::Cron(isolate));
        }
        let now = self.now(isolate);
        let started = self.isolates[isolate]
            .client
            .start(now, Start::Cron { ahead_ms: period });
        self.log(format!("isolate {isolate}: cron check ({started:?})"));
        if started == Ok(Started::Begun) {
            self.isolates[isolate].cron = true;
            self.run_flight(isolate)?;
        }
        Ok(())
    }

    /// Hands `outcome` to the isolate's driver, then performs what it asks next.
    fn handle(&mut self, isolate: usize, outcome: Outcome) -> Checked {
        self.step(isolate, Some(outcome))
    }

    fn step(&mut self, isolate: usize, outcome: Option<Outcome>) -> Checked {
        let now = self.now(isolate);
        let rand = self.rng.uniform();
        let client = &mut self.isolates[isolate].client;
        if !client.state.in_flight() {
            return Ok(());
        }
        if let Some(outcome) = outcome {
            client.handle(now, outcome, rand);
        }
        let rand = self.rng.uniform();
        let effect = client.poll(now, rand);
        let request = client.take_request().map(|r| r.exchange);
        self.perform(isolate, effect, request)
    }

    /// Schedules `outcome` for `isolate` after `ms`.
    fn complete(&mut self, isolate: usize, ms: f64, outcome: Outcome) {
        let epoch = self.isolates[isolate].epoch;
        self.pending.entry(isolate).or_default().push_back(outcome);
        self.at(self.t + ms, Happening::Effect { isolate, epoch });
    }

    /// One store operation of `isolate`, run as `KvStore.#op` runs it: through
    /// the isolate's [`StoreGuard`] on its clock. In the store's bad time an
    /// attempt may fail, be refused as locked (tried again as the guard says),
    /// or be slow: it lands, but after the guard's timeout.
    fn store_op(&mut self, isolate: usize) -> StoreOp {
        let wall = |sim: &Self, spent: f64| sim.now(isolate).wall + spent;
        let started = wall(self, 0.0);
        if !self.isolates[isolate].store_guard.allows(started) {
            return StoreOp {
                result: StoreResult::Skipped,
                ms: 0.0,
                waited: 0.0,
            };
        }
        let mut spent = 0.0;
        for attempt in 1.. {
            let bad = self.t + spent < self.s.store_faults_until;
            let rate = self.s.store_fault_rate;
            let latency = self.rng.between(1.0, 15.0);
            let (result, ms, message) = if bad && self.rng.chance(rate / 2.0) {
                let timeout = STORE_TIMEOUT_MS;
                let message = "KV did not answer in time";
                (StoreResult::TimedOut, timeout, message)
            } else if bad && self.rng.chance(rate) {
                let message = match self.rng.chance(0.5) {
                    true => "database is locked",
                    false => "KV failed",
                };
                (StoreResult::Failed, latency, message)
            } else {
                return StoreOp {
                    result: StoreResult::Done,
                    ms: spent + latency,
                    waited: spent,
                };
            };
            let waited = spent;
            spent += ms;
            let rand = self.rng.uniform();
            let now = wall(self, spent);
            let guard = &mut self.isolates[isolate].store_guard;
            match guard.failed(message, attempt, started, now, rand) {
                Some(wait) => spent += wait,
                None => {
                    return StoreOp {
                        result,
                        ms: spent,
                        waited,
                    }
                }
            }
        }
        unreachable!("an operation ends within its attempts")
    }

    fn perform(&mut self, isolate: usize, effect: Effect, request: Option<Exchange>) -> Checked {
        let wall = self.now(isolate).wall;
        if self.tracing {
            let what = trace::effect(&effect);
            let exchange = request.map_or(String::new(), |e| format!(" ({e:?})"));
            self.log(format!("isolate {isolate}: {what}{exchange}"));
        }
        if !effect_is_store(&effect) {
            return self.perform_other(isolate, effect, request);
        }
        let op = self.store_op(isolate);
        let latency = op.ms;
        // What the executor hears: only an operation that went through.
        let ok = op.result == StoreResult::Done;
        // What the store sees: a timed-out operation landed all the same.
        let lands = matches!(op.result, StoreResult::Done | StoreResult::TimedOut);
        if op.result != StoreResult::Done && self.tracing {
            self.log(format!("isolate {isolate}: store {:?}", op.result));
        }
        match effect {
            Effect::ReadStore { eventual: true } => {
                // A nearby replica, up to 1.5 s behind: only its token counts.
                let lag = self.rng.between(0.0, 1_500.0);
                let seen = match ok {
                    false => None,
                    true => Some(Seen {
                        token: match self.store.token_behind(self.t, lag) {
                            Some(StoredToken::Token(record, ..)) => Some(record.clone()),
                            _ => None,
                        },
                        ..Seen::default()
                    }),
                };
                self.complete(isolate, latency, Outcome::Snapshot(seen));
            }
            Effect::ReadStore { eventual: false } => {
                self.isolates[isolate].read_at = self.t;
                let seen = match ok {
                    false => {
                        self.isolates[isolate].backoff_seen = 0.0; // nothing read
                        None
                    }
                    true => Some(self.read(isolate, wall, op.waited)),
                };
                self.complete(isolate, latency, Outcome::Snapshot(seen));
            }
            Effect::TakeLease { ttl_ms } => {
                // A take-over tried: the wait on that holder is over (a lost race reads again).
                self.isolates[isolate].last_holder = None;
                let result = if !lands {
                    LeaseResult::Failed
                } else if self.store.versions() == self.isolates[isolate].seen {
                    let v = self.store.next_version();
                    let holder = format!("isolate-{isolate}-{v}");
                    let lease = StoredLease {
                        holder: holder.clone(),
                        until: wall + ttl_ms,
                        taken_at: wall,
                    };
                    self.store.lease = Some((lease, v, self.t + ttl_ms));
                    self.isolates[isolate].lease = Some((holder, v));
                    LeaseResult::Taken
                } else {
                    LeaseResult::Held
                };
                // A slow commit may land after the executor's timeout: a lease nobody knows it holds.
                let result = if ok { result } else { LeaseResult::Failed };
                if !ok {
                    self.isolates[isolate].lease = None;
                }
                self.complete(isolate, latency, Outcome::Lease(result));
            }
            Effect::RenewLease { ttl_ms } => {
                let mine = self.isolates[isolate].lease.clone();
                let kept = match (&mine, &self.store.lease) {
                    (Some((holder, v)), Some((lease, version, _))) if lands && v == version => {
                        let (holder, taken_at) = (holder.clone(), lease.taken_at);
                        let v = self.store.next_version();
                        let lease = StoredLease {
                            holder: holder.clone(),
                            until: wall + ttl_ms,
                            taken_at,
                        };
                        self.store.lease = Some((lease, v, self.t + ttl_ms));
                        self.isolates[isolate].lease = Some((holder, v));
                        true
                    }
                    _ => false,
                };
                let kept = kept && ok;
                if !kept {
                    self.isolates[isolate].lease = None;
                }
                self.complete(isolate, latency, Outcome::Renewed(kept));
            }
            Effect::ReleaseLease => {
                if let (Some((_, v)), Some((_, version, _))) =
                    (&self.isolates[isolate].lease, &self.store.lease)
                {
                    if v == version && lands {
                        self.store.lease = None;
                    }
                }
                self.isolates[isolate].lease = None;
                self.complete(isolate, latency, Outcome::Stored);
            }
            Effect::WriteStore { record } => {
                if lands {
                    let true_expiry = self
                        .issued
                        .get(&record.access_token)
                        .copied()
                        .unwrap_or(0.0);
                    let skew = wall - self.t;
                    let token = StoredToken::Token(record, true_expiry, self.t, skew);
                    self.store.set_token(self.t, Some(token));
                    // Expiry is the reader's check; the entry lives until the true one.
                }
                self.complete(isolate, latency, Outcome::Stored);
            }
            Effect::RemoveStore { only } => {
                // Deleted only if still the token named (`KvStore.remove`): a
                // garbage entry is no token refused, but `invalidate()` deletes it.
                let stored = match &self.store.token {
                    Some((StoredToken::Token(record, ..), _)) => Some(&record.access_token),
                    _ => None,
                };
                let named = only.is_none() || only.as_ref() == stored;
                if lands && self.store.token.is_some() && named {
                    self.store.set_token(self.t, None);
                }
                // Performed apart from any acquisition: its outcome comes back on its own.
                let epoch = self.isolates[isolate].epoch;
                self.at(self.t + latency, Happening::Removed { isolate, epoch });
            }
            Effect::SetBackoff { until } => {
                if lands {
                    let v = self.store.next_version();
                    let expire = self.t + (until - wall).max(0.0);
                    self.store.backoff = Some((until, v, expire));
                }
                self.complete(isolate, latency, Outcome::Stored);
            }
            Effect::ReadMetadata => {
                let copy = match ok {
                    false => None,
                    true => self.store.metadata.clone(),
                };
                self.complete(isolate, latency, Outcome::MetadataCopy(copy));
            }
            Effect::WriteMetadata { copy } => {
                if lands {
                    self.store.metadata = Some(copy);
                }
                self.complete(isolate, latency, Outcome::Stored);
            }
            _ => unreachable!("a store effect"),
        }
        Ok(())
    }

    /// The effects that are no store operation.
    fn perform_other(
        &mut self,
        isolate: usize,
        effect: Effect,
        request: Option<Exchange>,
    ) -> Checked {
        match effect {
            Effect::Sign => {
                let fails =
                    self.s.signing_faulty(self.t) && self.rng.chance(self.s.sign_fault_rate);
                let signed = match fails {
                    true => Err(TokenError::new(ErrorCode::Network, "the signing failed")),
                    false => Ok(format!("assertion-{}", self.requests)),
                };
                let ms = self.rng.between(0.1, 5.0);
                self.complete(isolate, ms, Outcome::Signed(signed));
            }
            Effect::Sleep { ms, why } => {
                if why == Wait::Lease {
                    invariants::lease_wait_bounded(self, isolate)?;
                }
                self.complete(isolate, ms, Outcome::Slept);
            }
            Effect::Send { timeout_ms } => match request {
                Some(Exchange::Token) => self.send(isolate, timeout_ms)?,
                Some(Exchange::Metadata) => self.discover(isolate, timeout_ms),
                None => return Err(format!("isolate {isolate}: a send without a request")),
            },
            Effect::Done { record, .. } => self.done(isolate, record)?,
            Effect::Fail { error } => self.fail(isolate, error)?,
            _ => unreachable!("no store effect"),
        }
        Ok(())
    }

    /// What a read shows `isolate`: the entries as the store holds them, as
    /// `kv_store.ts` hands them over; the driver judges them.
    /// `waited`: the time its locked attempts took before the one that read.
    fn read(&mut self, isolate: usize, wall: f64, waited: f64) -> Seen {
        let versions = self.store.versions();
        let mut seen = Seen::default();
        let mut skewed = false;
        let mut apart = false;
        if let Some((StoredToken::Token(record, _, _, writer_skew), _)) = &self.store.token {
            seen.token = Some(record.clone());
            // Due by this isolate's clock but not by its writer's: the clocks disagree by
            // more than the window, and this isolate must fetch a token of its own.
            skewed = record.refresh_at <= wall && record.refresh_at > self.t + writer_skew;
            let requested_at = record.expires_at - record.lifetime_seconds * 1000.0;
            let allowance = shared::max_record_ahead_ms(record.lifetime_seconds);
            let ahead = requested_at > wall + allowance;
            apart = invariants::clock_spread(self) > allowance && (ahead || skewed);
        }
        if let Some((lease, _, _)) = &self.store.lease {
            seen.lease_until = Some(lease.until);
            seen.lease_holder = Some(lease.holder.clone());
            seen.lease_taken_at = Some(lease.taken_at);
        }
        if let Some((until, _, _)) = &self.store.backoff {
            seen.backoff_until = *until;
        }
        let iso = &mut self.isolates[isolate];
        iso.seen = versions;
        iso.skewed = skewed;
        iso.apart = apart;
        // Invariant 4 holds an isolate to a back-off within the cap every
        // isolate writes (docs/DESIGN.md, "Shared state"); a longer one is corrupt.
        let within_cap = seen.backoff_until <= wall + MAX_SHARED_BACKOFF_MS;
        iso.backoff_seen = if within_cap { seen.backoff_until } else { 0.0 };
        iso.last_holder = seen.lease_holder.clone();
        // A waiter counts its wait on a holder from reads that showed no back-off in force.
        if let (Some(holder), true) = (&seen.lease_holder, iso.backoff_seen <= wall) {
            iso.holders_seen
                .entry(holder.clone())
                .or_insert(self.t + waited);
        }
        seen
    }

    /// A token request reaches the server.
    fn send(&mut self, isolate: usize, timeout_ms: f64) -> Checked {
        invariants::shared_backoff_honoured(self, isolate)?;
        invariants::hold_back_honoured(self, isolate)?;
        let skewed = invariants::shares_no_window(self, isolate);
        self.isolates[isolate].sent = true;
        self.requests += 1;
        self.skewed_requests += u32::from(skewed);
        self.requests_in_outage += u32::from(self.s.down(self.t));
        invariants::outage_costs_few_requests(self)?;
        let t = self.t;
        self.in_flight.retain(|(_, answered)| *answered > t);
        let others = self.in_flight.iter().any(|(i, _)| *i != isolate);
        self.duplicates += u32::from(others);
        invariants::one_request_at_a_time(self, isolate, others)?;
        let outage = self
            .s
            .outage
            .filter(|(start, end, _)| (*start..*end).contains(&self.t));
        let latency = match self.s.lone {
            true => self.rng.between(2.0, 40.0),
            false => self.rng.between(5.0, 0.4 * timeout_ms),
        };
        let (ms, answer) = match outage.map(|o| o.2) {
            None => {
                let token = format!("tok-{}", self.requests);
                let expiry = self.t + self.s.lifetime_s * 1000.0;
                self.issued.insert(token.clone(), expiry + latency);
                let body = serde_json::json!({
                    "access_token": token, "token_type": "Bearer", "expires_in": self.s.lifetime_s,
                });
                (latency, Ok(received(200, None, body.to_string())))
            }
            Some(Fault::ServerError) => (latency, Ok(received(503, None, "{}".into()))),
            Some(Fault::RateLimited(seconds)) => {
                self.max_retry_after_ms = self.max_retry_after_ms.max(f64::from(seconds) * 1000.0);
                (
                    latency,
                    Ok(received(429, Some(seconds.to_string()), "{}".into())),
                )
            }
            Some(Fault::RateLimitedDate(seconds)) => {
                self.max_retry_after_ms = self
                    .max_retry_after_ms
                    .max(f64::from(seconds) * 1000.0 + 1000.0);
                let date = httpdate::fmt_http_date(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(
                            (WALL0 + self.t) as u64 + u64::from(seconds) * 1000,
                        ),
                );
                (latency, Ok(received(429, Some(date), "{}".into())))
            }
            Some(Fault::Unauthorized) => {
                let body = serde_json::json!({ "error": "invalid_client" }).to_string();
                (latency, Ok(received(401, None, body)))
            }
            Some(Fault::Hang) | Some(Fault::SlowBody) => (
                timeout_ms,
                Err(TokenError::new(
                    ErrorCode::Timeout,
                    "the token endpoint did not answer within timeoutMs",
                )),
            ),
        };
        self.in_flight.push((isolate, self.t + ms));
        self.complete(isolate, ms, Outcome::Answer(answer));
        Ok(())
    }

    /// The issuer's metadata GET reaches the server: the document naming
    /// [`TOKEN_URL`], or the outage's answer.
    fn discover(&mut self, isolate: usize, timeout_ms: f64) {
        let latency = self.rng.between(5.0, 0.4 * timeout_ms);
        let fault = self.s.outage.filter(|_| self.s.down(self.t)).map(|o| o.2);
        let (ms, answer) = match fault {
            None => {
                let body = serde_json::json!({ "issuer": ISSUER, "token_endpoint": TOKEN_URL });
                let mut answer = received(200, None, body.to_string());
                let max_age = (self.rng.uniform() * 4.0) as u32 * 600;
                answer.cache_control = Some(format!("max-age={max_age}"));
                (latency, Ok(answer))
            }
            Some(Fault::Hang) => (
                timeout_ms,
                Err(TokenError::new(
                    ErrorCode::Timeout,
                    "the issuer did not answer",
                )),
            ),
            Some(_) => (latency, Ok(received(503, None, "{}".into()))),
        };
        self.complete(isolate, ms, Outcome::Answer(answer));
    }

    fn done(&mut self, isolate: usize, record: TokenRecord) -> Checked {
        self.end_cron(isolate);
        invariants::taken_token_was_issued(self, isolate, &record.access_token)?;
        self.resume(isolate)
    }

    fn fail(&mut self, isolate: usize, error: TokenError) -> Checked {
        invariants::no_internal_error(&format!("isolate {isolate}'s acquisition"), &error)?;
        let cron = self.end_cron(isolate);
        invariants::cron_check_fails_not_when_healthy(self, isolate, cron, &error)?;
        let now = self.now(isolate);
        let iso = &mut self.isolates[isolate];
        if iso.sent {
            // The hold-back ends no later than the token served stops being usable.
            let status = iso.client.state.status(now);
            let usable_until = status.usable_until.filter(|_| status.has_token);
            let least = invariants::least_hold_back(now.wall, usable_until);
            iso.failed_at = Some((self.t, least));
        }
        let waiting = std::mem::take(&mut self.isolates[isolate].waiting);
        for call in waiting {
            self.failed(call, &error)?;
        }
        Ok(())
    }

    /// An acquisition ended: whether a cron check began it (its request, if
    /// it sent one, is one invariant 3 allows beside the refresh windows).
    fn end_cron(&mut self, isolate: usize) -> bool {
        let iso = &mut self.isolates[isolate];
        let cron = std::mem::take(&mut iso.cron);
        self.cron_refreshes += u32::from(cron && iso.sent);
        cron
    }

    /// The acquisition ended with a token: its callers ask again (`getToken`'s loop).
    fn resume(&mut self, isolate: usize) -> Checked {
        let waiting = std::mem::take(&mut self.isolates[isolate].waiting);
        for call in waiting {
            self.ask(call)?;
        }
        Ok(())
    }

    /// A caller is served: invariants 1 and 8.
    fn served(&mut self, call: usize) -> Checked {
        self.calls[call].over = true;
        let isolate = self.calls[call].isolate;
        let now = self.now(isolate);
        let status = self.isolates[isolate].client.state.status(now);
        self.served += 1;
        let state = &self.isolates[isolate].client.state;
        let token = state.held_token().unwrap_or_default();
        let usable_until = status.usable_until.unwrap_or(f64::NEG_INFINITY);
        invariants::served_token_is_usable(self, isolate, status.has_token, usable_until)?;
        invariants::served_token_is_live(self, isolate, token)?;
        invariants::served_token_was_not_rejected(self, isolate, token)
    }

    /// A caller gets an error: invariants 2, 6 and 7.
    fn failed(&mut self, call: usize, error: &TokenError) -> Checked {
        self.errors += 1;
        invariants::no_internal_error(&format!("call {call}"), error)?;
        let isolate = self.calls[call].isolate;
        self.calls[call].over = true;
        self.log(format!(
            "call {call} on isolate {isolate} fails: {}",
            error.message()
        ));
        invariants::outage_fails_no_caller(self, call, error)?;
        invariants::no_error_when_healthy(self, call, error)?;
        if self.calls[call].force {
            return Ok(()); // `refresh()` is refused while requests are held back.
        }
        invariants::recovered(self, call, error)?;
        invariants::no_error_beside_a_stored_token(self, call, error)?;
        invariants::no_error_beside_a_held_token(self, call, error)
    }
}

/// How a store operation went, through the guard.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StoreResult {
    /// It went through.
    Done,
    /// Skipped: the store is cooling down after a failure.
    Skipped,
    /// It failed (after locked retries, perhaps): nothing landed.
    Failed,
    /// It landed, but after the guard's timeout: the executor hears a failure.
    TimedOut,
}

/// A store operation's result, when its answer arrives, and how long its
/// locked attempts before the last took.
struct StoreOp {
    result: StoreResult,
    ms: f64,
    waited: f64,
}

/// Whether `effect` is a store operation (run through the store guard).
fn effect_is_store(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::ReadStore { .. }
            | Effect::TakeLease { .. }
            | Effect::RenewLease { .. }
            | Effect::ReleaseLease
            | Effect::WriteStore { .. }
            | Effect::RemoveStore { .. }
            | Effect::SetBackoff { .. }
            | Effect::ReadMetadata
            | Effect::WriteMetadata { .. }
    )
}

fn received(status: u16, retry_after: Option<String>, body: String) -> Received {
    Received {
        status,
        retry_after,
        cache_control: None,
        body: body.into_bytes(),
    }
}

/// Runs `count` seeds from `first`; returns the number run and the first failing seed's report.
pub fn run_many(first: u64, count: u64) -> (u64, Vec<(u64, String)>) {
    let mut violations = Vec::new();
    for seed in first..first + count {
        if let Some(violation) = run(seed).violation {
            violations.push((seed, violation));
        }
    }
    (count, violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thousand_seeds_keep_every_invariant() {
        let (count, violations) = run_many(1, 2_000);
        if let Some((seed, text)) = violations.first() {
            panic!(
                "simulated {count} scenarios: {} invariant violations\nseed {seed}: {text}\n\
                 replay: scripts/simulate.sh 1 {seed}",
                violations.len()
            );
        }
    }

    /// Read by scripts/reliability.ts (with --nocapture).
    #[test]
    fn a_5_second_outage_in_the_refresh_window_fails_no_call_in_a_thousand_seeds() {
        const SEEDS: u64 = 1000;
        let (mut calls, mut requests, mut worst) = (0, 0, 0);
        for seed in 1..=SEEDS {
            let report = run_outage(seed);
            if let Some(text) = report.violation {
                panic!("seed {seed}: {text}");
            }
            assert!(report.served > 100, "seed {seed}: {} calls", report.served);
            calls += report.served;
            requests += report.requests_in_outage;
            worst = worst.max(report.requests_in_outage);
        }
        println!(
            "outage simulation: {SEEDS} seeds, {calls} calls, 0 refused; token requests during \
             the outage: {:.1} on average, {worst} at most",
            f64::from(requests) / SEEDS as f64
        );
    }

    #[test]
    fn the_same_seed_runs_the_same() {
        let (a, b) = (run(42), run(42));
        assert_eq!(
            (a.served, a.errors, a.requests),
            (b.served, b.errors, b.requests)
        );
    }
}
