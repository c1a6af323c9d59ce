//! What isolates share through Deno KV, read back as untrusted input
//! (docs/DESIGN.md, "Shared state"): another process sharing the KV may be
//! broken or hostile, so a stored token is checked as strictly as a token
//! response, and leases and back-offs cannot reach further ahead than this
//! client would ever write them.

use crate::response::{is_header_safe, MAX_ACCESS_TOKEN_BYTES, MAX_LIFETIME_SECONDS};
use crate::schedule::skew_seconds;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A token as it crosses to JavaScript and as it is stored in KV.
/// `refresh_at` and `usable_until` are the writer's; a reader computes its own.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The access token.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// The scope the server granted, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `expires_in` of the response; with `expires_at` it gives when the token was requested.
    pub lifetime_seconds: f64,
    /// Expiry, epoch ms.
    pub expires_at: f64,
    /// When its holder refreshes it, epoch ms.
    pub refresh_at: f64,
    /// When its holder stops serving it (expiry minus clock skew), epoch ms.
    pub usable_until: f64,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("access_token", &"[redacted]")
            .field("lifetime_seconds", &self.lifetime_seconds)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How far ahead of our clock another isolate's clock may be when it
/// stamps a token of `lifetime_seconds` (the token looks requested in the
/// future by this much): the clock skew the refresh schedule reserves before
/// expiry for that lifetime (`schedule::skew_seconds`, at most 30 s). A
/// record from further ahead would keep a token looking valid past its real
/// expiry, so it is refused (and replaced by the token this reader fetches
/// instead); within it, the lateness stays inside the reserved margin.
pub fn max_record_ahead_ms(lifetime_seconds: f64) -> f64 {
    skew_seconds(lifetime_seconds) * 1000.0
}

/// The longest shared back-off: no answer from a server, nor a value in
/// KV, holds every isolate back for longer than this.
pub const MAX_SHARED_BACKOFF_MS: f64 = 10.0 * 60_000.0;

/// A lease lasts one request plus this margin (and the retry waits of its
/// holder, who renews it before each one).
pub const LEASE_MARGIN_MS: f64 = 1_000.0;

impl TokenRecord {
    /// Why a record read from KV is not a token to serve, or `None` if it
    /// is one: the same rules as a token response (header-safe token no
    /// longer than a response can carry, Bearer, 1 s to 1 year lifetime),
    /// finite times that agree with each other, and not requested further
    /// in the future than [`max_record_ahead_ms`] allows for its lifetime.
    pub fn fault(&self, now_ms: f64) -> Option<&'static str> {
        let requested_at = self.expires_at - self.lifetime_seconds * 1000.0;
        if self.access_token.len() > MAX_ACCESS_TOKEN_BYTES {
            Some("the access token is longer than a token response can carry")
        } else if !is_header_safe(&self.access_token) {
            Some("the access token has characters a header cannot carry")
        } else if self.token_type != "Bearer" {
            Some("the token type is not Bearer")
        } else if !(1.0..=MAX_LIFETIME_SECONDS).contains(&self.lifetime_seconds) {
            Some("the lifetime is out of range")
        } else if ![self.expires_at, self.refresh_at, self.usable_until]
            .iter()
            .all(|t| t.is_finite())
        {
            Some("a time is not a finite number")
        } else if !(requested_at <= self.refresh_at
            && self.refresh_at <= self.usable_until
            && self.usable_until <= self.expires_at)
        {
            Some("the refresh and usable times lie outside the token's life")
        } else if requested_at > now_ms + max_record_ahead_ms(self.lifetime_seconds)
            || requested_at < 0.0
        {
            Some("the token was requested in the future or before 1970")
        } else {
            None
        }
    }

    /// When the token was requested, as far as a reader whose clock reads
    /// `now_ms` can believe: never later than now. A writer whose clock runs
    /// ahead (within [`max_record_ahead_ms`]) stamps its token later than it
    /// was issued; from this reader's clock the token lives its stated
    /// lifetime at most.
    pub fn requested_at(&self, now_ms: f64) -> f64 {
        (self.expires_at - self.lifetime_seconds * 1000.0).min(now_ms)
    }
}

/// How far apart two isolates' wall clocks may be (each within 30 s of the
/// truth): a lease written by a clock ahead of ours reaches that much further.
pub const MAX_CLOCK_SPREAD_MS: f64 = 60_000.0;

/// Whether a lease deadline read from KV is live and could have been
/// written by a client like this one: on a clock up to
/// [`MAX_CLOCK_SPREAD_MS`] off ours either way, not yet past, and
/// `max_lease_ms` ahead at most. A later one is corrupt and may be taken
/// over; an earlier one is over (KV's own expiry is eventual). A live lease
/// is waited on for one attempt at most, so one that reads live too long
/// costs no more than that.
pub fn lease_is_plausible(until: f64, now_ms: f64, max_lease_ms: f64) -> bool {
    until.is_finite()
        && until > now_ms - MAX_CLOCK_SPREAD_MS
        && until <= now_ms + max_lease_ms + MAX_CLOCK_SPREAD_MS
}

