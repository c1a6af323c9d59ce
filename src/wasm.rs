//! The WebAssembly binding: the only module that knows wasm-bindgen.
//!
//! [`Engine`] drives an [`Acquisition`]: it sends the token request through
//! the wrapper's `send`, which calls the host's `fetch` with a per-attempt
//! timeout, no redirects and a 1 MiB body cap (SPEC §4, deno/_transport.ts),
//! reads the answer, retries, and hands plain objects back to the Deno
//! wrapper, which owns the cache.

use crate::acquire::{Acquisition, Issued, Settings, Step};
use crate::config::{Config, Options};
use crate::error::{ErrorCode, TokenError};
use crate::lifecycle::{background_retry_delay_ms, decide, schedule, serve_until, Schedule};
use crate::request::{token_request, HttpRequest};
use crate::response::{read_answer, Field, HttpAnswer, RawResponse, TokenResponse};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Array, Function, Math, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

/// Timers longer than this fire at once in JavaScript hosts.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &JsValue, ms: f64) -> JsValue;
}

/// What a client keeps: its token request and its settings (in linear
/// memory), and the host's functions.
struct Host {
    request: HttpRequest,
    settings: Settings,
    send: Function,
    now: Function,
    on_event: Function,
}

/// One client's token engine: checked options plus the host functions.
#[wasm_bindgen]
pub struct Engine {
    host: Rc<Host>,
}

#[wasm_bindgen]
impl Engine {
    /// Checks `options` (throws a `config` error object) and keeps the
    /// wrapper's `send` (deno/_transport.ts), the clock (`now`, epoch ms)
    /// and the event sink.
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: JsValue,
        send: Function,
        now: Function,
        on_event: Function,
    ) -> Result<Engine, JsValue> {
        let config = Config::new(read_options(&options)).map_err(|e| error_value(&e, 0))?;
        Ok(Engine {
            host: Rc::new(Host {
                request: token_request(&config),
                settings: Settings::new(&config),
                send,
                now,
                on_event,
            }),
        })
    }

    /// Requests a token, retrying per the policy. Resolves to
    /// `{ accessToken, tokenType, scope?, expiresAt, refreshAt, usableUntil,
    /// lifetimeSeconds, attempts }`; rejects with an error object carrying
    /// `code`, `status`, `retryable`, `description`, `retryAfterSeconds`.
    #[wasm_bindgen(js_name = fetchToken)]
    pub fn fetch_token(&self) -> Promise {
        let host = Rc::clone(&self.host);
        future_to_promise(async move { acquire(&host).await })
    }

    /// SPEC §3 decision for a caller at `now`: 0 serve, 1 serve and refresh
    /// in the background, 2 fetch, 3 join the request in flight. Pass `NaN`
    /// times when there is no token.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        now: f64,
        expires_at: f64,
        refresh_at: f64,
        usable_until: f64,
        min_valid_ms: f64,
        refresh_not_before: f64,
        in_flight: bool,
    ) -> u8 {
        let token = Schedule {
            expires_at,
            refresh_at,
            usable_until,
        };
        let token = (!expires_at.is_nan()).then_some(&token);
        decide(now, token, min_valid_ms, refresh_not_before, in_flight).as_u8()
    }

    /// Until when [`Engine::decide`] would answer "serve" to callers with no
    /// `minValidSeconds`, while `refresh_not_before` and `in_flight` stay:
    /// the wrapper's hot path compares the clock with this.
    #[wasm_bindgen(js_name = serveUntil)]
    pub fn serve_until(
        &self,
        expires_at: f64,
        refresh_at: f64,
        usable_until: f64,
        refresh_not_before: f64,
        in_flight: bool,
    ) -> f64 {
        let token = Schedule {
            expires_at,
            refresh_at,
            usable_until,
        };
        serve_until(&token, refresh_not_before, in_flight)
    }

    /// The per-request timeout in force, ms (the option or its default).
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        self.host.settings.timeout_ms
    }

    /// The bound on one acquisition in force, ms (the option or its default).
    #[wasm_bindgen(getter, js_name = deadlineMs)]
    pub fn deadline_ms(&self) -> f64 {
        self.host.settings.policy.deadline_ms
    }

    /// This client's schedule for a token of `lifetime_seconds` requested at
    /// `t0` (epoch ms) by anyone, e.g. another isolate: `{ expiresAt,
    /// refreshAt, usableUntil }`, with this client's window and its own jitter.
    #[wasm_bindgen(
        unchecked_return_type = "{ expiresAt: number; refreshAt: number; usableUntil: number }"
    )]
    pub fn schedule(&self, t0: f64, lifetime_seconds: f64) -> Object {
        let override_seconds = self.host.settings.refresh_ahead_seconds;
        let s = schedule(t0, lifetime_seconds, override_seconds, Math::random());
        object(&[
            ("expiresAt", s.expires_at.into()),
            ("refreshAt", s.refresh_at.into()),
            ("usableUntil", s.usable_until.into()),
        ])
    }

    /// Milliseconds to hold background refreshes back after `failures`
    /// failed ones in a row.
    #[wasm_bindgen(js_name = backgroundRetryDelay)]
    pub fn background_retry_delay(&self, failures: u32, retry_after_seconds: Option<f64>) -> f64 {
        background_retry_delay_ms(
            &self.host.settings.policy,
            failures,
            retry_after_seconds,
            Math::random(),
        )
    }
}

