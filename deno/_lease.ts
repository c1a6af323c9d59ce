// One token for every isolate sharing a KV (docs/DESIGN.md, "Shared
// state"): take a newer token from KV if there is one; otherwise take the
// lease and fetch for everyone, or wait for the isolate that holds it.

import type { CoreError, TokenRecord } from "../pkg/freshtoken.js";
import { sleep } from "./_internal.ts";
import type { KvStore, Lease } from "./kv_store.ts";
import type { Span } from "./_telemetry.ts";
import type { Token } from "./token.ts";
import { TokenError, type TokenErrorCode } from "./token_error.ts";
import type { TokenEvent } from "./types.ts";

/** What the shared acquisition needs from its client. */
export interface SharedAcquisition {
  store: KvStore;
  /** Wall clock, epoch ms (the client's). */
  now(): number;
  /** Takes a stored value as the client's token if the core accepts it. */
  adopt(stored: unknown): Token | undefined;
  /** One token request through the core; `onRetry` hears of each retry wait. */
  fetch(onRetry: (delayMs: number) => void): Promise<[Token, TokenRecord]>;
  /** Whether the client still serves a token (then a back-off fails fast). */
  serving(): boolean;
  /** The lease's length. */
  leaseMs: number;
  /** The longest wait for another isolate's token: the longest lease it may hold. */
  waitMs: number;
  /** Until when to hold every isolate back after `error`. */
  backoffUntil(now: number, error: CoreError): number;
  emit(event: TokenEvent): void;
  /** An error of the client's, formatted by its core. */
  error(code: TokenErrorCode, description: string, retryAfterSeconds?: number): TokenError;
  /** A span for a wait, when telemetry is on. */
  wait(name: "freshtoken.lease_wait" | "freshtoken.backoff_wait"): Span | undefined;
}

/** Failed attempts at a free lease before a waiter fetches without it. */
const MAX_CONFLICTS = 3;

/**
 * Acquires a token through KV; degrades to a token request of its own when KV fails.
 *
 * A waiter waits on a lease at most one attempt (`leaseMs`: a request timeout
 * and a margin), however often its holder renews it: counted from when the
 * holder says it took it, or from when this waiter first saw that holder,
 * whichever is earlier. Then it takes the lease over with the same atomic
 * check, so that all waiters agree on the moment, one of them fetches and
 * the others wait on it. A waiter that gets no token within the longest
 * lease (`waitMs`) fetches without the lease and stores what it gets.
 */
export async function acquireShared(a: SharedAcquisition): Promise<Token> {
  const store = a.store;
  const giveUpAt = performance.now() + a.waitMs;
  /** When this waiter first saw each holder, on the wall clock the lease values use. */
  const firstSeen = new Map<string, number>();
  let waited = false;
  let waiting: Span | undefined;
  let conflicts = 0;
  try {
    for (;;) {
      const snapshot = await store.snapshot();
      if (snapshot === undefined) return (await a.fetch(() => {}))[0]; // KV failed: memory only.
      const taken = snapshot.token === undefined ? undefined : a.adopt(snapshot.token);
      if (taken !== undefined) return taken;
      const now = a.now();
      if (snapshot.backoffUntil > now) {
        await holdBack(a, snapshot.backoffUntil - now, giveUpAt);
        continue;
      }
      const waitOnLease = () => {
        if (waited) return;
        waited = true;
        a.emit({ type: "lease_wait", at: now });
        waiting = a.wait("freshtoken.lease_wait");
      };
      if (snapshot.leaseUntil !== undefined) {
        waitOnLease();
        if (performance.now() >= giveUpAt) return await fetchAlone(a);
        const holder = snapshot.leaseHolder ?? "";
        if (!firstSeen.has(holder)) firstSeen.set(holder, now);
        const since = Math.min(firstSeen.get(holder)!, snapshot.leaseTakenAt ?? Infinity);
        if (now - since < a.leaseMs) {
          await sleep(40 + Math.random() * 80);
          continue;
        }
      }
      // No lease, or one held for a whole attempt: take it (over), if nothing changed since the read.
      const lease = await store.takeLease(a.leaseMs, snapshot);
      if (lease === undefined) return (await a.fetch(() => {}))[0];
      if (lease !== "held") return await fetchAsLeaseHolder(a, lease);
      // Another isolate moved first: look again. Entries that change under every try while no
      // lease shows are a co-tenant's doing, not another waiter's: then fetch without the lease.
      if (snapshot.leaseUntil === undefined && ++conflicts >= MAX_CONFLICTS) {
        return await fetchAlone(a);
      }
      waitOnLease();
      await sleep(40 + Math.random() * 80);
    }
  } finally {
    waiting?.end();
  }
}

/** Fetches without the lease (none came of waiting on it) and stores the token for the others. */
async function fetchAlone(a: SharedAcquisition): Promise<Token> {
  const [token, record] = await a.fetch(() => {});
  await a.store.write(record);
  return token;
}

/** A shared back-off is in force: wait it out, or fail if that takes too long. */
async function holdBack(a: SharedAcquisition, waitMs: number, giveUpAt: number): Promise<void> {
  if (a.serving() || performance.now() + waitMs > giveUpAt) {
    throw a.error(
      "rate_limited",
      "token requests are held back after a 429 or outage seen by another isolate",
      Math.ceil(waitMs / 1000),
    );
  }
  const span = a.wait("freshtoken.backoff_wait");
  try {
    await sleep(waitMs);
  } finally {
    span?.end();
  }
}

/** Fetches for every isolate: the lease is renewed before each retry wait and released at the end. */
async function fetchAsLeaseHolder(a: SharedAcquisition, lease: Lease): Promise<Token> {
  const store = a.store;
  let held: Lease | undefined = lease;
  let renewal: Promise<unknown> = Promise.resolve();
  const renew = (delayMs: number) => {
    const current = held;
    if (current === undefined) return;
    renewal = store.renewLease(current, delayMs + a.leaseMs).then((l) => held = l);
  };
  try {
    const [token, record] = await a.fetch(renew);
    await store.write(record);
    return token;
  } catch (error) {
    if (error instanceof TokenError && error.retryable) {
      await store.setBackoff(a.backoffUntil(a.now(), error as unknown as CoreError));
    }
    throw error;
  } finally {
    await renewal;
    if (held !== undefined) await store.releaseLease(held);
  }
}
