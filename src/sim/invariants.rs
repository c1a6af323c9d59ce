//! The simulator's invariants (docs/DESIGN.md, "The simulator"), one
//! checker per function. Each is stated from what can be observed from
//! outside the core: the token requests the server received and when, the
//! tokens it issued and their true expiry, what callers were served or
//! told, what the store held and what each read of it showed, the
//! effects the core named, the tokens an isolate invalidated or saw refused
//! with a 401, and the clocks. None reads the driver's internals; the one
//! client state a check reads is what `client.status()` reports to anyone.

use super::scenario::{MIN_SPACING_MS, RECOVERY_MS};
use super::world::{Sim, StoredToken, WALL0};
use super::{trace, Checked};
use crate::driver::Effect;
use crate::error::{ErrorCode, TokenError};
use crate::pool::{Pick, SlotView};
use crate::shared;
use crate::store_guard::STORE_COOLDOWN_MS;

/// The lone client's outage (docs/DESIGN.md, "Outages"): 5 s inside the
/// refresh window costs at most this many token requests.
pub(super) const MAX_REQUESTS_IN_OUTAGE: u32 = 5;

/// Invariant 1: an acquisition ends with a token the server issued.
pub(super) fn taken_token_was_issued(sim: &Sim, isolate: usize, token: &str) -> Checked {
    match sim.issued.contains_key(token) {
        true => Ok(()),
        false => Err(format!(
            "invariant 1: {name} took a token the server never issued",
            name = sim.name(isolate)
        )),
    }
}