/// Whether a shared back-off read from KV is within the cap.
pub fn backoff_is_plausible(until: f64, now_ms: f64) -> bool {
    until.is_finite() && until <= now_ms + MAX_SHARED_BACKOFF_MS
}

/// Until when to hold every isolate back after a failure: `wait_ms` from
/// now, capped.
pub fn shared_backoff_until(now_ms: f64, wait_ms: f64) -> f64 {
    now_ms + wait_ms.clamp(0.0, MAX_SHARED_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000_000.0;

    fn record() -> TokenRecord {
        TokenRecord {
            access_token: "canary-token-kv".into(),
            token_type: "Bearer".into(),
            scope: None,
            lifetime_seconds: 3600.0,
            expires_at: NOW + 3_000_000.0,
            refresh_at: NOW + 2_700_000.0,
            usable_until: NOW + 2_970_000.0,
        }
    }

    #[test]
    fn a_sound_record_has_no_fault() {
        assert_eq!(record().fault(NOW), None);
    }

    #[test]
    fn records_a_response_would_not_pass_are_faulty() {
        let cases: [fn(&mut TokenRecord); 11] = [
            |r| r.access_token = "abc\r\nX-Injected: 1".into(),
            |r| r.access_token = "two words".into(),
            |r| r.access_token = String::new(),
            |r| r.token_type = "mac".into(),
            |r| r.lifetime_seconds = 0.0,
            |r| r.lifetime_seconds = 10.0 * 365.0 * 86_400.0,
            |r| r.expires_at = f64::INFINITY,
            |r| r.refresh_at = f64::NAN,
            |r| r.refresh_at = r.expires_at + 1.0,
            |r| r.usable_until = r.expires_at + 1.0,
            |r| {
                // Years ahead: requested long after now.
                r.expires_at = NOW + 5.0 * 365.0 * 86_400_000.0;
                r.refresh_at = r.expires_at - 2.0;
                r.usable_until = r.expires_at - 1.0;
            },
        ];
        for (i, spoil) in cases.iter().enumerate() {
            let mut r = record();
            spoil(&mut r);
            assert!(r.fault(NOW).is_some(), "case {i}");
        }
        let mut r = record();
        r.expires_at = -1.0;
        r.refresh_at = -3.0;
        r.usable_until = -2.0;
        assert!(r.fault(NOW).is_some());
    }

    #[test]
    fn a_short_token_may_be_stamped_ahead_only_by_its_own_skew_allowance() {
        // A 5 s token: the schedule reserves 0.25 s of skew before expiry.
        let short = |ahead_ms: f64| {
            let requested = NOW + ahead_ms;
            TokenRecord {
                lifetime_seconds: 5.0,
                expires_at: requested + 5_000.0,
                refresh_at: requested + 4_000.0,
                usable_until: requested + 4_750.0,
                ..record()
            }
        };
        assert_eq!(max_record_ahead_ms(5.0), 250.0);
        assert_eq!(short(250.0).fault(NOW), None);
        assert!(short(251.0).fault(NOW).is_some());
        assert!(short(29_000.0).fault(NOW).is_some());
    }

    #[test]
    fn a_record_from_further_ahead_than_the_allowance_is_faulty() {
        let ahead = |ms: f64| {
            let mut r = record();
            r.expires_at += ms;
            r.refresh_at += ms;
            r.usable_until += ms;
            r
        };
        // `record()` was requested 600 s ago.
        let requested = NOW - 600_000.0;
        let allowance = max_record_ahead_ms(record().lifetime_seconds);
        assert_eq!(allowance, 30_000.0);
        assert_eq!(ahead(600_000.0 + allowance).fault(NOW), None);
        assert!(ahead(600_001.0 + allowance).fault(NOW).is_some());
        assert_eq!(
            ahead(620_000.0).requested_at(NOW),
            NOW,
            "never later than now"
        );
        assert_eq!(record().requested_at(NOW), requested);
    }

    #[test]
    fn a_token_longer_than_a_response_can_carry_is_faulty() {
        let mut r = record();
        r.access_token = "t".repeat(MAX_ACCESS_TOKEN_BYTES);
        assert_eq!(r.fault(NOW), None);
        r.access_token.push('t');
        assert!(r.fault(NOW).is_some());
    }

    #[test]
    fn leases_and_backoffs_beyond_what_we_write_are_implausible() {
        let spread = MAX_CLOCK_SPREAD_MS;
        assert!(lease_is_plausible(NOW + 11_000.0 + spread, NOW, 11_000.0));
        assert!(!lease_is_plausible(NOW + 11_001.0 + spread, NOW, 11_000.0));
        assert!(!lease_is_plausible(f64::INFINITY, NOW, 11_000.0));
        assert!(lease_is_plausible(NOW - spread + 1.0, NOW, 11_000.0));
        assert!(!lease_is_plausible(NOW - spread, NOW, 11_000.0));
        assert!(backoff_is_plausible(NOW + 600_000.0, NOW));
        assert!(!backoff_is_plausible(NOW + 600_001.0, NOW));
        assert_eq!(
            shared_backoff_until(NOW, 365.0 * 86_400_000.0),
            NOW + 600_000.0
        );
    }
}
