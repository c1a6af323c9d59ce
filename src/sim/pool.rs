//! Pools in the simulator (docs/DESIGN.md, "Token pools"): isolates that
//! each keep a pool of slots — every slot the shipped core, a [`Client`]
//! with a [`Call`] per caller and a driver per acquisition — pick slots
//! with [`pool::pick`], and call an API that limits calls per token and
//! answers 429 (with `Retry-After`) past the limit or at random, while the
//! token endpoint fails at random. One seeded scheduler; the pool's
//! invariants are checked at every step:
//!
//! - P1, no call refused while a usable, not cooling slot exists: a pick
//!   waits only when no slot serves without cooling, a call fails for want
//!   of a token only then, and a 429 is returned only then (or when its
//!   attempts are spent).
//! - P2, no burst: a slot is filled only while no other slot of the
//!   isolate is being filled, nor held back after the token endpoint failed.
//! - P3, one token per slot per refresh window: a slot asks the token
//!   endpoint only when it holds no token, or its token is due.
//! - P4, cooling honoured: nothing is sent with a cooling token while the
//!   rest of its cooling fits the call's deadline.
//!
//! A call that got a 429 does what [`pool::after_429`] answers (move,
//! wait for a slot, or return it), and a slot whose token request failed
//! holds its siblings back ([`Client::hold_back_as`]), as `deno/_pool.ts`
//! does. Here slots live in memory, without a store, so that the API's 429
//! and cooling can be driven hard. Each slot's store protocol (its own KV
//! entries and lease, sharing the client's back-off) runs in the main
//! simulation (`src/sim/mod.rs`), whose pool scenarios hold every invariant
//! per slot across isolates, with faults, beside the pool's own (10–12).

use super::Rng;
use crate::call::{Call, Step};
use crate::client::Client;
use crate::clock::Now;
use crate::config::Config;
use crate::driver::{Effect, Outcome};
use crate::pool::{self, AfterLimit, Pick, SlotView};
use crate::rate_limit::{ApiCall, ApiStep};
use crate::response::Received;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

const WALL0: f64 = 1_700_000_000_000.0;

/// What one pool seed found.
#[derive(Debug, Default)]
pub struct PoolReport {
    /// Calls the API answered with something other than a 429.
    pub served: u32,
    /// 429s handed to callers.
    pub returned_429: u32,
    /// Calls that failed for want of a token.
    pub failed: u32,
    /// Calls moved to another slot after a 429.
    pub moved: u32,
    /// Token requests.
    pub token_requests: u32,
    /// The first invariant violated.
    pub violation: Option<String>,
}

/// What a seed draws.
struct Scenario {
    isolates: usize,
    size: u32,
    lifetime_s: f64,
    /// Calls the API allows per token in any second.
    per_token: usize,
    /// Mean gap between calls, per isolate, ms.
    gap_ms: f64,
    latency_ms: f64,
    token_fault: f64,
    api_fault: f64,
    duration_ms: f64,
}

impl Scenario {
    fn draw(rng: &mut Rng) -> Self {
        Self {
            isolates: rng.between(1.0, 4.99) as usize,
            size: rng.between(1.0, 8.99) as u32,
            lifetime_s: rng.log_between(60.0, 3_600.0).round(),
            per_token: rng.between(2.0, 10.99) as usize,
            gap_ms: rng.log_between(20.0, 500.0),
            latency_ms: rng.between(1.0, 80.0),
            token_fault: if rng.chance(0.3) {
                rng.between(0.0, 0.5)
            } else {
                0.0
            },
            api_fault: if rng.chance(0.3) {
                rng.between(0.0, 0.2)
            } else {
                0.0
            },
            duration_ms: rng.between(20_000.0, 200_000.0),
        }
    }

    fn config(&self, rng: &mut Rng) -> Config {
        let options = serde_json::json!({
            "tokenUrl": "https://login.example.com/oauth/token",
            "clientId": "simulated",
            "clientSecret": "simulated-secret",
            "poolSize": self.size,
            "retry": { "deadlineMs": rng.between(1_000.0, 30_000.0).round() },
        });
        let options = crate::options::read(options).expect("the simulated options read");
        Config::new(options, |url| Some(url.to_owned())).expect("the simulated options are sound")
    }
}

struct Slot {
    client: Client,
    last_used: f64,
}

/// One caller's `client.fetch`.
struct Caller {
    isolate: usize,
    api: ApiCall,
    /// The slot picked, with the call's `getToken` loop on it.
    on: Option<(usize, Call)>,
}

enum Happening {
    Arrive(usize),
    Resume(usize),
    /// An effect of slot `.1`'s acquisition in isolate `.0` completed.
    Flight(usize, usize, Outcome),
    /// The API answered caller `.0`: status, `Retry-After`.
    Api(usize, u16, Option<String>),
}