/// Invariant 1: a caller is served a token its own isolate's clock still
/// finds usable (as `client.status()` reports it, and by the wall clock).
pub(super) fn served_token_is_usable(
    sim: &Sim,
    isolate: usize,
    has_token: bool,
    usable_until: f64,
) -> Checked {
    let wall = sim.now(isolate).wall;
    if !has_token || wall >= usable_until {
        return Err(format!(
            "invariant 1: {name} served a token past its usable time by its own clock \
             (usable until {:.0} ms, served at {:.0} ms)",
            usable_until - WALL0,
            wall - WALL0,
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 1: a caller is served a token the server issued, and, when the clocks
/// agree within what a record may be ahead, before its true expiry.
pub(super) fn served_token_is_live(sim: &Sim, isolate: usize, token: &str) -> Checked {
    let Some(&true_expiry) = sim.issued.get(token) else {
        return Err(format!(
            "invariant 1: {name} served a token the server never issued",
            name = sim.name(isolate)
        ));
    };
    let allowance = shared::max_record_ahead_ms(sim.s.lifetime_s);
    if clock_spread(sim) < allowance && sim.t >= true_expiry {
        return Err(format!(
            "invariant 1: {name} served a token {:.0} ms past its true expiry",
            sim.t - true_expiry,
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 2: with a healthy server and store, no caller gets an error.
pub(super) fn no_error_when_healthy(sim: &Sim, call: usize, error: &TokenError) -> Checked {
    let c = &sim.calls[call];
    if c.min_valid_ms == 0.0 && sim.s.healthy() {
        return Err(format!(
            "invariant 2: call {call} on {} got an error with a healthy server and store: \
             {}",
            sim.name(c.isolate),
            error.message()
        ));
    }
    Ok(())
}

/// Invariant 2: no caller gets an error while a token it could take sat in a sound
/// store since before the call and its acquisition's last read.
pub(super) fn no_error_beside_a_stored_token(
    sim: &Sim,
    call: usize,
    error: &TokenError,
) -> Checked {
    let c = &sim.calls[call];
    let isolate = c.isolate;
    // A token readable in the store throughout the call, usable by any isolate's clock.
    let allowance = shared::max_record_ahead_ms(sim.s.lifetime_s);
    let margin = allowance + clock_spread(sim) + 1_000.0;
    // The store was sound for the call and for its acquisition's last read.
    let read_at = sim.isolates[isolate].read_at;
    // A failure near their end keeps the store skipped for the cool-down after.
    let faults_over = c.started.min(read_at) > sim.s.store_faults_until + STORE_COOLDOWN_MS;
    let store_sound = sim.s.store_fault_rate == 0.0 || faults_over;
    // Written before the call began and before its acquisition's last read of the store
    // (a token stored while that read was under way is not one it could see).
    // One this isolate believes: not from further in its future than a record may be.
    let Some((StoredToken::Token(record, expiry, written, _), _)) = &sim.entries(isolate).token
    else {
        return Ok(());
    };
    let before = *written <= c.started && *written <= read_at;
    // Not one this isolate invalidated or saw refused: it never takes that again.
    let believable = record.fault(sim.now(isolate).wall).is_none()
        && !sim.isolates[isolate]
            .rejected
            .contains(&record.access_token);
    if c.min_valid_ms == 0.0 && store_sound && before && believable && expiry - sim.t > margin {
        return Err(format!(
            "invariant 2: call {call} on {name} got an error while a usable token was \
             in the store throughout its wait (written at {written:.0} ms, {:.0} ms before its \
             true expiry; the call began at {:.0} ms): {}",
            expiry - sim.t,
            c.started,
            error.message(),
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 2: no caller gets an error while its client reports a usable token
/// (`client.status()`).
pub(super) fn no_error_beside_a_held_token(sim: &Sim, call: usize, error: &TokenError) -> Checked {
    let c = &sim.calls[call];
    let now = sim.now(c.isolate);
    let status = sim.isolates[c.isolate].client.state.status(now);
    if c.min_valid_ms == 0.0 && status.has_token {
        return Err(format!(
            "invariant 2: call {call} on {} got an error while a usable token was in its \
             memory: {}",
            sim.name(c.isolate),
            error.message()
        ));
    }
    Ok(())
}

/// Invariant 3: with a healthy server and store, no token request while another
/// isolate's is in flight, unless the sender's clock shares no refresh window
/// with the stored token's writer ([`shares_no_window`]), or the request in
/// flight was sent without the lease from such a clock: it took no part in
/// the lease, so the overlap is its own.
pub(super) fn one_request_at_a_time(sim: &Sim, isolate: usize, others_in_flight: bool) -> Checked {
    if others_in_flight && sim.s.healthy() && !shares_no_window(sim, isolate) {
        return Err(format!(
            "invariant 3 (one request per window{slot}): {name} sent a token request while \
             another isolate's was in flight, with a healthy server and store",
            name = sim.name(isolate),
            slot = slot_label(sim, sim.isolates[isolate].slot)
        ));
    }
    Ok(())
}

/// Whether `isolate`'s clock and the clock of the writer of the token its
/// last read showed share no refresh window: that token is due by its clock
/// and not by its writer's, or, with clocks further apart than a record may
/// be ahead (`shared::max_record_ahead_ms`), it refused that token as from
/// its future. Such clocks cannot share one token; a request from them is
/// the design, not a duplicate. Read from the store's contents and the
/// clocks alone.
pub(super) fn shares_no_window(sim: &Sim, isolate: usize) -> bool {
    let iso = &sim.isolates[isolate];
    iso.skewed || iso.apart
}

/// Invariant 2: with a healthy server and store, no cron check fails.
pub(super) fn cron_check_fails_not_when_healthy(
    sim: &Sim,
    isolate: usize,
    cron: bool,
    error: &TokenError,
) -> Checked {
    if cron && sim.s.healthy() {
        return Err(format!(
            "invariant 2: a cron check on {name} failed with a healthy server and \
             store: {}",
            error.message(),
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 3, per slot: at the end of a healthy run: about one token
/// request per refresh (at least 40 % of a lifetime apart: the window is at
/// most half of it, jittered), besides `refresh()` calls, the new token each
/// `invalidate()` or 401 calls for, cron checks that refreshed, and requests
/// from clocks that share no window. With a pool, this is its own invariant
/// too: no slot is asked for more than one token per refresh window by
/// healthy isolates.
pub(super) fn requests_per_window(sim: &Sim) -> Checked {
    if !sim.s.healthy() {
        return Ok(());
    }
    let windows = (sim.s.run_ms / (0.4 * sim.s.lifetime_s * 1000.0)).ceil() as u32 + 1;
    for (slot, n) in sim.per_slot.iter().enumerate() {
        let bound = windows + n.refresh_calls + n.rejections + n.cron_refreshes;
        if n.requests - n.skewed > bound {
            return Err(format!(
                "invariant 3 (one request per window{}): {} token requests in {:.0} s of {} s \
                 tokens (at most {bound})",
                slot_label(sim, slot),
                n.requests,
                sim.s.run_ms / 1000.0,
                sim.s.lifetime_s
            ));
        }
    }
    Ok(())
}

/// How a violation names slot `slot`: not at all without a pool.
fn slot_label(sim: &Sim, slot: usize) -> String {
    match sim.pool_size {
        1 => String::new(),
        _ => format!(", slot {slot}"),
    }
}

/// Invariant 4: no token request right after a read that showed a shared back-off in force.
pub(super) fn shared_backoff_honoured(sim: &Sim, isolate: usize) -> Checked {
    if sim.isolates[isolate].backoff_seen > sim.now(isolate).wall {
        return Err(format!(
            "invariant 4 (shared back-off honoured): {name} sent a token request right \
             after reading a shared back-off in force",
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 4: an acquisition's first token request comes no sooner than half a
/// second after the isolate's last failed one (less only as its token ends).
pub(super) fn hold_back_honoured(sim: &Sim, isolate: usize) -> Checked {
    let iso = &sim.isolates[isolate];
    if let (false, Some((at, least))) = (iso.sent, iso.failed_at) {
        if sim.t - at < least {
            return Err(format!(
                "invariant 4 (hold-back): {name} sent a token request {:.0} ms after \
                 its last acquisition failed (at least {least:.0} ms)",
                sim.t - at,
                name = sim.name(isolate)
            ));
        }
    }
    Ok(())
}

/// The least hold-back after a failed acquisition at `wall` by `isolate`'s
/// clock, whose client reports a token usable until `usable_until` (if any).
pub(super) fn least_hold_back(wall: f64, usable_until: Option<f64>) -> f64 {
    let left = usable_until.map_or(f64::INFINITY, |until| until - wall);
    MIN_SPACING_MS.min(left - 1.0)
}

/// Invariant 5: a waiter waits on one lease holder its reads showed no longer than
/// one attempt before it tries to take the lease over.
pub(super) fn lease_wait_bounded(sim: &Sim, isolate: usize) -> Checked {
    let iso = &sim.isolates[isolate];
    let Some(holder) = &iso.last_holder else {
        return Ok(());
    };
    let first = iso.holders_seen.get(holder).copied().unwrap_or(sim.t);
    let lease_ms = sim.config.lease_ms();
    // A read's answer reaches the driver a store latency (≤ 15 ms) after the sim saw it.
    if sim.t - first > lease_ms + 20.0 {
        return Err(format!(
            "invariant 5 (lease wait): {name} still waits on lease {holder} {:.0} ms \
             after it first saw it (one attempt is {lease_ms} ms)",
            sim.t - first,
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 6: every call begun a minute (and any `Retry-After`) after the faults end is served.
pub(super) fn recovered(sim: &Sim, call: usize, error: &TokenError) -> Checked {
    let c = &sim.calls[call];
    let recovered = sim.s.faults_end() + RECOVERY_MS + sim.max_retry_after_ms;
    if c.min_valid_ms == 0.0 && c.started > recovered {
        return Err(format!(
            "invariant 6 (recovery): call {call} on {}, begun {:.0} ms after the faults \
             ended, got {}",
            sim.name(c.isolate),
            c.started - sim.s.faults_end(),
            error.message()
        ));
    }
    Ok(())
}

/// Invariant 7: a client without a store, through a 5 s outage inside its refresh
/// window, sends at most [`MAX_REQUESTS_IN_OUTAGE`] token requests during it.
pub(super) fn outage_costs_few_requests(sim: &Sim) -> Checked {
    if sim.s.lone && sim.requests_in_outage > MAX_REQUESTS_IN_OUTAGE {
        return Err(format!(
            "invariant 7 (outage): {} token requests during a 5 s outage (at most \
             {MAX_REQUESTS_IN_OUTAGE})",
            sim.requests_in_outage
        ));
    }
    Ok(())
}

/// Invariant 7: through that outage, every caller gets a usable token.
pub(super) fn outage_fails_no_caller(sim: &Sim, call: usize, error: &TokenError) -> Checked {
    if sim.s.lone {
        return Err(format!(
            "invariant 7 (outage): call {call}, begun at {:.0} ms, got an error through a 5 s \
             outage in the refresh window: {}",
            sim.calls[call].started,
            error.message()
        ));
    }
    Ok(())
}

/// Invariant 8 (rejected tokens stay gone): no isolate serves a token it
/// invalidated or saw refused with a 401.
pub(super) fn served_token_was_not_rejected(sim: &Sim, isolate: usize, token: &str) -> Checked {
    if sim.isolates[isolate].rejected.iter().any(|t| t == token) {
        return Err(format!(
            "invariant 8 (rejected tokens stay gone): {name} served a token it had \
             invalidated or seen refused with a 401",
            name = sim.name(isolate)
        ));
    }
    Ok(())
}

/// Invariant 9 (deletes): with a store, a token an isolate's client forgets on
/// `invalidate()` or a 401 is deleted from the store too (docs/DESIGN.md,
/// "Shared state"): the core names the delete, after a 401 of that token
/// only (another isolate may have stored a new one since). Without a store,
/// it names none.
pub(super) fn rejection_names_the_delete(
    sim: &Sim,
    isolate: usize,
    unauthorized: bool,
    token: &str,
    named: Option<&Effect>,
) -> Checked {
    let only = unauthorized.then(|| token.to_owned());
    let expected = (!sim.s.lone).then_some(Effect::RemoveStore { only });
    if named == expected.as_ref() {
        return Ok(());
    }
    Err(format!(
        "invariant 9 (deletes): {name} forgot its token ({}) and named {} instead of \
         {}",
        match unauthorized {
            true => "a 401",
            false => "invalidate()",
        },
        named.map_or("nothing".into(), trace::effect),
        expected.as_ref().map_or("nothing".into(), trace::effect),
        name = sim.name(isolate)
    ))
}

/// Invariant 10 (pool: no call refused beside a usable slot): no caller
/// of a process gets an error while any slot of the process reports a
/// usable token (`client.status()`); invariant 2's held token, for the pool.
pub(super) fn no_error_beside_a_usable_slot(sim: &Sim, call: usize, error: &TokenError) -> Checked {
    let c = &sim.calls[call];
    if c.min_valid_ms > 0.0 {
        return Ok(());
    }
    let usable = sim
        .slots_of(c.process)
        .find(|&i| sim.isolates[i].client.state.status(sim.now(i)).has_token);
    match usable {
        None => Ok(()),
        Some(i) => Err(format!(
            "invariant 10 (pool: no call refused beside a usable slot): call {call} on {} got an \
             error while slot {} held a usable token: {}",
            sim.name(c.isolate),
            sim.isolates[i].slot,
            error.message()
        )),
    }
}

/// Invariant 11 (pool: no burst): a call takes an empty slot to fill only
/// while no other slot of its process is being filled or held back after
/// failures, as `views` (`core.slotView`) showed them when it picked.
pub(super) fn fills_one_at_a_time(process: usize, views: &[SlotView], picked: Pick) -> Checked {
    let Pick::Fill { slot } = picked else {
        return Ok(());
    };
    let busy = views
        .iter()
        .enumerate()
        .find(|(k, v)| *k != slot && (v.filling || v.held_back));
    let why = match (views[slot].usable, busy) {
        (true, _) => "though it serves".to_owned(),
        (false, Some((k, v))) if v.filling => {
            format!("while slot {k} had an acquisition in flight")
        }
        (false, Some((k, _))) => format!("while slot {k} was held back"),
        (false, None) => return Ok(()),
    };
    Err(format!(
        "invariant 11 (pool: no burst): a call on isolate {process} filled slot {slot} {why}"
    ))
}

/// Invariant 12 (pool: a token per slot): a slot serves only a token
/// issued to a request of that slot, so the slots are as many tokens, each
/// with its own rate limit (their own KV entries, never one another's).
pub(super) fn served_token_is_the_slots(sim: &Sim, isolate: usize, token: &str) -> Checked {
    let slot = sim.isolates[isolate].slot;
    match sim.issued_to.get(token) {
        Some(&to) if to != slot => Err(format!(
            "invariant 12 (pool: a token per slot): {} served the token issued to slot {to}",
            sim.name(isolate)
        )),
        _ => Ok(()),
    }
}

/// How far apart the isolates' clocks are.
pub(super) fn clock_spread(sim: &Sim) -> f64 {
    let skews = sim.isolates.iter().map(|i| i.skew);
    skews.clone().fold(f64::NEG_INFINITY, f64::max) - skews.fold(f64::INFINITY, f64::min)
}

/// Invariant 0: no error is a bug. The executor here drives the core as
/// `deno/client.ts` does; an `internal` error means one of them is wrong.
pub(super) fn no_internal_error(who: &str, error: &TokenError) -> Checked {
    match error.code {
        ErrorCode::Internal => Err(format!(
            "invariant 0 (no internal errors): {who} ended with {}",
            error.message()
        )),
        _ => Ok(()),
    }
}
