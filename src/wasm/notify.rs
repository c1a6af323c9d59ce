//! The notification stream for deno/_notify_executor.ts: one call per
//! input, which answers with the actions to perform and the next deadline.
//! Values cross through serde-wasm-bindgen (docs/DESIGN.md, "Notifications").

use super::{at, report, to_js};
use crate::notify::{Action, InputRecord, Stream};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** What the notification executor does next (`stream.handle`), and what it reports after. */
export type NotifyAction =
  | { type: "create"; channel: number; timeoutMs: number } // created | refused | unreachable
  | { type: "subscribe"; channel: number; timeoutMs: number } // subscribed | refused | unreachable
  | { type: "connect"; channel: number } // opened | dropped
  | { type: "verify"; channel: number; timeoutMs: number } // known | refused | unreachable
  | { type: "disconnect"; channel: number }
  | { type: "forget"; channel: number }
  | { type: "fail"; error?: CoreError }; // absent: throw the error last reported

/** What happened, for `stream.handle`. */
export type NotifyInput =
  | { type: "tick" }
  | { type: "created"; channel: number; expires?: number; serverDate?: number }
  | { type: "subscribed"; channel: number }
  | { type: "opened"; channel: number }
  | { type: "heard"; channel: number; closing: boolean }
  | { type: "dropped"; channel: number }
  | { type: "known"; channel: number; known: boolean }
  | { type: "refused"; channel: number; status: number; retryAfterSeconds?: number; detail?: string }
  | { type: "unreachable"; channel: number; retryable: boolean };

/** The actions an input calls for, and when (monotonic ms) to tick if nothing happens. */
export interface NotifyStep {
  actions: NotifyAction[];
  wakeAt?: number;
}
"#;

/// What `handle` answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotifyStep {
    actions: Vec<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wake_at: Option<f64>,
}

/// One notification stream's decisions ([`Stream`]).
#[wasm_bindgen]
pub struct NotificationStream(Stream);

#[wasm_bindgen]
impl NotificationStream {
    /// A stream of `topics`; throws a `CoreError` with code `config` for bad topic names.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string[]")] topics: JsValue,
    ) -> Result<NotificationStream, JsValue> {
        let topics: Vec<String> = serde_wasm_bindgen::from_value(topics)
            .map_err(|_| js_sys::Error::new("topics must be an array of strings"))?;
        Stream::new(topics).map(Self).map_err(|e| report(&e))
    }

    /// Takes `input` at `now`/`mono` (`rand` in `[0, 1)`) and answers a `NotifyStep`.
    #[wasm_bindgen(unchecked_return_type = "NotifyStep")]
    pub fn handle(
        &mut self,
        now: f64,
        mono: f64,
        rand: f64,
        #[wasm_bindgen(unchecked_param_type = "NotifyInput")] input: JsValue,
    ) -> Result<JsValue, JsValue> {
        let input = serde_wasm_bindgen::from_value::<InputRecord>(input)
            .ok()
            .and_then(InputRecord::input)
            .ok_or_else(|| js_sys::Error::new("freshtoken: not a NotifyInput"))?;
        self.0.handle(at(now, mono), rand, input);
        let actions = std::iter::from_fn(|| self.0.poll()).collect();
        to_js(&NotifyStep {
            actions,
            wake_at: self.0.wake_at(),
        })
    }
}
