//! The WebAssembly binding: the only module that knows wasm-bindgen.
//!
//! [`Core`] is one client's [`Client`] for the Deno wrapper (deno/client.ts):
//! a caller's loop is a [`CallState`] the wrapper steps (`core.step`); an
//! acquisition is run by the executor (deno/_executor.ts): `poll` names the
//! next effect, the executor performs it, `handle` takes its outcome (one
//! tagged input). No call into the core calls back into JavaScript. Values
//! cross the boundary through serde-wasm-bindgen; the two effects the core
//! performs itself are stateless async functions: `send` (the host's
//! `fetch`, [`http`]) and `sign` (WebCrypto, [`sign`]). The core keeps no
//! JavaScript value between calls, so nothing here keeps a dropped client alive.

mod http;
mod notify;
mod sign;

use crate::call::Call;
use crate::client::{Client, Start};
use crate::clock::Now;
use crate::config::Config;
use crate::driver::{Effect, LeaseResult, Outcome, Seen};
use crate::error::{ErrorCode, TokenError};
use crate::options::{check_names, option_names, read, Options, RetryOptions};
use crate::pool::{self, SlotView};
use crate::rate_limit::ApiCall;
use crate::response::{self, Received};
use crate::state::{self, TokenState};
use crate::store_guard::{StoreGuard, STORE_TIMEOUT_MS};
use js_sys::{Function, Math, Object, Promise, Reflect};
use serde::Serialize;
use sign::Signer;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::convert::TryFromJsValue;
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

/** What the executor does next (`core.poll`), and the outcome `core.handle` takes after it. */
export type CoreEffect =
  | { type: "read_store"; eventual: boolean } // snapshot
  | { type: "take_lease"; ttlMs: number } // lease
  | { type: "renew_lease"; ttlMs: number } // renewed
  | { type: "release_lease" } // stored
  | { type: "write_store"; record: TokenRecord } // stored
  | { type: "remove_store"; only?: string } // removed
  | { type: "set_backoff"; until: number } // stored
  | { type: "read_metadata" } // metadata_copy
  | { type: "write_metadata"; copy: string } // stored
  | { type: "sleep"; ms: number; why: "lease" | "backoff" | "retry" } // slept
  | { type: "sign" } // core.sign() resolves to the outcome
  | { type: "credential"; timeoutMs: number } // credential: the clientSecret or clientAssertion function's
  | { type: "send"; timeoutMs: number } // core.send() resolves to the outcome
  | { type: "done"; record: TokenRecord; source: "network" | "kv" | "held" }
  | { type: "fail"; error: CoreError };

/** What the executor hands back after an effect (`core.handle`): the one input. */
export type CoreOutcome =
  | { type: "snapshot"; snapshot?: CoreSnapshot } // absent: the store failed
  | { type: "lease"; taken?: boolean } // taken; false: held by another; absent: the store failed
  | { type: "renewed"; kept: boolean }
  | { type: "metadata_copy"; copy?: string }
  | { type: "slept" }
  | { type: "stored" }
  | { type: "removed" }
  | { type: "signed"; signed: Signed }
  | { type: "credential"; value?: string } // absent: the function threw, gave no string, or took too long
  | { type: "answer"; answer: Answer }
  | { type: "broken" }; // the executor could not perform the effect

/** What a read of the store found, as `core.handle` takes it. */
export interface CoreSnapshot {
  /** The stored token, undecoded: the core checks it. */
  token?: unknown;
  leaseUntil?: number;
  leaseHolder?: string;
  leaseTakenAt?: number;
  backoffUntil?: number;
  /** Until when the token cools after an API's 429, epoch ms. */
  coolingUntil?: number;
}

/** What an acquisition is started for (`core.start`). */
export type CoreStart =
  | { type: "fetch" }
  | { type: "background" }
  | { type: "refresh" }
  | { type: "read" }
  | { type: "cron"; aheadMs: number };

/** What a `getToken` caller does next (`core.step`). */
export type CallStep =
  | { type: "serve"; hit: boolean; refresh: boolean } // refresh: run the background acquisition begun
  | { type: "wait"; ms: number }
  | { type: "run" } // run the acquisition begun, then step again
  | { type: "join" } // wait for the acquisition in flight, then step again
  | { type: "fail"; error: CoreError };

/** What `client.fetch` does after a 401 (`core.unauthorized`), and the delete to perform first. */
export interface CoreUnauthorized {
  next: "retry_with_current" | "refresh" | "give_up";
  remove?: CoreEffect;
}

