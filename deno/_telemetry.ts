// Spans and metrics through Deno's built-in OpenTelemetry (docs/DESIGN.md,
// "Telemetry"). Deno registers its providers as `Deno.telemetry`; reading
// them there imports no API package. Whether telemetry is on (OTEL_DENO=true)
// is found out once per process: with it off, `telemetry()` is `undefined`
// and a client does nothing more than check that. The hot path never does:
// cache hits are read from the clients' own counters by an asynchronous
// instrument, when metrics are collected.
//
// No attribute carries a token, a secret or a key: only the client id, the
// token endpoint's host, sources, outcomes (error codes), counts and times.

import { SAMPLE } from "./_internal.ts";

/** The version reported as the instrumentation scope's. */
const VERSION = "0.1.0";
/** OpenTelemetry's `SpanStatusCode.ERROR`. */
const STATUS_ERROR = 2;

type Attributes = Record<string, string | number | boolean>;

/** The part of an OpenTelemetry span used here. */
export interface Span {
  setAttributes(attributes: Attributes): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

interface Tracer {
  startActiveSpan<T>(name: string, run: (span: Span) => T): T;
  startSpan(name: string, options?: { startTime?: number }): Span;
}

interface Instrument {
  add(value: number, attributes?: Attributes): void;
  record(value: number, attributes?: Attributes): void;
}

interface Observation {
  observe(value: number, attributes?: Attributes): void;
}

interface Observable {
  addCallback(callback: (result: Observation) => void): void;
}

interface Meter {
  createCounter(name: string, options?: object): Instrument;
  createHistogram(name: string, options?: object): Instrument;
  createObservableCounter(name: string, options?: object): Observable;
  createObservableGauge(name: string, options?: object): Observable;
}

/** `Deno.telemetry`, as far as it is used here. */
interface Providers {
  tracerProvider: { getTracer(name: string, version: string): Tracer };
  meterProvider: { getMeter(name: string, version: string): Meter };
}

/** What a client reports when metrics are collected. */
export interface Sample {
  /** `freshtoken.client_id` and `server.address`. */
  attributes: Attributes;
  memoryHits: number;
  kvHits: number;
  /** Expiry of the cached token, epoch ms, if one is cached. */
  expiresAt?: number;
}

/** A client, as telemetry reads it. */
interface Sampled {
  [SAMPLE](): Sample;
}

/** What one acquisition found out, for its span. */
export interface AcquisitionReport {
  /** `"kv"` (taken from another isolate) or `"network"` (a token request). */
  source?: "kv" | "network";
  attempts?: number;
  lifetimeSeconds?: number;
}

/** freshtoken's instruments, once telemetry is on. */
export class Telemetry {
  readonly #tracer: Tracer;
  readonly #tokenRequests: Instrument;
  readonly #duration: Instrument;
  readonly #backgroundFailures: Instrument;
  readonly #rateLimited: Instrument;
  readonly #clients = new Set<WeakRef<Sampled>>();

