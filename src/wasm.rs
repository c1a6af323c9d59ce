//! The WebAssembly binding: the only module that knows wasm-bindgen.
//!
//! [`Core`] is one client's core for the Deno wrapper (deno/client.ts): its
//! checked configuration, its [`TokenState`] and the [`Driver`] of the
//! acquisition in flight, which the wrapper's executor runs: `poll` names
//! the next effect, the executor performs it, a `handle…` call hands the
//! result back. No call into the core calls back into JavaScript. Values
//! cross the boundary through serde-wasm-bindgen; the two effects the core
//! performs itself are stateless async functions: `send` (the host's
//! `fetch`, [`http`]) and `sign` (WebCrypto, [`sign`]). The core keeps no
//! JavaScript value between calls, so nothing here keeps a dropped client alive.

mod http;
mod sign;

use crate::acquire::Event;
use crate::clock::Now;
use crate::config::Config;
use crate::discovery::Metadata;
use crate::driver::{Driver, Effect, LeaseResult, Outcome, Parts, Seen};
use crate::error::{ErrorCode, Source, TokenError};
use crate::options::{check_names, option_names, read, Options, RetryOptions};
use crate::response::{self, Received};
use crate::shared::TokenRecord;
use crate::state::{self, TokenState};
use crate::store_guard::{StoreGuard, STORE_TIMEOUT_MS};
use js_sys::{Function, Math, Object, Promise, Reflect};
use serde::Serialize;
use sign::Signer;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
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

/** What an acquisition reports, from `core.events()`. */
export type CoreEvent =
  | { type: "fetch_start"; at: number }
  | { type: "fetch_ok"; at: number; lifetimeSeconds: number; attempts: number }
  | { type: "fetch_error"; at: number; code: string; status?: number; retryable: boolean; attempt: number }
  | { type: "lease_wait"; at: number }
  | { type: "retry"; at: number; delayMs: number; attempt: number }
  | { type: "internal_error"; at: number; message: string };

