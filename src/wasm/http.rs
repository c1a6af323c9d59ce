//! One request over the host's `fetch`, with web-sys (RFC 6749 §4.4.2; the
//! transport rules in docs/DESIGN.md): the token request's `POST` or the
//! metadata's `GET` (RFC 8414 §3), redirects never followed, the whole exchange up to the last body byte within the
//! attempt's timeout, and at most 1 MiB of delivered body, counted as it
//! streams in (after any `Content-Encoding` decoding the host does).

use crate::error::TokenError;
use crate::request::HttpRequest;
use crate::response::{declared_length, Received, MAX_BODY_BYTES};
use crate::transport::Failure;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, ReadableStreamReadResult,
    Request, RequestInit, RequestRedirect, Response,
};

/// The longest attempt timer (the `timeoutMs` option stops at 300,000).
const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

thread_local! {
    /// One handler for every promise whose failure is of no interest.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
}

/// Lets `promise` fail unobserved: a stream cancelled after an abort
/// rejects, and an unhandled rejection would end the host process.
fn quietly(promise: Promise) {
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
}

/// What a rejected or throwing `fetch` means (`transport::Failure`), read
/// from the error's name and text: its message and its cause's (Deno 2.9
/// says "fetch failed" and puts the reason in the cause). Getters that throw
/// read as nothing.
fn of_rejection(reason: &JsValue) -> Failure {
    let read = |value: &JsValue, name: &str| {
        Reflect::get(value, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let cause = Reflect::get(reason, &JsValue::from_str("cause")).unwrap_or_default();
    let mut text = read(reason, "message");
    if cause.is_object() {
        text = format!("{text} {}", read(&cause, "message"));
    }
    let text: String = text.chars().take(MAX_REJECTION_CHARS).collect();
    Failure::of_rejection(&read(reason, "name"), &text)
}

/// How much of a rejection's text is read for its kind.
const MAX_REJECTION_CHARS: usize = 2_000;

/// The attempt's time limit: an `AbortSignal.timeout` (a process's first
/// `setTimeout` costs Deno milliseconds of start-up, this a fraction of one)
/// that aborts the request, and that every wait of the exchange races
/// against, so that a `fetch` or a body that ignores the abort signal cannot
/// hang the caller either.
struct Deadline {
    controller: AbortController,
    timeout: AbortSignal,
    /// Listens for the timeout while the exchange runs: Deno keeps a process
    /// alive for an `AbortSignal.timeout` only while it has listeners.
    fire: Function,
    expired: Promise,
    /// What `expired` resolves to: nothing else can be this object.
    marker: Object,
}

impl Deadline {
    fn new(ms: f64) -> Result<Self, Failure> {
        let controller = AbortController::new().map_err(|_| Failure::Network)?;
        let marker = Object::new();
        // Within what `AbortSignal.timeout` takes (it throws past 2^53); the driver's
        // time left is at least 1 ms, never NaN.
        let timeout = AbortSignal::timeout_with_f64(ms.clamp(1.0, MAX_TIMEOUT_MS));
        let mut fire = None;
        let expired = Promise::new(&mut |resolve, _| {
            fire = Some(resolve.bind1(&JsValue::UNDEFINED, &marker));
        });
        let fire: Function = fire.ok_or(Failure::Network)?.unchecked_into();
        timeout
            .add_event_listener_with_callback("abort", &fire)
            .map_err(|_| Failure::Network)?;
        Ok(Self {
            controller,
            timeout,
            fire,
            expired,
            marker,
        })
    }

    /// Waits for `promise`, unless the deadline passes first; then aborts the request.
    async fn race(&self, promise: &Promise) -> Result<JsValue, Failure> {
        let both = Array::of2(promise, &self.expired);
        let value = JsFuture::from(Promise::race(&both)).await;
        let expired = self.controller.signal().aborted()
            || value.as_ref().is_ok_and(|v| Object::is(v, &self.marker));
        if expired {
            self.controller.abort();
            return Err(Failure::Timeout);
        }
        value.map_err(|reason| of_rejection(&reason))
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let _ = self
            .timeout
            .remove_event_listener_with_callback("abort", &self.fire);
    }
}

/// Sends `request` through the host's fetch, with `timeout_ms` for the
/// whole exchange, and reads the answer.
pub async fn send(
    fetch: &Function,
    request: &HttpRequest,
    timeout_ms: f64,
) -> Result<Received, TokenError> {
    received(fetch, request, timeout_ms)
        .await
        .map_err(|failure| failure.error(request.exchange, timeout_ms))
}

async fn received(
    fetch: &Function,
    request: &HttpRequest,
    timeout_ms: f64,
) -> Result<Received, Failure> {
    let deadline = Deadline::new(timeout_ms)?;
    let response = exchange(fetch, request, &deadline).await?;
    // A browser's answer to `redirect: "manual"` is an opaque response with status 0.
    let status = match response.status() {
        0 => 302,
        status => status,
    };
    let header = |name| response.headers().get(name).ok().flatten();
    let (retry_after, cache_control) = (header("retry-after"), header("cache-control"));
    let body = read_body(&response, &deadline).await?;
    Ok(Received {
        status,
        retry_after,
        cache_control,
        body,
    })
}

async fn exchange(
    fetch: &Function,
    request: &HttpRequest,
    deadline: &Deadline,
) -> Result<Response, Failure> {
    let headers = Headers::new().map_err(|_| Failure::Network)?;
    for (name, value) in &request.headers {
        headers
            .set(name, value)
            .map_err(|_| Failure::NotAResponse)?;
    }
    let init = RequestInit::new();
    init.set_headers(&headers);
    if let Some(body) = &request.body {
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
    }
    init.set_redirect(RequestRedirect::Manual);
    init.set_signal(Some(&deadline.controller.signal()));
    let request =
        Request::new_with_str_and_init(&request.url, &init).map_err(|_| Failure::Network)?;
    // A fetch may throw, return a non-promise, or resolve to something else.
    let pending = fetch
        .call1(&JsValue::UNDEFINED, &request)
        .map_err(|reason| of_rejection(&reason))?;
    let answer = deadline.race(&Promise::resolve(&pending)).await?;
    answer
        .dyn_into::<Response>()
        .map_err(|_| Failure::NotAResponse)
}

/// The body, counted as it arrives and cancelled past 1 MiB whatever
/// `Content-Length` says; a larger declared length is refused unread.
async fn read_body(response: &Response, deadline: &Deadline) -> Result<Vec<u8>, Failure> {
    let Some(stream) = response.body() else {
        return Ok(Vec::new());
    };
    let declared = response.headers().get("content-length").ok().flatten();
    if declared.as_deref().and_then(declared_length) > Some(MAX_BODY_BYTES as u64) {
        quietly(stream.cancel());
        return Err(Failure::TooLarge);
    }
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    loop {
        let chunk = match deadline.race(&reader.read()).await {
            Ok(chunk) => chunk.unchecked_into::<ReadableStreamReadResult>(),
            Err(failure) => {
                quietly(reader.cancel());
                return Err(failure);
            }
        };
        if chunk.get_done() == Some(true) {
            return Ok(body);
        }
        let bytes = chunk
            .get_value()
            .dyn_into::<Uint8Array>()
            .map_err(|_| Failure::NotAResponse)?;
        if body.len() + bytes.length() as usize > MAX_BODY_BYTES {
            quietly(reader.cancel());
            return Err(Failure::TooLarge);
        }
        let start = body.len();
        body.resize(start + bytes.length() as usize, 0);
        bytes.copy_to(&mut body[start..]);
    }
}
