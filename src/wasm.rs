//! The WebAssembly binding: the only module that knows wasm-bindgen.
//!
//! [`Core`] is one client's core for the Deno wrapper (deno/client.ts): its
//! checked configuration and its [`TokenState`]. Values cross the boundary
//! through serde-wasm-bindgen; the token request goes out through the host's
//! `fetch` ([`http`]). The core keeps no JavaScript value between calls: the
//! host functions an acquisition needs come with it ([`Host`]) and are
//! dropped when it ends, so nothing here keeps a dropped client alive.

mod http;
mod sign;

use crate::acquire::{Acquisition, Event, Step};
use crate::clock::Now;
use crate::config::{Config, Endpoint};
use crate::discovery::{self, Metadata};
use crate::error::{ErrorCode, Source, TokenError};
use crate::options::{check_names, option_names, read, Options, RetryOptions};
use crate::request::token_request;
use crate::response::{read_answer, TokenResponse};
use crate::shared::{self, TokenRecord, LEASE_MARGIN_MS};
use crate::state::{self, TokenState};
use js_sys::{Math, Object, Promise, Reflect};
use serde::Serialize;
use sign::Signer;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** The host functions one acquisition uses; the core lets go of them when it ends. */
export interface Host {
  /** Sends the token request (the `fetch` option, or the global fetch). */
  fetch(request: Request): Promise<Response>;
  /** Wall clock, epoch ms. */
  now(): number;
  /** Monotonic clock, ms. */
  mono(): number;
  /** Receives the acquisition's events. */
  emit(event: CoreEvent): void;
  /** Told, at once, of each token the core now holds (before `fetch` resolves). */
  hold(token: TokenRecord): void;
}

/** A token as the core hands it out, and as KV stores it. */
export interface TokenRecord {
  accessToken: string;
  tokenType: "Bearer";
  scope?: string;
  /** `expires_in` of the response, seconds. */
  lifetimeSeconds: number;
  /** Expiry, epoch ms. */
  expiresAt: number;
  /** When this client refreshes it, epoch ms. */
  refreshAt: number;
  /** When this client stops serving it, epoch ms. */
  usableUntil: number;
}

/** An error as the core reports it. */
export interface CoreError {
  message: string;
  code: string;
  status?: number;
  retryable: boolean;
  description?: string;
  retryAfterSeconds?: number;
}

/** What an acquisition reports through `Host.emit`. */
export type CoreEvent =
  | { type: "fetch_start"; at: number }
  | { type: "fetch_ok"; at: number; lifetimeSeconds: number; attempts: number }
  | { type: "fetch_error"; at: number; code: string; status?: number; retryable: boolean; attempt: number }
  | { type: "retry"; at: number; delayMs: number; attempt: number };

/** What `status()` reports, never the token. */
export interface CoreStatus {
  hasToken: boolean;
  expiresAt?: number;
  refreshAt?: number;
  lifetimeSeconds?: number;
  usableUntil?: number;
  fetches: number;
  lastError?: CoreError;
}

/** What names a client's token in KV: every input of its token request, sorted; never a credential. */
export interface Identity {
  /** The token endpoint, when configured; else `issuer`. */
  tokenUrl?: string;
  issuer?: string;
  clientId: string;
  authMethod: string;
  scope: string[];
  audience?: string;
  resource: string[];
  extraParams: [string, string][];
}

"#;

#[wasm_bindgen]
extern "C" {
    /// The host functions of one acquisition (the `Host` interface above).
    #[wasm_bindgen(typescript_type = "Host")]
    pub type Host;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &Host, request: &web_sys::Request) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, js_name = now)]
    fn wall(this: &Host) -> f64;
    #[wasm_bindgen(method)]
    fn mono(this: &Host) -> f64;
    #[wasm_bindgen(method, catch)]
    fn emit(this: &Host, event: JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn hold(this: &Host, token: JsValue) -> Result<(), JsValue>;
}

impl Host {
    fn now(&self) -> Now {
        Now {
            wall: self.wall(),
            mono: self.mono(),
        }
    }

    fn report(&self, event: Event) {
        // The wrapper's sink already shields token delivery from a throwing hook.
        let _ = self.emit(to_js(&event));
    }
}

