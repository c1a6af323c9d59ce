//! Each shape that crosses the boundary is declared once, in Rust; the
//! TypeScript declarations of `pkg/freshtoken.d.ts` (written by hand in
//! `src/wasm.rs`, as serde-wasm-bindgen writes no types) are checked here
//! against what the Rust types serialise to: every variant and every field,
//! both ways. Adding a variant without its declaration fails to compile
//! (the `match`es below) or fails these tests.

use crate::call::Step;
use crate::driver::Event;
use crate::driver::{Effect, TokenSource, Wait};
use crate::error::{ErrorCode, TokenError};
use crate::pool::AfterLimit;
use crate::shared::TokenRecord;
use crate::state::Status;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const DECLARATIONS: &str = include_str!("../pkg/freshtoken.d.ts");

/// A declared field: its name and whether it is optional.
type Fields = BTreeMap<String, bool>;

/// The fields of `{ a: T; b?: U }`.
fn fields(body: &str) -> Fields {
    body.split(';')
        .filter_map(|part| part.split_once(':'))
        .map(|(name, _)| {
            let name = name.trim();
            (name.trim_end_matches('?').to_owned(), name.ends_with('?'))
        })
        .collect()
}

/// The members of `export type NAME = | { type: "x"; … } | …;`, by their `type`.
fn union(name: &str) -> BTreeMap<String, Fields> {
    let start = DECLARATIONS
        .find(&format!("export type {name} ="))
        .unwrap_or_else(|| panic!("{name} is declared"));
    let text = &DECLARATIONS[start..];
    let end = text.find(";\n").expect("the union ends");
    text[..end]
        .lines()
        .filter_map(|line| {
            let line = line.split("//").next()?.trim();
            let body = line.strip_prefix("| {")?.trim_end_matches(';').trim_end();
            let body = body.strip_suffix('}')?;
            let fields = fields(body);
            let tag = body.split('"').nth(1)?.to_owned();
            Some((tag, fields))
        })
        .collect()
}

/// The fields of `export interface NAME { … }`.
fn interface(name: &str) -> Fields {
    let start = DECLARATIONS
        .find(&format!("export interface {name} {{"))
        .unwrap_or_else(|| panic!("{name} is declared"));
    let text = &DECLARATIONS[start..];
    let body = &text[text.find('{').unwrap() + 1..text.find("\n}").unwrap()];
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("/**") && !l.starts_with('*') && !l.is_empty())
        .collect();
    fields(&lines.join(" "))
}

/// `value`'s keys fit `declared`: none undeclared, none required missing.
fn fits(what: &str, declared: &Fields, value: &Value) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is an object"));
    for key in object.keys() {
        assert!(declared.contains_key(key), "{what}: {key} is not declared");
    }
    for (name, optional) in declared {
        assert!(
            *optional || object.contains_key(name),
            "{what}: {name} is declared but never sent"
        );
    }
}

fn record() -> TokenRecord {
    TokenRecord {
        access_token: "t".into(),
        token_type: "Bearer".into(),
        scope: Some("s".into()),
        lifetime_seconds: 60.0,
        expires_at: 2.0,
        refresh_at: 1.0,
        usable_until: 1.5,
    }
}

fn error() -> TokenError {
    let mut error = TokenError::new(ErrorCode::RateLimited, "held back").with_status(429);
    error.retry_after_seconds = Some(3.0);
    error
}

/// One of each effect; the `match` fails to compile when a variant is added.
fn effects() -> Vec<Effect> {
    let all = vec![
        Effect::ReadStore { eventual: true },
        Effect::TakeLease { ttl_ms: 1.0 },
        Effect::RenewLease { ttl_ms: 1.0 },
        Effect::ReleaseLease,
        Effect::WriteStore { record: record() },
        Effect::RemoveStore {
            only: Some("t".into()),
        },
        Effect::SetBackoff { until: 1.0 },
        Effect::ReadMetadata,
        Effect::WriteMetadata { copy: "{}".into() },
        Effect::Sleep {
            ms: 1.0,
            why: Wait::Lease,
        },
        Effect::Sign,
        Effect::Credential { timeout_ms: 1.0 },
        Effect::Send { timeout_ms: 1.0 },
        Effect::Done {
            record: record(),
            source: TokenSource::Kv,
        },
        Effect::Fail { error: error() },
    ];
    for effect in &all {
        match effect {
            Effect::ReadStore { .. }
            | Effect::TakeLease { .. }
            | Effect::RenewLease { .. }
            | Effect::ReleaseLease
            | Effect::WriteStore { .. }
            | Effect::RemoveStore { .. }
            | Effect::SetBackoff { .. }
            | Effect::ReadMetadata
            | Effect::WriteMetadata { .. }
            | Effect::Sleep { .. }
            | Effect::Sign
            | Effect::Credential { .. }
            | Effect::Send { .. }
            | Effect::Done { .. }
            | Effect::Fail { .. } => {}
        }
    }
    all
}

/// One of each event; the `match` fails to compile when a variant is added.
fn events() -> Vec<Event> {
    let all = vec![
        Event::FetchStart { at: 1.0 },
        Event::FetchOk {
            at: 1.0,
            lifetime_seconds: 60.0,
            attempts: 1,
        },
        Event::error(crate::clock::Now::default(), &error(), 1),
        Event::LeaseWait { at: 1.0 },
        Event::Retry {
            at: 1.0,
            delay_ms: 5.0,
            attempt: 1,
        },
        Event::InternalError {
            at: 1.0,
            message: "a bug".into(),
        },
    ];
    for event in &all {
        match event {
            Event::FetchStart { .. }
            | Event::FetchOk { .. }
            | Event::FetchError { .. }
            | Event::LeaseWait { .. }
            | Event::Retry { .. }
            | Event::InternalError { .. } => {}
        }
    }
    all
}