/** What `client.fetch` does about the token's cooling before it sends (`core.beforeSend`). */
export type ApiStep =
  | { type: "send" }
  | { type: "wait"; ms: number } // the token cools: wait, then send again
  | { type: "return" }; // hand the 429 to the caller

/** After a 429 (`core.rateLimited`): how long this 429 cools the token. */
export interface CoreRateLimited {
  coolingMs: number;
  /** With a store: write the cooling's end (epoch ms) for every isolate. */
  share?: number;
}

/** What a call does after a 429 (`core.after429`): the loop sends next on the slot named. */
export type AfterLimit =
  | { type: "move"; slot: number } // send again at once with this slot
  | { type: "wait"; slot: number; ms: number } // wait for this slot to stop cooling, then send with it
  | { type: "return" }; // hand the 429 to the caller

/** One slot of a pool, as `core.pick` and `core.after429` read it (`core.slotView`, plus the pool's `lastUsed`). */
export interface SlotView {
  usable: boolean;
  filling: boolean;
  heldBack: boolean;
  coolingUntil: number;
  lastUsed: number;
}

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

struct Inner {
    client: Client,
    /// Signs the assertions of the JWT methods.
    signer: Option<Rc<Signer>>,
}

/// One client's core: its configuration and its token state.
#[wasm_bindgen]
pub struct Core {
    inner: Rc<RefCell<Inner>>,
}

/// One `getToken` call's loop (`core.step`), held by the wrapper for the call.
#[wasm_bindgen]
pub struct CallState(Call);