/// What a caller asking for a token gets (see `TokenState::decide`).
#[wasm_bindgen]
pub enum Decision {
    /// Serve the cached token.
    Serve,
    /// Serve the cached token and start one background refresh.
    ServeAndRefresh,
    /// Start an acquisition and wait for it.
    Fetch,
    /// Wait for the acquisition in flight.
    Join,
    /// Fail at once with `refusal()`.
    Fail,
    /// Wait `holdMs()` for the hold-back to end, then ask again.
    Wait,
}

/// What `client.fetch` does after a 401 (see `TokenState::unauthorized`).
#[wasm_bindgen]
pub enum Unauthorized {
    /// Send again with the token held now.
    RetryWithCurrent,
    /// The token was forgotten: send again with a new one.
    Refresh,
    /// Hand the 401 to the caller.
    GiveUp,
}

struct Inner {
    config: Config,
    state: TokenState,
    /// Signs the assertions of the JWT methods.
    signer: Option<Rc<Signer>>,
    /// With `issuer`: its metadata, once read.
    metadata: Option<Metadata>,
}

impl Inner {
    /// Where this client's errors come from: the token endpoint, once known.
    fn source(&self) -> Source {
        match &self.metadata {
            Some(metadata) => Source::new(
                metadata.token_endpoint(self.config.mutual_tls),
                &self.config.identity.client_id,
            ),
            None => self.config.source(),
        }
    }

    /// The issuer, when the metadata is missing or past its time at `now_ms`.
    fn issuer_to_ask(&self, now_ms: f64) -> Option<&str> {
        match &self.config.identity.endpoint {
            Endpoint::Issuer(issuer)
                if self.metadata.as_ref().is_none_or(|m| m.until <= now_ms) =>
            {
                Some(issuer)
            }
            _ => None,
        }
    }
}

/// One client's core: its configuration and its token state.
#[wasm_bindgen]
pub struct Core {
    inner: Rc<RefCell<Inner>>,
}

