//! What each isolate does with its callers and acquisitions (docs/DESIGN.md,
//! "The simulator"): a caller taking a slot of its process's pool as
//! `PoolClient` does (`pool::pick`, and `pool::instead` when the slot
//! fails it), a `getToken` caller asking through the core's caller loop,
//! `refresh()`, `invalidate()` and 401s, cron checks, each effect's outcome
//! handed back to the core, and callers served or failed, each checked
//! against the invariants as it happens.

use super::world::{Caller, Happening, Sim};
use super::{invariants, trace, Checked};
use crate::call::{Call, Step};
use crate::client::{Start, Started};
use crate::driver::Outcome;
use crate::error::TokenError;
use crate::pool;
use crate::shared::TokenRecord;
use crate::state::Unauthorized;

impl Sim {
    /// A caller asks (again): the core's caller loop ([`Call`]) says what it does.
    pub(super) fn ask(&mut self, call: usize) -> Checked {
        if self.calls[call].over {
            return Ok(());
        }
        if !self.calls[call].picked {
            self.pick(call)?;
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

    /// A caller takes a slot of its process as `PoolClient.#take` does:
    /// the one the core picks (invariant 11). A client alone is a pool whose
    /// pick is always itself.
    fn pick(&mut self, call: usize) -> Checked {
        let process = self.calls[call].process;
        let first = self.slots_of(process).start;
        let slot = match self.pool_size {
            1 => 0,
            _ => {
                let views = self.views(process);
                let picked = pool::pick(&views, self.now(first).mono);
                invariants::fills_one_at_a_time(process, &views, picked)?;
                if self.tracing {
                    self.log(format!("call {call} on isolate {process}: {picked:?}"));
                }
                picked.slot()
            }
        };
        self.take_slot(call, first + slot);
        let c = &self.calls[call];
        self.per_slot[slot].refresh_calls += u32::from(c.force);
        Ok(())
    }

    /// `call` takes slot client `isolate` (its `last_used` now), with a new
    /// `getToken` loop on it.
    fn take_slot(&mut self, call: usize, isolate: usize) {
        self.isolates[isolate].last_used = self.now(isolate).mono;
        let c = &mut self.calls[call];
        c.isolate = isolate;
        c.picked = true;
        c.call = None;
    }

    /// A `getToken` call whose slot failed it goes, once, to the slot the
    /// core names instead (`pool::instead`, as `PoolClient.#tokenOf`): one
    /// that serves. Whether it did.
    fn serve_instead(&mut self, call: usize) -> bool {
        let c = &self.calls[call];
        if self.pool_size == 1 || c.force || c.moved {
            return false;
        }
        let (process, isolate) = (c.process, c.isolate);
        let first = self.slots_of(process).start;
        let mono = self.now(isolate).mono;
        let Some(slot) = pool::instead(&self.views(process), mono) else {
            return false;
        };
        if first + slot == isolate {
            return false;
        }
        self.log(format!(
            "call {call} on isolate {process}: served by slot {slot} instead"
        ));
        self.take_slot(call, first + slot);
        self.calls[call].moved = true;
        true
    }

    /// A `refresh()` call: an acquisition that takes a stored token only if
    /// newer, or joins the one in flight; its caller is served what it ends with.
    pub(super) fn refresh(&mut self, call: usize) -> Checked {
        if self.calls[call].refreshing {
            return self.served(call); // The acquisition ended with a token.
        }
        self.calls[call].refreshing = true;
        let isolate = self.calls[call].isolate;
        self.log(format!("call {call} on {}: refresh()", self.name(isolate)));
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
    pub(super) fn run_flight(&mut self, isolate: usize) -> Checked {
        let iso = &mut self.isolates[isolate];
        iso.holders_seen.clear();
        iso.backoff_seen = 0.0;
        iso.last_holder = None;
        iso.sent = false;
        iso.read_at = f64::NEG_INFINITY;
        self.step(isolate, None)
    }

    /// `invalidate()` on a process, as `PoolClient.invalidate()` does it
    /// (every slot), or a 401 from a resource server for the token of the
    /// slot a call took last (`client.fetch`): only that slot's.
    pub(super) fn reject(&mut self, process: usize, unauthorized: bool) -> Checked {
        let slots = self.slots_of(process);
        if !unauthorized {
            for isolate in slots {
                self.reject_slot(isolate, false)?;
            }
            return Ok(());
        }
        let first = slots.start;
        let last = slots
            .filter(|&i| self.isolates[i].client.state.held_token().is_some())
            .max_by(|&a, &b| {
                let (a, b) = (&self.isolates[a], &self.isolates[b]);
                a.last_used.total_cmp(&b.last_used)
            });
        self.reject_slot(last.unwrap_or(first), true)
    }

    /// `invalidate()`, or a 401 for the token slot client `isolate` serves:
    /// the core forgets it and names the delete, performed as a store
    /// operation; with a 401, the request is sent again with a new token,
    /// from the slot the pool picks.
    fn reject_slot(&mut self, isolate: usize, unauthorized: bool) -> Checked {
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
        self.per_slot[self.isolates[isolate].slot].rejections += 1;
        self.log(format!(
            "{}: {} its token",
            self.name(isolate),
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
            let process = self.isolates[isolate].process;
            self.calls.push(Caller {
                process,
                isolate: self.slots_of(process).start,
                picked: false,
                moved: false,
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
    pub(super) fn removed(&mut self, isolate: usize) {
        if self.tracing {
            let text = trace::outcome(&Outcome::Removed);
            self.log(format!("{}: ← {text}", self.name(isolate)));
        }
        let now = self.now(isolate);
        let rand = self.rng.uniform();
        self.isolates[isolate]
            .client
            .handle(now, Outcome::Removed, rand);
    }

    /// A cron check on `process` (`refreshIfDue`), then the next one: as
    /// `PoolClient[REFRESH_IF_DUE]`, every slot that holds a token, and an
    /// empty slot k > 0 only read (checked if the read finds a token).
    pub(super) fn cron(&mut self, process: usize) -> Checked {
        let Some(period) = self.s.cron_ms else {
            return Ok(());
        };
        if self.t + period < self.s.run_ms {
            self.at(self.t + period, Happening::Cron(process));
        }
        for isolate in self.slots_of(process) {
            let iso = &self.isolates[isolate];
            let empty = !iso.client.state.status(self.now(isolate)).has_token;
            match iso.slot > 0 && empty {
                true => self.cron_read(isolate, period)?,
                false => self.cron_check(isolate, period)?,
            }
        }
        Ok(())
    }

    /// A cron check of slot client `isolate`.
    fn cron_check(&mut self, isolate: usize, period: f64) -> Checked {
        let now = self.now(isolate);
        let started = self.isolates[isolate]
            .client
            .start(now, Start::Cron { ahead_ms: period });
        self.log(format!("{}: cron check ({started:?})", self.name(isolate)));
        if started == Ok(Started::Begun) {
            self.isolates[isolate].cron = true;
            self.run_flight(isolate)?;
        }
        Ok(())
    }

    /// A cron check's read of empty slot client `isolate` (`LOAD_SHARED`):
    /// when the acquisition ends with a token, the check follows.
    fn cron_read(&mut self, isolate: usize, period: f64) -> Checked {
        let now = self.now(isolate);
        let started = self.isolates[isolate].client.start(now, Start::Read);
        self.log(format!("{}: cron read ({started:?})", self.name(isolate)));
        if started.is_ok() {
            self.isolates[isolate].cron_after_read = Some(period);
        }
        match started {
            Ok(Started::Begun) => self.run_flight(isolate),
            _ => Ok(()),
        }
    }

    /// An acquisition of `isolate` ended: the cron check a read of its empty slot put off.
    fn after_cron_read(&mut self, isolate: usize) -> Checked {
        let Some(period) = self.isolates[isolate].cron_after_read.take() else {
            return Ok(());
        };
        match self.isolates[isolate]
            .client
            .state
            .status(self.now(isolate))
            .has_token
        {
            true => self.cron_check(isolate, period),
            false => Ok(()),
        }
    }

    /// Hands `outcome` to the isolate's driver, then performs what it asks next.
    pub(super) fn handle(&mut self, isolate: usize, outcome: Outcome) -> Checked {
        self.step(isolate, Some(outcome))
    }

    pub(super) fn step(&mut self, isolate: usize, outcome: Option<Outcome>) -> Checked {
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
    pub(super) fn complete(&mut self, isolate: usize, ms: f64, outcome: Outcome) {
        let epoch = self.isolates[isolate].epoch;
        self.pending.entry(isolate).or_default().push_back(outcome);
        self.at(self.t + ms, Happening::Effect { isolate, epoch });
    }

    pub(super) fn done(&mut self, isolate: usize, record: TokenRecord) -> Checked {
        self.end_cron(isolate);
        invariants::taken_token_was_issued(self, isolate, &record.access_token)?;
        self.resume(isolate)?;
        self.after_cron_read(isolate)
    }

    pub(super) fn fail(&mut self, isolate: usize, error: TokenError) -> Checked {
        invariants::no_internal_error(&format!("{}'s acquisition", self.name(isolate)), &error)?;
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
        self.after_cron_read(isolate)
    }

    /// An acquisition ended: whether a cron check began it (its request, if
    /// it sent one, is one invariant 3 allows beside the refresh windows).
    pub(super) fn end_cron(&mut self, isolate: usize) -> bool {
        let iso = &mut self.isolates[isolate];
        let cron = std::mem::take(&mut iso.cron);
        self.per_slot[iso.slot].cron_refreshes += u32::from(cron && iso.sent);
        cron
    }

    /// The acquisition ended with a token: its callers ask again (`getToken`'s loop).
    pub(super) fn resume(&mut self, isolate: usize) -> Checked {
        let waiting = std::mem::take(&mut self.isolates[isolate].waiting);
        for call in waiting {
            self.ask(call)?;
        }
        Ok(())
    }

    /// A caller is served: invariants 1 and 8.
    pub(super) fn served(&mut self, call: usize) -> Checked {
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
        invariants::served_token_is_the_slots(self, isolate, token)?;
        invariants::served_token_was_not_rejected(self, isolate, token)
    }

    /// A caller gets an error from its slot: invariants 2, 6 and 7, held
    /// per slot; then, in a pool, the slot the core names instead serves
    /// it, or the error reaches the caller (invariant 10).
    pub(super) fn failed(&mut self, call: usize, error: &TokenError) -> Checked {
        invariants::no_internal_error(&format!("call {call}"), error)?;
        let isolate = self.calls[call].isolate;
        if self.tracing {
            let text = format!(
                "call {call} on {} fails: {}",
                self.name(isolate),
                error.message()
            );
            self.log(text);
        }
        invariants::outage_fails_no_caller(self, call, error)?;
        invariants::no_error_when_healthy(self, call, error)?;
        let force = self.calls[call].force;
        if !force {
            // `refresh()` is refused while requests are held back.
            invariants::recovered(self, call, error)?;
            invariants::no_error_beside_a_stored_token(self, call, error)?;
            invariants::no_error_beside_a_held_token(self, call, error)?;
        }
        if self.serve_instead(call) {
            return self.ask(call);
        }
        self.errors += 1;
        self.calls[call].over = true;
        match force {
            true => Ok(()),
            false => invariants::no_error_beside_a_usable_slot(self, call, error),
        }
    }
}
