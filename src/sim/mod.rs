//! A deterministic simulation of many isolates sharing one store (docs/DESIGN.md,
//! "The simulator"), in the spirit of FoundationDB's and TigerBeetle's
//! simulation testing. Each isolate runs the shipped core — a
//! [`Client`](crate::client::Client) with a [`Call`](crate::call::Call)
//! per caller (the caller's loop) and a driver per acquisition,
//! invalidations, 401s and cron checks — natively, against a simulated store with the semantics
//! `deno/kv_store.ts` relies on (versionstamped atomic checks, expiry; what
//! it holds goes to the driver unjudged, as the executor hands it over; its
//! failures, timeouts and locked retries go through the same
//! [`StoreGuard`](crate::store_guard::StoreGuard)), a simulated token
//! server, and skewed clocks, all driven by one seeded scheduler. What the
//! executor does here is what `deno/_executor.ts` does: perform the
//! effect, hand back the outcome.
//!
//! Each seed draws its scenario (isolates, token lifetime, faults, and, in
//! about a quarter of them, a token pool of 2 to 4 slots per isolate, each
//! slot a `Client` with its own token and lease entries beside the shared
//! back-off) and the invariants are checked as it runs, per slot; [`run`] returns the first violation
//! with a trace of the steps before it.
//!
//! The layout follows the design: `rng.rs` the seeded random numbers,
//! `scenario.rs` what a seed draws (faults, the outage scenario, the
//! client's configuration), `world.rs` the simulated store, token server,
//! clocks, isolates, callers and event queue, `isolate.rs` what an isolate
//! does with its callers and acquisitions, `executor.rs` what the executor
//! does with each effect, `invariants.rs` one checker per invariant, and
//! `trace.rs` how a violation's steps read. This file holds the entry
//! points and the scheduler: callers' arrivals, the event loop, crashes and
//! the hostile co-tenant.

use crate::shared::MAX_SHARED_BACKOFF_MS;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt::Write;

mod executor;
mod invariants;
mod isolate;
mod pool;
mod rng;
mod scenario;
mod trace;
mod world;

pub use pool::{run_pool, PoolReport};
pub use rng::Rng;
use scenario::{config, Hostile, Scenario};
use world::{Caller, Happening, Isolate, Sim, SlotCounts, Store, StoredLease, StoredToken, WALL0};

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
    /// Slots per isolate (`poolSize`): 1 without a pool.
    pub pool_size: u32,
    /// Slots that sent at least one token request.
    pub slots_used: u32,
    /// The first invariant violated, with the trace before it.
    pub violation: Option<String>,
}

/// Seeds the draw of a scenario's pool size apart from the rest of its
/// draws, so that a seed without a pool runs as it did before pools.
const POOL_SEED: u64 = 0x5107_5107_5107_5107;