#[wasm_bindgen]
impl Core {
    /// Checks `options` (the object given to `createTokenClient`); throws a
    /// `CoreError` with code `config` naming the first problem.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] options: JsValue,
    ) -> Result<Core, JsValue> {
        let config = read_options(&options)
            .and_then(|options| Config::new(options, normalise_url))
            .map_err(|e| report(&e))?;
        // A CryptoKey or a JWK object: a value serde cannot carry.
        let private_key =
            Reflect::get(&options, &JsValue::from_str("privateKey")).unwrap_or_default();
        let signer = Signer::new(&config, &private_key)
            .map_err(|e| report(&e))?
            .map(Rc::new);
        let state = TokenState::new(config.refresh_ahead_seconds);
        Ok(Core {
            inner: Rc::new(RefCell::new(Inner {
                config,
                state,
                signer,
                metadata: None,
            })),
        })
    }

    /// The token endpoint's origin, as error messages name it.
    #[wasm_bindgen(getter)]
    pub fn origin(&self) -> String {
        self.inner.borrow().source().origin
    }

    /// With `issuer`: the copy of its metadata for KV (JSON text), if read.
    #[wasm_bindgen(getter, js_name = metadataCopy)]
    pub fn metadata_copy(&self) -> Option<String> {
        self.inner.borrow().metadata.as_ref().map(Metadata::to_copy)
    }

    /// Whether a token request at `now` would first ask the issuer for its metadata.
    #[wasm_bindgen(js_name = needsMetadata)]
    pub fn needs_metadata(&self, now: f64) -> bool {
        self.inner.borrow().issuer_to_ask(now).is_some()
    }

    /// Takes a copy of the metadata read from KV when this client would ask
    /// for it and the copy passes the rules of a fresh document; says whether.
    #[wasm_bindgen(js_name = adoptMetadata)]
    pub fn adopt_metadata(
        &self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "unknown")] stored: JsValue,
    ) -> bool {
        let mut inner = self.inner.borrow_mut();
        let Some(issuer) = inner.issuer_to_ask(now) else {
            return false;
        };
        let copy = stored
            .as_string()
            .and_then(|copy| discovery::from_copy(&copy, issuer, now, normalise_url));
        let taken = copy.is_some();
        if taken {
            inner.metadata = copy;
        }
        taken
    }

    /// What names this client's token in KV (the wrapper adds a fingerprint of the credential).
    #[wasm_bindgen(getter, unchecked_return_type = "Identity")]
    pub fn identity(&self) -> JsValue {
        to_js(&self.inner.borrow().config.kv_identity())
    }

    /// The longest a KV lease of this client lasts: an acquisition's
    /// deadline (its holder renews it before each retry wait) plus one
    /// request timeout and a margin. A lease reaching further is corrupt.
    #[wasm_bindgen(getter, js_name = maxLeaseMs)]
    pub fn max_lease_ms(&self) -> f64 {
        let config = &self.inner.borrow().config;
        config.retry.deadline_ms + self.lease_ms()
    }

    /// How long a KV lease lasts: one request timeout and a margin.
    #[wasm_bindgen(getter, js_name = leaseMs)]
    pub fn lease_ms(&self) -> f64 {
        self.inner.borrow().config.timeout_ms + LEASE_MARGIN_MS
    }

    /// The decision for a caller at `now`/`mono` who needs the token to
    /// stay valid for `min_valid_ms` more. `started` (monotonic ms) is when
    /// the call began, if it may still wait for a hold-back to end: within
    /// its retry deadline from then.
    pub fn decide(&self, now: f64, mono: f64, min_valid_ms: f64, started: Option<f64>) -> Decision {
        let wait_limit = started.map_or(f64::NEG_INFINITY, |s| {
            s + self.inner.borrow().config.retry.deadline_ms
        });
        let decision = self.state().decide(at(now, mono), min_valid_ms, wait_limit);
        match decision {
            state::Decision::Serve => Decision::Serve,
            state::Decision::ServeAndRefresh => Decision::ServeAndRefresh,
            state::Decision::Fetch => Decision::Fetch,
            state::Decision::Join => Decision::Join,
            state::Decision::Fail => Decision::Fail,
            state::Decision::Wait => Decision::Wait,
        }
    }

    /// How long token requests stay held back, ms (for `Wait`).
    #[wasm_bindgen(js_name = holdMs)]
    pub fn hold_ms(&self, now: f64, mono: f64) -> f64 {
        self.state().hold_ms(at(now, mono))
    }

    /// Why `decide` answered `Fail`.
    #[wasm_bindgen(unchecked_return_type = "CoreError")]
    pub fn refusal(&self, now: f64, mono: f64, min_valid_ms: f64) -> JsValue {
        let error = self.state().refusal(at(now, mono), min_valid_ms);
        self.report(error)
    }

    /// Until when (wall clock) `decide` keeps answering `Serve` to callers
    /// with no `minValidSeconds`: the wrapper's hot path compares with it.
    #[wasm_bindgen(js_name = serveUntil)]
    pub fn serve_until(&self, now: f64, mono: f64) -> f64 {
        self.state().serve_until(at(now, mono))
    }

    /// An acquisition starts; throws a `CoreError` while token requests
    /// are held back after failures.
    pub fn begin(&self, now: f64, mono: f64, background: bool) -> Result<(), JsValue> {
        let begun = self.state().begin(at(now, mono), background);
        begun.map_err(|e| self.report(e))
    }

    /// Requests a token, retrying per the policy, and caches it. Resolves
    /// to the token; rejects with a `CoreError`. Does not end the
    /// acquisition: `finish` does.
    #[wasm_bindgen(unchecked_return_type = "Promise<TokenRecord>")]
    pub fn fetch(&self, host: Host) -> Promise {
        let inner = Rc::clone(&self.inner);
        future_to_promise(async move {
            acquire(&inner, &host)
                .await
                .map(|record| to_js(&record))
                .map_err(|error| report(&error.from_source(&inner.borrow().source())))
        })
    }

    /// Takes a token read from KV when it is sound and one to take (see
    /// `TokenState::adopt`); returns it as taken, or `undefined`.
    #[wasm_bindgen(unchecked_return_type = "TokenRecord | undefined")]
    pub fn adopt(
        &self,
        now: f64,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "unknown")] stored: JsValue,
        force: bool,
    ) -> JsValue {
        let Ok(record) = serde_wasm_bindgen::from_value::<TokenRecord>(stored) else {
            return JsValue::UNDEFINED;
        };
        let taken = self
            .state()
            .adopt(at(now, mono), record, force, Math::random());
        taken.map_or(JsValue::UNDEFINED, |record| to_js(&record))
    }

    /// The acquisition ended: with a token, or with `error` (a `TokenError`).
    pub fn finish(
        &self,
        now: f64,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "CoreError | undefined")] error: JsValue,
    ) {
        let error = (!error.is_undefined()).then(|| {
            serde_wasm_bindgen::from_value::<TokenError>(error).unwrap_or_else(|_| {
                TokenError::new(ErrorCode::Network, "token request failed unexpectedly")
            })
        });
        self.state()
            .finish(at(now, mono), error.as_ref(), Math::random());
    }

    /// Forgets the cached token.
    pub fn invalidate(&self) {
        self.state().invalidate();
    }

    /// `client.fetch` got a 401 with `token`: what to do next.
    pub fn unauthorized(&self, now: f64, mono: f64, token: &str) -> Unauthorized {
        match self
            .state()
            .unauthorized(at(now, mono), token, Math::random())
        {
            state::Unauthorized::RetryWithCurrent => Unauthorized::RetryWithCurrent,
            state::Unauthorized::Refresh => Unauthorized::Refresh,
            state::Unauthorized::GiveUp => Unauthorized::GiveUp,
        }
    }

    /// A request sent again after a 401 was accepted.
    pub fn authorized(&self) {
        self.state().authorized();
    }

    /// Whether the token is missing or due for refresh within `ahead_ms`.
    pub fn due(&self, now: f64, mono: f64, ahead_ms: f64) -> bool {
        self.state().due(at(now, mono), ahead_ms)
    }

    /// What `status()` reports.
    #[wasm_bindgen(unchecked_return_type = "CoreStatus")]
    pub fn status(&self, now: f64, mono: f64) -> JsValue {
        let mut status = self.state().status(at(now, mono));
        let source = self.inner.borrow().source();
        status.last_error = status.last_error.map(|e| e.from_source(&source));
        to_js(&status)
    }

    /// Whether a lease deadline read from KV could be one this client writes.
    #[wasm_bindgen(js_name = leaseIsPlausible)]
    pub fn lease_is_plausible(&self, until: f64, now: f64) -> bool {
        shared::lease_is_plausible(until, now, self.max_lease_ms())
    }

    /// Until when every isolate holds token requests back after `error`
    /// (a retryable `TokenError`): its `retryAfterSeconds`, else the first
    /// hold-back step; at most 10 minutes from `now`.
    #[wasm_bindgen(js_name = sharedBackoffUntil)]
    pub fn shared_backoff_until(
        &self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "CoreError")] error: JsValue,
    ) -> f64 {
        let retry_after = serde_wasm_bindgen::from_value::<TokenError>(error)
            .ok()
            .and_then(|e| e.retry_after_seconds);
        let wait = crate::schedule::hold_back_ms(1, retry_after, Math::random(), None);
        shared::shared_backoff_until(now, wait)
    }

    /// An error the wrapper raises for this client (an aborted wait, a
    /// shared back-off), formatted like every other: `code` is one of the
    /// error codes (else `network`), and the message names the endpoint and id.
    #[wasm_bindgen(unchecked_return_type = "CoreError")]
    pub fn error(
        &self,
        code: &str,
        description: &str,
        retry_after_seconds: Option<f64>,
    ) -> JsValue {
        let code =
            serde_wasm_bindgen::from_value(JsValue::from_str(code)).unwrap_or(ErrorCode::Network);
        let mut error = TokenError::new(code, description);
        error.retry_after_seconds = retry_after_seconds;
        self.report(error)
    }

    /// `error` as JavaScript gets it, naming this client's endpoint and id.
    fn report(&self, error: TokenError) -> JsValue {
        report(&error.from_source(&self.inner.borrow().source()))
    }

    fn state(&self) -> std::cell::RefMut<'_, TokenState> {
        std::cell::RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.state)
    }
}

