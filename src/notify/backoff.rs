//! The stream's back-off (docs/DESIGN.md, "Notifications"): exponential
//! with full jitter, so that many streams dropped at once by one server do
//! not come back at once.

/// The first wait's ceiling.
pub const BASE_MS: f64 = 500.0;
/// No wait is longer.
pub const MAX_MS: f64 = 60_000.0;
/// A connection that stayed open this long starts the back-off over.
pub const RESET_AFTER_MS: f64 = 60_000.0;

/// Consecutive failures, and the waits they earn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The ceiling of the wait after `failures` consecutive failures: 0.5 s doubling to 60 s.
    pub fn ceiling(failures: u32) -> f64 {
        (BASE_MS * 2f64.powi(failures.min(16) as i32)).min(MAX_MS)
    }

    /// The wait before the next attempt, `rand` in `[0, 1)` of the ceiling (full jitter); counts a failure.
    pub fn next_delay(&mut self, rand: f64) -> f64 {
        let delay = rand.clamp(0.0, 1.0) * Self::ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A connection ended after `lived_ms`: a long one resets the count.
    pub fn connection_ended(&mut self, lived_ms: f64) {
        if lived_ms >= RESET_AFTER_MS {
            self.failures = 0;
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}
