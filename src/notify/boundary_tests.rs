//! `NotifyAction`, `NotifyInput` and `NotifyStep` in pkg/freshtoken.d.ts
//! (written by hand in src/wasm/notify.rs) against what the Rust types
//! serialise to and read: every member, every field, both ways.

use super::{Action, InputRecord};
use crate::error::{ErrorCode, TokenError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const DECLARATIONS: &str = include_str!("../../pkg/freshtoken.d.ts");

/// The members of `export type NAME = | { type: "x"; a: T; b?: U } …;`: tag → (field, type, optional).
fn members(name: &str) -> BTreeMap<String, Vec<(String, String, bool)>> {
    let start = DECLARATIONS
        .find(&format!("export type {name} ="))
        .unwrap_or_else(|| panic!("{name} is declared"));
    let text = &DECLARATIONS[start..];
    let text = &text[..text.find("\n\n").expect("the union ends")];
    text.lines()
        .filter_map(|line| {
            let line = line.split("//").next()?.trim();
            let body = line.strip_prefix("| {")?.trim_end_matches(';').trim_end();
            let body = body.strip_suffix('}')?;
            let fields: Vec<(String, String, bool)> = body
                .split(';')
                .filter_map(|part| part.split_once(':'))
                .map(|(field, kind)| {
                    let field = field.trim();
                    let optional = field.ends_with('?');
                    (
                        field.trim_end_matches('?').to_owned(),
                        kind.trim().to_owned(),
                        optional,
                    )
                })
                .collect();
            let tag = body.split('"').nth(1)?.to_owned();
            Some((tag, fields))
        })
        .collect()
}

fn actions() -> Vec<Action> {
    let all = vec![
        Action::Create {
            channel: 1,
            timeout_ms: 1.0,
        },
        Action::Subscribe {
            channel: 1,
            timeout_ms: 1.0,
        },
        Action::Connect { channel: 1 },
        Action::Verify {
            channel: 1,
            timeout_ms: 1.0,
        },
        Action::Disconnect { channel: 1 },
        Action::Forget { channel: 1 },
        Action::Fail {
            error: Some(TokenError::new(ErrorCode::Config, "x")),
        },
    ];
    for action in &all {
        match action {
            Action::Create { .. }
            | Action::Subscribe { .. }
            | Action::Connect { .. }
            | Action::Verify { .. }
            | Action::Disconnect { .. }
            | Action::Forget { .. }
            | Action::Fail { .. } => {}
        }
    }
    all
}

#[test]
fn every_action_is_declared_with_the_fields_it_sends() {
    let declared = members("NotifyAction");
    assert_eq!(declared.len(), actions().len());
    for action in actions() {
        let value = serde_json::to_value(&action).unwrap();
        let tag = value["type"].as_str().unwrap().to_owned();
        let fields = declared
            .get(&tag)
            .unwrap_or_else(|| panic!("{tag} is declared"));
        let sent = value.as_object().unwrap();
        for key in sent.keys() {
            assert!(
                fields.iter().any(|(f, _, _)| f == key),
                "{tag}: {key} is not declared"
            );
        }
        for (field, _, optional) in fields {
            assert!(
                *optional || sent.contains_key(field),
                "{tag}: {field} is never sent"
            );
        }
    }
    let fail = serde_json::to_value(Action::Fail { error: None }).unwrap();
    assert_eq!(fail, json!({ "type": "fail" }));
}

#[test]
fn every_declared_input_is_read_and_no_other() {
    let declared = members("NotifyInput");
    assert_eq!(declared.len(), 9);
    for (tag, fields) in declared {
        let mut record = Map::new();
        for (field, kind, optional) in &fields {
            let value = match kind.as_str() {
                _ if field == "type" => json!(tag),
                "number" => json!(1),
                "boolean" => json!(true),
                "string" => json!("x"),
                other => panic!("{tag}.{field}: a type the test does not know: {other}"),
            };
            record.insert(field.clone(), value);
            // Every required field is required by the reader too.
            if !optional && field != "type" {
                let mut without = record.clone();
                for (f, _, _) in &fields {
                    if f != field && !without.contains_key(f) {
                        without.insert(f.clone(), json!(null));
                    }
                }
                without.remove(field);
                let read: InputRecord = serde_json::from_value(Value::Object(without)).unwrap();
                assert!(
                    read.input().is_none() || tag == "tick",
                    "{tag} without {field}"
                );
            }
        }
        let read: InputRecord = serde_json::from_value(Value::Object(record)).unwrap();
        assert!(read.input().is_some(), "{tag} is read");
    }
    let unknown: InputRecord = serde_json::from_value(json!({ "type": "other" })).unwrap();
    assert!(unknown.input().is_none());
    assert!(serde_json::from_value::<InputRecord>(json!({ "type": "tick", "extra": 1 })).is_err());
}