async fn acquire(host: &Host) -> Result<JsValue, JsValue> {
    let mut acquisition = Acquisition::new(&host.settings, now(host));
    emit(host, "fetch_start", &[]);
    loop {
        let timeout_ms = acquisition.begin_attempt(now(host));
        let outcome = send(host, timeout_ms).await;
        let attempt = JsValue::from(acquisition.attempts());
        match acquisition.finish_attempt(now(host), outcome, Math::random(), Math::random()) {
            Step::Done(issued) => {
                let lifetime = JsValue::from(issued.token.expires_in);
                emit(
                    host,
                    "fetch_ok",
                    &[("lifetimeSeconds", lifetime), ("attempts", attempt)],
                );
                return Ok(token_value(issued));
            }
            Step::Retry { delay_ms, error } => {
                emit_error(host, &error, &attempt);
                emit(
                    host,
                    "retry",
                    &[("delayMs", delay_ms.into()), ("attempt", attempt)],
                );
                sleep(delay_ms).await;
            }
            Step::Failed(error) => {
                emit_error(host, &error, &attempt);
                return Err(error_value(&error, acquisition.attempts()));
            }
        }
    }
}

/// One attempt through the wrapper's `send` (deno/_transport.ts), which
/// does the HTTP mechanics with the host's `fetch`: no redirects, the
/// timeout, the 1 MiB cap. It resolves to `{ status, retryAfter, body }`
/// or rejects with why there was no answer.
async fn send(host: &Host, timeout_ms: f64) -> Result<TokenResponse, TokenError> {
    let request = &host.request;
    let headers = Object::new();
    for (name, value) in request.headers() {
        let _ = Reflect::set(
            &headers,
            &JsValue::from_str(name),
            &JsValue::from_str(value),
        );
    }
    let url = JsValue::from_str(&request.url);
    let body = JsValue::from_str(&request.body);
    let args = Array::of4(&url, &headers, &body, &timeout_ms.into());
    let pending = Reflect::apply(&host.send, &JsValue::UNDEFINED, &args)
        .map_err(|_| transport_error(&JsValue::UNDEFINED))?;
    let answer = JsFuture::from(Promise::resolve(&pending))
        .await
        .map_err(|why| transport_error(&why))?;
    let status = get(&answer, "status").as_f64().unwrap_or(0.0) as u16;
    let retry_after = get(&answer, "retryAfter").as_string();
    let raw = decode(&get(&answer, "body"));
    let answer = HttpAnswer {
        status,
        retry_after: retry_after.as_deref(),
        body: raw.as_ref(),
    };
    read_answer(&answer, now(host))
}

/// The error for a request that got no answer, from `send`'s reason.
fn transport_error(why: &JsValue) -> TokenError {
    match why.as_string().as_deref() {
        Some("timeout") => TokenError::new(
            ErrorCode::Timeout,
            "the token endpoint did not answer within timeoutMs",
        ),
        Some("too_large") => TokenError::invalid_response("the token response body is over 1 MiB"),
        Some("not_a_response") => TokenError::invalid_response("fetch did not return a Response"),
        _ => TokenError::new(
            ErrorCode::Network,
            "the token request failed (connection refused, reset or DNS)",
        ),
    }
}

