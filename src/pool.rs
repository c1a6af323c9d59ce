//! Token pools (docs/DESIGN.md, "Token pools"): with `poolSize` N a client
//! keeps up to N tokens, each slot a client of its own (its own token state,
//! schedule, store entry and lease). What is decided here, from a view of
//! every slot: which slot serves the next call, and what a call that got a
//! 429 does next: move to another slot at once, wait for the slot free
//! soonest, or return the 429 (`after_429`).
//!
//! Slots fill lazily and one at a time: an empty slot is filled by the call
//! that picks it, and only while no other slot is being filled, so a pool
//! never sends a burst of token requests.

use crate::clock::Now;
use crate::config::RetryPolicy;
use crate::rate_limit::{ApiCall, ApiStep};
use serde::{Deserialize, Serialize};

/// One slot as the pool sees it when it picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotView {
    /// It holds a token it serves now.
    pub usable: bool,
    /// An acquisition is in flight for it.
    pub filling: bool,
    /// Its token requests are held back after failures: not one to fill.
    pub held_back: bool,
    /// Until when its token cools after a 429, monotonic ms.
    pub cooling_until: f64,
    /// When a call last took it, monotonic ms (never: any value below
    /// every other); the wrapper keeps it.
    #[serde(default)]
    pub last_used: f64,
}

impl SlotView {
    fn cooling(&self, mono: f64) -> bool {
        mono < self.cooling_until
    }
}

/// Which slot serves the next call, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Pick {
    /// A slot with a usable token that does not cool: the least recently used one.
    Use {
        /// Its index.
        slot: usize,
    },
    /// An empty slot, filled by this call (no other slot is being filled).
    Fill {
        /// Its index.
        slot: usize,
    },
    /// Every slot cools or is being filled: this one is free soonest (an
    /// empty slot being filled first; else the one whose cooling ends first).
    Wait {
        /// Its index.
        slot: usize,
    },
}

impl Pick {
    /// The slot picked.
    pub fn slot(self) -> usize {
        match self {
            Pick::Use { slot } | Pick::Fill { slot } | Pick::Wait { slot } => slot,
        }
    }
}

/// The slot for the next call at monotonic `mono`: an empty slot while no
/// slot is being filled or held back after failures (the pool grows one
/// token at a time, as calls come, and not while the token endpoint fails);
/// else the least recently used slot that is usable and does not cool;
/// else the one free soonest. `slots` is never empty.
pub fn pick(slots: &[SlotView], mono: f64) -> Pick {
    let filling = slots.iter().position(|s| s.filling);
    // A slot held back after failures says the token endpoint fails: no
    // other slot is filled meanwhile (the back-off covers every slot).
    let failing = slots.iter().any(|s| s.held_back);
    if filling.is_none() && !failing {
        if let Some(slot) = slots.iter().position(|s| !s.usable && !s.held_back) {
            return Pick::Fill { slot };
        }
    }
    if let Some(slot) = least_recently_used(slots, mono) {
        return Pick::Use { slot };
    }
    // A slot being filled from empty is free once its token comes; one
    // refreshing a token that cools is not free any sooner for it.
    if let Some(slot) = slots.iter().position(|s| s.filling && !s.usable) {
        return Pick::Wait { slot };
    }
    let soonest = slots
        .iter()
        .enumerate()
        .min_by(|(_, a), (_, b)| a.cooling_until.total_cmp(&b.cooling_until))
        .map_or(0, |(slot, _)| slot);
    Pick::Wait { slot: soonest }
}

/// The least recently used slot that serves and does not cool, if any.
fn least_recently_used(slots: &[SlotView], mono: f64) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.usable && !s.cooling(mono))
        .min_by(|(_, a), (_, b)| a.last_used.total_cmp(&b.last_used))
        .map(|(slot, _)| slot)
}

/// A call's slot failed to give it a token (its acquisition failed): the
/// slot that serves it instead, the least recently used one that serves
/// and does not cool, if any (no second fill for this call).
pub fn instead(slots: &[SlotView], mono: f64) -> Option<usize> {
    least_recently_used(slots, mono)
}

/// A call got a 429 and its slot now cools: the slot it moves to at once,
/// if one is usable (or empty, to be filled) and does not cool, the body
/// can be replayed and the call has sent fewer than `max_attempts` times;
/// `None`: no slot to move to (the call waits or returns the 429).
pub fn moves(
    slots: &[SlotView],
    mono: f64,
    call: &ApiCall,
    replayable: bool,
    max_attempts: u32,
) -> Option<usize> {
    if !replayable || call.sends >= max_attempts {
        return None;
    }
    match pick(slots, mono) {
        Pick::Use { slot } | Pick::Fill { slot } => Some(slot),
        Pick::Wait { .. } => None,
    }
}

