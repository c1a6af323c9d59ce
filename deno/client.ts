/**
 * The token client: a cache in memory (and optionally Deno KV) with
 * single-flight over the wasm core, which decides when to refresh and
 * performs the token request.
 *
 * @module
 */

import { Engine } from "../pkg/freshtoken.js";
import { transport } from "./_transport.ts";
import { type CoreOptions, coreOptions, fn, url } from "./_options.ts";
import { LOAD_SHARED, REFRESH_IF_DUE, sleep, unlessAborted } from "./_internal.ts";
import { observe } from "./_observe.ts";
import {
  clientId as kvClientId,
  decodeKey,
  type IssuedToken,
  KvStore,
  type Lease,
  type StoredToken,
} from "./kv_store.ts";
import { Token } from "./token.ts";
import { configError, fromCore, TokenError } from "./token_error.ts";
import type {
  GetTokenOptions,
  RefreshResult,
  TokenClient,
  TokenClientOptions,
  TokenEvent,
  TokenStatus,
} from "./types.ts";

/** The core's decisions (src/lifecycle.rs `Decision::as_u8`). */
const SERVE_AND_REFRESH = 1;
const FETCH = 2;
const JOIN = 3;

/** The host's fetch, looked up at call time (tests and apps may replace it). */
const hostFetch = (input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init);
/** Shared by every client that uses the host's fetch: no closure per client. */
const hostSend = transport(hostFetch);

/** A lease lasts one request plus this margin; it is renewed before each retry. */
const LEASE_MARGIN_MS = 1_000;

/** A cached token with the schedule the core computed for it, once. */
interface Entry extends StoredToken {
  token: Token;
  /** The same resolved promise for every cache hit: no allocation per call. */
  resolved: Promise<Token>;
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
  return new FreshTokenClient(options);
}

class FreshTokenClient implements TokenClient {
  readonly #engine: Engine;
  readonly #fetch: typeof globalThis.fetch;
  readonly #now: () => number;
  readonly #onEvent?: (event: TokenEvent) => void;
  readonly #baseUrl?: string;
  /** For logs: where tokens come from (never the secret). */
  readonly #tokenUrl: string;
  readonly #clientId: string;
  readonly #store?: Promise<KvStore>;
  #entry?: Entry;
  #inflight?: Promise<Token>;
  #refreshNotBefore = 0;
  /** Until when the core serves the cached token without being asked (its `serveUntil`). */
  #serveUntil = -Infinity;
  #backgroundFailures = 0;
  #lastError?: TokenError;
  #fetches = 0;
  #hits = 0;
  /** Set while this isolate holds the KV lease: renews it when the core backs off. */
  #onRetry?: (delayMs: number) => void;

