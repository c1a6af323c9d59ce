//! How a violation's trace shows each effect and its result: what a read
//! found, how the lease went, what the server answered (its status and the
//! fields that matter), which delete an `invalidate()` or a 401 named. Times are ms of the simulation's true clock; a
//! token's text never appears, only when it ends.

use super::world::WALL0;
use crate::driver::{Effect, Outcome, Seen};
use crate::response::Received;
use crate::shared::TokenRecord;

/// An effect the driver asked for.
pub(super) fn effect(effect: &Effect) -> String {
    match effect {
        Effect::Done { record, source } => format!("done ({source:?}): {}", token(record)),
        Effect::Fail { error } => format!("fail: {}", error.message()),
        Effect::WriteStore { record } => format!("write_store: {}", token(record)),
        Effect::RemoveStore { only: None } => "remove_store".into(),
        Effect::RemoveStore { only: Some(_) } => "remove_store (only the token refused)".into(),
        Effect::SetBackoff { until } => format!("set_backoff until {}", at(*until)),
        Effect::WriteMetadata { .. } => "write_metadata".into(),
        other => format!("{other:?}"),
    }
}

/// The outcome handed back to the driver.
pub(super) fn outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Snapshot(None) => "read failed".into(),
        Outcome::Snapshot(Some(seen)) => format!("read: {}", snapshot(seen)),
        Outcome::Lease(result) => format!("lease {result:?}"),
        Outcome::Renewed(kept) => format!("lease {}", if *kept { "renewed" } else { "lost" }),
        Outcome::MetadataCopy(copy) => match copy {
            Some(_) => "metadata copy found".into(),
            None => "no metadata copy".into(),
        },
        Outcome::Signed(Ok(_)) => "signed".into(),
        Outcome::Credential(read) => format!("credential given: {}", read.is_some()),
        Outcome::Signed(Err(error)) => format!("signing failed: {}", error.message()),
        Outcome::Answer(Ok(answer)) => answered(answer),
        Outcome::Answer(Err(error)) => format!("no answer: {}", error.message()),
        Outcome::Slept => "slept".into(),
        Outcome::Stored => "stored".into(),
        Outcome::Removed => "removed".into(),
        Outcome::Broken => "broken: the executor could not perform it".into(),
    }
}

/// A wall-clock time as ms of the simulation (the writer's clock may be skewed).
fn at(wall: f64) -> String {
    format!("{:.0} ms", wall - WALL0)
}

fn token(record: &TokenRecord) -> String {
    format!(
        "token of {} s, refresh at {}, expires at {}",
        record.lifetime_seconds,
        at(record.refresh_at),
        at(record.expires_at)
    )
}

fn snapshot(seen: &Seen) -> String {
    let mut parts = vec![match &seen.token {
        Some(record) => token(record),
        None => "no token".into(),
    }];
    if let (Some(holder), Some(until)) = (&seen.lease_holder, seen.lease_until) {
        parts.push(format!("lease of {holder} until {}", at(until)));
    }
    if seen.backoff_until > 0.0 {
        parts.push(format!("back-off until {}", at(seen.backoff_until)));
    }
    parts.join("; ")
}

/// An answer's status and what matters in it: `Retry-After`, an error
/// code, a token's lifetime (never the token).
fn answered(answer: &Received) -> String {
    let mut text = format!("answer {}", answer.status);
    if let Some(retry_after) = &answer.retry_after {
        text += &format!(", Retry-After {retry_after}");
    }
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if let Some(error) = body.get("error").and_then(|e| e.as_str()) {
        text += &format!(", error {error}");
    }
    if let Some(expires_in) = body.get("expires_in") {
        text += &format!(", expires_in {expires_in}");
    }
    if let Some(endpoint) = body.get("token_endpoint") {
        text += &format!(", token_endpoint {endpoint}");
    }
    text
}