#[wasm_bindgen]
impl CallState {
    /// A call at `now`/`mono` for a token valid `min_valid_ms` more.
    #[wasm_bindgen(constructor)]
    pub fn new(now: f64, mono: f64, min_valid_ms: f64) -> CallState {
        CallState(Call::new(at(now, mono), min_valid_ms))
    }
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
        Ok(Core {
            inner: Rc::new(RefCell::new(Inner {
                client: Client::new(config, normalise_url),
                signer,
            })),
        })
    }

    /// The token endpoint's origin, as error messages name it.
    #[wasm_bindgen(getter)]
    pub fn origin(&self) -> String {
        self.inner.borrow().client.source().origin
    }

    /// What names this client's token in KV (the wrapper adds a fingerprint of the credential).
    #[wasm_bindgen(getter, unchecked_return_type = "Identity")]
    pub fn identity(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.borrow().client.config.kv_identity())
    }

    /// What the caller of `call` does next (a `CallStep`; see `Call::poll`).
    #[wasm_bindgen(unchecked_return_type = "CallStep")]
    pub fn step(&self, call: &mut CallState, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        let mut inner = self.inner.borrow_mut();
        let step = call.0.poll(&mut inner.client, at(now, mono));
        let source = inner.client.source();
        match step {
            crate::call::Step::Fail { error } => to_js(&crate::call::Step::Fail {
                error: error.from_source(&source),
            }),
            step => to_js(&step),
        }
    }

    /// Whether the token held is missing or due within `ahead_ms`: a cron
    /// check that ended without a token request and left it so failed
    /// (docs/DESIGN.md, "The cron job").
    #[wasm_bindgen(js_name = dueWithin)]
    pub fn due_within(&self, now: f64, mono: f64, ahead_ms: f64) -> bool {
        self.state().due(at(now, mono), ahead_ms)
    }

    /// Until when (wall clock) a caller with no `minValidSeconds` is served
    /// the token held: the wrapper's hot path compares with it.
    #[wasm_bindgen(js_name = serveUntil)]
    pub fn serve_until(&self, now: f64, mono: f64) -> f64 {
        self.state().serve_until(at(now, mono))
    }

    /// Begins an acquisition (a `CoreStart`), or joins the one in flight:
    /// `"begun"` (run it) or `"joined"`; throws a `CoreError` while token
    /// requests are held back after failures.
    #[wasm_bindgen(unchecked_return_type = "\"begun\" | \"joined\"")]
    pub fn start(
        &self,
        now: f64,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "CoreStart")] start: JsValue,
    ) -> Result<JsValue, JsValue> {
        let start =
            read_start(&start).ok_or_else(|| js_sys::Error::new("freshtoken: not a CoreStart"))?;
        let started = self.inner.borrow_mut().client.start(at(now, mono), start);
        match started {
            Ok(started) => to_js(&started),
            Err(error) => Err(self.report(error)),
        }
    }

    /// The next effect of the acquisition in flight (a `CoreEffect`).
    #[wasm_bindgen(unchecked_return_type = "CoreEffect")]
    pub fn poll(&self, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        let mut inner = self.inner.borrow_mut();
        match inner.client.poll(at(now, mono), Math::random()) {
            Effect::Fail { error } => to_js(&Effect::Fail {
                error: error.from_source(&inner.client.source()),
            }),
            effect => to_js(&effect),
        }
    }

    /// The outcome of the effect polled last (a `CoreOutcome`): the
    /// executor's one input. One that does not read as an outcome is `broken`.
    pub fn handle(
        &self,
        now: f64,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "CoreOutcome")] outcome: JsValue,
    ) {
        let outcome = read_outcome(outcome);
        let mut inner = self.inner.borrow_mut();
        inner.client.handle(at(now, mono), outcome, Math::random());
    }

    /// How many events wait to be taken (`events()` is called only then).
    #[wasm_bindgen(getter, js_name = eventCount)]
    pub fn event_count(&self) -> usize {
        self.inner.borrow().client.event_count()
    }

    /// What the transitions so far reported (`CoreEvent`s), once.
    #[wasm_bindgen(unchecked_return_type = "CoreEvent[]")]
    pub fn events(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.borrow_mut().client.take_events())
    }

    /// Signs the assertion the `sign` effect asks for (WebCrypto); keeps no
    /// state. Resolves to the `signed` outcome for `handle`.
    #[wasm_bindgen(unchecked_return_type = "Promise<CoreOutcome>")]
    pub fn sign(&self, now: f64) -> Promise {
        let (signer, client_id, audience) = {
            let inner = self.inner.borrow();
            let audience = inner.client.audience();
            let client_id = inner.client.config.identity.client_id.clone();
            (inner.signer.clone(), client_id, audience)
        };
        future_to_promise(async move {
            let signed = match (signer, audience) {
                (Some(signer), Some(audience)) => {
                    signer.assertion(&client_id, &audience, now).await
                }
                _ => Err(TokenError::internal("nothing to sign")),
            };
            Ok(tagged("signed", "signed", Signed(signed).into()))
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

    /// Sends the request the `send` effect names through `fetch` (the
    /// `fetch` option, or the global fetch), within `timeout_ms`; keeps no
    /// state. Resolves to the `answer` outcome for `handle`.
    #[wasm_bindgen(unchecked_return_type = "Promise<CoreOutcome>")]
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(request: Request) => Promise<Response>")]
        fetch: Function,
        timeout_ms: f64,
    ) -> Promise {
        let request = self.inner.borrow_mut().client.take_request();
        future_to_promise(async move {
            let answer = match request {
                Some(request) => http::send(&fetch, &request, timeout_ms).await,
                None => Err(TokenError::internal("nothing to send")),
            };
            Ok(tagged("answer", "answer", Answer(answer).into()))
        })
    }

    /// Forgets the cached token; returns the delete of the stored one to
    /// perform (a `remove_store` effect), or `undefined` without a store.
    #[wasm_bindgen(unchecked_return_type = "CoreEffect | undefined")]
    pub fn invalidate(&self) -> Result<JsValue, JsValue> {
        let remove = self.inner.borrow_mut().client.invalidate();
        remove.map_or(Ok(JsValue::UNDEFINED), |effect| to_js(&effect))
    }

    /// `client.fetch` got a 401 with `token`: what to do next, and the
    /// delete of that token to perform first (a `CoreUnauthorized`).
    #[wasm_bindgen(unchecked_return_type = "CoreUnauthorized")]
    pub fn unauthorized(&self, now: f64, mono: f64, token: &str) -> Result<JsValue, JsValue> {
        #[derive(Serialize)]
        struct Next {
            next: state::Unauthorized,
            #[serde(skip_serializing_if = "Option::is_none")]
            remove: Option<Effect>,
        }
        let (next, remove) =
            self.inner
                .borrow_mut()
                .client
                .unauthorized(at(now, mono), token, Math::random());
        to_js(&Next { next, remove })
    }

    /// Until when the token cools after a 429, monotonic ms: `client.fetch`
    /// asks `beforeSend` only before then.
    #[wasm_bindgen(getter, js_name = coolingUntil)]
    pub fn cooling_until(&self) -> f64 {
        self.state().cooling_until()
    }

    /// `client.fetch`, begun at `started` (monotonic ms) and having sent
    /// `sends` times, is about to send: an `ApiStep` (`send` or `wait`).
    #[wasm_bindgen(js_name = beforeSend, unchecked_return_type = "ApiStep")]
    pub fn before_send(
        &self,
        now: f64,
        mono: f64,
        started: f64,
        sends: u32,
    ) -> Result<JsValue, JsValue> {
        let call = ApiCall { started, sends };
        to_js(&self.inner.borrow().client.before_send(at(now, mono), &call))
    }

    /// `client.fetch` got a 429 whose `Retry-After` reads `retry_after`:
    /// the token cools (a `CoreRateLimited`); what the call does next is
    /// `after429`'s answer.
    #[wasm_bindgen(js_name = rateLimited, unchecked_return_type = "CoreRateLimited")]
    pub fn rate_limited(
        &self,
        now: f64,
        mono: f64,
        started: f64,
        sends: u32,
        retry_after: Option<String>,
        replayable: bool,
    ) -> Result<JsValue, JsValue> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Cooled {
            cooling_ms: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            share: Option<f64>,
        }
        let call = ApiCall { started, sends };
        let (_, cooling_ms, share) = self.inner.borrow_mut().client.rate_limited(
            at(now, mono),
            &call,
            retry_after.as_deref(),
            replayable,
        );
        to_js(&Cooled { cooling_ms, share })
    }

    /// `poolSize`: how many slots this client's pool has.
    #[wasm_bindgen(getter, js_name = poolSize)]
    pub fn pool_size(&self) -> u32 {
        self.inner.borrow().client.config.pool_size
    }

    /// Another slot of this pool, `sibling`, failed: without KV, this slot
    /// is held back as long (src/client.rs, `Client::hold_back_as`).
    #[wasm_bindgen(js_name = holdBackAs)]
    pub fn hold_back_as(&self, sibling: &Core, now: f64, mono: f64) {
        if Rc::ptr_eq(&self.inner, &sibling.inner) {
            return;
        }
        let sibling = sibling.inner.borrow();
        self.inner
            .borrow_mut()
            .client
            .hold_back_as(&sibling.client, at(now, mono));
    }

    /// This client as a slot of a pool (a `SlotView`, its `lastUsed` left to the pool).
    #[wasm_bindgen(js_name = slotView, unchecked_return_type = "SlotView")]
    pub fn slot_view(&self, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        to_js(&self.inner.borrow().client.slot_view(at(now, mono)))
    }

    /// Which slot of the pool serves the next call (`Pick::slot`;
    /// src/pool.rs): only its index crosses, as the pool needs no more.
    pub fn pick(
        &self,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "SlotView[]")] slots: JsValue,
    ) -> Result<usize, JsValue> {
        Ok(pool::pick(&read_slots(slots)?, mono).slot())
    }

    /// Slot `own` of `slots` got a 429 (its cooling in its view; a client
    /// alone is a pool of one): whether the call moves at once, waits for
    /// the slot free soonest, or returns the 429 (an `AfterLimit`;
    /// src/pool.rs, `after_429`).
    #[wasm_bindgen(js_name = after429, unchecked_return_type = "AfterLimit")]
    #[allow(clippy::too_many_arguments)]
    pub fn after_429(
        &self,
        now: f64,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "SlotView[]")] slots: JsValue,
        own: usize,
        started: f64,
        sends: u32,
        replayable: bool,
    ) -> Result<JsValue, JsValue> {
        let slots = read_slots(slots)?;
        if own >= slots.len() {
            return Err(js_sys::Error::new("freshtoken: no such slot").into());
        }
        let call = ApiCall { started, sends };
        let retry = &self.inner.borrow().client.config.retry;
        to_js(&pool::after_429(
            &slots,
            at(now, mono),
            &call,
            replayable,
            retry,
            own,
        ))
    }

    /// A slot failed to give a call a token: the slot that serves it
    /// instead, or `undefined` (src/pool.rs, `instead`).
    pub fn instead(
        &self,
        mono: f64,
        #[wasm_bindgen(unchecked_param_type = "SlotView[]")] slots: JsValue,
    ) -> Result<Option<usize>, JsValue> {
        Ok(pool::instead(&read_slots(slots)?, mono))
    }

    /// A request sent again after a 401 was accepted.
    pub fn authorized(&self) {
        self.state().authorized();
    }

    /// What `status()` reports.
    #[wasm_bindgen(unchecked_return_type = "CoreStatus")]
    pub fn status(&self, now: f64, mono: f64) -> Result<JsValue, JsValue> {
        let mut status = self.state().status(at(now, mono));
        let source = self.inner.borrow().client.source();
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
        report(&error.from_source(&self.inner.borrow().client.source()))
    }

    fn state(&self) -> std::cell::RefMut<'_, TokenState> {
        std::cell::RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.client.state)
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