struct PoolSim {
    s: Scenario,
    rng: Rng,
    t: f64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Happening>,
    isolates: Vec<Vec<Slot>>,
    callers: Vec<Caller>,
    /// Callers waiting for an acquisition: (isolate, slot) → callers.
    joined: HashMap<(usize, usize), Vec<usize>>,
    /// When each token was last used by the API, for its per-second limit.
    api_log: HashMap<String, VecDeque<f64>>,
    tokens: u32,
    report: PoolReport,
}

type Checked = Result<(), String>;

/// Runs pool seed `seed` to its end or its first violation.
pub fn run_pool(seed: u64) -> PoolReport {
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let s = Scenario::draw(&mut rng);
    let isolates = (0..s.isolates)
        .map(|_| {
            let config = s.config(&mut rng);
            (0..config.pool_size)
                .map(|_| Slot {
                    client: Client::new(config.clone(), |url| Some(url.to_owned())),
                    last_used: f64::NEG_INFINITY,
                })
                .collect()
        })
        .collect();
    let mut sim = PoolSim {
        s,
        rng,
        t: 0.0,
        seq: 0,
        queue: BinaryHeap::new(),
        events: HashMap::new(),
        isolates,
        callers: Vec::new(),
        joined: HashMap::new(),
        api_log: HashMap::new(),
        tokens: 0,
        report: PoolReport::default(),
    };
    for isolate in 0..sim.s.isolates {
        sim.at(0.0, Happening::Arrive(isolate));
    }
    let outcome = sim.run();
    let mut report = sim.report;
    report.violation = outcome.err().map(|v| format!("pool seed {seed}: {v}"));
    report
}

impl PoolSim {
    fn now(&self) -> Now {
        Now {
            wall: WALL0 + self.t,
            mono: self.t,
        }
    }

    fn at(&mut self, ms: f64, what: Happening) {
        self.seq += 1;
        let when = ((self.t + ms.max(0.0)) * 1000.0) as u64;
        self.queue.push(Reverse((when, self.seq)));
        self.events.insert(self.seq, what);
    }

    fn run(&mut self) -> Checked {
        while let Some(Reverse((when, seq))) = self.queue.pop() {
            self.t = when as f64 / 1000.0;
            match self.events.remove(&seq).expect("a scheduled happening") {
                Happening::Arrive(isolate) => {
                    if self.t < self.s.duration_ms {
                        let gap = self.rng.between(0.0, 2.0 * self.s.gap_ms);
                        self.at(gap, Happening::Arrive(isolate));
                        let now = self.now();
                        self.callers.push(Caller {
                            isolate,
                            api: ApiCall {
                                started: now.mono,
                                sends: 0,
                            },
                            on: None,
                        });
                        self.proceed(self.callers.len() - 1)?;
                    }
                }
                Happening::Resume(caller) => self.proceed(caller)?,
                Happening::Flight(isolate, slot, outcome) => {
                    let (now, rand) = (self.now(), self.rng.uniform());
                    self.slot(isolate, slot).client.handle(now, outcome, rand);
                    self.pump(isolate, slot)?;
                }
                Happening::Api(caller, status, retry_after) => {
                    self.answered(caller, status, retry_after)?
                }
            }
        }
        Ok(())
    }

    fn slot(&mut self, isolate: usize, slot: usize) -> &mut Slot {
        &mut self.isolates[isolate][slot]
    }

    fn views(&self, isolate: usize) -> Vec<SlotView> {
        let now = self.now();
        self.isolates[isolate]
            .iter()
            .map(|s| SlotView {
                last_used: s.last_used,
                ..s.client.slot_view(now)
            })
            .collect()
    }

    /// Whether some slot of `isolate` serves and does not cool.
    fn ready(&self, isolate: usize) -> Option<usize> {
        let mono = self.now().mono;
        self.views(isolate)
            .iter()
            .position(|v| v.usable && mono >= v.cooling_until)
    }

