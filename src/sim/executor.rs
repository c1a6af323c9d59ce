//! What `deno/_executor.ts` does, in the simulated world (docs/DESIGN.md,
//! "The simulator"): perform each effect the core names — store operations
//! through the isolate's store guard, token requests to the simulated
//! server, discovery, signing — and hand back its outcome when it lands.

use super::scenario::{Fault, ISSUER, TOKEN_URL};
use super::world::{Happening, Sim, StoredLease, StoredToken, WALL0};
use super::{invariants, trace, Checked};
use crate::driver::{Effect, LeaseResult, Outcome, Seen, Wait};
use crate::error::{ErrorCode, TokenError};
use crate::response::Received;
use crate::shared::{self, MAX_SHARED_BACKOFF_MS};
use crate::store_guard::STORE_TIMEOUT_MS;
use crate::transport::Exchange;

impl Sim {
    /// One store operation of `isolate`, run as `KvStore.#op` runs it: through
    /// the isolate's [`StoreGuard`](crate::store_guard::StoreGuard) on its
    /// clock. In the store's bad time an attempt may fail, be refused as
    /// locked (tried again as the guard says), or be slow: it lands, but
    /// after the guard's timeout.
    pub(super) fn store_op(&mut self, isolate: usize) -> StoreOp {
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

    pub(super) fn perform(
        &mut self,
        isolate: usize,
        effect: Effect,
        request: Option<Exchange>,
    ) -> Checked {
        let wall = self.now(isolate).wall;
        let slot = self.isolates[isolate].slot;
        if self.tracing {
            let what = trace::effect(&effect);
            let exchange = request.map_or(String::new(), |e| format!(" ({e:?})"));
            self.log(format!("{}: {what}{exchange}", self.name(isolate)));
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
            self.log(format!("{}: store {:?}", self.name(isolate), op.result));
        }
        match effect {
            Effect::ReadStore { eventual: true } => {
                // A nearby replica, up to 1.5 s behind: only its token counts.
                let lag = self.rng.between(0.0, 1_500.0);
                let seen = match ok {
                    false => None,
                    true => Some(Seen {
                        token: match self.store.token_behind(slot, self.t, lag) {
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
                } else if self.store.versions(slot) == self.isolates[isolate].seen {
                    let v = self.store.next_version();
                    let holder = format!("isolate-{isolate}-{v}");
                    let lease = StoredLease {
                        holder: holder.clone(),
                        until: wall + ttl_ms,
                        taken_at: wall,
                    };
                    self.store.slots[slot].lease = Some((lease, v, self.t + ttl_ms));
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
                let kept = match (&mine, &self.store.slots[slot].lease) {
                    (Some((holder, v)), Some((lease, version, _))) if lands && v == version => {
                        let (holder, taken_at) = (holder.clone(), lease.taken_at);
                        let v = self.store.next_version();
                        let lease = StoredLease {
                            holder: holder.clone(),
                            until: wall + ttl_ms,
                            taken_at,
                        };
                        self.store.slots[slot].lease = Some((lease, v, self.t + ttl_ms));
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
                    (&self.isolates[isolate].lease, &self.store.slots[slot].lease)
                {
                    if v == version && lands {
                        self.store.slots[slot].lease = None;
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
                    self.store.set_token(slot, self.t, Some(token));
                    // Expiry is the reader's check; the entry lives until the true one.
                }
                self.complete(isolate, latency, Outcome::Stored);
            }
            Effect::RemoveStore { only } => {
                // Deleted only if still the token named (`KvStore.remove`): a
                // garbage entry is no token refused, but `invalidate()` deletes it.
                let stored = match &self.store.slots[slot].token {
                    Some((StoredToken::Token(record, ..), _)) => Some(&record.access_token),
                    _ => None,
                };
                let named = only.is_none() || only.as_ref() == stored;
                if lands && self.store.slots[slot].token.is_some() && named {
                    self.store.set_token(slot, self.t, None);
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
    pub(super) fn perform_other(
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
            Effect::Credential { .. } => {
                // No simulated client asks for its credential: the host's answer is a secret.
                self.complete(isolate, 0.1, Outcome::Credential(Some("sim-secret".into())));
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
    pub(super) fn read(&mut self, isolate: usize, wall: f64, waited: f64) -> Seen {
        let slot = self.isolates[isolate].slot;
        let versions = self.store.versions(slot);
        let mut seen = Seen::default();
        let mut skewed = false;
        let mut apart = false;
        // A cron check finds a token due when it is due within the job's period.
        let within = match self.isolates[isolate].cron {
            true => self.s.cron_ms.unwrap_or(0.0),
            false => 0.0,
        };
        let entries = &self.store.slots[slot];
        if let Some((StoredToken::Token(record, _, _, writer_skew), _)) = &entries.token {
            seen.token = Some(record.clone());
            // Due by this isolate's clock but not by its writer's (now, or within a cron
            // check's period): the clocks disagree by more than the window, and this
            // isolate must fetch a token of its own.
            let writer_wall = self.t + writer_skew;
            let disagree = |ahead: f64| {
                record.refresh_at <= wall + ahead && record.refresh_at > writer_wall + ahead
            };
            skewed = disagree(0.0) || disagree(within);
            let requested_at = record.expires_at - record.lifetime_seconds * 1000.0;
            let allowance = shared::max_record_ahead_ms(record.lifetime_seconds);
            let ahead = requested_at > wall + allowance;
            apart = invariants::clock_spread(self) > allowance && (ahead || skewed);
        }
        if let Some((lease, _, _)) = &entries.lease {
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
        // Read from the store's one entry, whatever this read handed over:
        // every slot is held to it.
        let stored = self.store.backoff.map_or(0.0, |(until, _, _)| until);
        let within_cap = stored <= wall + MAX_SHARED_BACKOFF_MS;
        iso.backoff_seen = if within_cap { stored } else { 0.0 };
        iso.last_holder = seen.lease_holder.clone();
        // A waiter counts its wait on a holder from reads that showed no back-off in force.
        if let (Some(holder), true) = (&seen.lease_holder, iso.backoff_seen <= wall) {
            iso.holders_seen
                .entry(holder.clone())
                .or_insert(self.t + waited);
        }
        seen
    }

    /// Whether its slot's lease is the one `isolate` took.
    fn holds_lease(&self, isolate: usize) -> bool {
        match (&self.entries(isolate).lease, &self.isolates[isolate].lease) {
            (Some((lease, _, _)), Some((holder, _))) => lease.holder == *holder,
            _ => false,
        }
    }

    /// A token request reaches the server.
    pub(super) fn send(&mut self, isolate: usize, timeout_ms: f64) -> Checked {
        invariants::shared_backoff_honoured(self, isolate)?;
        invariants::hold_back_honoured(self, isolate)?;
        let skewed = invariants::shares_no_window(self, isolate);
        self.isolates[isolate].sent = true;
        self.requests += 1;
        let counts = &mut self.per_slot[self.isolates[isolate].slot];
        counts.requests += 1;
        counts.skewed += u32::from(skewed);
        self.requests_in_outage += u32::from(self.s.down(self.t));
        invariants::outage_costs_few_requests(self)?;
        let t = self.t;
        self.in_flight.retain(|(_, answered, _)| *answered > t);
        // A request sent without the lease from a clock that shares no window
        // took no part in the lease: overlapping it is its doing, not the sender's.
        // Only a request for the same slot (its entries and lease) overlaps.
        let slot = self.isolates[isolate].slot;
        let others = self
            .in_flight
            .iter()
            .any(|(i, _, apart)| *i != isolate && !apart && self.isolates[*i].slot == slot);
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
                self.issued_to.insert(token.clone(), slot);
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
        let apart = invariants::shares_no_window(self, isolate) && !self.holds_lease(isolate);
        self.in_flight.push((isolate, self.t + ms, apart));
        self.complete(isolate, ms, Outcome::Answer(answer));
        Ok(())
    }

    /// The issuer's metadata GET reaches the server: the document naming
    /// [`TOKEN_URL`], or the outage's answer.
    pub(super) fn discover(&mut self, isolate: usize, timeout_ms: f64) {
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
}

/// How a store operation went, through the guard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum StoreResult {
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
pub(super) struct StoreOp {
    pub(super) result: StoreResult,
    pub(super) ms: f64,
    pub(super) waited: f64,
}

/// Whether `effect` is a store operation (run through the store guard).
pub(super) fn effect_is_store(effect: &Effect) -> bool {
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

pub(super) fn received(status: u16, retry_after: Option<String>, body: String) -> Received {
    Received {
        status,
        retry_after,
        cache_control: None,
        body: body.into_bytes(),
    }
}
