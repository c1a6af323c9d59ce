//! A keeper of token files (`exec`, `agent`; docs/DESIGN.md, "Pipelines"):
//! when it refreshes the token its files hold, when it tries again after a
//! failed refresh, and when it empties the files because the token they
//! hold stopped being usable. Sans-IO like the rest of the core: the host
//! (`deno/_token_files.ts`) writes the files, sleeps and refreshes the
//! client; every comparison with the clock is made here, on the `now` it
//! passes in (epoch ms).

/// A failed refresh is tried again after this, doubling to [`MAX_RETRY_MS`].
pub const FIRST_RETRY_MS: f64 = 1_000.0;
/// The longest wait between a keeper's tries.
pub const MAX_RETRY_MS: f64 = 60_000.0;

/// What the keeper does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing is due yet: sleep [`Keeper::wait_ms`], then ask again.
    Sleep,
    /// The token in the files stopped being usable: write them empty, then
    /// tell [`Keeper::emptied`].
    Empty,
    /// Refresh the token, then tell [`Keeper::refreshed`] or [`Keeper::failed`].
    Refresh,
}

/// The schedule of the token the files hold.
#[derive(Clone, Copy, Debug, PartialEq)]
struct InFiles {
    refresh_at: f64,
    usable_until: f64,
}

/// The keeper's state: the token in the files, if any, and when the next
/// refresh is due.
#[derive(Clone, Debug, PartialEq)]
pub struct Keeper {
    in_files: Option<InFiles>,
    failures: u32,
    due: f64,
}

impl Keeper {
    /// A keeper of files just written with a token refreshed from
    /// `refresh_at` and usable until `usable_until`; without a schedule (the
    /// client holds no usable token), a refresh is due at once.
    pub fn new(now: f64, refresh_at: Option<f64>, usable_until: Option<f64>) -> Self {
        let in_files = schedule(refresh_at, usable_until);
        Self {
            due: in_files.map_or(now, |held| held.refresh_at),
            in_files,
            failures: 0,
        }
    }

    /// What to do at `now`: empty the files once their token stops being
    /// usable (before anything else, so a reader never finds an expired
    /// token), refresh once one is due, else sleep.
    pub fn poll(&self, now: f64) -> Step {
        if self.in_files.is_some_and(|held| now >= held.usable_until) {
            Step::Empty
        } else if now >= self.due {
            Step::Refresh
        } else {
            Step::Sleep
        }
    }

    /// How long to sleep from `now`: until the refresh is due, or earlier
    /// when the token in the files stops being usable first.
    pub fn wait_ms(&self, now: f64) -> f64 {
        let empty_at = self
            .in_files
            .map_or(f64::INFINITY, |held| held.usable_until);
        (self.due.min(empty_at) - now).max(0.0)
    }

    /// The files were written empty: they hold no token until a refresh.
    pub fn emptied(&mut self) {
        self.in_files = None;
    }

    /// A refresh at `now` succeeded and the files hold its token, with this
    /// schedule. Without one (the token came already unusable) it counts
    /// as a failure, so that the keeper never refreshes in a tight loop.
    pub fn refreshed(&mut self, now: f64, refresh_at: Option<f64>, usable_until: Option<f64>) {
        match schedule(refresh_at, usable_until) {
            Some(held) => {
                self.in_files = Some(held);
                self.failures = 0;
                self.due = held.refresh_at;
            }
            None => self.failed(now),
        }
    }

    /// A refresh at `now` failed: the next try is 1 s later, doubling with
    /// each failure in a row to a minute, counted from this failure.
    pub fn failed(&mut self, now: f64) {
        self.failures = self.failures.saturating_add(1);
        let doubling = f64::from(1u32 << (self.failures - 1).min(16));
        self.due = now + (FIRST_RETRY_MS * doubling).min(MAX_RETRY_MS);
    }

    /// Until when the token in the files is usable, if they hold one: what a
    /// failure's log line says the files keep.
    pub fn holds_until(&self) -> Option<f64> {
        self.in_files.map(|held| held.usable_until)
    }
}