/// Whether a shared back-off read from KV is within the 10-minute cap.
#[wasm_bindgen(js_name = backoffIsPlausible)]
pub fn backoff_is_plausible(until: f64, now: f64) -> bool {
    shared::backoff_is_plausible(until, now)
}

/// The DER bytes of the PEM block labelled `label` that `text` holds, by
/// the decoder the signer and the configuration use; `undefined` if none.
#[wasm_bindgen(js_name = pemDer)]
pub fn pem_der(text: &str, label: &str) -> Option<Vec<u8>> {
    crate::assertion::pem(text, label)
}

/// The one of `known` closest to `name` (ignoring case, `_` and `-`): the
/// CLI's did-you-mean for a flag, by the rule that names options.
#[wasm_bindgen(js_name = closestName)]
pub fn closest_name(name: &str, known: Vec<String>) -> String {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    crate::text::closest(name, &known).to_owned()
}

/// Every error code, and whether it is retryable by default: the one list.
#[wasm_bindgen(
    js_name = errorCodes,
    unchecked_return_type = "{ code: string; retryable: boolean }[]"
)]
pub fn error_codes() -> JsValue {
    #[derive(Serialize)]
    struct Code {
        code: ErrorCode,
        retryable: bool,
    }
    let codes: Vec<Code> = ErrorCode::ALL
        .iter()
        .map(|&code| Code {
            code,
            retryable: code.retryable(),
        })
        .collect();
    to_js(&codes)
}

