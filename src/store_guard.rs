//! The store's failure policy (docs/DESIGN.md, "Shared state"): how long
//! one operation may take, when one that SQLite refuses as "database is
//! locked" is tried again, and how long the store is skipped after it
//! failed. The executor of store operations (deno/kv_store.ts, and the
//! simulator's) runs each operation, reads the client's clock and does what
//! [`StoreGuard`] says; a store failure never fails a caller.

/// A store operation slower than this counts as a failure.
pub const STORE_TIMEOUT_MS: f64 = 2_000.0;
/// After a store failure the store is skipped this long, so that a dead
/// store costs no time (callers carry on in memory).
pub const STORE_COOLDOWN_MS: f64 = 5_000.0;
/// How long a store operation that SQLite refuses as "database is locked"
/// (other processes committing) is tried again.
pub const LOCKED_RETRY_MS: f64 = 3_000.0;

/// One client's store guard: when its store is skipped.
#[derive(Clone, Debug, Default)]
pub struct StoreGuard {
    /// Until when the store is skipped, on the client's clock (ms).
    down_until: f64,
}

impl StoreGuard {
    /// A guard for a store that has not failed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an operation may run at `now`: not while cooling down after a failure.
    pub fn allows(&self, now: f64) -> bool {
        now >= self.down_until
    }

    /// The operation begun at `started` failed for the `attempt`th time at
    /// `now` with `message`: the wait before trying it again (a locked
    /// database), or `None`: it fails, and the store is skipped for
    /// [`STORE_COOLDOWN_MS`]. `rand` in `[0, 1)` jitters the wait.
    pub fn failed(
        &mut self,
        message: &str,
        attempt: u32,
        started: f64,
        now: f64,
        rand: f64,
    ) -> Option<f64> {
        let retry = match is_locked(message) {
            true => locked_retry_ms(attempt, started, now, rand),
            false => None,
        };
        if retry.is_none() {
            self.down_until = now + STORE_COOLDOWN_MS;
        }
        retry
    }
}

/// Whether a store's error says SQLite refused it as locked.
fn is_locked(message: &str) -> bool {
    message.to_ascii_lowercase().contains("database is locked")
}

/// The wait before trying again a store operation refused as locked for
/// the `attempt`th time, begun at `started` (ms, now `now`): 5 ms doubling
/// to 100 ms, jittered by `rand` so that processes do not retry in step;
/// `None` once [`LOCKED_RETRY_MS`] have passed.
fn locked_retry_ms(attempt: u32, started: f64, now: f64, rand: f64) -> Option<f64> {
    let step = (5.0 * f64::from(1u32 << attempt.min(10))).min(100.0);
    (now - started < LOCKED_RETRY_MS).then_some(rand * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_700_000_000_000.0;

    #[test]
    fn a_failure_skips_the_store_for_the_cool_down() {
        let mut guard = StoreGuard::new();
        assert!(guard.allows(T));
        assert_eq!(
            guard.failed("KV did not answer", 1, T, T + 2_000.0, 0.5),
            None
        );
        assert!(!guard.allows(T + 2_000.0));
        assert!(!guard.allows(T + 6_999.0));
        assert!(guard.allows(T + 7_000.0));
    }

    #[test]
    fn a_locked_database_is_tried_again_for_three_seconds() {
        let mut guard = StoreGuard::new();
        let waits: Vec<Option<f64>> = (1..=6)
            .map(|attempt| guard.failed("Database is LOCKED", attempt, T, T + 10.0, 0.999))
            .collect();
        // 5 ms doubling to 100 ms, jittered below each step.
        let steps = [10.0, 20.0, 40.0, 80.0, 100.0, 100.0];
        for (wait, step) in waits.iter().zip(steps) {
            let wait = wait.expect("tried again");
            assert!(wait < step && wait > step * 0.99, "{wait} of {step}");
        }
        assert!(
            guard.allows(T + 10.0),
            "no cool-down while it is tried again"
        );
        assert_eq!(
            guard.failed("database is locked", 7, T, T + 2_999.0, 0.5),
            Some(50.0)
        );
        assert_eq!(
            guard.failed("database is locked", 8, T, T + 3_000.0, 0.5),
            None
        );
        assert!(!guard.allows(T + 3_000.0));
        assert!(guard.allows(T + 8_000.0));
    }
}