/// The host's `JSON.parse` reads the body text; `None` unless it is a JSON object.
fn decode(body: &JsValue) -> Option<RawResponse> {
    let value = js_sys::JSON::parse(&body.as_string()?).ok()?;
    if !value.is_object() || Array::is_array(&value) {
        return None;
    }
    let field = |name: &str| match get(&value, name) {
        v if v.is_undefined() => Field::Missing,
        v if v.is_null() => Field::Null,
        v => v
            .as_string()
            .map(Field::Text)
            .or_else(|| v.as_f64().map(Field::Number))
            .unwrap_or(Field::Other),
    };
    Some(RawResponse {
        access_token: field("access_token"),
        token_type: field("token_type"),
        expires_in: field("expires_in"),
        scope: field("scope"),
        error: field("error"),
        error_description: field("error_description"),
        description: field("description"),
    })
}

/// Reads the options object the wrapper built (deno/_options.ts), which
/// has already checked every type.
fn read_options(value: &JsValue) -> Options {
    let text = |name: &str| get(value, name).as_string();
    let number = |name: &str| get(value, name).as_f64();
    let strings = |v: JsValue| -> Vec<String> {
        v.dyn_ref::<Array>()
            .map(|a| a.iter().filter_map(|s| s.as_string()).collect())
            .unwrap_or_default()
    };
    let pairs = get(value, "extraParams")
        .dyn_ref::<Array>()
        .map(|a| {
            a.iter()
                .filter_map(|pair| match strings(pair).as_slice() {
                    [name, value] => Some((name.clone(), value.clone())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Options {
        token_url: text("tokenUrl").unwrap_or_default(),
        client_id: text("clientId").unwrap_or_default(),
        client_secret: text("clientSecret").unwrap_or_default(),
        auth_method: text("authMethod"),
        scope: text("scope"),
        audience: text("audience"),
        resource: strings(get(value, "resource")),
        extra_params: pairs,
        timeout_ms: number("timeoutMs"),
        max_attempts: number("maxAttempts"),
        base_delay_ms: number("baseDelayMs"),
        max_delay_ms: number("maxDelayMs"),
        deadline_ms: number("deadlineMs"),
        refresh_ahead_seconds: number("refreshAheadSeconds"),
    }
}

fn get(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

async fn sleep(ms: f64) {
    let wait = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms.min(MAX_TIMER_MS));
    });
    let _ = JsFuture::from(wait).await;
}

fn now(host: &Host) -> f64 {
    host.now
        .call0(&JsValue::UNDEFINED)
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

fn object(fields: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    set_fields(&object, fields);
    object
}

/// Sets each field on `object`, leaving out undefined ones.
fn set_fields(object: &Object, fields: &[(&str, JsValue)]) {
    for (name, value) in fields {
        if !value.is_undefined() {
            let _ = Reflect::set(object, &JsValue::from_str(name), value);
        }
    }
}

fn emit(host: &Host, kind: &str, fields: &[(&str, JsValue)]) {
    let event = object(&[("type", kind.into()), ("at", now(host).into())]);
    set_fields(&event, fields);
    // The sink is the wrapper's, which already shields us from a throwing hook.
    let _ = host.on_event.call1(&JsValue::UNDEFINED, &event);
}

fn emit_error(host: &Host, error: &TokenError, attempt: &JsValue) {
    let fields = [
        ("code", error.code.as_str().into()),
        (
            "status",
            error.status.map_or(JsValue::UNDEFINED, JsValue::from),
        ),
        ("retryable", error.retryable.into()),
        ("attempt", attempt.clone()),
    ];
    emit(host, "fetch_error", &fields);
}

fn error_value(error: &TokenError, attempts: u32) -> JsValue {
    object(&[
        ("message", error.message().into()),
        ("code", error.code.as_str().into()),
        (
            "status",
            error.status.map_or(JsValue::UNDEFINED, JsValue::from),
        ),
        ("retryable", error.retryable.into()),
        (
            "description",
            error
                .description
                .as_deref()
                .map_or(JsValue::UNDEFINED, JsValue::from),
        ),
        (
            "retryAfterSeconds",
            error
                .retry_after_seconds
                .map_or(JsValue::UNDEFINED, JsValue::from),
        ),
        ("attempts", attempts.into()),
    ])
    .into()
}

fn token_value(issued: Issued) -> JsValue {
    let Issued {
        token,
        schedule,
        attempts,
    } = issued;
    object(&[
        ("accessToken", token.access_token.into_secret().into()),
        ("tokenType", token.token_type.into()),
        (
            "scope",
            token.scope.map_or(JsValue::UNDEFINED, JsValue::from),
        ),
        ("expiresAt", schedule.expires_at.into()),
        ("refreshAt", schedule.refresh_at.into()),
        ("usableUntil", schedule.usable_until.into()),
        ("lifetimeSeconds", token.expires_in.into()),
        ("attempts", attempts.into()),
    ])
    .into()
}
