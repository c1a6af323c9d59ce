//! What a seed draws (docs/DESIGN.md, "The simulator"): the [`Scenario`] —
//! isolates, clocks, token lifetime, callers — with its faults (the token
//! server's outage, a store's bad time, signing faults), the outage
//! scenario of a client without a store, the pool size, the bounds the
//! invariants hold it to, and the client [`Config`] each isolate runs.

use super::rng::Rng;
use crate::config::Config;

/// What the token server does in an outage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Fault {
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
pub(super) struct Scenario {
    pub(super) isolates: usize,
    pub(super) lifetime_s: f64,
    pub(super) timeout_ms: f64,
    pub(super) skews: Vec<f64>,
    pub(super) outage: Option<(f64, f64, Fault)>,
    pub(super) store_fault_rate: f64,
    pub(super) store_faults_until: f64,
    pub(super) crashes: Vec<(f64, usize)>,
    pub(super) hostile: Option<(f64, f64, Hostile)>,
    pub(super) min_valid: bool,
    pub(super) run_ms: f64,
    /// One client without a store, through a 5 s outage inside its refresh
    /// window (invariant 7).
    pub(super) lone: bool,
    /// The token endpoint comes from the issuer's metadata (discovery).
    pub(super) issuer: bool,
    /// The client signs an assertion for each token request (`Sign`).
    pub(super) jwt: bool,
    /// Of the signings in the faults' time, the share that fail.
    pub(super) sign_fault_rate: f64,
    /// Some callers call `refresh()`.
    pub(super) refreshes: bool,
    /// `invalidate()` calls and 401s from a resource server: (when, isolate, a 401?).
    pub(super) rejections: Vec<(f64, usize, bool)>,
    /// A cron check on every isolate, with this period (ms).
    pub(super) cron_ms: Option<f64>,
    /// Slots per isolate (`poolSize`): 1, a client without a pool.
    pub(super) pool_size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Hostile {
    /// Writes a token entry that is not a token.
    Garbage,
    /// Holds a plausible lease, renewed forever.
    Lease,
    /// Writes a shared back-off far in the future.
    Backoff,
}

impl Scenario {
    pub(super) fn draw(rng: &mut Rng) -> Self {
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
            pool_size: 1,
        }
    }

    /// The scenario with a token pool: one in four draws 2 to 4 slots per
    /// isolate (docs/DESIGN.md, "Token pools"), from `rng`, drawn apart.
    pub(super) fn pooled(self, rng: &mut Rng) -> Self {
        let pool_size = match rng.chance(0.25) {
            true => 2 + (rng.uniform() * 3.0) as usize,
            false => 1,
        };
        Self { pool_size, ..self }
    }

    /// The outage of a client without a store: 12 s tokens (refreshed 6 to
    /// 6.6 s after they are requested, unusable at 11.4 s), the token server
    /// down for 5 s from a moment inside the first token's refresh window,
    /// callers arriving all the time for a minute.
    pub(super) fn outage(rng: &mut Rng) -> Self {
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
            pool_size: 1,
        }
    }

    /// Whether `t` (true ms) is in the token server's outage.
    pub(super) fn down(&self, t: f64) -> bool {
        self.outage
            .is_some_and(|(start, end, _)| (start..end).contains(&t))
    }

    /// Whether a signing at `t` may fail (in the faults' time).
    pub(super) fn signing_faulty(&self, t: f64) -> bool {
        self.sign_fault_rate > 0.0 && t < self.store_faults_until
    }

    pub(super) fn faults_end(&self) -> f64 {
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

    pub(super) fn healthy(&self) -> bool {
        self.outage.is_none()
            && self.store_fault_rate == 0.0
            && self.crashes.is_empty()
            && self.hostile.is_none()
            && self.sign_fault_rate == 0.0
    }
}

/// The lone client's outage: 5 s.
pub(super) const LONE_OUTAGE_MS: f64 = 5_000.0;

/// The closest a failed acquisition's next request may come: the shortest
/// hold-back (half a second, near a token's end).
pub(super) const MIN_SPACING_MS: f64 = 499.0;

/// After the faults end, every caller is served within this (a hold-back
/// period of a minute, and an attempt's time).
pub(super) const RECOVERY_MS: f64 = 70_000.0;

/// The simulated issuer, and the token endpoint its metadata names.
pub(super) const ISSUER: &str = "https://login.example.com";
pub(super) const TOKEN_URL: &str = "https://login.example.com/oauth/token";

pub(super) fn config(s: &Scenario) -> Config {
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
    if s.pool_size > 1 {
        options["poolSize"] = s.pool_size.into();
    }
    if !s.lone {
        options["kv"] = serde_json::json!({}); // the store the isolates share
    }
    let options = crate::options::read(options).expect("the simulated options read");
    Config::new(options, |url| Some(url.to_owned())).expect("the simulated options are sound")
}