  constructor(tracer: Tracer, meter: Meter) {
    this.#tracer = tracer;
    this.#tokenRequests = meter.createCounter("freshtoken.token_requests", {
      description: "Token requests (acquisitions that went to the token endpoint), by outcome",
    });
    this.#duration = meter.createHistogram("freshtoken.acquisition.duration", {
      description: "Time to acquire a token, from KV or the network",
      unit: "ms",
    });
    this.#backgroundFailures = meter.createCounter("freshtoken.background_refresh.failures", {
      description: "Background refreshes that failed while the current token was still served",
    });
    this.#rateLimited = meter.createCounter("freshtoken.rate_limited", {
      description:
        "The API's 429s met by client.fetch, by what the call did next (move, wait, return)",
    });
    meter.createObservableCounter("freshtoken.cache_hits", {
      description: "Calls answered from the cache, by source (memory or kv)",
    }).addCallback((result) => {
      for (const { attributes, memoryHits, kvHits } of this.#collect().values()) {
        result.observe(memoryHits, { ...attributes, "freshtoken.source": "memory" });
        result.observe(kvHits, { ...attributes, "freshtoken.source": "kv" });
      }
    });
    meter.createObservableGauge("freshtoken.token.expires_in", {
      description: "Seconds until the cached token expires (the soonest, per client id)",
      unit: "s",
    }).addCallback((result) => {
      const now = Date.now();
      for (const { attributes, expiresAt } of this.#collect().values()) {
        if (expiresAt !== undefined) result.observe((expiresAt - now) / 1000, attributes);
      }
    });
  }

  /** Reports `client` at each collection while it lives (a weak reference: it may be collected). */
  register(client: Sampled): void {
    this.#clients.add(new WeakRef(client));
  }

  /** The live clients' samples, summed per client id and host. */
  #collect(): Map<string, Sample> {
    const merged = new Map<string, Sample>();
    for (const ref of this.#clients) {
      const client = ref.deref();
      if (client === undefined) {
        this.#clients.delete(ref);
        continue;
      }
      const sample = client[SAMPLE]();
      const key = JSON.stringify(sample.attributes);
      const seen = merged.get(key);
      if (seen === undefined) {
        merged.set(key, { ...sample });
        continue;
      }
      seen.memoryHits += sample.memoryHits;
      seen.kvHits += sample.kvHits;
      if (sample.expiresAt !== undefined) {
        seen.expiresAt = Math.min(seen.expiresAt ?? Infinity, sample.expiresAt);
      }
    }
    return merged;
  }

  /**
   * Runs one acquisition inside a `freshtoken.acquire` span, and records
   * its duration. `report` is filled in as the acquisition learns where
   * its token came from.
   */
  acquisition<T>(
    attributes: Attributes,
    report: AcquisitionReport,
    run: () => Promise<T>,
  ): Promise<T> {
    return this.#tracer.startActiveSpan("freshtoken.acquire", async (span) => {
      const started = performance.now();
      let outcome = "ok";
      try {
        return await run();
      } catch (error) {
        outcome = (error as { code?: string })?.code ?? "unexpected";
        span.setStatus({ code: STATUS_ERROR, message: outcome });
        throw error;
      } finally {
        const about: Attributes = { ...attributes, "freshtoken.outcome": outcome };
        if (report.source !== undefined) about["freshtoken.source"] = report.source;
        this.#duration.record(performance.now() - started, about);
        if (report.attempts !== undefined) about["freshtoken.attempts"] = report.attempts;
        if (report.lifetimeSeconds !== undefined) {
          about["freshtoken.lifetime_seconds"] = report.lifetimeSeconds;
        }
        span.setAttributes(about);
        span.end();
      }
    });
  }

  /** A span for a wait: inside the acquisition in flight (a lease or a shared back-off), or a `client.fetch` waiting out a 429. */
  wait(
    name: "freshtoken.lease_wait" | "freshtoken.backoff_wait" | "freshtoken.rate_limit_wait",
    attributes?: Attributes,
  ): Span {
    const span = this.#tracer.startSpan(name);
    if (attributes !== undefined) span.setAttributes(attributes);
    return span;
  }

  /** The API answered a `client.fetch` call 429; `next` is what the call does about it. */
  rateLimited(attributes: Attributes, next: string): void {
    this.#rateLimited.add(1, { ...attributes, "freshtoken.next": next });
  }

  /**
   * A call moved to another slot after a 429: a `freshtoken.rate_limit_move`
   * span over what the move cost, the round trip that got the 429, from
   * `sentAt` (`performance.now()` when it was sent) to now.
   */
  moved(attributes: Attributes, sentAt: number): void {
    const span = this.#tracer.startSpan("freshtoken.rate_limit_move", {
      startTime: performance.timeOrigin + sentAt,
    });
    span.setAttributes(attributes);
    span.end();
  }

  /** A token request ended: `outcome` is `"ok"` or the error code. */
  tokenRequest(attributes: Attributes, outcome: string): void {
    this.#tokenRequests.add(1, { ...attributes, "freshtoken.outcome": outcome });
  }

  /** A background refresh failed while the current token was still served. */
  backgroundFailure(attributes: Attributes, code: string): void {
    this.#backgroundFailures.add(1, { ...attributes, "freshtoken.outcome": code });
  }
}

let instance: Telemetry | null | undefined;

/**
 * Whether OpenTelemetry is on, from `OTEL_DENO`. `Deno.telemetry` is only
 * touched when it is: with telemetry off, touching it costs a millisecond
 * or two of start-up (Deno loads it on first use), and Deno 2.5 hands out
 * instruments that crash the process when used. Without permission to read
 * the variable, telemetry counts as off: asking could prompt the user.
 */
function isOn(): boolean {
  const query = { name: "env", variable: "OTEL_DENO" } as const;
  if (Deno.permissions.querySync?.(query).state !== "granted") return false;
  const value = Deno.env.get("OTEL_DENO");
  return value !== undefined && value !== "" && value !== "false" && value !== "0";
}

/** freshtoken's instruments, or `undefined` when telemetry is off; decided once. */
export function telemetry(): Telemetry | undefined {
  if (instance === undefined && !isOn()) instance = null;
  if (instance === undefined) {
    try {
      // Deno's providers throw until OpenTelemetry is initialised (OTEL_DENO=true).
      const providers = (Deno as unknown as { telemetry?: Providers }).telemetry;
      const meter = providers?.meterProvider.getMeter("freshtoken", VERSION);
      const tracer = providers?.tracerProvider.getTracer("freshtoken", VERSION);
      instance = meter && tracer ? new Telemetry(tracer, meter) : null;
    } catch {
      instance = null;
    }
  }
  return instance ?? undefined;
}