  constructor(options: TokenClientOptions) {
    const core = coreOptions(options);
    this.#fetch = fn("fetch", options.fetch, hostFetch);
    this.#now = fn("now", options.now, Date.now);
    this.#onEvent = fn("onEvent", options.onEvent, undefined);
    if (options.baseUrl !== undefined) this.#baseUrl = url("baseUrl", options.baseUrl);
    const emit = (e: TokenEvent) => this.#emit(e);
    try {
      this.#engine = new Engine(
        core,
        this.#fetch === hostFetch ? hostSend : transport(this.#fetch),
        this.#now,
        emit,
      );
    } catch (error) {
      throw fromCore(error);
    }
    this.#tokenUrl = core.tokenUrl;
    this.#clientId = core.clientId;
    this.#store = openStore(options, core, this.#now, emit);
  }

  getToken(options?: GetTokenOptions): Promise<Token> {
    const entry = this.#entry;
    if (options === undefined && entry !== undefined) {
      // The hot path: one clock read and one comparison, no wasm call.
      const now = this.#now();
      if (now < this.#serveUntil) {
        this.#hits++;
        if (this.#onEvent) this.#emit({ type: "cache_hit", at: now, source: "memory" });
        return entry.resolved;
      }
    }
    return this.#getSlow(options);
  }

  async #getSlow(options: GetTokenOptions = {}): Promise<Token> {
    const { signal } = options;
    const minValidSeconds = options.minValidSeconds ?? 0;
    if (typeof minValidSeconds !== "number" || !(minValidSeconds >= 0)) {
      throw configError("minValidSeconds must be a number of at least 0");
    }
    if (signal?.aborted) throw aborted();
    const entry = this.#entry;
    const now = this.#now();
    const decision = this.#engine.decide(
      now,
      entry?.expiresAt ?? NaN,
      entry?.refreshAt ?? NaN,
      entry?.usableUntil ?? NaN,
      minValidSeconds * 1000,
      this.#refreshNotBefore,
      this.#inflight !== undefined,
    );
    if (decision === FETCH || decision === JOIN || entry === undefined) {
      return await this.#wait(this.#acquire(false), signal);
    }
    this.#hits++;
    this.#emit({ type: "cache_hit", at: now, source: "memory" });
    if (decision === SERVE_AND_REFRESH) this.#refreshInBackground();
    return entry.token;
  }

  refresh(): Promise<Token> {
    return this.#acquire(true);
  }

  async invalidate(): Promise<void> {
    this.#entry = undefined;
    await (await this.#store)?.remove();
  }

  async fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const target = typeof input === "string" && this.#baseUrl !== undefined
      ? new URL(input, this.#baseUrl)
      : input;
    const request = new Request(target, init);
    // A stream body is consumed by the first attempt and cannot be replayed.
    const replayable = !(init?.body instanceof ReadableStream);
    const token = await this.getToken();
    const first = await this.#send(replayable ? request.clone() : request, token);
    if (first.status !== 401 || !replayable) return first;
    await first.body?.cancel();
    await this.#forget(token);
    return this.#send(request, await this.getToken());
  }

  status(): TokenStatus {
    const entry = this.#entry;
    const status: TokenStatus = {
      hasToken: this.#hasUsable(this.#now()),
      fetches: this.#fetches,
      hits: this.#hits,
    };
    if (entry !== undefined) {
      status.expiresAt = entry.expiresAt;
      status.refreshAt = entry.refreshAt;
    }
    if (this.#lastError !== undefined) status.lastError = this.#lastError;
    return status;
  }

  /** Takes the KV token into memory if it is newer than the one there. */
  async [LOAD_SHARED](): Promise<void> {
    const stored = (await (await this.#store)?.snapshot())?.token;
    if (stored !== undefined && stored.expiresAt > (this.#entry?.expiresAt ?? 0)) {
      this.#adopt(stored);
    }
  }

  /** SPEC §6: refresh only when the newest token (in memory or KV) is due. */
  async [REFRESH_IF_DUE](): Promise<RefreshResult> {
    await this[LOAD_SHARED]();
    const entry = this.#entry;
    if (entry !== undefined && this.#now() < entry.refreshAt) return "fresh";
    try {
      await this.#acquire(true);
      return "refreshed";
    } catch {
      return "failed";
    }
  }

  /** What `JSON.stringify` shows: where tokens come from, nothing secret. */
  toJSON(): Record<string, unknown> {
    return { tokenClient: this.#label(), ...this.status() };
  }

  [Symbol.for("Deno.customInspect")](): string {
    const { hasToken, fetches, hits } = this.status();
    return `TokenClient { ${this.#label()}, hasToken: ${hasToken}, fetches: ${fetches}, hits: ${hits} }`;
  }

  #label(): string {
    return `${this.#tokenUrl} as ${JSON.stringify(this.#clientId)}`;
  }

  #send(request: Request, token: Token): Promise<Response> {
    request.headers.set("Authorization", `${token.tokenType} ${token.accessToken}`);
    return this.#fetch(request);
  }

  /** After a 401: forget that token (only that one: others may have a new one already). */
  async #forget(token: Token): Promise<void> {
    const entry = this.#entry;
    if (entry?.token !== token) return;
    this.#entry = undefined;
    await (await this.#store)?.remove(entry.tokenId);
  }

  /** How long a KV lease lasts: one request and a margin (read when needed, not kept per client). */
  get #leaseMs(): number {
    return this.#engine.timeoutMs + LEASE_MARGIN_MS;
  }

  /** The longest wait for a token through KV: a whole acquisition and a lease. */
  get #waitMs(): number {
    return this.#engine.deadlineMs + this.#leaseMs;
  }

  /** Starts an acquisition, or joins the one in flight (the core's `Join`). */
  #acquire(force: boolean, later = false): Promise<Token> {
    if (this.#inflight === undefined) {
      // A background refresh starts in a task of its own, so that the caller
      // who happened to trigger it is not charged for starting the request.
      const started = later
        ? sleep(0).then(() => this.#acquireShared(force))
        : this.#acquireShared(force);
      this.#inflight = started.finally(() => {
        this.#inflight = undefined;
        this.#syncServeUntil();
      });
      this.#syncServeUntil();
    }
    return this.#inflight;
  }

  /**
   * SPEC §5: take a newer token from KV if there is one; otherwise take the
   * lease and fetch for everyone, or wait for the isolate that holds it.
   * `force` (refresh) skips tokens this client has already seen.
   */
  async #acquireShared(force: boolean): Promise<Token> {
    const store = await this.#store;
    if (store === undefined) return await this.#fetchToken();
    const giveUpAt = Date.now() + this.#waitMs;
    let waiting = false;
    for (;;) {
      const { token: stored, leaseUntil } = await store.snapshot();
      const now = this.#now();
      if (stored !== undefined && this.#isNewer(stored, now, force)) return this.#adopt(stored);
      if (leaseUntil === undefined) {
        const backoff = await store.backoffUntil();
        if (backoff > now) {
          await this.#holdBack(backoff, giveUpAt);
          continue;
        }
        const lease = await store.takeLease(this.#leaseMs);
        if (lease === undefined) return await this.#fetchToken(); // KV failed: memory only.
        if (lease !== "held") return await this.#fetchAsLeaseHolder(store, lease);
      }
      if (!waiting) this.#emit({ type: "lease_wait", at: now });
      waiting = true;
      if (Date.now() >= giveUpAt) {
        throw new TokenError("timeout", "timeout: no token from the isolate holding the lease");
      }
      await sleep(40 + Math.random() * 80);
    }
  }

  /** Is a KV token one to take instead of fetching? */
  #isNewer(stored: StoredToken, now: number, force: boolean): boolean {
    const entry = this.#entry;
    if (stored.tokenId === entry?.tokenId) return false;
    return now < stored.refreshAt || (!force && !this.#hasUsable(now));
  }

  /** Is a token cached that may still be served at `now`? */
  #hasUsable(now: number): boolean {
    return this.#entry !== undefined && now < this.#entry.usableUntil;
  }

  /** A shared back-off is in force: wait it out, or fail if that takes too long. */
  async #holdBack(until: number, giveUpAt: number): Promise<void> {
    const now = this.#now();
    const waitMs = until - now;
    if (this.#hasUsable(now) || Date.now() + waitMs > giveUpAt) {
      throw new TokenError(
        "rate_limited",
        "rate_limited: token requests are held back after a 429 or outage seen by another isolate",
        { retryAfterSeconds: Math.ceil(waitMs / 1000) },
      );
    }
    await sleep(waitMs);
  }

  async #fetchAsLeaseHolder(store: KvStore, lease: Lease): Promise<Token> {
    let held: Lease | undefined = lease;
    let renewal: Promise<unknown> = Promise.resolve();
    this.#onRetry = (delayMs) => {
      const current = held;
      if (current === undefined) return;
      renewal = store.renewLease(current, delayMs + this.#leaseMs).then((l) => held = l);
    };
    try {
      const token = await this.#fetchToken();
      await store.write(this.#entry!);
      return token;
    } catch (error) {
      if (error instanceof TokenError && error.retryable) {
        const delay = error.retryAfterSeconds !== undefined
          ? error.retryAfterSeconds * 1000
          : this.#engine.backgroundRetryDelay(1, undefined);
        await store.setBackoff(this.#now() + delay);
      }
      throw error;
    } finally {
      this.#onRetry = undefined;
      await renewal;
      if (held !== undefined) await store.releaseLease(held);
    }
  }

  /** One token request through the core, its result cached in memory. */
  async #fetchToken(): Promise<Token> {
    this.#fetches++;
    let issued: IssuedToken;
    try {
      issued = await this.#engine.fetchToken();
    } catch (error) {
      throw (this.#lastError = fromCore(error));
    }
    this.#lastError = undefined;
    this.#backgroundFailures = 0;
    this.#refreshNotBefore = 0;
    // The id tells tokens apart in KV; a client without KV has no use for one.
    const tokenId = this.#store === undefined ? "" : crypto.randomUUID();
    return this.#remember({ ...issued, tokenId });
  }

  /**
   * Takes a token another isolate stored, with this client's own refresh
   * window and jitter, so isolates sharing a token do not refresh in lockstep.
   */
  #adopt(stored: StoredToken): Token {
    this.#hits++;
    this.#emit({ type: "cache_hit", at: this.#now(), source: "kv" });
    const { lifetimeSeconds, expiresAt } = stored;
    const { refreshAt, usableUntil } = this.#engine.schedule(
      expiresAt - lifetimeSeconds * 1000,
      lifetimeSeconds,
    );
    return this.#remember({ ...stored, refreshAt, usableUntil });
  }

  #remember(t: StoredToken): Token {
    // The literal "Bearer" is shared; the core's copy would cost every client a string.
    const tokenType = t.tokenType === "Bearer" ? "Bearer" : t.tokenType;
    const token = new Token(t.accessToken, tokenType, t.expiresAt, t.scope);
    // Fixed fields, not a spread: a compact object, held by every client.
    this.#entry = {
      accessToken: t.accessToken,
      tokenType,
      scope: t.scope,
      lifetimeSeconds: t.lifetimeSeconds,
      expiresAt: t.expiresAt,
      refreshAt: t.refreshAt,
      usableUntil: t.usableUntil,
      tokenId: t.tokenId,
      token,
      resolved: Promise.resolve(token),
    };
    this.#syncServeUntil();
    return token;
  }

  /** Asks the core again after the token, the request in flight or the hold-back changed. */
  #syncServeUntil(): void {
    const entry = this.#entry;
    this.#serveUntil = entry === undefined ? -Infinity : this.#engine.serveUntil(
      entry.expiresAt,
      entry.refreshAt,
      entry.usableUntil,
      this.#refreshNotBefore,
      this.#inflight !== undefined,
    );
  }

  /** Stale-while-revalidate: one refresh, spaced by backoff after failures. */
  #refreshInBackground(): void {
    if (this.#inflight !== undefined) return;
    this.#emit({ type: "background_refresh", at: this.#now() });
    this.#acquire(false, true).catch((error: TokenError) => {
      this.#backgroundFailures++;
      const delay = this.#engine.backgroundRetryDelay(
        this.#backgroundFailures,
        error.retryAfterSeconds,
      );
      this.#refreshNotBefore = this.#now() + delay;
      this.#syncServeUntil();
    });
  }

  /** Waits for the shared acquisition; an abort stops this caller only. */
  #wait(shared: Promise<Token>, signal?: AbortSignal): Promise<Token> {
    return signal === undefined ? shared : unlessAborted(shared, signal, aborted);
  }

  #emit(event: TokenEvent): void {
    if (event.type === "retry") this.#onRetry?.(event.delayMs);
    observe("event", event);
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A broken hook must not break token delivery.
    }
  }
}

/** Checks the KV options and opens the store (its id is an async digest). */
function openStore(
  options: TokenClientOptions,
  core: CoreOptions,
  now: () => number,
  emit: (event: TokenEvent) => void,
): Promise<KvStore> | undefined {
  const { kv, kvPrefix = ["freshtoken"], encryptionKey } = options;
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
  return kvClientId(core).then((id) => new KvStore(kv, { prefix: kvPrefix, id, key, now, emit }));
}

function aborted(): TokenError {
  return new TokenError("aborted", "aborted: the caller stopped waiting for a token");
}
