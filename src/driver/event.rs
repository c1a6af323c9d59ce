//! What the driver reports to the `onEvent` hook, through the client
//! (docs/DESIGN.md, "The effect loop"): [`Driver::take_events`](super::Driver::take_events).

use crate::clock::Now;
use crate::error::{ErrorCode, TokenError};
use serde::Serialize;

/// What an acquisition reports to the `onEvent` hook. Never a credential.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// The acquisition starts.
    FetchStart {
        /// When, epoch ms.
        at: f64,
    },
    /// A token arrived.
    FetchOk {
        /// When, epoch ms.
        at: f64,
        /// Its lifetime, as the server set it.
        lifetime_seconds: f64,
        /// Attempts it took.
        attempts: u32,
    },
    /// An attempt failed.
    FetchError {
        /// When, epoch ms.
        at: f64,
        /// Why.
        code: ErrorCode,
        /// The HTTP status, if there was an answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Whether another attempt may help.
        retryable: bool,
        /// Which attempt, from 1.
        attempt: u32,
    },
    /// The acquisition waits for another isolate's token (its lease), once per acquisition.
    LeaseWait {
        /// When, epoch ms.
        at: f64,
    },
    /// Another attempt follows after a wait.
    Retry {
        /// When, epoch ms.
        at: f64,
        /// The wait.
        delay_ms: f64,
        /// The attempt that failed.
        attempt: u32,
    },
    /// freshtoken went wrong itself (an `internal` error): a bug to report.
    InternalError {
        /// When, epoch ms.
        at: f64,
        /// What went wrong (our words, never a credential).
        message: String,
    },
}

impl Event {
    /// The `internal_error` event of `error`, an `internal` one.
    pub fn internal(now: Now, error: &TokenError) -> Self {
        Self::InternalError {
            at: now.wall,
            message: error.description.clone().unwrap_or_default(),
        }
    }

    /// The `fetch_error` event of `error`.
    pub fn error(now: Now, error: &TokenError, attempt: u32) -> Self {
        Self::FetchError {
            at: now.wall,
            code: error.code,
            status: error.status,
            retryable: error.retryable,
            attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: Now = Now {
        wall: 1_000_000.0,
        mono: 5.0,
    };

    #[test]
    fn events_serialise_as_the_wrapper_documents_them() {
        let e = TokenError::new(ErrorCode::ServerError, "down").with_status(503);
        assert_eq!(
            serde_json::to_value(Event::error(T0, &e, 2)).unwrap(),
            json!({ "type": "fetch_error", "at": T0.wall, "code": "server_error", "status": 503,
                    "retryable": true, "attempt": 2 })
        );
        assert_eq!(
            serde_json::to_value(Event::FetchOk {
                at: 1.0,
                lifetime_seconds: 300.0,
                attempts: 1
            })
            .unwrap(),
            json!({ "type": "fetch_ok", "at": 1.0, "lifetimeSeconds": 300.0, "attempts": 1 })
        );
    }
}
