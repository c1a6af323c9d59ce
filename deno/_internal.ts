// Helpers and symbols shared between the client and the helpers that drive it, kept
// off the public API.

/** `client[REFRESH_IF_DUE]()` implements {@linkcode refreshIfDue}. */
export const REFRESH_IF_DUE: unique symbol = Symbol("freshtoken.refreshIfDue");

/** `client[LOAD_SHARED]()` takes a newer token from KV into memory, sending nothing. */
export const LOAD_SHARED: unique symbol = Symbol("freshtoken.loadShared");

/** `client[KV_ID]()` is the KV id of the client's token (tests poison it). */
export const KV_ID: unique symbol = Symbol("freshtoken.kvId");

/**
 * `client[KV_PLACE]()` is where the client's token lives: its `Deno.Kv`, key
 * prefix and KV id (an async digest); `undefined` without KV.
 */
export const KV_PLACE: unique symbol = Symbol("freshtoken.kvPlace");

/**
 * `await client[INVALIDATE](slots)` is `invalidate()` as a pool with KV does
 * it for each slot it has made (deno/_pool.ts): the core forgets the token,
 * and the store delete it names covers the stored tokens of `slots` slots
 * at once (slot 0, with the pool's size), or is left to slot 0 (`0`).
 */
export const INVALIDATE: unique symbol = Symbol("freshtoken.invalidate");

/** What `client[KV_PLACE]()` answers. */
export interface KvPlace {
  kv: Deno.Kv;
  prefix: Deno.KvKey;
  id: Promise<string>;
}

/**
 * `client[HELD]()` is the schedule of the token held, if any: how long the
 * server's tokens live (the CLI's default `--min-valid`), when it is
 * refreshed and until when it is served (the token files `exec` and `agent` keep).
 */
export const HELD: unique symbol = Symbol("freshtoken.held");

/** What `client[HELD]()` answers. */
export interface Held {
  lifetimeSeconds: number;
  refreshAt: number;
  usableUntil: number;
}

/**
 * `await client[PREPARE_KEY]()` imports a JWT method's signing key now,
 * rejecting with the `config` error a key WebCrypto refuses gets, so that a
 * job's start-up fails rather than its runs; nothing to do for the others.
 */
export const PREPARE_KEY: unique symbol = Symbol("freshtoken.prepareKey");

/** `client[DESCRIBE]()` names the client in logs: its client id and token endpoint's origin. */
export const DESCRIBE: unique symbol = Symbol("freshtoken.describe");

/** `client[SAMPLE]()` is what telemetry reads of a client when it collects metrics. */
export const SAMPLE: unique symbol = Symbol("freshtoken.sample");

/**
 * Settles as `promise` does, unless `signal` aborts first: then rejects with
 * `reason()`. The listener is removed once `promise` settles.
 */
export function unlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  reason: () => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reason());
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Resolves after `ms` milliseconds, or at once when `signal` aborts (the
 * caller then looks at the signal); the timer is cleared either way.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * `client[SLOT]()` is the client as one slot of a pool, or as the one slot
 * of a client without one: what `client.fetch`'s loop (`deno/_pool.ts`)
 * asks of it. Every answer that decides something comes from its core.
 */
export const SLOT: unique symbol = Symbol("freshtoken.slot");
