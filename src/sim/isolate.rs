//! What each isolate does with its callers and acquisitions (docs/DESIGN.md,
//! "The simulator"): a `getToken` caller asking through the core's caller
//! loop, `refresh()`, `invalidate()` and 401s, cron checks, each effect's
//! outcome handed back to the core, and callers served or failed, each
//! checked against the invariants as it happens.

use super::world::{Caller, Happening, Sim};
use super::{invariants, trace, Checked};
use crate::call::{Call, Step};
use crate::client::{Start, Started};
use crate::driver::Outcome;
use crate::error::TokenError;
use crate::shared::TokenRecord;
use crate::state::Unauthorized;

impl Sim {
    /// A caller asks (again): the core's caller loop ([`Call`]) says what it does.
    pub(super) fn ask(&mut self, call: usize) -> Checked {
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
    pub(super) fn refresh(&mut self, call: usize) -> Checked {
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
    pub(super) fn run_flight(&mut self, isolate: usize) -> Checked {
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
    pub(super) fn reject(&mut self, isolate: usize, unauthorized: bool) -> Checked {
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
    pub(super) fn removed(&mut self, isolate: usize) {
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
    pub(super) fn cron(&mut self, isolate: usize) -> Checked {
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
        self.resume(isolate)
    }

    pub(super) fn fail(&mut self, isolate: usize, error: TokenError) -> Checked {
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
    pub(super) fn end_cron(&mut self, isolate: usize) -> bool {
        let iso = &mut self.isolates[isolate];
        let cron = std::mem::take(&mut iso.cron);
        self.cron_refreshes += u32::from(cron && iso.sent);
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
        invariants::served_token_was_not_rejected(self, isolate, token)
    }

    /// A caller gets an error: invariants 2, 6 and 7.
    pub(super) fn failed(&mut self, call: usize, error: &TokenError) -> Checked {
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