/// A signed assertion, or why there is none: in the `signed` outcome of `sign`.
#[wasm_bindgen]
pub struct Signed(Result<String, TokenError>);

/// An answer, or why there is none: in the `answer` outcome of `send`.
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
    // serde cannot read a function: a `clientSecret` function is read as
    // asked for at each request, from a copy of the options without it.
    let secret = JsValue::from_str("clientSecret");
    if !Reflect::get(value, &secret)
        .unwrap_or_default()
        .is_function()
    {
        return read(serde_wasm_bindgen::Deserializer::from(value.clone()));
    }
    let copy = Object::assign(&Object::new(), value.unchecked_ref::<Object>());
    let _ = Reflect::delete_property(&copy, &secret);
    let mut options = read(serde_wasm_bindgen::Deserializer::from(JsValue::from(copy)))?;
    options.secret_asked = true;
    Ok(options)
}

/// The outcome `{ type: tag, [field]: value }` (for `sign` and `send`).
fn tagged(tag: &str, field: &str, value: JsValue) -> JsValue {
    let outcome = Object::new();
    let _ = Reflect::set(
        &outcome,
        &JsValue::from_str("type"),
        &JsValue::from_str(tag),
    );
    let _ = Reflect::set(&outcome, &JsValue::from_str(field), &value);
    outcome.into()
}