/// One of each caller's step; the `match` fails to compile when a variant is added.
fn steps() -> Vec<Step> {
    let all = vec![
        Step::Serve {
            hit: true,
            refresh: false,
        },
        Step::Wait { ms: 1.0 },
        Step::Run,
        Step::Join,
        Step::Fail { error: error() },
    ];
    for step in &all {
        match step {
            Step::Serve { .. } | Step::Wait { .. } | Step::Run | Step::Join | Step::Fail { .. } => {
            }
        }
    }
    all
}

/// Every member of the union `name` is sent, and every value sent is a member.
fn check_union(name: &str, values: Vec<Value>) {
    let declared = union(name);
    let mut sent = Vec::new();
    for value in values {
        let tag = value["type"].as_str().expect("a tagged value").to_owned();
        let fields = declared
            .get(&tag)
            .unwrap_or_else(|| panic!("{name}: {tag} is not declared"));
        fits(&format!("{name} {tag}"), fields, &value);
        sent.push(tag);
    }
    for tag in declared.keys() {
        assert!(
            sent.contains(tag),
            "{name}: {tag} is declared but never sent"
        );
    }
}

#[test]
fn effects_and_events_are_declared_as_they_serialise() {
    check_union(
        "CoreEffect",
        effects()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect(),
    );
    check_union(
        "CallStep",
        steps()
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect(),
    );
    let after = [
        AfterLimit::Move { slot: 1 },
        AfterLimit::Wait { slot: 1, ms: 1.0 },
        AfterLimit::Return,
    ];
    for answer in &after {
        match answer {
            AfterLimit::Move { .. } | AfterLimit::Wait { .. } | AfterLimit::Return => {}
        }
    }
    check_union(
        "AfterLimit",
        after
            .iter()
            .map(|a| serde_json::to_value(a).unwrap())
            .collect(),
    );
    check_union(
        "CoreEvent",
        events()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect(),
    );
}

#[test]
fn records_errors_and_status_are_declared_as_they_serialise() {
    fits(
        "TokenRecord",
        &interface("TokenRecord"),
        &serde_json::to_value(record()).unwrap(),
    );
    let error =
        serde_json::to_value(error().from_source(&crate::error::Source::new("https://a", "id")))
            .unwrap();
    fits("CoreError", &interface("CoreError"), &error);
    let status = Status {
        has_token: true,
        expires_at: Some(1.0),
        refresh_at: Some(1.0),
        lifetime_seconds: Some(1.0),
        usable_until: Some(1.0),
        fetches: 1,
        last_error: Some(crate::error::TokenError::config("x")),
    };
    fits(
        "CoreStatus",
        &interface("CoreStatus"),
        &serde_json::to_value(status).unwrap(),
    );
    let config = crate::config::tests::config(json!({ "audience": "a" })).unwrap();
    fits(
        "Identity",
        &interface("Identity"),
        &serde_json::to_value(config.kv_identity()).unwrap(),
    );
}

/// The public `TokenEvent` of `deno/types.ts`: each member, by its `type`,
/// with `TokenEventBase`'s fields added.
fn token_event_members() -> BTreeMap<String, Fields> {
    const TYPES: &str = include_str!("../deno/types.ts");
    let start = TYPES
        .find("export type TokenEvent =")
        .expect("TokenEvent is declared");
    let text = &TYPES[start..];
    let text = &text[..text.find(";\n\n").expect("the union ends")];
    let base = {
        let start = TYPES
            .find("export interface TokenEventBase {")
            .expect("TokenEventBase is declared");
        let body = &TYPES[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
        let lines: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("/**") && !l.starts_with('*') && !l.is_empty())
            .collect();
        fields(&lines.join(" "))
    };
    text.split("| TokenEventBase &")
        .skip(1)
        .map(|member| {
            let body = &member[member.find('{').unwrap() + 1..member.rfind('}').unwrap()];
            let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut fields = fields(&body);
            let tag = body.split('"').nth(1).expect("a type tag").to_owned();
            fields.extend(base.clone());
            (tag, fields)
        })
        .collect()
}

/// The events only the wrapper emits (the cache, the store, the background
/// refresh it starts, `client.fetch`'s answers from the core about a 429):
/// members of `TokenEvent` the core never sends.
const WRAPPER_EVENTS: [&str; 6] = [
    "cache_hit",
    "kv_write",
    "kv_error",
    "background_refresh",
    "rate_limited",
    "api_wait",
];

#[test]
fn the_public_token_event_declares_every_core_event_as_it_serialises() {
    let declared = token_event_members();
    let mut from_core = Vec::new();
    for event in events() {
        let value = serde_json::to_value(&event).unwrap();
        let tag = value["type"].as_str().expect("a tagged event").to_owned();
        let fields = declared
            .get(&tag)
            .unwrap_or_else(|| panic!("TokenEvent: the core's {tag} is not declared"));
        fits(&format!("TokenEvent {tag}"), fields, &value);
        for (name, optional) in fields {
            assert!(
                *optional || value.get(name).is_some(),
                "TokenEvent {tag}: {name} is declared but the core never sends it"
            );
        }
        from_core.push(tag);
    }
    for tag in declared.keys() {
        assert!(
            from_core.contains(tag) || WRAPPER_EVENTS.contains(&tag.as_str()),
            "TokenEvent: {tag} is declared but neither the core nor the wrapper sends it"
        );
    }
    for tag in WRAPPER_EVENTS {
        assert!(
            declared.contains_key(tag),
            "TokenEvent: {tag} is not declared"
        );
        assert!(
            !from_core.contains(&tag.to_owned()),
            "{tag} is the core's now"
        );
    }
}