/// One acquisition: attempts through the host's fetch, retries, and the
/// token cached in the state. Borrows of the state never span an `await`.
async fn acquire(inner: &RefCell<Inner>, host: &Host) -> Result<TokenRecord, TokenError> {
    let start = host.now();
    let (mut acquisition, signer) = {
        let Inner {
            config,
            state,
            signer,
            ..
        } = &mut *inner.borrow_mut();
        state.fetching();
        let secret = config.client_secret.as_ref().map(|s| s.secret());
        let redactor = state.redactor(&config.identity.client_id, secret);
        (Acquisition::new(config, redactor, start), signer.clone())
    };
    host.report(Event::FetchStart { at: start.wall });
    loop {
        let timeout_ms = acquisition.begin_attempt(host.now());
        let outcome = attempt(inner, host, signer.as_deref(), &mut acquisition, timeout_ms).await;
        let now = host.now();
        let one_attempt = inner.borrow().state.one_attempt(now);
        let attempt = acquisition.attempts();
        match acquisition.finish_attempt(now, outcome, one_attempt, Math::random()) {
            Step::Done { token, sent_at } => {
                let lifetime_seconds = token.expires_in;
                let issued = inner
                    .borrow_mut()
                    .state
                    .issued(now, token, sent_at, Math::random());
                match &issued {
                    Ok(record) => {
                        // The wrapper's cache follows the core's in the same turn.
                        let _ = host.hold(to_js(record));
                        host.report(Event::FetchOk {
                            at: now.wall,
                            lifetime_seconds,
                            attempts: attempt,
                        });
                    }
                    Err(error) => host.report(Event::error(now, error, attempt)),
                }
                return issued;
            }
            Step::Retry { delay_ms, error } => {
                host.report(Event::error(now, &error, attempt));
                host.report(Event::Retry {
                    at: now.wall,
                    delay_ms,
                    attempt,
                });
                http::sleep(delay_ms).await;
            }
            Step::Failed(error) => {
                host.report(Event::error(now, &error, attempt));
                return Err(error);
            }
        }
    }
}

/// One token request: the endpoint (with `issuer`, from its metadata), a
/// fresh client assertion when the method signs one (also redacted from
/// whatever the server answers), the request sent through the host's
/// fetch, and the answer read. Metadata read counts against the attempt's time.
async fn attempt(
    inner: &RefCell<Inner>,
    host: &Host,
    signer: Option<&Signer>,
    acquisition: &mut Acquisition,
    timeout_ms: f64,
) -> Result<TokenResponse, TokenError> {
    let started = host.mono();
    let token_url = token_endpoint(inner, host, timeout_ms).await?;
    let timeout_ms = (timeout_ms - (host.mono() - started)).max(1.0);
    let assertion = match signer {
        Some(signer) => {
            let client_id = inner.borrow().config.identity.client_id.clone();
            let assertion = signer
                .assertion(&client_id, &token_url, host.wall())
                .await?;
            acquisition.also_redact(&assertion);
            Some(assertion)
        }
        None => None,
    };
    let request = token_request(&inner.borrow().config, &token_url, assertion.as_deref());
    let answer = http::send(host, &request, timeout_ms).await?;
    read_answer(&answer.token_answer(), host.wall())
}