/** What the executor does next (`core.poll`), and the `handle…` call its result goes to. */
export type CoreEffect =
  | { type: "read_store"; eventual: boolean } // handleSnapshot
  | { type: "take_lease"; ttlMs: number } // handleLease
  | { type: "renew_lease"; ttlMs: number } // handleRenewed
  | { type: "release_lease" } // handleStored
  | { type: "write_store"; record: TokenRecord } // handleStored
  | { type: "set_backoff"; until: number } // handleStored
  | { type: "read_metadata" } // handleMetadataCopy
  | { type: "write_metadata"; copy: string } // handleStored
  | { type: "sleep"; ms: number; why: "lease" | "backoff" | "retry" } // handleSlept
  | { type: "sign" } // core.sign(), then handleSigned
  | { type: "send"; timeoutMs: number } // core.send(), then handleAnswer
  | { type: "done"; record: TokenRecord; source: "network" | "kv" }
  | { type: "fail"; error: CoreError };

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
    /// Held back, with a store: read it (`beginReading`, `drive` with
    /// `read`), taking a stored token, else failing with `refusal()`.
    Read,
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
    metadata: Option<Box<Metadata>>,
    /// The acquisition in flight (boxed: a client holds none most of its life).
    driver: Option<Box<Driver>>,
    /// What the transitions reported, until the executor takes it.
    events: Vec<Event>,
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

    /// Runs `step` on the driver in flight with this client's parts, and
    /// keeps the events it produced; `None` without one.
    fn drive<T>(&mut self, step: impl FnOnce(&mut Driver, &mut Parts<'_>) -> T) -> Option<T> {
        let Inner {
            config,
            state,
            metadata,
            driver,
            events,
            ..
        } = self;
        let running = driver.as_mut()?;
        let mut parts = Parts {
            config,
            state,
            metadata,
            parse_url: normalise_url,
        };
        let result = step(running, &mut parts);
        collect_events(events, running);
        if running.is_over() {
            end(driver);
        }
        Some(result)
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
        // Only a JWT method signs: the others never run (so never compile) the signer's code.
        let signer = match config.auth.jwt() {
            Some(_) => signer(&config, &options)?,
            None => None,
        };
        let state = TokenState::new(config.refresh_ahead_seconds).sharing(config.shared);
        Ok(Core {
            inner: Rc::new(RefCell::new(Inner {
                config,
                state,
                signer,
                metadata: None,
                driver: None,
                events: Vec::new(),
            })),
        })
    }

    /// The token endpoint's origin, as error messages name it.
    #[wasm_bindgen(getter)]
    pub fn origin(&self) -> String {
        self.inner.borrow().source().origin
    }

    /// What names this client's token in KV (the wrapper adds a fingerprint of the credential).
    #[wasm_bindgen(getter, unchecked_return_type = "Identity")]
    pub fn identity(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.borrow().config.kv_identity())
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
            state::Decision::Read => Decision::Read,
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

    /// A read of the store begins (`Decision::Read`): never refused.
    #[wasm_bindgen(js_name = beginReading)]
    pub fn begin_reading(&self) {
        self.state().begin_reading();
    }

    /// Starts driving the acquisition begun (`begin`, `beginReading`):
    /// through the store when `store`; a stored token is taken only if
    /// newer when `force`; only a read of the store when `read`.
    pub fn drive(&self, now: f64, mono: f64, store: bool, force: bool, read: bool) {
        let mut inner = self.inner.borrow_mut();
        let now = at(now, mono);
        inner.driver = Some(Box::new(match read {
            true => Driver::reading(&inner.config, now),
            false => Driver::new(&inner.config, now, store, force),
        }));
    }

    /// The next effect of the acquisition in flight (a `CoreEffect`).
    #[wasm_bindgen(unchecked_return_type = "CoreEffect")]
    pub fn poll(&self, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        let mut inner = self.inner.borrow_mut();
        let effect = inner
            .drive(|driver, parts| driver.poll(parts, at(now, mono), Math::random()))
            .unwrap_or_else(|| {
                // Polled with no acquisition begun: the executor's bug.
                let error = TokenError::internal("no acquisition is in flight");
                inner.events.push(Event::internal(at(now, mono), &error));
                Effect::Fail { error }
            });
        match effect {
            Effect::Fail { error } => to_js(&Effect::Fail {
                error: error.from_source(&inner.source()),
            }),
            effect => to_js(&effect),
        }
    }

    /// How many events wait to be taken (`events()` is called only then).
    #[wasm_bindgen(getter, js_name = eventCount)]
    pub fn event_count(&self) -> usize {
        self.inner.borrow().events.len()
    }

    /// What the transitions so far reported (`CoreEvent`s), once.
    #[wasm_bindgen(unchecked_return_type = "CoreEvent[]")]
    pub fn events(&self) -> Result<JsValue, JsValue> {
        to_js(&std::mem::take(&mut self.inner.borrow_mut().events))
    }

    /// After `read_store`: the stored token (undecoded), the lease and the
    /// back-off as the store holds them (the driver judges them, see
    /// `Seen::judged`); `store_failed` when the store did not answer.
    #[wasm_bindgen(js_name = handleSnapshot)]
    #[allow(clippy::too_many_arguments)]
    pub fn handle_snapshot(
        &self,
        now: f64,
        mono: f64,
        store_failed: bool,
        #[wasm_bindgen(unchecked_param_type = "unknown")] token: JsValue,
        lease_until: Option<f64>,
        lease_holder: Option<String>,
        lease_taken_at: Option<f64>,
        backoff_until: f64,
    ) {
        let seen = (!store_failed).then(|| Seen {
            token: serde_wasm_bindgen::from_value(token).ok(),
            lease_until,
            lease_holder,
            lease_taken_at,
            backoff_until,
        });
        self.handle(now, mono, Outcome::Snapshot(seen));
    }

    /// After `take_lease`: `true` taken, `false` held by another (read
    /// again), `undefined` when the store failed.
    #[wasm_bindgen(js_name = handleLease)]
    pub fn handle_lease(&self, now: f64, mono: f64, taken: Option<bool>) {
        let result = match taken {
            Some(true) => LeaseResult::Taken,
            Some(false) => LeaseResult::Held,
            None => LeaseResult::Failed,
        };
        self.handle(now, mono, Outcome::Lease(result));
    }

    /// After `renew_lease`: whether the lease is still this isolate's.
    #[wasm_bindgen(js_name = handleRenewed)]
    pub fn handle_renewed(&self, now: f64, mono: f64, kept: bool) {
        self.handle(now, mono, Outcome::Renewed(kept));
    }

    /// After `read_metadata`: the stored copy, if one sealed by this client was there.
    #[wasm_bindgen(js_name = handleMetadataCopy)]
    pub fn handle_metadata_copy(&self, now: f64, mono: f64, copy: Option<String>) {
        self.handle(now, mono, Outcome::MetadataCopy(copy));
    }

    /// After `sleep`.
    #[wasm_bindgen(js_name = handleSlept)]
    pub fn handle_slept(&self, now: f64, mono: f64) {
        self.handle(now, mono, Outcome::Slept);
    }

    /// After `write_store`, `set_backoff`, `release_lease` or `write_metadata`.
    #[wasm_bindgen(js_name = handleStored)]
    pub fn handle_stored(&self, now: f64, mono: f64) {
        self.handle(now, mono, Outcome::Stored);
    }

    /// Signs the assertion the `sign` effect asks for (WebCrypto); keeps no state.
    #[wasm_bindgen(unchecked_return_type = "Promise<Signed>")]
    pub fn sign(&self, now: f64) -> Promise {
        let (signer, client_id, audience) = {
            let inner = self.inner.borrow();
            let audience = inner
                .driver
                .as_ref()
                .and_then(|d| d.audience().map(str::to_owned));
            let client_id = inner.config.identity.client_id.clone();
            (inner.signer.clone(), client_id, audience)
        };
        future_to_promise(async move {
            let signed = match (signer, audience) {
                (Some(signer), Some(audience)) => {
                    signer.assertion(&client_id, &audience, now).await
                }
                _ => Err(TokenError::internal("nothing to sign")),
            };
            Ok(Signed(signed).into())
        })
    }

    /// Imports the signing key of a JWT method now (see `Signer::prepare`):
    /// resolves to the `config` error if WebCrypto refuses it, else `undefined`.
    #[wasm_bindgen(js_name = prepareKey, unchecked_return_type = "Promise<CoreError | undefined>")]
    pub fn prepare_key(&self) -> Promise {
        let signer = self.inner.borrow().signer.clone();
        future_to_promise(async move {
            let prepared = match signer {
                Some(signer) => signer.prepare().await,
                None => Ok(()),
            };
            Ok(prepared.err().map_or(JsValue::UNDEFINED, |e| report(&e)))
        })
    }

    /// After `sign`.
    #[wasm_bindgen(js_name = handleSigned)]
    pub fn handle_signed(&self, now: f64, mono: f64, signed: Signed) {
        self.handle(now, mono, Outcome::Signed(signed.0));
    }

    /// Sends the request the `send` effect names through `fetch` (the
    /// `fetch` option, or the global fetch), within `timeout_ms`; keeps no state.
    #[wasm_bindgen(unchecked_return_type = "Promise<Answer>")]
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(request: Request) => Promise<Response>")]
        fetch: Function,
        timeout_ms: f64,
    ) -> Promise {
        let request = self
            .inner
            .borrow_mut()
            .driver
            .as_mut()
            .and_then(|driver| driver.take_request());
        future_to_promise(async move {
            let answer = match request {
                Some(request) => http::send(&fetch, &request, timeout_ms).await,
                None => Err(TokenError::internal("nothing to send")),
            };
            Ok(Answer(answer).into())
        })
    }

    /// After `send`.
    #[wasm_bindgen(js_name = handleAnswer)]
    pub fn handle_answer(&self, now: f64, mono: f64, answer: Answer) {
        self.handle(now, mono, Outcome::Answer(answer.0));
    }

    /// The executor stopped before the acquisition's end (its own code
    /// threw): the acquisition ends as a failure.
    pub fn abandon(&self, now: f64, mono: f64) {
        let mut inner = self.inner.borrow_mut();
        inner.driver = None;
        if inner.state.in_flight() {
            // The executor's own code threw: a bug, not an outage.
            let error = TokenError::internal("token acquisition failed unexpectedly");
            inner
                .state
                .finish(at(now, mono), Some(&error), Math::random());
        }
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
    ) -> Result<JsValue, JsValue> {
        // A stored value is untrusted input: one that is not a record is no token.
        let Ok(record) = serde_wasm_bindgen::from_value::<TokenRecord>(stored) else {
            return Ok(JsValue::UNDEFINED);
        };
        let taken = self
            .state()
            .adopt(at(now, mono), record, force, Math::random());
        taken.map_or(Ok(JsValue::UNDEFINED), |record| to_js(&record))
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
    pub fn status(&self, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        let mut status = self.state().status(at(now, mono));
        let source = self.inner.borrow().source();
        status.last_error = status.last_error.map(|e| e.from_source(&source));
        to_js(&status)
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

    fn handle(&self, now: f64, mono: f64, outcome: Outcome) {
        let mut inner = self.inner.borrow_mut();
        inner.drive(|driver, parts| driver.handle(parts, at(now, mono), outcome, Math::random()));
    }

    fn state(&self) -> std::cell::RefMut<'_, TokenState> {
        std::cell::RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.state)
    }
}