    /// Picks a slot for `caller` (P1, P2 checked).
    fn pick(&mut self, caller: usize) -> Checked {
        let isolate = self.callers[caller].isolate;
        let views = self.views(isolate);
        let now = self.now();
        let picked = pool::pick(&views, now.mono);
        match picked {
            Pick::Use { slot }
                if !(views[slot].usable && now.mono >= views[slot].cooling_until) =>
            {
                return Err(format!("P1: slot {slot} picked to serve, but it cannot"));
            }
            Pick::Fill { slot } => {
                if let Some(other) = views.iter().position(|v| v.filling) {
                    return Err(format!("P2: slot {slot} filled while slot {other} fills"));
                }
                if views[slot].usable {
                    return Err(format!("P2: slot {slot} filled, but it serves"));
                }
                if let Some(failing) = views.iter().position(|v| v.held_back) {
                    return Err(format!(
                        "P2: slot {slot} filled while slot {failing} is held back"
                    ));
                }
            }
            Pick::Wait { slot } => {
                if let Some(ready) = self.ready(isolate) {
                    return Err(format!(
                        "P1: waits on slot {slot} while slot {ready} serves"
                    ));
                }
            }
            Pick::Use { .. } => {}
        }
        let slot = picked.slot();
        self.slot(isolate, slot).last_used = now.mono;
        self.callers[caller].on = Some((slot, Call::new(now, 0.0)));
        Ok(())
    }

    /// Moves `caller` on until it waits for something.
    fn proceed(&mut self, caller: usize) -> Checked {
        for _ in 0..20 {
            if self.callers[caller].on.is_none() {
                self.pick(caller)?;
            }
            let isolate = self.callers[caller].isolate;
            let now = self.now();
            let (slot, mut call) = self.callers[caller].on.take().expect("picked");
            let step = call.poll(&mut self.isolates[isolate][slot].client, now);
            self.callers[caller].on = Some((slot, call));
            match step {
                Step::Serve { refresh, .. } => {
                    if refresh {
                        self.pump(isolate, slot)?;
                    }
                    return self.send(caller, isolate, slot);
                }
                Step::Wait { ms } => {
                    self.at(ms, Happening::Resume(caller));
                    return Ok(());
                }
                Step::Run => {
                    self.joined.entry((isolate, slot)).or_default().push(caller);
                    return self.pump(isolate, slot);
                }
                Step::Join => {
                    self.joined.entry((isolate, slot)).or_default().push(caller);
                    return Ok(());
                }
                Step::Fail { .. } if pool::instead(&self.views(isolate), now.mono).is_some() => {
                    // Another slot serves: the call goes there.
                    let other = pool::instead(&self.views(isolate), now.mono).expect("one serves");
                    self.slot(isolate, other).last_used = now.mono;
                    self.callers[caller].on = Some((other, Call::new(now, 0.0)));
                }
                Step::Fail { .. } => {
                    if let Some(ready) = self.ready(isolate) {
                        return Err(format!(
                            "P1: a call failed on slot {slot} while slot {ready} serves"
                        ));
                    }
                    self.report.failed += 1;
                    return Ok(());
                }
            }
        }
        Err("a call went round 20 times without waiting".into())
    }

    /// `caller` holds its slot's token: wait while it cools (P4), or call the API.
    fn send(&mut self, caller: usize, isolate: usize, slot: usize) -> Checked {
        let now = self.now();
        let api = self.callers[caller].api;
        let client = &self.isolates[isolate][slot].client;
        let cooling_ms = client.state.cooling_until() - now.mono;
        let fits = now.mono + cooling_ms.ceil() <= api.started + client.config.retry.deadline_ms;
        match client.before_send(now, &api) {
            ApiStep::Wait { ms } => {
                self.callers[caller].on = None;
                self.at(ms, Happening::Resume(caller));
                return Ok(());
            }
            _ if cooling_ms > 0.5 && fits => {
                return Err(format!("P4: sent with slot {slot} while it cools"));
            }
            _ => {}
        }
        let token = client.state.held_token().expect("served").to_owned();
        let log = self.api_log.entry(token).or_default();
        while log.front().is_some_and(|t| *t <= now.mono - 1_000.0) {
            log.pop_front();
        }
        let (status, retry_after) = if log.len() >= self.s.per_token {
            let free_in = log.front().map_or(0.0, |t| t + 1_000.0 - now.mono);
            (429, Some(((free_in / 1000.0).ceil()).to_string()))
        } else if self.rng.chance(self.s.api_fault) {
            let seconds = self.rng.between(0.0, 5.0).round();
            (429, self.rng.chance(0.8).then(|| seconds.to_string()))
        } else {
            log.push_back(now.mono);
            (200, None)
        };
        self.callers[caller].api.sends += 1;
        let latency = self.s.latency_ms;
        self.at(latency, Happening::Api(caller, status, retry_after));
        Ok(())
    }