/// Runs seed `seed` to its end or its first violation: one in ten is a
/// client without a store through an outage ([`run_outage`]).
pub fn run(seed: u64) -> Report {
    let draw = |mut rng: Rng| {
        let s = match rng.chance(0.1) {
            true => Scenario::outage(&mut rng),
            false => Scenario::draw(&mut rng).pooled(&mut Rng::new(seed ^ POOL_SEED)),
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
    // The pool's size as the core read it from the options.
    let pool_size = config.pool_size as usize;
    let isolates = (0..s.isolates)
        .flat_map(|p| (0..pool_size).map(move |k| (p, k)))
        .map(|(p, k)| Isolate::new(&config, p, k, s.skews[p]))
        .collect();
    let mut sim = Sim {
        config,
        rng,
        t: 0.0,
        queue: BinaryHeap::new(),
        order: 0,
        store: Store::new(pool_size),
        isolates,
        pool_size,
        calls: Vec::new(),
        per_slot: vec![SlotCounts::default(); pool_size],
        pending: HashMap::new(),
        in_flight: Vec::new(),
        issued: HashMap::new(),
        issued_to: HashMap::new(),
        requests: 0,
        duplicates: 0,
        requests_in_outage: 0,
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
        skewed_requests: sim.per_slot.iter().map(|n| n.skewed).sum(),
        requests_in_outage: sim.requests_in_outage,
        pool_size: pool_size as u32,
        slots_used: sim.per_slot.iter().filter(|n| n.requests > 0).count() as u32,
        violation: violation.map(|v| {
            let mut text = format!("{v}\n  scenario: {:?}\n  last steps:\n", sim.s);
            for step in &sim.trace {
                let _ = writeln!(text, "    {step}");
            }
            text
        }),
    }
}

type Checked = Result<(), String>;

impl Sim {
    fn run(&mut self) -> Checked {
        // Callers: each isolate gets a caller every 1/40 of a token lifetime
        // on average (at least every 5 s), with bursts, and tight loops.
        let window = self.s.lifetime_s * 1000.0;
        // Callers arrive in the order of their times, beside the queue: a
        // queue holding every arrival of a day-long run is slow to pop.
        let mut arrivals = Vec::new();
        for process in 0..self.s.isolates {
            let mut t = self.rng.between(0.0, 100.0);
            while t < self.s.run_ms {
                let min_valid_ms = match self.s.min_valid && self.rng.chance(0.2) {
                    true => (self.rng.uniform() * 0.4 * window).min(60_000.0).floor(),
                    false => 0.0,
                };
                let force = self.s.refreshes && self.rng.chance(0.02);
                self.calls.push(Caller {
                    process,
                    isolate: self.slots_of(process).start,
                    picked: false,
                    moved: false,
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
        for &(t, process) in &self.s.crashes.clone() {
            self.at(t, Happening::Crash(process));
        }
        if let Some((start, _, _)) = self.s.hostile {
            self.at(start, Happening::Hostile);
        }
        for &(t, process, unauthorized) in &self.s.rejections.clone() {
            self.at(t, Happening::Reject(process, unauthorized));
        }
        if let Some(period) = self.s.cron_ms {
            for process in 0..self.s.isolates {
                let first = self.rng.between(0.0, period);
                self.at(first, Happening::Cron(process));
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
                            self.log(format!("{}: ← {text}", self.name(isolate)));
                        }
                        self.handle(isolate, outcome)?;
                    }
                }
                Happening::Crash(process) => self.crash(process),
                Happening::Hostile => self.hostile(),
                Happening::Reject(process, unauthorized) => self.reject(process, unauthorized)?,
                Happening::Removed { isolate, epoch } => {
                    if epoch == self.isolates[isolate].epoch {
                        self.removed(isolate);
                    }
                }
                Happening::Cron(process) => self.cron(process)?,
            }
        }
        invariants::requests_per_window(self)
    }

    /// `process` crashes: every slot of it, each holding its lease perhaps, comes back cold.
    fn crash(&mut self, process: usize) {
        self.log(format!("isolate {process} crashes"));
        for isolate in self.slots_of(process) {
            let waiting = std::mem::take(&mut self.isolates[isolate].waiting);
            let old = &self.isolates[isolate];
            let (slot, skew, epoch) = (old.slot, old.skew, old.epoch + 1);
            self.isolates[isolate] = Isolate {
                epoch,
                ..Isolate::new(&self.config, process, slot, skew)
            };
            self.in_flight.retain(|(i, _, _)| *i != isolate);
            self.pending.remove(&isolate);
            // Its callers are gone with it.
            for call in waiting {
                self.calls[call].over = true;
            }
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
                for slot in 0..self.pool_size {
                    self.store
                        .set_token(slot, self.t, Some(StoredToken::Garbage));
                }
            }
            Hostile::Lease => {
                for slot in 0..self.pool_size {
                    let v = self.store.next_version();
                    let lease = StoredLease {
                        holder: "co-tenant".into(),
                        until: wall + 2_000.0,
                        taken_at: wall,
                    };
                    self.store.slots[slot].lease = Some((lease, v, self.t + 2_000.0));
                }
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
        let (count, mut pools, mut filled) = (2_000, 0, 0);
        let mut violations = Vec::new();
        for seed in 1..=count {
            let report = run(seed);
            if let Some(violation) = report.violation {
                violations.push((seed, violation));
            }
            pools += u32::from(report.pool_size > 1);
            filled += u32::from(report.pool_size > 1 && report.slots_used == report.pool_size);
        }
        if let Some((seed, text)) = violations.first() {
            panic!(
                "simulated {count} scenarios: {} invariant violations\nseed {seed}: {text}\n\
                 replay: scripts/simulate.sh 1 {seed}",
                violations.len()
            );
        }
        // About a quarter of them run pools, and in most of those every slot
        // asked for a token: callers spread over the slots.
        assert!(
            (300..=600).contains(&pools),
            "{pools} pools in {count} seeds"
        );
        assert!(filled * 10 >= pools * 8, "{filled} of {pools} pools filled");
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

    /// Seeds 49105 and 75695 (pools of 3 and 4 slots, clocks 50 s apart,
    /// cron checks): an isolate whose clock found a slot's token due (now,
    /// or within a cron check's period) while the token's writer's clock
    /// did not, lost three lease races to such clocks and fetched without
    /// the lease, as the driver does.
    #[test]
    fn an_isolate_whose_clock_alone_finds_the_token_due_may_fetch_its_own() {
        for seed in [49_105, 75_695] {
            let report = run(seed);
            assert!(report.pool_size > 1);
            assert_eq!(report.violation, None, "seed {seed}");
        }
    }

    #[test]
    fn the_same_seed_runs_the_same() {
        let (a, b) = (run(42), run(42));
        assert_eq!(
            (a.served, a.errors, a.requests),
            (b.served, b.errors, b.requests)
        );
        // Seed 6 runs a pool.
        let (a, b) = (run(6), run(6));
        assert!(a.pool_size > 1, "seed 6 has no pool");
        assert_eq!(
            (a.served, a.errors, a.requests, a.slots_used),
            (b.served, b.errors, b.requests, b.slots_used)
        );
    }
}