/// The longest access token a token response can carry
/// (`response::MAX_ACCESS_TOKEN_BYTES`): a store copies no longer one.
#[wasm_bindgen(js_name = maxAccessTokenBytes)]
pub fn max_access_token_bytes() -> usize {
    response::MAX_ACCESS_TOKEN_BYTES
}

/// One client's store guard (`store_guard::StoreGuard`): the store's
/// failure policy, which `deno/kv_store.ts` performs on the client's clock.
#[wasm_bindgen(js_name = StoreGuard)]
pub struct JsStoreGuard(StoreGuard);

#[wasm_bindgen(js_class = StoreGuard)]
impl JsStoreGuard {
    /// A guard for a store that has not failed.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> JsStoreGuard {
        JsStoreGuard(StoreGuard::new())
    }

    /// How long one operation may take, ms.
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        STORE_TIMEOUT_MS
    }

    /// Whether an operation may run at `now`: not while cooling down after a failure.
    pub fn allows(&self, now: f64) -> bool {
        self.0.allows(now)
    }

    /// The operation begun at `started` failed for the `attempt`th time at
    /// `now` with `message`: the ms to wait before trying it again, or
    /// `undefined`: it failed, and the store is skipped for a while.
    pub fn failed(&mut self, message: &str, attempt: u32, started: f64, now: f64) -> Option<f64> {
        self.0
            .failed(message, attempt, started, now, Math::random())
    }
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

