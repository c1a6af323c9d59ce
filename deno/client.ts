/**
 * The token client: the hot path and the single-flight promise over the
 * wasm core, which decides when to serve, refresh or fetch, and performs
 * the token request (docs/DESIGN.md).
 *
 * @module
 */

import {
  Core,
  type CoreEffect,
  type CoreEvent,
  Decision,
  type TokenRecord,
  Unauthorized,
} from "../pkg/freshtoken.js";
import { decodeKey } from "./_cipher.ts";
import {
  DESCRIBE,
  HELD,
  type Held,
  KV_ID,
  KV_PLACE,
  type KvPlace,
  LOAD_SHARED,
  PREPARE_KEY,
  REFRESH_IF_DUE,
  SAMPLE,
  sleep,
  unlessAborted,
} from "./_internal.ts";
import { observe } from "./_observe.ts";
import { snapshot } from "./_snapshot.ts";
import {
  type AcquisitionReport,
  type Sample,
  type Span,
  type Telemetry,
  telemetry,
} from "./_telemetry.ts";
import { KvStore, type Lease, type Snapshot, type TokenStore } from "./kv_store.ts";
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

/**
 * A call asks the core at most this many times for a token to be acquired:
 * enough for a token adopted from KV that falls short of `minValidSeconds`
 * and one fetched instead, never a loop.
 */
const MAX_ACQUISITIONS_PER_CALL = 3;

/** The KV key prefix unless the `kvPrefix` option names another. */
const DEFAULT_KV_PREFIX: Deno.KvKey = ["freshtoken"];

/** The largest `minValidSeconds`: a year, the longest lifetime a token may have. */
const MAX_MIN_VALID_SECONDS = 31_536_000;

/** The cached token, with the same resolved promise for every cache hit. */
interface Entry {
  token: Token;
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
  readonly #store?: Promise<TokenStore>;
  /** With KV: the store and key prefix the token is kept under. */
  readonly #kvAt?: Omit<KvPlace, "id">;
  /** Spans and metrics, when OpenTelemetry is on. */
  readonly #telemetry?: Telemetry;
  /** What identifies this client in them, made on first use. */
  #attributesMade?: Record<string, string>;
  /** What the acquisition in flight has found out, for its span. */
  #report?: AcquisitionReport;
  #entry?: Entry;
  #inflight?: Promise<Token>;
  /** The hot path serves while the clock reads in [#servedAt, #serveUntil): the core's answer. */
  #serveUntil = -Infinity;
  #servedAt = Infinity;
  #hits = 0;
  /** Of `#hits`, the tokens taken from KV. */
  #kvHits = 0;