/// What a call does after a 429 (`after_429`): the loop sends next on the
/// slot named, and on no other.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum AfterLimit {
    /// Send again at once with this slot (filled first when empty).
    Move {
        /// Its index.
        slot: usize,
    },
    /// Wait `ms` for this slot to stop cooling, then send with it.
    Wait {
        /// Its index.
        slot: usize,
        /// How long, ms.
        ms: f64,
    },
    /// Hand the 429 to the caller.
    Return,
}

/// The one answer to a 429 that slot `own` got (its cooling already in
/// `slots`, a view of every slot; a client alone is a pool of one),
/// at `now` for `call`:
///
/// - move at once to another slot that is usable (or empty, to be
///   filled) and does not cool (`moves`), while attempts allow;
/// - else wait for the slot that answered when that wait fits the call
///   (`ApiCall::rate_limited`: a replayable body, attempts left, within
///   `retry.deadlineMs`), or else for the other slot that cools and is
///   free soonest when that one fits;
/// - else return the 429.
///
/// A move never takes the call's last attempt while such a wait fits:
/// another slot that this process does not know to cool may still be over
/// its limit (other isolates use it, and their 429s reach this one only
/// when it next reads that slot's token), while a slot that cools has named
/// when it has room (its `Retry-After`), so the last attempt goes after
/// that wait rather than on a guess. When no wait fits, a move may take it:
/// a guess beats a 429 returned while another slot may serve.
pub fn after_429(
    slots: &[SlotView],
    now: Now,
    call: &ApiCall,
    replayable: bool,
    policy: &RetryPolicy,
    own: usize,
) -> AfterLimit {
    let wait_for =
        |slot: usize| match call.rate_limited(now, slots[slot].cooling_until, replayable, policy) {
            ApiStep::Wait { ms } => Some(AfterLimit::Wait { slot, ms }),
            ApiStep::Send | ApiStep::Return => None,
        };
    // Its own slot first: waiters then spread over the slots their 429s
    // came from, rather than all landing together on the one free soonest.
    let soonest = slots
        .iter()
        .enumerate()
        .filter(|&(slot, s)| slot != own && s.cooling(now.mono))
        .min_by(|(_, a), (_, b)| a.cooling_until.total_cmp(&b.cooling_until))
        .map(|(slot, _)| slot);
    let wait = wait_for(own).or_else(|| soonest.and_then(wait_for));
    let last = call.sends + 1 >= policy.max_attempts;
    let to = moves(slots, now.mono, call, replayable, policy.max_attempts)
        .filter(|_| !(last && wait.is_some()));
    match (to, wait) {
        // Its own slot does not cool (`Retry-After: 0`) and serves next: it
        // is sent again at once, as a move would be, past the deadline too.
        (Some(slot), _) if slot == own => AfterLimit::Wait { slot, ms: 0.0 },
        (Some(slot), _) => AfterLimit::Move { slot },
        (None, Some(wait)) => wait,
        (None, None) => AfterLimit::Return,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 10_000.0;

    fn usable(last_used: f64) -> SlotView {
        SlotView {
            usable: true,
            last_used,
            ..SlotView::default()
        }
    }

    fn empty() -> SlotView {
        SlotView {
            last_used: f64::NEG_INFINITY,
            ..SlotView::default()
        }
    }

    fn cooling(mut slot: SlotView, until: f64) -> SlotView {
        slot.cooling_until = until;
        slot
    }

    #[test]
    fn the_least_recently_used_usable_slot_that_does_not_cool_serves() {
        let slots = [usable(300.0), usable(100.0), usable(200.0)];
        assert_eq!(pick(&slots, NOW), Pick::Use { slot: 1 });
        let slots = [
            usable(300.0),
            cooling(usable(100.0), NOW + 1.0),
            usable(200.0),
        ];
        assert_eq!(pick(&slots, NOW), Pick::Use { slot: 2 });
        // A cooling that has ended is no cooling.
        let slots = [usable(300.0), cooling(usable(100.0), NOW), usable(200.0)];
        assert_eq!(pick(&slots, NOW), Pick::Use { slot: 1 });
    }

    #[test]
    fn empty_slots_fill_one_at_a_time_as_calls_come() {
        let slots = [usable(100.0), empty(), empty()];
        assert_eq!(pick(&slots, NOW), Pick::Fill { slot: 1 });
        // While slot 1 fills, calls go to the slots that serve: no second request.
        let mut slots = slots;
        slots[1].filling = true;
        assert_eq!(pick(&slots, NOW), Pick::Use { slot: 0 });
        // Nothing serves yet: the call waits for the slot being filled.
        let slots = [
            SlotView {
                filling: true,
                ..empty()
            },
            empty(),
        ];
        assert_eq!(pick(&slots, NOW), Pick::Wait { slot: 0 });
        // A slot held back after failures is not filled while another serves,
        // and while one is held back no other is filled.
        let slots = [
            usable(100.0),
            SlotView {
                held_back: true,
                ..empty()
            },
            empty(),
        ];
        assert_eq!(pick(&slots, NOW), Pick::Use { slot: 0 });
    }

    #[test]
    fn when_every_slot_cools_the_one_free_soonest_is_picked() {
        let slots = [
            cooling(usable(1.0), NOW + 3_000.0),
            cooling(usable(2.0), NOW + 1_000.0),
            cooling(usable(3.0), NOW + 2_000.0),
        ];
        assert_eq!(pick(&slots, NOW), Pick::Wait { slot: 1 });
        // A slot refreshing a token that cools is not free sooner for it:
        // what a pick reads of slots that all serve is their cooling alone.
        let mut refreshing = slots;
        refreshing[0].filling = true;
        assert_eq!(pick(&refreshing, NOW), Pick::Wait { slot: 1 });
    }

    #[test]
    fn a_call_whose_slot_failed_goes_to_a_slot_that_serves() {
        let failed = SlotView {
            held_back: true,
            ..empty()
        };
        assert_eq!(instead(&[usable(1.0), failed], NOW), Some(0));
        assert_eq!(
            instead(&[cooling(usable(1.0), NOW + 1.0), failed], NOW),
            None
        );
    }

    #[test]
    fn a_429_moves_the_call_at_once_to_a_slot_that_does_not_cool() {
        let call = ApiCall {
            started: 0.0,
            sends: 1,
        };
        let slots = [cooling(usable(5.0), NOW + 1_000.0), usable(1.0)];
        assert_eq!(moves(&slots, NOW, &call, true, 4), Some(1));
        assert_eq!(moves(&slots, NOW, &call, false, 4), None, "a stream body");
        let spent = ApiCall { sends: 4, ..call };
        assert_eq!(moves(&slots, NOW, &spent, true, 4), None, "attempts spent");
        // An empty slot is filled for it.
        let slots = [cooling(usable(5.0), NOW + 1_000.0), empty()];
        assert_eq!(moves(&slots, NOW, &call, true, 4), Some(1));
        // Every slot cools: the slot's own answer stands.
        let slots = [
            cooling(usable(5.0), NOW + 1_000.0),
            cooling(usable(1.0), NOW + 500.0),
        ];
        assert_eq!(moves(&slots, NOW, &call, true, 4), None);
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default() // deadline 30 s
        }
    }

    const AT: Now = Now {
        wall: 1_700_000_000_000.0,
        mono: NOW,
    };

    #[test]
    fn after_a_429_the_call_moves_at_once_to_a_slot_that_does_not_cool() {
        let call = ApiCall {
            started: NOW,
            sends: 1,
        };
        let slots = [cooling(usable(5.0), NOW + 1_000.0), usable(1.0)];
        let after = |slots: &[SlotView], call: &ApiCall, replayable| {
            after_429(slots, AT, call, replayable, &policy(4), 0)
        };
        assert_eq!(after(&slots, &call, true), AfterLimit::Move { slot: 1 });
        assert_eq!(
            after(&slots, &call, false),
            AfterLimit::Return,
            "a stream body"
        );
        // An empty slot is filled for it.
        let slots = [cooling(usable(5.0), NOW + 1_000.0), empty()];
        assert_eq!(after(&slots, &call, true), AfterLimit::Move { slot: 1 });
        // Every slot cools: it waits for its own when that wait fits, so
        // that waiters spread over the slots rather than all landing on the
        // one free soonest; else for the one free soonest.
        let slots = [
            cooling(usable(5.0), NOW + 4_000.0),
            cooling(usable(1.0), NOW + 2_000.0),
            cooling(usable(2.0), NOW + 3_000.0),
        ];
        assert_eq!(
            after(&slots, &call, true),
            AfterLimit::Wait {
                slot: 0,
                ms: 4_000.0
            }
        );
        let slots = [
            cooling(usable(5.0), NOW + 60_000.0),
            cooling(usable(1.0), NOW + 2_000.0),
            cooling(usable(2.0), NOW + 3_000.0),
        ];
        assert_eq!(
            after(&slots, &call, true),
            AfterLimit::Wait {
                slot: 1,
                ms: 2_000.0
            }
        );
        // No wait fits the deadline: the 429 goes back.
        let slots = [
            cooling(usable(5.0), NOW + 60_000.0),
            cooling(usable(1.0), NOW + 40_000.0),
        ];
        assert_eq!(after(&slots, &call, true), AfterLimit::Return);
        let spent = ApiCall { sends: 4, ..call };
        let slots = [cooling(usable(5.0), NOW + 1_000.0), usable(1.0)];
        assert_eq!(
            after(&slots, &spent, true),
            AfterLimit::Return,
            "attempts spent"
        );
    }

    #[test]
    fn a_move_never_takes_the_last_attempt_while_a_wait_fits() {
        let slots = [
            cooling(usable(5.0), NOW + 1_000.0),
            cooling(usable(6.0), NOW + 900.0),
            usable(1.0),
        ];
        let second = ApiCall {
            started: NOW,
            sends: 2,
        };
        let after = |slots: &[SlotView], call: &ApiCall, max| {
            after_429(slots, AT, call, true, &policy(max), 0)
        };
        assert_eq!(after(&slots, &second, 4), AfterLimit::Move { slot: 2 });
        // Three sends, three 429s: the fourth goes after the wait the slot
        // named, on that slot, not to a slot the API has not answered yet.
        let third = ApiCall { sends: 3, ..second };
        assert_eq!(
            after(&slots, &third, 4),
            AfterLimit::Wait {
                slot: 0,
                ms: 1_000.0
            }
        );
        // No wait fits: the move takes the last attempt.
        let late = ApiCall {
            started: NOW - 29_500.0,
            ..third
        };
        assert_eq!(after(&slots, &late, 4), AfterLimit::Move { slot: 2 });
        // With two attempts, the one after a 429 is the wait's.
        let first = ApiCall { sends: 1, ..second };
        assert!(matches!(after(&slots, &first, 2), AfterLimit::Wait { .. }));
        assert_eq!(after(&slots, &first, 3), AfterLimit::Move { slot: 2 });
    }

    #[test]
    fn a_pool_of_one_answers_a_429_as_a_client_alone_does() {
        let policy = policy(4);
        for (until, sends, replayable) in [
            (NOW + 2_000.0, 1, true),
            (NOW + 29_000.0, 1, true),
            (NOW + 29_001.0, 1, true),
            (NOW + 2_000.0, 1, false),
            (NOW + 2_000.0, 4, true),
            (NOW, 1, true), // Retry-After: 0
        ] {
            let call = ApiCall {
                started: NOW - 1_000.0,
                sends,
            };
            let slots = [cooling(usable(NOW), until)];
            let alone = match call.rate_limited(AT, until, replayable, &policy) {
                ApiStep::Wait { ms } => AfterLimit::Wait { slot: 0, ms },
                _ => AfterLimit::Return,
            };
            assert_eq!(after_429(&slots, AT, &call, replayable, &policy, 0), alone);
        }
    }

    #[test]
    fn a_slot_whose_429_named_no_wait_is_sent_with_again_not_moved_from() {
        // Retry-After: 0 on slot 1: it does not cool, and was used last.
        let slots = [usable(1.0), cooling(usable(NOW), NOW)];
        let call = ApiCall {
            started: NOW,
            sends: 1,
        };
        assert_eq!(
            after_429(&slots, AT, &call, true, &policy(4), 1),
            AfterLimit::Move { slot: 0 }
        );
        let slots = [cooling(usable(1.0), NOW + 500.0), cooling(usable(NOW), NOW)];
        assert_eq!(
            after_429(&slots, AT, &call, true, &policy(4), 1),
            AfterLimit::Wait { slot: 1, ms: 0.0 }
        );
        // Past the call's deadline too: a send at once is no wait, and no
        // call is refused while a slot serves without cooling.
        let late = ApiCall {
            started: NOW - 60_000.0,
            sends: 1,
        };
        assert_eq!(
            after_429(&slots, AT, &late, true, &policy(4), 1),
            AfterLimit::Wait { slot: 1, ms: 0.0 }
        );
    }
}