/// The one of `known` within `max` edits of `name` (ignoring case, `_` and
/// `-`), if any: a suggestion only for a near miss.
#[wasm_bindgen(js_name = nearName)]
pub fn near_name(name: &str, known: Vec<String>, max: usize) -> Option<String> {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    crate::text::near(name, &known, max).map(str::to_owned)
}

/// Whether `text` holds a credential: `secret`, its base64 or that of the
/// Basic pair it makes with `client_id`, or one of `others` (a PEM key also
/// by its body, however wrapped), in any encoding redaction knows (raw,
/// percent- or form-encoded, JSON-escaped, any letter case). `exec`
/// withholds such a variable from its command.
#[wasm_bindgen(js_name = holdsCredential)]
pub fn holds_credential(
    text: &str,
    client_id: &str,
    secret: Option<String>,
    others: Vec<String>,
) -> bool {
    let mut redactor = crate::redact::Redactor::new(client_id, secret.as_deref());
    for other in &others {
        redactor.add(other);
    }
    redactor.finds(text)
}

/// Every error code, and whether it is retryable by default: the one list.
#[wasm_bindgen(
    js_name = errorCodes,
    unchecked_return_type = "{ code: string; retryable: boolean }[]"
)]
pub fn error_codes() -> Result<JsValue, JsValue> {
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

/// Moves the events a transition produced to where `events()` takes them.
/// Apart from the transitions (as `end` is), so that the cold start's
/// short path compiles only what it runs.
#[inline(never)]
fn collect_events(events: &mut Vec<Event>, driver: &mut Driver) {
    events.extend(driver.take_events());
}

/// Drops the driver of an acquisition that ended.
#[inline(never)]
fn end(driver: &mut Option<Box<Driver>>) {
    *driver = None;
}

/// A signed assertion, or why there is none: handed from `sign` to `handleSigned`.
#[wasm_bindgen]
pub struct Signed(Result<String, TokenError>);

/// An answer, or why there is none: handed from `send` to `handleAnswer`.
#[wasm_bindgen]
pub struct Answer(Result<Received, TokenError>);

/// The signer of a JWT method's client assertions, its `privateKey` (a
/// CryptoKey or a JWK object: values serde cannot carry) read from `options`.
#[inline(never)]
fn signer(config: &Config, options: &JsValue) -> Result<Option<Rc<Signer>>, JsValue> {
    let private_key = Reflect::get(options, &JsValue::from_str("privateKey")).unwrap_or_default();
    let signer = Signer::new(config, &private_key).map_err(|e| report(&e))?;
    Ok(signer.map(Rc::new))
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

/// `error` as JavaScript gets it (a `CoreError`; an `Error` if it does not convert).
fn report(error: &TokenError) -> JsValue {
    to_js(error).unwrap_or_else(|failure| failure)
}

/// Plain objects, not `Map`s, and absent fields left out.
const SERIALIZER: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);

/// `value` for JavaScript; a value that does not convert is a thrown error, never `undefined`.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value.serialize(&SERIALIZER).map_err(|_| {
        js_sys::Error::new("freshtoken could not convert a value for JavaScript").into()
    })
}