/// The token endpoint: `tokenUrl`, or the one the issuer's metadata names
/// (docs/DESIGN.md, "Discovery"). The metadata is kept for its cache
/// lifetime; past it, it is read again, and the old copy serves on while
/// the issuer cannot answer. The configured `authMethod` must be one the
/// issuer lists.
async fn token_endpoint(
    inner: &RefCell<Inner>,
    host: &Host,
    timeout_ms: f64,
) -> Result<String, TokenError> {
    let now = host.wall();
    let issuer = inner.borrow().issuer_to_ask(now).map(str::to_owned);
    if let Some(issuer) = issuer {
        // While the issuer cannot answer, the last copy serves a day more at most.
        let stale_ok = |inner: &Inner| {
            inner
                .metadata
                .as_ref()
                .is_some_and(|m| now < m.until + discovery::MAX_KEEP_MS)
        };
        match discover(host, &issuer, timeout_ms).await {
            Ok(metadata) => inner.borrow_mut().metadata = Some(metadata),
            Err(error) if error.retryable && stale_ok(&inner.borrow()) => {}
            Err(error) => return Err(error),
        }
    }
    let inner = inner.borrow();
    let config = &inner.config;
    match (&config.identity.endpoint, &inner.metadata) {
        (Endpoint::Token(url), _) => Ok(url.clone()),
        (Endpoint::Issuer(_), Some(metadata)) => {
            metadata.check_method(config.auth_method_name)?;
            Ok(metadata.token_endpoint(config.mutual_tls).to_owned())
        }
        (Endpoint::Issuer(_), None) => Err(TokenError::new(
            ErrorCode::Network,
            "the issuer's metadata could not be read",
        )),
    }
}

/// The issuer's metadata from the first location that has it, both
/// locations within `timeout_ms`.
async fn discover(host: &Host, issuer: &str, timeout_ms: f64) -> Result<Metadata, TokenError> {
    let deadline = host.mono() + timeout_ms;
    for location in discovery::locations(issuer) {
        let url = normalise_url(&location)
            .ok_or_else(|| TokenError::config("issuer is not a valid absolute URL"))?;
        let left = (deadline - host.mono()).max(1.0);
        let answer = http::send(host, &discovery::request(url), left).await?;
        if let Some(metadata) = discovery::read(&answer, issuer, host.wall(), normalise_url)? {
            return Ok(metadata);
        }
    }
    Err(TokenError::config(
        "the issuer publishes no metadata (neither /.well-known/openid-configuration \
         nor /.well-known/oauth-authorization-server)",
    ))
}

/// Refuses unknown option names (serde-wasm-bindgen only reads the names it
/// knows), then reads the options.
fn read_options(value: &JsValue) -> Result<Options, TokenError> {
    if value.is_object() {
        let names = |object: &JsValue| -> Vec<String> {
            Object::keys(object.unchecked_ref::<Object>())
                .iter()
                .filter_map(|name| name.as_string())
                .collect()
        };
        let top = names(value);
        check_names(
            top.iter().map(String::as_str),
            option_names::<Options>(),
            "",
        )?;
        let retry = Reflect::get(value, &JsValue::from_str("retry")).unwrap_or_default();
        if retry.is_object() {
            let inner = names(&retry);
            check_names(
                inner.iter().map(String::as_str),
                option_names::<RetryOptions>(),
                "retry.",
            )?;
        }
    }
    read(serde_wasm_bindgen::Deserializer::from(value.clone()))
}

/// The URL as the host's WHATWG parser (and so its fetch) reads it.
fn normalise_url(url: &str) -> Option<String> {
    web_sys::Url::new(url).ok().map(|u| u.href())
}

fn at(wall: f64, mono: f64) -> Now {
    Now { wall, mono }
}

fn report(error: &TokenError) -> JsValue {
    to_js(error)
}

/// Plain objects, not `Map`s, and absent fields left out.
const SERIALIZER: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);

fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    value.serialize(&SERIALIZER).unwrap_or(JsValue::UNDEFINED)
}
