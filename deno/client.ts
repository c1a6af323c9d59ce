/**
 * The token client: the hot path and the single-flight promise over the
 * wasm core, which decides when to serve, refresh or fetch, and performs
 * the token request (docs/DESIGN.md).
 *
 * @module
 */

import {
  CallState,
  type CallStep,
  Core,
  type CoreEvent,
  type CoreStart,
  type TokenRecord,
} from "../pkg/freshtoken.js";
import { decodeKey } from "./_cipher.ts";
import { askCredential, type CredentialFn, credentialFn } from "./_credential.ts";
import { type Ending, execute, type Host, perform } from "./_executor.ts";
import {
  DESCRIBE,
  HELD,
  type Held,
  INVALIDATE,
  KV_ID,
  KV_PLACE,
  type KvPlace,
  LOAD_SHARED,
  PREPARE_KEY,
  REFRESH_IF_DUE,
  SAMPLE,
  sleep,
  SLOT,
  unlessAborted,
} from "./_internal.ts";
import { observe } from "./_observe.ts";
import {
  type FetchCall,
  fetchLoop,
  type Moment,
  PoolClient,
  type RateLimitReport,
  type Slot,
  type Slots,
} from "./_pool.ts";
import { snapshot } from "./_snapshot.ts";
import {
  type AcquisitionReport,
  type Sample,
  type Span,
  type Telemetry,
  telemetry,
} from "./_telemetry.ts";
import { KvStore, type TokenStore } from "./kv_store.ts";
import { kvId, sealKey } from "./_identity.ts";
import { Token } from "./token.ts";
import { configError, fromCore, TokenError, type TokenErrorCode } from "./token_error.ts";
import type {
  GetTokenOptions,
  RefreshResult,
  TokenClient,
  TokenClientOptions,
  TokenEvent,
  TokenStatus,
} from "./types.ts";

/** The host's fetch, looked up at call time (tests and apps may replace it). */
const hostFetch = (input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init);
/** The monotonic clock when the wall clock is the host's. */
const monotonic = () => performance.now();

/** The KV key prefix unless the `kvPrefix` option names another. */
const DEFAULT_KV_PREFIX: Deno.KvKey = ["freshtoken"];

/** The largest `minValidSeconds`: a year, the longest lifetime a token may have. */
const MAX_MIN_VALID_SECONDS = 31_536_000;
/** Each slot's core, for its siblings in a pool (`Slot.holdBackAs`). */
const cores = new WeakMap<Slot, Core>();

/** The cached token, with the same resolved promise for every cache hit. */
interface Entry {
  token: Token;
  resolved: Promise<Token>;
}

/** What an acquisition ended with: the token, and where it came from. */
interface Acquired {
  token: Token;
  source: "network" | "kv" | "held";
}

/**
 * Creates a client that fetches a client-credentials token on first use,
 * caches it, refreshes it before expiry and shares one request between
 * concurrent callers — across isolates and processes too, when given a
 * Deno KV. Synchronous: bad options throw a {@linkcode TokenError} with
 * code `"config"` here, before anything is sent.
 *
 * @example
 * ```ts
 * import { createTokenClient } from "./mod.ts";
 *
 * const client = createTokenClient({
 *   tokenUrl: "https://login.mypurecloud.ie/oauth/token",
 *   clientId: Deno.env.get("CLIENT_ID") ?? "id",
 *   clientSecret: Deno.env.get("CLIENT_SECRET") ?? "secret",
 *   baseUrl: "https://api.mypurecloud.ie",
 * });
 * // Later, in a handler: the Authorization header is added for you.
 * const call = () => client.fetch("/api/v2/organizations/me");
 * ```
 */
export function createTokenClient(options: TokenClientOptions): TokenClient {
  const first = new FreshTokenClient(options);
  if (!FreshTokenClient.pooled(first)) return first;
  // Each slot is a client of its own (docs/DESIGN.md, "Token pools").
  return new PoolClient(first, (slot) => new FreshTokenClient(options, slot));
}

