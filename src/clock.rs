//! The time, as the core is told it: it never reads a clock itself.

/// A moment, on both clocks the host has.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Now {
    /// Wall clock, epoch milliseconds: comparable across processes (KV) and
    /// with the server's idea of time, but it may jump.
    pub wall: f64,
    /// Monotonic clock, milliseconds from any origin: never jumps, so it
    /// bounds waits, deadlines and a token's age in this process.
    pub mono: f64,
}

impl Now {
    /// The same moment `ms` milliseconds later on both clocks.
    pub fn plus(self, ms: f64) -> Self {
        Self {
            wall: self.wall + ms,
            mono: self.mono + ms,
        }
    }
}