fn schedule(refresh_at: Option<f64>, usable_until: Option<f64>) -> Option<InFiles> {
    Some(InFiles {
        refresh_at: refresh_at?,
        usable_until: usable_until?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000_000.0;

    /// A keeper holding a token refreshed from T0 + 5 s, usable until T0 + 9 s.
    fn keeper() -> Keeper {
        Keeper::new(T0, Some(T0 + 5_000.0), Some(T0 + 9_000.0))
    }

    #[test]
    fn it_sleeps_until_the_tokens_refresh_time_then_refreshes() {
        let k = keeper();
        assert_eq!((k.poll(T0), k.wait_ms(T0)), (Step::Sleep, 5_000.0));
        assert_eq!(k.poll(T0 + 4_999.0), Step::Sleep);
        assert_eq!(k.poll(T0 + 5_000.0), Step::Refresh);
        assert_eq!(k.wait_ms(T0 + 6_000.0), 0.0);
    }

    #[test]
    fn without_a_schedule_a_refresh_is_due_at_once() {
        let k = Keeper::new(T0, None, None);
        assert_eq!((k.poll(T0), k.wait_ms(T0)), (Step::Refresh, 0.0));
        assert_eq!(k.holds_until(), None);
    }

    #[test]
    fn failures_back_off_from_1_s_doubling_to_a_minute() {
        let mut k = keeper();
        let mut waits = Vec::new();
        for n in 0..9 {
            let now = T0 + 5_000.0 + f64::from(n) * 100_000.0;
            k.failed(now);
            waits.push(k.due - now);
        }
        assert_eq!(
            waits,
            [1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 60e3, 60e3, 60e3].to_vec()
        );
        for _ in 0..100 {
            k.failed(T0);
        }
        assert_eq!(k.due - T0, MAX_RETRY_MS);
        k.refreshed(T0, Some(T0 + 50_000.0), Some(T0 + 90_000.0));
        assert_eq!(k.wait_ms(T0), 50_000.0);
        k.failed(T0 + 50_000.0);
        assert_eq!(k.wait_ms(T0 + 50_000.0), 1_000.0, "the count starts again");
    }

    #[test]
    fn a_retry_is_counted_from_the_failure_not_from_each_wake() {
        // Woken at T0 + 9 s to empty the files, the retry due at T0 + 12 s stays there.
        let mut k = keeper();
        k.failed(T0 + 5_000.0);
        k.failed(T0 + 6_000.0);
        k.failed(T0 + 8_000.0);
        assert_eq!(k.wait_ms(T0 + 8_000.0), 1_000.0, "woken to empty the files");
        assert_eq!(k.poll(T0 + 9_000.0), Step::Empty);
        k.emptied();
        assert_eq!(k.wait_ms(T0 + 9_000.0), 3_000.0);
        assert_eq!(k.poll(T0 + 12_000.0), Step::Refresh);
    }

    #[test]
    fn files_are_emptied_once_when_their_token_stops_being_usable() {
        let mut k = keeper();
        k.failed(T0 + 5_000.0);
        k.failed(T0 + 6_000.0);
        k.failed(T0 + 7_000.0); // Next try at T0 + 11 s, after the token's end.
        assert_eq!(k.wait_ms(T0 + 7_000.0), 2_000.0);
        assert_eq!(k.poll(T0 + 9_000.0), Step::Empty);
        assert_eq!(k.holds_until(), Some(T0 + 9_000.0));
        k.emptied();
        assert_eq!(k.holds_until(), None);
        assert_eq!(k.poll(T0 + 9_000.0), Step::Sleep, "emptied once");
        assert_eq!(k.wait_ms(T0 + 9_000.0), 2_000.0);
    }

    #[test]
    fn emptying_comes_before_a_refresh_due_at_the_same_time() {
        let k = Keeper::new(T0, Some(T0 + 9_000.0), Some(T0 + 9_000.0));
        assert_eq!(k.poll(T0 + 9_000.0), Step::Empty);
    }

    #[test]
    fn a_refresh_without_a_usable_token_backs_off() {
        let mut k = keeper();
        k.refreshed(T0 + 5_000.0, None, None);
        assert_eq!(k.poll(T0 + 5_000.0), Step::Sleep);
        assert_eq!(k.wait_ms(T0 + 5_000.0), 1_000.0);
    }
}