class FreshTokenClient implements TokenClient {
  readonly #core: Core;
  readonly #fetch: typeof globalThis.fetch;
  /** With mutual TLS: the certificate the token requests present. */
  readonly #certificate?: Deno.CreateHttpClientOptions & Deno.TlsCertifiedKeyPem;
  readonly #now: () => number;
  readonly #mono: () => number;
  readonly #onEvent?: (event: TokenEvent) => void;
  readonly #baseUrl?: string;
  /** With `baseUrl`: the origins `fetch` may send the token to. */
  readonly #origins?: ReadonlySet<string>;
  #store?: Promise<TokenStore>;
  /** The `clientSecret` function or `clientAssertion`, asked for each token request. */
  readonly #credential?: CredentialFn;
  /** With KV and a `clientSecret` function: the KV id of a secret it gave, and the store under an id. */
  #rekey?: {
    /** Whether the store was just opened with the secret read for it: the first acquisition reads no more. */
    fresh: boolean;
    read(): Promise<string | undefined>;
    id(secret?: string): Promise<string>;
    open(id: string): Promise<TokenStore>;
  };
  /** With KV: the store and key prefix the token is kept under. */
  readonly #kvAt?: Omit<KvPlace, "id">;
  /** Spans and metrics, when OpenTelemetry is on. */
  readonly #telemetry?: Telemetry;
  /** What identifies this client in them, made on first use. */
  #attributesMade?: Record<string, string>;
  #entry?: Entry;
  /**
   * The promise of the acquisition in flight, for its joiners. The core
   * holds the only record of the acquisition itself and says when to
   * begin one (`start`, `step`) or join this one.
   */
  #flight?: Promise<Acquired>;
  /** The hot path serves while the clock reads in [#servedAt, #serveUntil): the core's answer. */
  #serveUntil = -Infinity;
  #servedAt = Infinity;
  /** Until when the token cools after a 429 (monotonic ms): the core's answer, kept after each change. */
  #coolingUntil = -Infinity;
  #hits = 0;
  /** Of `#hits`, the tokens taken from KV. */
  #kvHits = 0;
  /** Its slot in a pool (0 without one): slot k > 0 keeps its own KV entries. */
  readonly #slot: number;
  /** Whether it is a slot of a pool (`poolSize` above 1): its events name the slot. */
  readonly #pooled: boolean;
  /** This client as a slot (`[SLOT]`), made on first use. */
  #slotMade?: Slot;
  /** Its slots for `client.fetch`: itself alone. */
  #alone?: Slots;
  /** In a pool: told when a token request of this slot failed (`Slot.whenRequestFailed`). */
  #requestFailed?: () => void;

  /** Whether `client` is the first slot of a pool (`poolSize` above 1). */
  static pooled(client: FreshTokenClient): boolean {
    return client.#pooled;
  }

  constructor(given: TokenClientOptions, slot = 0) {
    this.#slot = slot;
    const options = snapshot(given);
    try {
      this.#core = new Core(options as unknown as Record<string, unknown>);
    } catch (error) {
      throw fromCore(error);
    }
    this.#pooled = this.#core.poolSize > 1;
    this.#fetch = fn("fetch", options.fetch, hostFetch);
    this.#now = fn("now", options.now, Date.now);
    // An injected clock stands for both clocks, so that tests move all time at once.
    this.#mono = options.now === undefined ? monotonic : this.#now;
    this.#onEvent = fn("onEvent", options.onEvent, undefined);
    fn("clientAssertion", options.clientAssertion, undefined);
    this.#credential = credentialFn(options);
    this.#certificate = clientCertificate(options.clientCertificate);
    if (options.baseUrl !== undefined) {
      this.#baseUrl = parseUrl("baseUrl", options.baseUrl);
      const others = (options.allowedOrigins ?? []).map((o) => parseUrl("allowedOrigins", o));
      this.#origins = new Set([this.#baseUrl, ...others].map((url) => new URL(url).origin));
    } else if (options.allowedOrigins !== undefined) {
      throw configError("allowedOrigins needs the baseUrl option");
    }
    this.#store = this.#openStore(options);
    if (this.#store !== undefined) {
      this.#kvAt = { kv: options.kv!, prefix: options.kvPrefix ?? DEFAULT_KV_PREFIX };
    }
    this.#telemetry = telemetry();
    this.#telemetry?.register(this);
  }

  getToken(options?: GetTokenOptions): Promise<Token> {
    if (
      options === undefined || (options.minValidSeconds === undefined && !options.signal?.aborted)
    ) {
      // The hot path: one clock read and two comparisons, no wasm call. A
      // clock reading below the last one means the wall clock went back:
      // then the core, which also reads a monotonic clock, decides. A
      // signal not aborted changes nothing here (client.fetch passes its
      // request's).
      const now = this.#now();
      if (now < this.#serveUntil && now >= this.#servedAt) {
        this.#servedAt = now;
        this.#hits++;
        if (this.#onEvent) this.#emit({ type: "cache_hit", at: now, source: "memory" });
        return this.#entry!.resolved;
      }
    }
    return this.#getSlow(options);
  }

  /** The caller's loop, as the core steps it (src/call.rs): this decides nothing. */
  async #getSlow(options: GetTokenOptions = {}): Promise<Token> {
    const { signal, minValidSeconds = 0 } = options;
    if (
      typeof minValidSeconds !== "number" ||
      !(minValidSeconds >= 0 && minValidSeconds <= MAX_MIN_VALID_SECONDS)
    ) {
      throw configError(`minValidSeconds must be a number from 0 to ${MAX_MIN_VALID_SECONDS}`);
    }
    const call = new CallState(this.#now(), this.#mono(), minValidSeconds * 1000);
    try {
      for (;;) {
        if (signal?.aborted) throw this.#aborted();
        const step: CallStep = this.#core.step(call, this.#now(), this.#mono());
        switch (step.type) {
          case "serve":
            if (step.hit) {
              this.#hits++;
              this.#emit({ type: "cache_hit", at: this.#now(), source: "memory" });
            }
            if (step.refresh) this.#refreshInBackground();
            else this.#sync();
            return this.#entry!.token;
          case "wait":
            await sleep(step.ms, signal);
            break;
          case "run":
          case "join": {
            const flight = step.type === "run" ? this.#run(false) : this.#flight!;
            await (signal === undefined
              ? flight
              : unlessAborted(flight, signal, () => this.#aborted()));
            break;
          }
          case "fail":
            throw fromCore(step.error);
        }
      }
    } finally {
      call.free();
    }
  }

  async refresh(): Promise<Token> {
    return (await this.#start({ type: "refresh" })).token;
  }

  invalidate(): Promise<void> {
    return this[INVALIDATE](1);
  }

  /**
   * Forgets the token; the store delete the core names covers `slots`
   * slots: this client's own (1), every slot of its pool in one operation
   * (the pool's size, asked of slot 0), or none, left to slot 0 (0).
   */
  async [INVALIDATE](slots: number): Promise<void> {
    const remove = this.#core.invalidate();
    this.#entry = undefined;
    this.#sync();
    if (remove === undefined || slots === 0) return;
    if (slots === 1) return await this.#performApart(remove);
    await (await this.#store)?.removeSlots(slots);
  }

  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const slot = this[SLOT]();
    this.#alone ??= {
      pick: () => slot,
      token: async (slot, signal) => ({ slot, token: await slot.getToken({ signal }) }),
      // A client alone is a pool of one: the core answers from its one view.
      after429: (slot, call, replayable, at) => ({
        next: slot.after429([slot.view()], 0, call, replayable, at),
        to: slot,
      }),
    };
    return this.#fetchThrough(this.#alone, input, init);
  }

  /** `client.fetch` over `slots` (itself, or a pool's): checks the origin, then runs the loop. */
  #fetchThrough(
    slots: Slots,
    input: string | URL | Request,
    init?: RequestInit,
  ): Promise<Response> {
    const target = typeof input === "string" && this.#baseUrl !== undefined
      ? new URL(input, this.#baseUrl)
      : input;
    const request = new Request(target, init);
    const origin = new URL(request.url).origin;
    if (this.#origins !== undefined && !this.#origins.has(origin)) {
      return Promise.reject(configError(
        `client.fetch sends the token only to ${[...this.#origins].join(", ")}, not to ${origin} ` +
          `(allowedOrigins lists further origins)`,
      ));
    }
    // A stream body is consumed by the first attempt and cannot be replayed.
    const replayable = !(init?.body instanceof ReadableStream);
    return fetchLoop(slots, request, replayable, this.#mono());
  }

  /** This client as a slot: what `client.fetch`'s loop and a pool ask of it (`deno/_pool.ts`). */
  [SLOT](): Slot {
    if (this.#slotMade !== undefined) return this.#slotMade;
    this.#slotMade = {
      poolSize: this.#core.poolSize,
      mono: this.#mono,
      now: this.#now,
      view: () => this.#core.slotView(this.#now(), this.#mono()),
      servingCooling: (now) =>
        now < this.#serveUntil && now >= this.#servedAt ? this.#coolingUntil : undefined,
      pick: (slots) => this.#core.pick(this.#mono(), slots),
      instead: (slots) => this.#core.instead(this.#mono(), slots),
      after429: (slots, own, call, replayable, at) =>
        this.#core.after429(
          at.now,
          at.mono,
          slots,
          own,
          call.started,
          call.sends,
          replayable,
        ),
      getToken: (options) => this.getToken(options),
      whileCooling: (call, signal) => this.#whileCooling(call, signal),
      send: (request, token) => this.#send(request, token),
      rateLimited: (call, response, replayable) => this.#rateLimited(call, response, replayable),
      apiWait: (ms, signal) => this.#apiWait(ms, signal),
      unauthorized: (response, token) => this.#unauthorized(response, token),
      authorized: () => this.#core.authorized(),
      report: (report) => this.#report429(report),
      whenRequestFailed: (then) => this.#requestFailed = then,
      holdBackAs: (other) => {
        const sibling = other === this.#slotMade ? undefined : cores.get(other);
        if (sibling === undefined) return;
        this.#core.holdBackAs(sibling, this.#now(), this.#mono());
        this.#sync();
      },
      fetchThrough: (slots, input, init) => this.#fetchThrough(slots, input, init),
    };
    cores.set(this.#slotMade, this.#core);
    return this.#slotMade;
  }

  /**
   * Before `client.fetch` sends: while the token cools after a 429, waits
   * for it when the core says the wait fits the call (src/rate_limit.rs),
   * or until `signal` aborts, and then says so (`true`). Past the cooling,
   * no wasm call.
   */
  async #whileCooling(call: FetchCall, signal: AbortSignal): Promise<boolean> {
    if (this.#mono() >= this.#coolingUntil) return false;
    const step = this.#core.beforeSend(this.#now(), this.#mono(), call.started, call.sends);
    if (step.type !== "wait") return false;
    await this.#apiWait(step.ms, signal);
    return true;
  }

  /**
   * The API answered 429: the core cools the token (with KV, for every
   * isolate); how long, ms, and when, which `core.after429` counts its
   * wait from.
   */
  async #rateLimited(
    call: FetchCall,
    response: Response,
    replayable: boolean,
  ): Promise<{ coolingMs: number; at: Moment }> {
    const retryAfter = response.headers.get("retry-after") ?? undefined;
    const at = { now: this.#now(), mono: this.#mono() };
    const { coolingMs, share } = this.#core.rateLimited(
      at.now,
      at.mono,
      call.started,
      call.sends,
      retryAfter,
      replayable,
    );
    this.#coolingUntil = this.#core.coolingUntil;
    if (share !== undefined) await (await this.#store)?.setCooling(share);
    return { coolingMs, at };
  }

  /** What a call did after a 429: the event, and with telemetry the count by `next` and a move's span. */
  #report429({ next, coolingMs, sentAt, to }: RateLimitReport): void {
    this.#emit({ type: "rate_limited", at: this.#now(), status: 429, coolingMs, next });
    const telemetry = this.#telemetry;
    if (telemetry === undefined) return;
    telemetry.rateLimited(this.#slotAttributes(), next);
    if (next === "move") {
      telemetry.moved({
        ...this.#slotAttributes(),
        "freshtoken.slot_to": to!,
        "freshtoken.cooling_ms": coolingMs,
      }, sentAt);
    }
  }

  /** What identifies this client in telemetry, with its slot when it is one of a pool's. */
  #slotAttributes(): Record<string, string | number> {
    return this.#pooled
      ? { ...this.#attributes(), "freshtoken.slot": this.#slot }
      : this.#attributes();
  }

  /** `client.fetch` waits `ms` for its token to stop cooling, or until `signal` aborts. */
  async #apiWait(ms: number, signal: AbortSignal): Promise<void> {
    this.#emit({ type: "api_wait", at: this.#now(), delayMs: ms });
    const span = this.#telemetry?.wait("freshtoken.rate_limit_wait", {
      ...this.#slotAttributes(),
      "freshtoken.delay_ms": ms,
    });
    await sleep(ms, signal);
    span?.end();
  }

  /**
   * The API answered 401 with `token`: the core says whether to send again
   * (`true`), with the current token or a new one, or to return the 401.
   */
  async #unauthorized(response: Response, token: Token): Promise<boolean> {
    const { next, remove } = this.#core.unauthorized(this.#now(), this.#mono(), token.accessToken);
    if (next === "give_up") return false;
    await response.body?.cancel();
    if (next === "refresh") {
      this.#entry = undefined;
      this.#sync();
      if (remove !== undefined) await this.#performApart(remove);
    }
    return true;
  }

  status(): TokenStatus {
    const core = this.#core.status(this.#now(), this.#mono());
    const status: TokenStatus = {
      hasToken: core.hasToken,
      fetches: core.fetches,
      hits: this.#hits,
    };
    if (core.expiresAt !== undefined) status.expiresAt = core.expiresAt;
    if (core.refreshAt !== undefined) status.refreshAt = core.refreshAt;
    if (core.lastError !== undefined) status.lastError = fromCore(core.lastError);
    return status;
  }

  /**
   * Takes the KV token into memory if the core finds it newer and sound:
   * a read-only acquisition, which sends no token request; finding none
   * is no error here.
   */
  async [LOAD_SHARED](): Promise<void> {
    if ((await this.#store) === undefined) return;
    await this.#start({ type: "read" }).catch(() => {});
  }

  /** A cron check (the core's, src/driver/): refreshes when the newest token is due within `aheadMs`. */
  async [REFRESH_IF_DUE](aheadMs: number): Promise<RefreshResult> {
    try {
      const { source } = await this.#start({ type: "cron", aheadMs });
      if (source === "network") return "refreshed";
      // Ended with a token taken from the store that is still due: the refresh failed.
      return this.#core.dueWithin(this.#now(), this.#mono(), aheadMs) ? "failed" : "fresh";
    } catch {
      return "failed";
    }
  }

  /** The KV id of this client's token, or `undefined` without KV. */
  async [KV_ID](): Promise<string | undefined> {
    return (await this.#store)?.id;
  }

  /** Where this client's token lives, or `undefined` without KV. */
  [KV_PLACE](): KvPlace | undefined {
    return this.#kvAt && { ...this.#kvAt, id: this.#store!.then((store) => store.id) };
  }

  /** Imports the signing key now (before any token request; see `PREPARE_KEY`). */
  async [PREPARE_KEY](): Promise<void> {
    const refused = await this.#core.prepareKey();
    if (refused !== undefined) throw fromCore(refused);
  }

  /** The client in a log line: its client id and token endpoint's origin, nothing secret. */
  [DESCRIBE](): string {
    return `${this.#core.identity.clientId} at ${this.#core.origin}`;
  }

  /** The schedule of the token held, if one is usable. */
  [HELD](): Held | undefined {
    const { hasToken, lifetimeSeconds, refreshAt, usableUntil } = this.#core.status(
      this.#now(),
      this.#mono(),
    );
    if (!hasToken || lifetimeSeconds === undefined) return undefined;
    return { lifetimeSeconds, refreshAt: refreshAt!, usableUntil: usableUntil! };
  }

  /** What telemetry reports of this client when it collects metrics. */
  [SAMPLE](): Sample {
    const sample: Sample = {
      attributes: this.#attributes(),
      memoryHits: this.#hits - this.#kvHits,
      kvHits: this.#kvHits,
    };
    if (this.#entry !== undefined) sample.expiresAt = this.#entry.token.expiresAt;
    return sample;
  }

  /** What `JSON.stringify` shows: where tokens come from, nothing secret. */
  toJSON(): Record<string, unknown> {
    return { tokenClient: this.#label(), ...this.status() };
  }

  [Symbol.for("Deno.customInspect")](): string {
    const { hasToken, fetches, hits } = this.status();
    return `TokenClient { ${this.#label()}, hasToken: ${hasToken}, fetches: ${fetches}, hits: ${hits} }`;
  }

  /** For logs: where tokens come from (never the secret). */
  #label(): string {
    const { tokenUrl, issuer, clientId } = this.#core.identity;
    return `${tokenUrl ?? issuer} as ${JSON.stringify(clientId)}`;
  }

  /** What identifies this client in telemetry (only OpenTelemetry asks, so made then). */
  #attributes(): Record<string, string> {
    if (this.#attributesMade === undefined) {
      const { tokenUrl, issuer, clientId } = this.#core.identity;
      this.#attributesMade = {
        "freshtoken.client_id": clientId,
        "server.address": new URL((tokenUrl ?? issuer)!).host,
      };
    }
    return this.#attributesMade;
  }

  #send(request: Request, token: Token): Promise<Response> {
    request.headers.set("Authorization", `${token.tokenType} ${token.accessToken}`);
    return this.#fetch(request);
  }

  /** Begins an acquisition of kind `start` in the core, or joins the one in flight. */
  #start(start: CoreStart): Promise<Acquired> {
    let started: "begun" | "joined";
    try {
      started = this.#core.start(this.#now(), this.#mono(), start);
    } catch (error) {
      return Promise.reject(fromCore(error));
    }
    if (started === "joined") {
      return this.#flight!.then(({ token }) => ({ token, source: "network" as const }));
    }
    return this.#run(start.type === "background");
  }

  /**
   * Runs the acquisition the core began, through the executor
   * (`deno/_executor.ts`), with its telemetry; `#flight` is its promise.
   */
  #run(background: boolean): Promise<Acquired> {
    // A background refresh starts in a task of its own, so that the caller
    // who happened to trigger it is not charged for starting the request.
    const work = () =>
      background ? sleep(0).then(() => this.#execute(report)) : this.#execute(report);
    const report: AcquisitionReport = {};
    const telemetry = this.#telemetry;
    const run = telemetry === undefined ? work() : telemetry.acquisition(
      { ...this.#attributes(), "freshtoken.background": background },
      report,
      work,
    );
    const flight = run.then((acquired) => {
      this.#landed(flight);
      return acquired;
    }, (error: unknown) => {
      this.#landed(flight);
      throw error instanceof TokenError ? error : fromCore(error);
    });
    this.#flight = flight;
    this.#sync();
    return flight;
  }

  /** The acquisition's promise settled (the core ended it before). */
  #landed(flight: Promise<Acquired>): void {
    if (this.#flight === flight) this.#flight = undefined;
    this.#sync();
  }

  /** Executes the acquisition in flight and turns its end into a token or a thrown error. */
  async #execute(report: AcquisitionReport): Promise<Acquired> {
    let store: TokenStore | undefined;
    let tls: Deno.HttpClient | undefined;
    try {
      store = await this.#currentStore();
      // Mutual TLS: a connection of its own for this acquisition's requests,
      // closed after it, so that no client holds one between refreshes.
      tls = this.#certificate && Deno.createHttpClient(this.#certificate);
    } catch {
      // Nothing can be performed: the core ends the acquisition at its first poll.
      this.#core.handle(this.#now(), this.#mono(), { type: "broken" });
    }
    let waiting: Span | undefined;
    let requested = false;
    const event = (event: CoreEvent) => {
      if (event.type === "fetch_start") {
        requested = true;
        report.source = "network";
      }
      if (event.type === "fetch_ok") report.attempts = event.attempts;
      if (event.type === "fetch_error") report.attempts = event.attempt;
      if (event.type === "lease_wait") waiting = this.#telemetry?.wait("freshtoken.lease_wait");
      this.#emit(event as TokenEvent);
    };
    let held: Token | undefined;
    let end: Ending;
    try {
      end = await execute(this.#host(store, tls, event), (record) => {
        held = this.#remember(record); // callers are served before the write ends
      });
    } finally {
      tls?.close();
      waiting?.end();
    }
    if (end.type === "fail") {
      const failure = fromCore(end.error);
      if (requested) this.#telemetry?.tokenRequest(this.#attributes(), failure.code);
      if (requested) this.#requestFailed?.();
      throw failure;
    }
    const { record, source } = end;
    report.lifetimeSeconds = record.lifetimeSeconds;
    if (source === "kv") return { token: this.#fromStore(record, report), source };
    if (source === "held") return { token: this.#entry?.token ?? this.#remember(record), source };
    this.#telemetry?.tokenRequest(this.#attributes(), "ok");
    // `held` is the token written for every isolate, unless that one was
    // forgotten and the acquisition started over (docs/DESIGN.md, "Shared state").
    const token = held?.accessToken === record.accessToken ? held : this.#remember(record);
    return { token, source };
  }

  /** What the executor works with, for this client. */
  #host(
    store: TokenStore | undefined,
    tls?: Deno.HttpClient,
    event: (event: CoreEvent) => void = (event) => this.#emit(event as TokenEvent),
  ): Host {
    const fetch = this.#fetch;
    return {
      core: this.#core,
      store,
      now: this.#now,
      mono: this.#mono,
      send: (request) => tls ? fetch(request, { client: tls }) : fetch(request),
      credential: (timeoutMs) => askCredential(this.#credential!, timeoutMs),
      event,
      wait: (name) => this.#telemetry?.wait(name as "freshtoken.backoff_wait"),
    };
  }

  /** Performs an effect the core named apart from any acquisition (a delete), and hands back its outcome. */
  async #performApart(effect: Parameters<typeof perform>[1]): Promise<void> {
    const outcome = await perform(this.#host(await this.#store), effect, {});
    this.#core.handle(this.#now(), this.#mono(), outcome);
  }

  /** A token another isolate stored, taken by the core: a cache hit from KV. */
  #fromStore(record: TokenRecord, report: AcquisitionReport): Token {
    this.#hits++;
    this.#kvHits++;
    report.source = "kv";
    this.#emit({ type: "cache_hit", at: this.#now(), source: "kv" });
    return this.#remember(record);
  }

  /** The token the core now holds, as callers get it. */
  #remember(record: TokenRecord): Token {
    const token = new Token(record.accessToken, "Bearer", record.expiresAt, record.scope);
    this.#entry = { token, resolved: Promise.resolve(token) };
    this.#sync();
    return token;
  }

  /** Asks the core until when the hot path may serve, after anything changed. */
  #sync(): void {
    const now = this.#now();
    this.#serveUntil = this.#entry === undefined
      ? -Infinity
      : this.#core.serveUntil(now, this.#mono());
    this.#servedAt = now;
    this.#coolingUntil = this.#core.coolingUntil;
  }

  /** Stale-while-revalidate: runs the background refresh the core began. */
  #refreshInBackground(): void {
    this.#emit({ type: "background_refresh", at: this.#now() });
    this.#run(true).catch((error: TokenError) => {
      // The core holds further refreshes back; callers keep the current token.
      this.#telemetry?.backgroundFailure(this.#attributes(), error.code);
    });
  }

  /** An error of this client's, its message formatted by the core like every other. */
  #error(code: TokenErrorCode, description: string, retryAfterSeconds?: number): TokenError {
    return fromCore(this.#core.error(code, description, retryAfterSeconds));
  }

  #aborted(): TokenError {
    return this.#error("aborted", "the caller stopped waiting for a token");
  }

  #emit(event: TokenEvent): void {
    if (this.#pooled) event = { ...event, slot: this.#slot };
    observe("event", event);
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A broken hook must not break token delivery.
    }
  }

  /** Checks the KV options and opens the store (its id is an async digest). */
  #openStore(options: TokenClientOptions): Promise<TokenStore> | undefined {
    const { kv, kvPrefix = DEFAULT_KV_PREFIX, encryptionKey } = options;
    if (kv === undefined) {
      if (encryptionKey !== undefined) throw configError("encryptionKey needs the kv option");
      return undefined;
    }
    const k = kv as unknown as Record<string, unknown>;
    if (typeof k?.getMany !== "function" || typeof k.atomic !== "function") {
      throw configError("kv must be a Deno.Kv (from Deno.openKv())");
    }
    if (!Array.isArray(kvPrefix)) throw configError("kvPrefix must be an array of key parts");
    let key: Uint8Array | undefined;
    if (encryptionKey !== undefined) {
      const decoded = decodeKey(encryptionKey);
      if (typeof decoded === "string") throw configError(decoded);
      key = decoded;
    }
    const core = this.#core;
    const seal = core.identity.issuer === undefined ? undefined : sealKey(options, key);
    const open = (id: string, seal?: CryptoKey) =>
      new KvStore(kv, {
        prefix: kvPrefix,
        id,
        key,
        seal,
        slot: this.#slot,
        now: this.#now,
        emit: (event) => this.#emit(event),
      });
    if (typeof options.clientSecret !== "function") {
      return Promise.all([kvId(core.identity, options, key), seal]).then(([id, seal]) =>
        open(id, seal)
      );
    }
    // The entry follows the secret (docs/DESIGN.md, "Credentials asked for").
    const timeoutMs = typeof options.timeoutMs === "number" ? options.timeoutMs : 10_000;
    const rekey = {
      fresh: true,
      id: (secret?: string) => kvId(core.identity, options, key, secret),
      open: async (id: string) => open(id, await seal),
      read: () => askCredential(options.clientSecret as CredentialFn, timeoutMs),
    };
    this.#rekey = rekey;
    return rekey.read().then(rekey.id).then(rekey.open);
  }

  /**
   * The store an acquisition uses: with a `clientSecret` function, the
   * entry of the secret it gives now, so that a rotated secret reads and
   * writes a new entry (docs/DESIGN.md, "Credentials asked for").
   */
  async #currentStore(): Promise<TokenStore | undefined> {
    const store = await this.#store;
    const rekey = this.#rekey;
    if (store === undefined || rekey === undefined) return store;
    if (rekey.fresh) {
      rekey.fresh = false;
      return store;
    }
    const id = await rekey.id(await rekey.read());
    if (id === store.id) return store;
    const next = rekey.open(id);
    this.#store = next;
    return await next;
  }
}

