/**
 * The token client: an in-memory cache and single-flight over the wasm core,
 * which decides when to refresh and performs the token request.
 *
 * @module
 */

import { Engine } from "../pkg/freshtoken.js";
import { coreOptions, fn, url } from "./_options.ts";
import { Token } from "./token.ts";
import { configError, fromCore, TokenError } from "./token_error.ts";
import type {
  GetTokenOptions,
  TokenClient,
  TokenClientOptions,
  TokenEvent,
  TokenStatus,
} from "./types.ts";

/** The core's decisions (src/lifecycle.rs `Decision::as_u8`). */
const SERVE_AND_REFRESH = 1;
const FETCH = 2;
const JOIN = 3;

/** What the core resolves `fetchToken()` with. */
interface Issued {
  accessToken: string;
  tokenType: string;
  scope?: string;
  expiresAt: number;
  refreshAt: number;
  usableUntil: number;
}

/** A cached token with the schedule the core computed for it, once. */
interface Entry {
  token: Token;
  /** The same resolved promise for every cache hit: no allocation per call. */
  resolved: Promise<Token>;
  refreshAt: number;
  usableUntil: number;
}

/**
 * Creates a client that fetches a client-credentials token on first use,
 * caches it, refreshes it before expiry and shares one request between
 * concurrent callers. Synchronous: bad options throw a
 * {@linkcode TokenError} with code `"config"` here, before anything is sent.
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
  readonly #label: string;
  #entry?: Entry;
  #inflight?: Promise<Token>;
  #refreshNotBefore = 0;
  #backgroundFailures = 0;
  #lastError?: TokenError;
  #fetches = 0;
  #hits = 0;

  constructor(options: TokenClientOptions) {
    const core = coreOptions(options);
    this.#fetch = fn(
      "fetch",
      options.fetch,
      (input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init),
    );
    this.#now = fn("now", options.now, Date.now);
    this.#onEvent = fn("onEvent", options.onEvent, undefined);
    if (options.baseUrl !== undefined) this.#baseUrl = url("baseUrl", options.baseUrl);
    if (options.kv !== undefined || options.encryptionKey !== undefined) {
      throw configError("kv and encryptionKey are not supported by this version");
    }
    try {
      this.#engine = new Engine(core, this.#fetch, this.#now, (e: TokenEvent) => this.#emit(e));
    } catch (error) {
      throw fromCore(error);
    }
    this.#label = `${core.tokenUrl} as ${JSON.stringify(core.clientId)}`;
  }

  getToken(options?: GetTokenOptions): Promise<Token> {
    const entry = this.#entry;
    if (options === undefined && entry !== undefined) {
      // The hot path: one clock read and one comparison, no wasm call.
      const now = this.#now();
      if (now < entry.refreshAt) {
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
      entry?.token.expiresAt ?? NaN,
      entry?.refreshAt ?? NaN,
      entry?.usableUntil ?? NaN,
      minValidSeconds * 1000,
      this.#refreshNotBefore,
      this.#inflight !== undefined,
    );
    if (decision === FETCH || decision === JOIN || entry === undefined) {
      return await this.#wait(this.#acquire(), signal);
    }
    this.#hits++;
    this.#emit({ type: "cache_hit", at: now, source: "memory" });
    if (decision === SERVE_AND_REFRESH) this.#refreshInBackground();
    return entry.token;
  }

  refresh(): Promise<Token> {
    return this.#acquire();
  }

  invalidate(): Promise<void> {
    this.#entry = undefined;
    return Promise.resolve();
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
    // Only forget the token that was refused: concurrent callers may have a new one already.
    if (this.#entry?.token === token) this.#entry = undefined;
    return this.#send(request, await this.getToken());
  }

  status(): TokenStatus {
    const entry = this.#entry;
    const status: TokenStatus = {
      hasToken: entry !== undefined && this.#now() < entry.usableUntil,
      fetches: this.#fetches,
      hits: this.#hits,
    };
    if (entry !== undefined) {
      status.expiresAt = entry.token.expiresAt;
      status.refreshAt = entry.refreshAt;
    }
    if (this.#lastError !== undefined) status.lastError = this.#lastError;
    return status;
  }

  /** What `JSON.stringify` shows: where tokens come from, nothing secret. */
  toJSON(): Record<string, unknown> {
    return { tokenClient: this.#label, ...this.status() };
  }

  [Symbol.for("Deno.customInspect")](): string {
    const { hasToken, fetches, hits } = this.status();
    return `TokenClient { ${this.#label}, hasToken: ${hasToken}, fetches: ${fetches}, hits: ${hits} }`;
  }

  #send(request: Request, token: Token): Promise<Response> {
    request.headers.set("Authorization", `${token.tokenType} ${token.accessToken}`);
    return this.#fetch(request);
  }

  /** Starts an acquisition, or joins the one in flight (the core's `Join`). */
  #acquire(): Promise<Token> {
    this.#inflight ??= this.#fetchNew().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #fetchNew(): Promise<Token> {
    this.#fetches++;
    let issued: Issued;
    try {
      issued = await this.#engine.fetchToken();
    } catch (error) {
      throw (this.#lastError = fromCore(error));
    }
    this.#lastError = undefined;
    this.#backgroundFailures = 0;
    this.#refreshNotBefore = 0;
    const token = new Token(issued.accessToken, issued.tokenType, issued.expiresAt, issued.scope);
    this.#entry = {
      token,
      resolved: Promise.resolve(token),
      refreshAt: issued.refreshAt,
      usableUntil: issued.usableUntil,
    };
    return token;
  }

  /** Stale-while-revalidate: one refresh, spaced by backoff after failures. */
  #refreshInBackground(): void {
    if (this.#inflight !== undefined) return;
    this.#emit({ type: "background_refresh", at: this.#now() });
    this.#acquire().catch((error: TokenError) => {
      this.#backgroundFailures++;
      const delay = this.#engine.backgroundRetryDelay(
        this.#backgroundFailures,
        error.retryAfterSeconds,
      );
      this.#refreshNotBefore = this.#now() + delay;
    });
  }

  /** Waits for the shared acquisition; an abort stops this caller only. */
  #wait(shared: Promise<Token>, signal?: AbortSignal): Promise<Token> {
    if (signal === undefined) return shared;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(aborted());
      signal.addEventListener("abort", onAbort, { once: true });
      shared.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  #emit(event: TokenEvent): void {
    if (this.#onEvent === undefined) return;
    try {
      this.#onEvent(event);
    } catch {
      // A broken hook must not break token delivery.
    }
  }
}

function aborted(): TokenError {
  return new TokenError("aborted", "aborted: the caller stopped waiting for a token");
}