  constructor(given: TokenClientOptions) {
    const options = snapshot(given);
    try {
      this.#core = new Core(options as unknown as Record<string, unknown>);
    } catch (error) {
      throw fromCore(error);
    }
    this.#fetch = fn("fetch", options.fetch, hostFetch);
    this.#now = fn("now", options.now, Date.now);
    // An injected clock stands for both clocks, so that tests move all time at once.
    this.#mono = options.now === undefined ? monotonic : this.#now;
    this.#onEvent = fn("onEvent", options.onEvent, undefined);
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
    if (options === undefined) {
      // The hot path: one clock read and two comparisons, no wasm call. A
      // clock reading below the last one means the wall clock went back:
      // then the core, which also reads a monotonic clock, decides.
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

  async #getSlow(options: GetTokenOptions = {}): Promise<Token> {
    const { signal, minValidSeconds = 0 } = options;
    if (
      typeof minValidSeconds !== "number" ||
      !(minValidSeconds >= 0 && minValidSeconds <= MAX_MIN_VALID_SECONDS)
    ) {
      throw configError(`minValidSeconds must be a number from 0 to ${MAX_MIN_VALID_SECONDS}`);
    }
    const minValidMs = minValidSeconds * 1000;
    // The call may wait once for a hold-back to end, within its deadline from here.
    let started: number | undefined = this.#mono();
    for (let acquisitions = 0;; acquisitions++) {
      if (signal?.aborted) throw this.#aborted();
      const now = this.#now();
      const mono = this.#mono();
      const decision = this.#core.decide(now, mono, minValidMs, started);
      if (decision === Decision.Wait) {
        started = undefined;
        await sleep(this.#core.holdMs(now, mono), signal);
        acquisitions--;
        continue;
      }
      if (decision === Decision.Serve || decision === Decision.ServeAndRefresh) {
        // A token this call waited for is not a cache hit.
        if (acquisitions === 0) {
          this.#hits++;
          this.#emit({ type: "cache_hit", at: now, source: "memory" });
        }
        if (decision === Decision.ServeAndRefresh) this.#refreshInBackground();
        else this.#sync();
        return this.#entry!.token;
      }
      if (decision === Decision.Fail) throw fromCore(this.#core.refusal(now, mono, minValidMs));
      if (decision === Decision.Read) {
        // Held back here; another isolate may have stored a token since.
        const read = this.#acquire(false, false, true);
        await (signal === undefined ? read : unlessAborted(read, signal, () => this.#aborted()));
        continue;
      }
      if (acquisitions === MAX_ACQUISITIONS_PER_CALL) {
        throw this.#error(
          "invalid_response",
          `no token valid for minValidSeconds (${minValidSeconds}) after ${acquisitions} acquisitions`,
        );
      }
      // Fetch or join: either way, wait for the acquisition in flight.
      const shared = this.#acquire(false, false);
      await (signal === undefined ? shared : unlessAborted(shared, signal, () => this.#aborted()));
    }
  }

  refresh(): Promise<Token> {
    return this.#acquire(true, false);
  }

  async invalidate(): Promise<void> {
    this.#core.invalidate();
    this.#entry = undefined;
    this.#sync();
    await (await this.#store)?.remove();
  }

  async fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const target = typeof input === "string" && this.#baseUrl !== undefined
      ? new URL(input, this.#baseUrl)
      : input;
    const request = new Request(target, init);
    const origin = new URL(request.url).origin;
    if (this.#origins !== undefined && !this.#origins.has(origin)) {
      throw configError(
        `client.fetch sends the token only to ${[...this.#origins].join(", ")}, not to ${origin} ` +
          `(allowedOrigins lists further origins)`,
      );
    }
    // A stream body is consumed by the first attempt and cannot be replayed.
    const replayable = !(init?.body instanceof ReadableStream);
    const token = await this.getToken();
    const first = await this.#send(replayable ? request.clone() : request, token);
    if (first.status !== 401 || !replayable) return first;
    const next = this.#core.unauthorized(this.#now(), this.#mono(), token.accessToken);
    if (next === Unauthorized.GiveUp) return first;
    await first.body?.cancel();
    if (next === Unauthorized.Refresh) {
      // Only that token: another isolate may have stored a new one already.
      this.#entry = undefined;
      this.#sync();
      await (await this.#store)?.remove(token.accessToken);
    }
    const second = await this.#send(request, await this.getToken());
    if (second.status !== 401) this.#core.authorized();
    return second;
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
   * Takes the KV token into memory if the core finds it newer and sound;
   * `eventual` reads the nearest replica, which may lag.
   */
  async [LOAD_SHARED](eventual = false): Promise<void> {
    const stored = (await (await this.#store)?.snapshot(eventual))?.token;
    if (stored !== undefined) this.#adopt(stored, false);
  }

  /** Refreshes when the newest token (in memory or KV) is due within `aheadMs`. */
  async [REFRESH_IF_DUE](aheadMs: number): Promise<RefreshResult> {
    const due = () => this.#core.due(this.#now(), this.#mono(), aheadMs);
    // A replica's token that is not due settles it; else the primary's.
    if (due()) await this[LOAD_SHARED](true);
    if (due()) await this[LOAD_SHARED]();
    if (!due()) return "fresh";
    try {
      await this.#acquire(true, false);
      return "refreshed";
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

  /**
   * Starts an acquisition, or joins the one in flight: one at a time per
   * client. With `read`, only a read of the store (`Decision.Read`).
   */
  #acquire(force: boolean, background: boolean, read = false): Promise<Token> {
    if (this.#inflight !== undefined) return this.#inflight;
    try {
      if (read) this.#core.beginReading();
      else this.#core.begin(this.#now(), this.#mono(), background);
    } catch (error) {
      return Promise.reject(fromCore(error));
    }
    // A background refresh starts in a task of its own, so that the caller
    // who happened to trigger it is not charged for starting the request.
    const work = () =>
      background ? sleep(0).then(() => this.#run(force, read)) : this.#run(force, read);
    const report: AcquisitionReport = {};
    this.#report = report;
    const telemetry = this.#telemetry;
    const run = telemetry === undefined ? work() : telemetry.acquisition(
      { ...this.#attributes(), "freshtoken.background": background },
      report,
      work,
    );
    this.#inflight = run.then((token) => {
      this.#finish(undefined);
      return token;
    }, (error: unknown) => {
      const failure = error instanceof TokenError ? error : fromCore(error);
      this.#finish(failure);
      throw failure;
    });
    this.#sync();
    return this.#inflight;
  }

  /** The acquisition's promise settled; a run that threw before its end is abandoned in the core. */
  #finish(error: TokenError | undefined): void {
    this.#inflight = undefined;
    this.#report = undefined;
    if (error !== undefined) this.#core.abandon(this.#now(), this.#mono());
    this.#sync();
  }

  /**
   * Runs one acquisition as the core drives it (docs/DESIGN.md, "The effect
   * loop"): performs each effect the core names, hands the result back, and
   * reports the events the core produced. It decides nothing.
   */
  async #run(force: boolean, read: boolean): Promise<Token> {
    const core = this.#core;
    const store = await this.#store;
    const report = this.#report ?? {};
    // Mutual TLS: a connection of its own for this acquisition's requests,
    // closed after it, so that no client holds one between refreshes.
    const tls = this.#certificate && Deno.createHttpClient(this.#certificate);
    const fetch = this.#fetch;
    const send = (request: Request) => tls ? fetch(request, { client: tls }) : fetch(request);
    /** The executor's own I/O state: the last read (for the lease's check) and the lease held. */
    let seen: Snapshot | undefined;
    let lease: Lease | undefined;
    let held: Token | undefined;
    let waiting: Span | undefined;
    let requested = false;
    const now = () => [this.#now(), this.#mono()] as const;
    core.drive(this.#now(), this.#mono(), store !== undefined, force, read);
    try {
      for (;;) {
        const effect: CoreEffect = core.poll(...now());
        const events = core.eventCount === 0 ? [] : core.events() as CoreEvent[];
        for (const event of events) {
          if (event.type === "fetch_start") {
            requested = true;
            report.source = "network";
          }
          if (event.type === "fetch_ok") report.attempts = event.attempts;
          if (event.type === "fetch_error") report.attempts = event.attempt;
          if (event.type === "lease_wait") waiting = this.#telemetry?.wait("freshtoken.lease_wait");
          this.#emit(event as TokenEvent);
        }
        switch (effect.type) {
          case "read_store":
            seen = await store!.snapshot(effect.eventual);
            core.handleSnapshot(
              ...now(),
              seen === undefined,
              seen?.token,
              seen?.leaseUntil,
              seen?.leaseHolder,
              seen?.leaseTakenAt,
              seen?.backoffUntil ?? 0,
            );
            break;
          case "take_lease": {
            const taken = await store!.takeLease(effect.ttlMs, seen!);
            if (taken !== undefined && taken !== "held") lease = taken;
            core.handleLease(...now(), taken === undefined ? undefined : taken !== "held");
            break;
          }
          case "renew_lease":
            lease = lease && await store!.renewLease(lease, effect.ttlMs);
            core.handleRenewed(...now(), lease !== undefined);
            break;
          case "release_lease":
            if (lease !== undefined) await store!.releaseLease(lease);
            lease = undefined;
            core.handleStored(...now());
            break;
          case "write_store":
            held = this.#remember(effect.record); // callers are served before the write ends
            await store!.write(effect.record);
            core.handleStored(...now());
            break;
          case "set_backoff":
            await store!.setBackoff(effect.until);
            core.handleStored(...now());
            break;
          case "read_metadata": {
            const copy = await store!.readMetadata();
            core.handleMetadataCopy(...now(), copy);
            break;
          }
          case "write_metadata":
            await store!.writeMetadata(effect.copy);
            core.handleStored(...now());
            break;
          case "sleep": {
            const span = effect.why === "backoff"
              ? this.#telemetry?.wait("freshtoken.backoff_wait")
              : undefined;
            await sleep(effect.ms);
            span?.end();
            core.handleSlept(...now());
            break;
          }
          case "sign": {
            const signed = await core.sign(this.#now());
            core.handleSigned(...now(), signed);
            break;
          }
          case "send": {
            // The time handed back is the answer's: read after it arrived.
            const answer = await core.send(send, effect.timeoutMs);
            core.handleAnswer(...now(), answer);
            break;
          }
          case "done": {
            report.lifetimeSeconds = effect.record.lifetimeSeconds;
            if (effect.source === "kv") return this.#fromStore(effect.record, report);
            this.#telemetry?.tokenRequest(this.#attributes(), "ok");
            return held ?? this.#remember(effect.record);
          }
          case "fail": {
            const failure = fromCore(effect.error);
            if (requested) this.#telemetry?.tokenRequest(this.#attributes(), failure.code);
            throw failure;
          }
        }
      }
    } finally {
      tls?.close();
      waiting?.end();
      if (lease !== undefined) await store!.releaseLease(lease); // the run threw mid-way
    }
  }

  /** A token another isolate stored, taken by the core: a cache hit from KV. */
  #fromStore(record: TokenRecord, report: AcquisitionReport): Token {
    this.#hits++;
    this.#kvHits++;
    report.source = "kv";
    this.#emit({ type: "cache_hit", at: this.#now(), source: "kv" });
    return this.#remember(record);
  }

  /** Offers a stored token to the core; takes it if the core did. */
  #adopt(stored: unknown, force: boolean): Token | undefined {
    const record = this.#core.adopt(this.#now(), this.#mono(), stored, force);
    return record === undefined ? undefined : this.#fromStore(record, {});
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
  }

  /** Stale-while-revalidate: one background refresh at a time, spaced by the core's hold-back. */
  #refreshInBackground(): void {
    this.#emit({ type: "background_refresh", at: this.#now() });
    this.#acquire(false, true).catch((error: TokenError) => {
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
    return Promise.all([kvId(core.identity, options, key), seal]).then((
      [id, seal],
    ) =>
      new KvStore(kv, {
        prefix: kvPrefix,
        id,
        key,
        seal,
        now: this.#now,
        emit: (event) => this.#emit(event),
      })
    );
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