/// What a keeper of token files does next (`token_files::Step`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilesStep {
    /// Sleep `waitMs(now)`, then ask again.
    Sleep = 0,
    /// Write the files empty, then call `emptied()`.
    Empty = 1,
    /// Refresh, then call `refreshed(…)` or `failed(now)`.
    Refresh = 2,
}

/// The keeper of `exec`'s and `agent`'s token files (`token_files::Keeper`):
/// `deno/_token_files.ts` writes and sleeps, this decides when.
#[wasm_bindgen]
pub struct FilesKeeper(crate::token_files::Keeper);

#[wasm_bindgen]
impl FilesKeeper {
    /// Files just written with a token on this schedule (none: refresh at once).
    #[wasm_bindgen(constructor)]
    pub fn new(now: f64, refresh_at: Option<f64>, usable_until: Option<f64>) -> Self {
        Self(crate::token_files::Keeper::new(
            now,
            refresh_at,
            usable_until,
        ))
    }

    /// What to do at `now`.
    pub fn poll(&self, now: f64) -> FilesStep {
        match self.0.poll(now) {
            crate::token_files::Step::Sleep => FilesStep::Sleep,
            crate::token_files::Step::Empty => FilesStep::Empty,
            crate::token_files::Step::Refresh => FilesStep::Refresh,
        }
    }

    /// How long to sleep from `now`, ms.
    #[wasm_bindgen(js_name = waitMs)]
    pub fn wait_ms(&self, now: f64) -> f64 {
        self.0.wait_ms(now)
    }

    /// The files were written empty.
    pub fn emptied(&mut self) {
        self.0.emptied();
    }

    /// A refresh succeeded and the files hold its token, on this schedule.
    pub fn refreshed(&mut self, now: f64, refresh_at: Option<f64>, usable_until: Option<f64>) {
        self.0.refreshed(now, refresh_at, usable_until);
    }

    /// A refresh failed at `now`.
    pub fn failed(&mut self, now: f64) {
        self.0.failed(now);
    }

    /// Until when the token in the files is usable, if they hold one.
    #[wasm_bindgen(js_name = holdsUntil)]
    pub fn holds_until(&self) -> Option<f64> {
        self.0.holds_until()
    }
}