    /// The API answered `caller`.
    fn answered(&mut self, caller: usize, status: u16, retry_after: Option<String>) -> Checked {
        if status != 429 {
            self.report.served += 1;
            return Ok(());
        }
        let isolate = self.callers[caller].isolate;
        let (slot, _) = self.callers[caller].on.take().expect("sent from a slot");
        let now = self.now();
        let api = self.callers[caller].api;
        let client = &mut self.isolates[isolate][slot].client;
        let policy = client.config.retry;
        client.rate_limited(now, &api, retry_after.as_deref(), true);
        let views = self.views(isolate);
        match pool::after_429(&views, now, &api, true, &policy, slot) {
            AfterLimit::Move { slot: to } => {
                self.report.moved += 1;
                self.take(caller, to);
                self.proceed(caller)
            }
            AfterLimit::Wait { slot: to, ms } => {
                self.take(caller, to);
                self.at(ms, Happening::Resume(caller));
                Ok(())
            }
            AfterLimit::Return => {
                if let (Some(ready), true) = (self.ready(isolate), api.sends < policy.max_attempts)
                {
                    return Err(format!("P1: a 429 returned while slot {ready} serves"));
                }
                self.report.returned_429 += 1;
                Ok(())
            }
        }
    }

    /// `caller` goes on with slot `slot`, the one the core named after its 429.
    fn take(&mut self, caller: usize, slot: usize) {
        let (isolate, now) = (self.callers[caller].isolate, self.now());
        self.slot(isolate, slot).last_used = now.mono;
        self.callers[caller].on = Some((slot, Call::new(now, 0.0)));
    }

    /// Runs slot `slot`'s acquisition to its next wait (P3 checked at each token request).
    fn pump(&mut self, isolate: usize, slot: usize) -> Checked {
        let (now, rand) = (self.now(), self.rng.uniform());
        let client = &mut self.isolates[isolate][slot].client;
        if !client.state.in_flight() {
            return Ok(());
        }
        let effect = client.poll(now, rand);
        match effect {
            Effect::Send { .. } => {
                if !client.state.due(now, 0.0) {
                    return Err(format!("P3: slot {slot} asked for a token it holds fresh"));
                }
                client.take_request();
                self.report.token_requests += 1;
                let outcome = self.token_answer();
                let latency = self.s.latency_ms;
                self.at(latency, Happening::Flight(isolate, slot, outcome));
            }
            Effect::Sleep { ms, .. } => {
                self.at(ms, Happening::Flight(isolate, slot, Outcome::Slept))
            }
            Effect::Done { .. } | Effect::Fail { .. } => {
                if matches!(effect, Effect::Fail { .. }) {
                    self.hold_back_siblings(isolate, slot, now);
                }
                for caller in self.joined.remove(&(isolate, slot)).unwrap_or_default() {
                    self.at(0.0, Happening::Resume(caller));
                }
            }
            other => return Err(format!("an effect a pool in memory never names: {other:?}")),
        }
        Ok(())
    }

    /// Slot `failed` of `isolate` failed to get a token: without a store,
    /// the pool holds every other slot back as long (`Client::hold_back_as`,
    /// as `PoolClient` does).
    fn hold_back_siblings(&mut self, isolate: usize, failed: usize, now: Now) {
        let slots = &mut self.isolates[isolate];
        for other in (0..slots.len()).filter(|&k| k != failed) {
            let (low, high) = slots.split_at_mut(failed.max(other));
            let (sibling, source) = match other < failed {
                true => (&mut low[other], &high[0]),
                false => (&mut high[0], &low[failed]),
            };
            sibling.client.hold_back_as(&source.client, now);
        }
    }

    /// The token endpoint's answer: a new token, or a 503.
    fn token_answer(&mut self) -> Outcome {
        if self.rng.chance(self.s.token_fault) {
            return Outcome::Answer(Ok(Received {
                status: 503,
                retry_after: None,
                cache_control: None,
                body: Vec::new(),
            }));
        }
        self.tokens += 1;
        let body = serde_json::json!({
            "access_token": format!("pool-token-{}", self.tokens),
            "token_type": "Bearer",
            "expires_in": self.s.lifetime_s,
        });
        Outcome::Answer(Ok(Received {
            status: 200,
            retry_after: None,
            cache_control: None,
            body: body.to_string().into_bytes(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thousand_pool_seeds_keep_every_pool_invariant() {
        let (mut served, mut moved, mut returned) = (0, 0, 0);
        for seed in 1..=2_000 {
            let report = run_pool(seed);
            if let Some(violation) = report.violation {
                panic!("{violation}\nreplay: cargo test pool_seed -- {seed}");
            }
            served += report.served;
            moved += report.moved;
            returned += report.returned_429;
        }
        assert!(served > 100_000, "{served} calls served");
        assert!(
            moved > 0 && returned > 0,
            "{moved} moved, {returned} returned"
        );
    }

    #[test]
    fn the_same_pool_seed_runs_the_same() {
        let (a, b) = (run_pool(7), run_pool(7));
        assert_eq!(
            (a.served, a.moved, a.token_requests),
            (b.served, b.moved, b.token_requests)
        );
    }
}