/** `value` if it is a function, `fallback` if absent; otherwise a `config` error. */
function fn<T>(name: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== "function") throw configError(`${name} must be a function`);
  return value as T;
}

/**
 * The `clientCertificate` option, checked by building (and closing) an
 * HTTP client with it: a certificate or key Deno cannot read is a `config`
 * error at creation. Deno's own message is left out, as it may quote the key.
 */
function clientCertificate(
  value: unknown,
): (Deno.CreateHttpClientOptions & Deno.TlsCertifiedKeyPem) | undefined {
  if (value === undefined) return undefined;
  const { cert, key, caCerts } = (value ?? {}) as Record<string, unknown>;
  const pem = (text: unknown) => typeof text === "string" && text.includes("-----BEGIN ");
  if (typeof value !== "object" || !pem(cert) || !pem(key)) {
    throw configError("clientCertificate must be { cert, key } in PEM (and optionally caCerts)");
  }
  if (caCerts !== undefined && !(Array.isArray(caCerts) && caCerts.every(pem))) {
    throw configError("clientCertificate.caCerts must be an array of PEM certificates");
  }
  const options: Deno.CreateHttpClientOptions & Deno.TlsCertifiedKeyPem = {
    cert: cert as string,
    key: key as string,
    ...(caCerts === undefined ? {} : { caCerts: caCerts as string[] }),
  };
  try {
    Deno.createHttpClient(options).close();
  } catch (error) {
    const name = error instanceof Error ? error.name : "Error";
    throw configError(
      `clientCertificate could not be used: Deno refused its cert or key (${name})`,
    );
  }
  return options;
}

/** The URL as the host's WHATWG parser reads it, or a `config` error naming the option. */
function parseUrl(name: string, value: string): string {
  try {
    return new URL(value).href;
  } catch {
    throw configError(`${name} is not a valid absolute URL`);
  }
}
