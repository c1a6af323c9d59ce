//! The store hands the driver what it holds; the driver judges the lease
//! and the back-off (docs/DESIGN.md, "Shared state"): one a client like
//! this never writes reads as absent.

use super::*;
use crate::config::tests::config;
use crate::shared::MAX_CLOCK_SPREAD_MS;
use serde_json::json;

const NOW: Now = Now {
    wall: 1_700_000_000_000.0,
    mono: 1_000.0,
};
const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// What the driver asks for after a strong read that found `seen` (no token).
fn after_strong_read(seen: Seen) -> Effect {
    let config = config(json!({})).unwrap();
    let mut state = TokenState::new(None).sharing(true);
    let mut metadata = None;
    state.begin(NOW, false).unwrap();
    let mut driver = Driver::new(&config, NOW, true, false);
    let c = &mut Parts {
        config: &config,
        state: &mut state,
        metadata: &mut metadata,
        parse_url: |url| Some(url.to_owned()),
    };
    assert_eq!(
        driver.poll(c, NOW, 0.5),
        Effect::ReadStore { eventual: true }
    );
    driver.handle(c, NOW, Outcome::Snapshot(Some(Seen::default())), 0.5);
    assert_eq!(
        driver.poll(c, NOW, 0.5),
        Effect::ReadStore { eventual: false }
    );
    driver.handle(c, NOW, Outcome::Snapshot(Some(seen)), 0.5);
    driver.poll(c, NOW, 0.5)
}

fn lease(ahead_ms: f64) -> Seen {
    Seen {
        lease_until: Some(NOW.wall + ahead_ms),
        lease_holder: Some("other".into()),
        lease_taken_at: Some(NOW.wall),
        ..Seen::default()
    }
}

fn backoff(ahead_ms: f64) -> Seen {
    Seen {
        backoff_until: NOW.wall + ahead_ms,
        ..Seen::default()
    }
}

#[derive(Debug, PartialEq)]
enum Next {
    WaitOnLease,
    TakeLease,
    HeldBack,
}

fn next(effect: Effect) -> Next {
    match effect {
        Effect::Sleep {
            why: Wait::Lease, ..
        } => Next::WaitOnLease,
        Effect::TakeLease { .. } => Next::TakeLease,
        Effect::Fail { error } if error.code == ErrorCode::RateLimited => Next::HeldBack,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_lease_or_back_off_this_client_never_writes_is_not_honoured() {
    // Default options: 30 s deadline + 10 s request + 1 s margin make a 41 s
    // longest lease, written by a clock up to a minute ahead of this one.
    let max_lease = config(json!({})).unwrap().max_lease_ms();
    assert_eq!(max_lease, 41_000.0);
    let spread = MAX_CLOCK_SPREAD_MS;
    let cases = [
        ("a lease 5 s ahead", lease(5_000.0), Next::WaitOnLease),
        (
            "the furthest lease",
            lease(max_lease + spread),
            Next::WaitOnLease,
        ),
        (
            "a lease 1 ms further",
            lease(max_lease + spread + 1.0),
            Next::TakeLease,
        ),
        ("a lease a year ahead", lease(YEAR_MS), Next::TakeLease),
        ("a lease just past", lease(-1.0), Next::WaitOnLease),
        (
            "a lease past by the spread",
            lease(-spread),
            Next::TakeLease,
        ),
        ("a lease at infinity", lease(f64::INFINITY), Next::TakeLease),
        ("a back-off 9 min ahead", backoff(540_000.0), Next::HeldBack),
        ("a back-off a year ahead", backoff(YEAR_MS), Next::TakeLease),
        (
            "a back-off at infinity",
            backoff(f64::INFINITY),
            Next::TakeLease,
        ),
    ];
    for (what, seen, expected) in cases {
        assert_eq!(next(after_strong_read(seen)), expected, "{what}");
    }
}

#[test]
fn an_implausible_lease_reads_as_absent_holder_and_all() {
    let judged = lease(YEAR_MS).judged(NOW.wall, 41_000.0);
    assert_eq!(judged.lease_until, None);
    assert_eq!(judged.lease_holder, None);
    assert_eq!(judged.lease_taken_at, None);
    let kept = lease(5_000.0).judged(NOW.wall, 41_000.0);
    assert_eq!(kept.lease_holder.as_deref(), Some("other"));
    assert_eq!(
        backoff(YEAR_MS).judged(NOW.wall, 41_000.0).backoff_until,
        0.0
    );
}