/// `value[name]` (`undefined` when absent).
fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(name)).unwrap_or_default()
}

/// The executor's outcome (a `CoreOutcome`) for the driver, read field by
/// field (serde's tagged enums would cost the wasm some 40 KB); one that
/// does not read as an outcome is `Broken`.
fn read_outcome(value: JsValue) -> Outcome {
    let tag = field(&value, "type").as_string().unwrap_or_default();
    match tag.as_str() {
        "snapshot" => Outcome::Snapshot(read_snapshot(field(&value, "snapshot"))),
        "lease" => Outcome::Lease(match field(&value, "taken").as_bool() {
            Some(true) => LeaseResult::Taken,
            Some(false) => LeaseResult::Held,
            None => LeaseResult::Failed,
        }),
        "renewed" => Outcome::Renewed(field(&value, "kept").as_bool() == Some(true)),
        "metadata_copy" => Outcome::MetadataCopy(field(&value, "copy").as_string()),
        "slept" => Outcome::Slept,
        "stored" => Outcome::Stored,
        "removed" => Outcome::Removed,
        "credential" => Outcome::Credential(field(&value, "value").as_string()),
        "signed" => match Signed::try_from_js_value(field(&value, "signed")) {
            Ok(signed) => Outcome::Signed(signed.0),
            Err(_) => Outcome::Broken,
        },
        "answer" => match Answer::try_from_js_value(field(&value, "answer")) {
            Ok(answer) => Outcome::Answer(answer.0),
            Err(_) => Outcome::Broken,
        },
        _ => Outcome::Broken,
    }
}

/// The slots of a pool (`SlotView[]`), never empty.
fn read_slots(slots: JsValue) -> Result<Vec<SlotView>, JsValue> {
    let slots: Vec<SlotView> = serde_wasm_bindgen::from_value(slots)
        .map_err(|_| js_sys::Error::new("freshtoken: not a SlotView[]"))?;
    if slots.is_empty() {
        return Err(js_sys::Error::new("freshtoken: a pool has slots").into());
    }
    Ok(slots)
}

/// What a read of the store found (a `CoreSnapshot`); `None` when the store failed.
fn read_snapshot(snapshot: JsValue) -> Option<Seen> {
    if !snapshot.is_object() {
        return None;
    }
    Some(Seen {
        token: serde_wasm_bindgen::from_value(field(&snapshot, "token")).ok(),
        lease_until: field(&snapshot, "leaseUntil").as_f64(),
        lease_holder: field(&snapshot, "leaseHolder").as_string(),
        lease_taken_at: field(&snapshot, "leaseTakenAt").as_f64(),
        backoff_until: field(&snapshot, "backoffUntil").as_f64().unwrap_or(0.0),
        cooling_until: field(&snapshot, "coolingUntil").as_f64().unwrap_or(0.0),
    })
}

/// What an acquisition is started for (a `CoreStart`).
fn read_start(value: &JsValue) -> Option<Start> {
    let tag = field(value, "type").as_string()?;
    Some(match tag.as_str() {
        "fetch" => Start::Fetch,
        "background" => Start::Background,
        "refresh" => Start::Refresh,
        "read" => Start::Read,
        "cron" => Start::Cron {
            ahead_ms: field(value, "aheadMs").as_f64()?,
        },
        _ => return None,
    })
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
