/**
 * Deno KV persistence for tokens (docs/DESIGN.md, "Shared state"): one
 * shared token per client identity, the lease that lets one isolate fetch
 * for all, and the shared back-off, optionally encrypted. Everything read
 * back is untrusted: values are read once, inside the guard of the
 * operation that read them, into plain data, decoded here and judged by
 * the core (a token, a lease, a back-off: docs/DESIGN.md, "Shared state"). Every KV
 * failure is reported as a `kv_error` event and answered with "nothing
 * there", so the client falls back to memory: KV never fails a caller.
 *
 * @module
 */

import { maxAccessTokenBytes, StoreGuard, type TokenRecord } from "../pkg/freshtoken.js";
import { base64, Cipher, unbase64 } from "./_cipher.ts";
import { sleep, unlessAborted } from "./_internal.ts";
import { observe } from "./_observe.ts";
import type { TokenEvent } from "./types.ts";

/** Bumped when the stored shape changes; other versions read as absent. */
const FORMAT = 2;
/** The longest a metadata copy is kept (the core keeps none longer). */
const METADATA_TTL_MS = 86_400_000;

/** A lease held by this isolate. */
export interface Lease {
  holder: string;
  until: number;
  /** When the holder took it (renewals keep it): waiters take it over one attempt later. */
  takenAt: number;
  versionstamp: string;
}

/** The token entry, the lease and the shared back-off, read together. */
export interface Snapshot {
  /** The stored token, decoded (decrypted) but not yet checked: the core checks it. */
  token?: unknown;
  /** The token entry's versionstamp: the lease is taken only if it is unchanged. */
  tokenVersion: string | null;
  /** When a lease ends, as its value says (a finite number; the core judges it). */
  leaseUntil?: number;
  /** Who holds that lease, as its value says (any string; an opaque name). */
  leaseHolder?: string;
  /** When its holder says it took it, if it says. */
  leaseTakenAt?: number;
  /** The lease entry's versionstamp. */
  leaseVersion: string | null;
  /** Until when every isolate holds token requests back, as stored (the core judges it); 0 for none. */
  backoffUntil: number;
  /** The back-off entry's versionstamp. */
  backoffVersion: string | null;
  /** Until when the token cools after an API's 429, as stored (the core judges it). */
  coolingUntil?: number;
}

/** `[...prefix, "token", id]` */
export function tokenKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "token", id];
}

/** The KV id of a pool's slot `slot` (docs/DESIGN.md, "Token pools"): `id` for slot 0, else `${id}.${slot}`. */
export function slotId(id: string, slot: number): string {
  return slot === 0 ? id : `${id}.${slot}`;
}

/** `[...prefix, "lease", id]` */
export function leaseKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "lease", id];
}

/** `[...prefix, "metadata", id]`: the copy of an issuer's metadata (RFC 8414). */
export function metadataKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "metadata", id];
}

/** `[...prefix, "backoff", id]` */
export function backoffKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "backoff", id];
}

/** `[...prefix, "cooling", id]`: until when the token cools after an API's 429. */
export function coolingKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "cooling", id];
}

/** What a store needs besides the KV. */
export interface StoreOptions {
  prefix: Deno.KvKey;
  /** The client's KV id (deno/_identity.ts). */
  id: string;
  /** Raw AES-256 key; values are plaintext without it. */
  key?: Uint8Array;
  /** With `issuer`: the HMAC key sealing the metadata copy (deno/_identity.ts); no copy without it. */
  seal?: CryptoKey;
  /**
   * The slot of a pool (docs/DESIGN.md, "Token pools"): slot k > 0 keeps its
   * token, lease and cooling under `${id}.${k}`; slot 0 under `id`, as a
   * client without a pool. The back-off and the metadata copy are the
   * client's, shared by every slot.
   */
  slot?: number;
  now: () => number;
  emit: (event: TokenEvent) => void;
}

/**
 * The store effects of the core's driver (docs/DESIGN.md, "The effect
 * loop"): what sharing a token between isolates needs from a store, and
 * all the executor assumes of one. Every method answers "nothing there"
 * (`undefined`, or no effect) when the store fails: a store never fails a
 * caller. {@linkcode KvStore} implements it on Deno KV; `src/sim/world.rs`
 * simulates the same semantics.
 */
export interface TokenStore {
  /** The client's id in the store. */
  readonly id: string;
  /**
   * The token, the lease and the shared back-off, read together;
   * `undefined` when the store failed. `eventual`: a nearby replica may
   * answer, perhaps behind (only its token is used; the lease's check
   * needs a strong read).
   */
  snapshot(eventual?: boolean): Promise<Snapshot | undefined>;
  /** Stores a token until it stops being usable. */
  write(record: TokenRecord): Promise<void>;
  /** Deletes the stored token; with `accessToken`, only if it is still that token. */
  remove(accessToken?: string): Promise<void>;
  /** Deletes the stored token of every slot of a pool of `size`, slot 0's too, in one operation. */
  removeSlots(size: number): Promise<void>;
  /** Takes the lease if nothing changed since `seen`: the lease, `"held"` (read again), or `undefined` (failed). */
  takeLease(ttlMs: number, seen: Snapshot): Promise<Lease | "held" | undefined>;
  /** Extends a lease held; `undefined` if it was lost. */
  renewLease(lease: Lease, ttlMs: number): Promise<Lease | undefined>;
  /** Releases a lease if it is still held. */
  releaseLease(lease: Lease): Promise<void>;
  /** Holds every isolate back until `until`. */
  setBackoff(until: number): Promise<void>;
  /** Tells every isolate that the token cools until `until` (epoch ms), after an API's 429. */
  setCooling(until: number): Promise<void>;
  /** The stored copy of the issuer's metadata, if a sound one is there. */
  readMetadata(): Promise<string | undefined>;
  /** Stores a copy of the issuer's metadata. */
  writeMetadata(copy: string): Promise<void>;
}

/** One client's view of KV. */
export class KvStore implements TokenStore {
  readonly #kv: Deno.Kv;
  readonly #keys: [Deno.KvKey, Deno.KvKey, Deno.KvKey, Deno.KvKey];
  readonly #options: StoreOptions;
  /** Made on first use, so that no key import runs unawaited. */
  #cipherMade?: Promise<Cipher>;
  /** The core's failure policy: timeout, locked retries, cool-down (src/store_guard.rs). */
  readonly #guard = new StoreGuard();

  constructor(kv: Deno.Kv, options: StoreOptions) {
    this.#kv = kv;
    const { prefix, id, slot = 0 } = options;
    const own = slotId(id, slot);
    this.#keys = [
      tokenKey(prefix, own),
      leaseKey(prefix, own),
      backoffKey(prefix, id),
      coolingKey(prefix, own),
    ];
    this.#options = options;
  }

  /** The client's KV id. */
  get id(): string {
    return this.#options.id;
  }

  /** The cipher of an encrypting store; `undefined` without `key`. */
  #cipher(): Promise<Cipher> | undefined {
    const { key, id } = this.#options;
    if (key === undefined) return undefined;
    return this.#cipherMade ??= Cipher.create(key, id, FORMAT);
  }

  /**
   * The token, the lease, the back-off and the cooling as KV holds them,
   * for the core to judge; `undefined` when KV failed or answered with
   * something that is not a list of four entries. Values of another shape or that do not
   * decode read as absent. `eventual` reads the nearest replica
   * (`consistency: "eventual"`).
   */
  async snapshot(eventual = false): Promise<Snapshot | undefined> {
    // Every read of what the store answered happens in the guard: a value
    // whose getter or Proxy trap throws is a store failure, not the caller's.
    const entries = await this.#op("read", async () => {
      const consistency = eventual ? "eventual" : "strong";
      const read = await this.#kv.getMany(this.#keys, { consistency });
      if (!Array.isArray(read) || read.length !== 4) {
        throw new Error("getMany did not answer with one entry per key");
      }
      const [token, lease, backoff, cooling] = [0, 1, 2, 3].map((i) => plainEntry(read[i]));
      return {
        token: await this.#decode(token.value),
        tokenVersion: token.versionstamp,
        lease,
        backoff,
        cooling,
      };
    });
    if (entries === undefined) return undefined;
    const { token, tokenVersion, lease, backoff, cooling } = entries;
    const snapshot: Snapshot = {
      token,
      tokenVersion,
      leaseVersion: lease.versionstamp,
      backoffUntil: 0,
      backoffVersion: backoff.versionstamp,
    };
    const until = readUntil(lease.value);
    if (until !== undefined) {
      snapshot.leaseUntil = until;
      const { holder, takenAt } = lease.value as { holder?: unknown; takenAt?: unknown };
      snapshot.leaseHolder = typeof holder === "string" ? holder.slice(0, 64) : "";
      if (typeof takenAt === "number" && Number.isFinite(takenAt)) snapshot.leaseTakenAt = takenAt;
    }
    const backoffUntil = readUntil(backoff.value);
    if (backoffUntil !== undefined) snapshot.backoffUntil = backoffUntil;
    const coolingUntil = readUntil(cooling.value);
    if (coolingUntil !== undefined) snapshot.coolingUntil = coolingUntil;
    return snapshot;
  }

  /** Stores a token until it stops being usable. */
  async write(record: TokenRecord): Promise<void> {
    const expireIn = Math.max(1, Math.floor(record.usableUntil - this.#options.now()));
    const value = await this.#encode(record);
    observe("kv", { encrypted: this.#options.key !== undefined, key: this.#keys[0], value });
    const ok = await this.#op("write", () => this.#kv.set(this.#keys[0], value, { expireIn }));
    if (ok !== undefined) this.#options.emit({ type: "kv_write", at: this.#options.now() });
  }

  /** Deletes the stored token; with `accessToken`, only if it is still that token. */
  async remove(accessToken?: string): Promise<void> {
    await this.#op("delete", async () => {
      if (accessToken === undefined) return await this.#kv.delete(this.#keys[0]);
      const entry = plainEntry(await this.#kv.get(this.#keys[0]));
      const stored = await this.#decode(entry.value) as { accessToken?: unknown } | undefined;
      if (stored?.accessToken !== accessToken) return;
      const check = { key: this.#keys[0], versionstamp: entry.versionstamp };
      await this.#kv.atomic().check(check).delete(this.#keys[0]).commit();
    });
  }

  /**
   * Deletes the stored token of every slot of a pool of `size` (slot 0's
   * too), under this store's id, in one atomic operation: Deno KV commits
   * up to 1,000 mutations in one, and a pool has 50 slots at most.
   */
  async removeSlots(size: number): Promise<void> {
    const { prefix, id } = this.#options;
    await this.#op("delete", async () => {
      const atomic = this.#kv.atomic();
      for (let k = 0; k < size; k++) atomic.delete(tokenKey(prefix, slotId(id, k)));
      await atomic.commit();
    });
  }

  /**
   * Takes the lease for `ttlMs` if none of the three entries changed since
   * `seen` was read: exactly one isolate wins this check-and-set, and none
   * takes a lease for a token already replaced, or past a back-off set by a
   * holder that has come and gone in between (its lease then reads absent
   * again). `"held"` means look again; `undefined` means KV failed.
   */
  async takeLease(ttlMs: number, seen: Snapshot): Promise<Lease | "held" | undefined> {
    return await this.#op("lease", async () => {
      const now = this.#options.now();
      const lease = { holder: crypto.randomUUID(), until: now + ttlMs, takenAt: now };
      // KV expiry is eventual, hence `until` in the value too.
      const result = await this.#kv.atomic()
        .check({ key: this.#keys[1], versionstamp: seen.leaseVersion })
        .check({ key: this.#keys[0], versionstamp: seen.tokenVersion })
        .check({ key: this.#keys[2], versionstamp: seen.backoffVersion })
        .set(this.#keys[1], lease, { expireIn: Math.ceil(ttlMs) })
        .commit();
      return result.ok ? { ...lease, versionstamp: result.versionstamp } : "held" as const;
    });
  }

  /** Extends a lease this isolate holds; `undefined` if it was lost. */
  async renewLease(lease: Lease, ttlMs: number): Promise<Lease | undefined> {
    return await this.#op("lease", async () => {
      const until = this.#options.now() + ttlMs;
      const result = await this.#kv.atomic()
        .check({ key: this.#keys[1], versionstamp: lease.versionstamp })
        .set(this.#keys[1], { holder: lease.holder, until, takenAt: lease.takenAt }, {
          expireIn: Math.ceil(ttlMs),
        })
        .commit();
      return result.ok ? { ...lease, until, versionstamp: result.versionstamp } : undefined;
    });
  }

  /** Releases a lease if this isolate still holds it. */
  async releaseLease(lease: Lease): Promise<void> {
    await this.#op("lease", () =>
      this.#kv.atomic()
        .check({ key: this.#keys[1], versionstamp: lease.versionstamp })
        .delete(this.#keys[1])
        .commit());
  }

  /**
   * The copy of the issuer's metadata (the core's JSON text, which the core
   * checks again) if one sealed with this client's key for this id is
   * stored; anything else reads as absent.
   */
  async readMetadata(): Promise<string | undefined> {
    const { seal, prefix, id } = this.#options;
    if (seal === undefined) return undefined;
    const entry = await this.#op(
      "read",
      async () => plainEntry(await this.#kv.get(metadataKey(prefix, id))),
    );
    const value = entry?.value as Record<string, unknown> | null | undefined;
    const { copy, mac } = value ?? {};
    if (value?.v !== FORMAT || typeof copy !== "string" || typeof mac !== "string") {
      return undefined;
    }
    let signature: Uint8Array<ArrayBuffer>;
    try {
      signature = unbase64(mac);
    } catch {
      return undefined;
    }
    const sealed = await crypto.subtle.verify("HMAC", seal, signature, this.#sealed(copy));
    return sealed ? copy : undefined;
  }

  /** Stores `copy` (the core's), sealed, for a day at most: the core keeps none longer. */
  async writeMetadata(copy: string): Promise<void> {
    const { seal, prefix, id } = this.#options;
    if (seal === undefined) return;
    const mac = base64(new Uint8Array(await crypto.subtle.sign("HMAC", seal, this.#sealed(copy))));
    await this.#op("write", () =>
      this.#kv.set(metadataKey(prefix, id), { v: FORMAT, copy, mac }, {
        expireIn: METADATA_TTL_MS,
      }));
  }

  /** What the seal covers: the copy, bound to this client's id. */
  #sealed(copy: string): Uint8Array<ArrayBuffer> {
    return new TextEncoder().encode(`${this.#options.id}\n${copy}`);
  }

  /** Tells every isolate to hold token requests back until `until`. */
  async setBackoff(until: number): Promise<void> {
    const expireIn = Math.ceil(until - this.#options.now());
    if (expireIn <= 0) return;
    await this.#op("write", () => this.#kv.set(this.#keys[2], { until }, { expireIn }));
  }

  /**
   * Tells every isolate that the token cools until `until` (an API's 429);
   * a later end already stored stands.
   */
  async setCooling(until: number): Promise<void> {
    const expireIn = Math.ceil(until - this.#options.now());
    if (expireIn <= 0) return;
    const key = this.#keys[3];
    await this.#op("write", async () => {
      const stored = readUntil(plainEntry(await this.#kv.get(key)).value);
      if (stored !== undefined && stored >= until) return;
      await this.#kv.set(key, { until }, { expireIn });
    });
  }

  /**
   * Runs one KV operation as the core's store guard says: bounded in time,
   * tried again while SQLite says "database is locked" (other processes
   * committing), skipped while cooling down after a failure, all on the
   * client's clock; a failure is reported as `kv_error` and answered with
   * `undefined`.
   */
  async #op<T>(operation: string, run: () => Promise<T>): Promise<T | undefined> {
    const guard = this.#guard;
    const { now, emit } = this.#options;
    if (!guard.allows(now())) return undefined;
    const started = now();
    for (let attempt = 1;; attempt++) {
      try {
        return await withTimeout(run(), guard.timeoutMs);
      } catch (error) {
        const message = messageOf(error);
        const wait = guard.failed(message, attempt, started, now());
        if (wait !== undefined) {
          await sleep(wait);
          continue;
        }
        emit({ type: "kv_error", at: now(), operation, message });
        return undefined;
      }
    }
  }

  async #encode(record: TokenRecord): Promise<unknown> {
    // Named fields only: nothing else the caller's object holds goes to KV.
    const fields: TokenRecord = {
      accessToken: record.accessToken,
      tokenType: record.tokenType,
      lifetimeSeconds: record.lifetimeSeconds,
      expiresAt: record.expiresAt,
      refreshAt: record.refreshAt,
      usableUntil: record.usableUntil,
    };
    if (record.scope !== undefined) fields.scope = record.scope;
    const cipher = this.#cipher();
    if (cipher === undefined) return { v: FORMAT, ...fields };
    return { v: FORMAT, ...await (await cipher).seal(JSON.stringify(fields)) };
  }

  /**
   * The stored fields as written (a plain copy, see {@linkcode plainEntry}),
   * or `undefined`; the core checks what they say. Throws, inside the
   * store's guard, for a token longer than a token response can carry:
   * nothing freshtoken wrote, and too much to hand to the core.
   */
  async #decode(value: unknown): Promise<unknown> {
    if (typeof value !== "object" || value === null) return undefined;
    const v = value as Record<string, unknown>;
    if (v.v !== FORMAT) return undefined;
    const cipher = this.#cipher();
    if (cipher === undefined) {
      // Sealed by a client with a key; this one has none.
      return "ct" in v ? undefined : boundedToken(v);
    }
    const plain = await (await cipher).open(v);
    if (plain === undefined) return undefined;
    let opened: unknown;
    try {
      opened = JSON.parse(plain);
    } catch {
      return undefined;
    }
    return boundedToken(plainValue(opened));
  }
}

/**
 * Opens the KV Connect store at `url` (a Deno Deploy KV database's
 * `https://api.deno.com/v2/databases/<id>/connect`, or a `denokv` server)
 * for a client that must not fail because of it (docs/DESIGN.md, "Shared
 * state"). A store that refuses the access token, finds none set or does
 * not answer is a store failure like any other: reported as a `kv_error`
 * of operation `"open"` and answered with `undefined`, so the client works
 * in memory. Deno 2.9 checks the access token as it opens the store; Deno
 * 2.5 at the first operation, which {@linkcode KvStore} reports the same
 * way. What is the caller's to fix throws: a missing permission, a
 * malformed URL.
 */
export async function openRemoteStore(
  url: string,
  emit: (event: TokenEvent) => void,
  now: () => number = Date.now,
): Promise<Deno.Kv | undefined> {
  try {
    return await Deno.openKv(url);
  } catch (error) {
    const message = messageOf(error);
    const permission = error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied;
    if (permission || /invalid database url/i.test(message)) throw error;
    emit({ type: "kv_error", at: now(), operation: "open", message });
    return undefined;
  }
}

/** How many fields a stored value may have: freshtoken writes eight at most. */
const MAX_FIELDS = 32;
/** The longest access token a token response can carry (the core's limit). */
const MAX_ACCESS_TOKEN = maxAccessTokenBytes();

/**
 * An entry a store answered, read once into plain data: its versionstamp
 * (a string or null) and its value ({@linkcode plainValue}). Throws for
 * anything that is not an entry, or whose getters or Proxy traps throw; the
 * caller runs it inside the store's guard, where that is a store failure.
 */
function plainEntry(entry: unknown): { value: unknown; versionstamp: string | null } {
  if (typeof entry !== "object" || entry === null) throw new Error("not an entry");
  const { value, versionstamp } = entry as Record<string, unknown>;
  if (typeof versionstamp !== "string" && versionstamp !== null) {
    throw new Error("an entry's versionstamp is not a string");
  }
  return { value: plainValue(value), versionstamp };
}

/**
 * A stored value as plain data, each field read once: freshtoken stores
 * flat objects of strings, numbers and booleans, so a value of another
 * shape (an array, nested objects, too many fields) keeps only its flat
 * fields, or reads as absent; nothing is followed deeper.
 */
function plainValue(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return isData(value) ? value : undefined;
  if (Array.isArray(value)) return undefined;
  const names = Object.keys(value);
  if (names.length > MAX_FIELDS) return undefined;
  const copy: Record<string, unknown> = {};
  for (const name of names) {
    const field = (value as Record<string, unknown>)[name];
    if (isData(field)) copy[name] = field;
  }
  return copy;
}

function isData(value: unknown): boolean {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

/** `record`, unless its access token is longer than a token response can carry. */
function boundedToken(record: unknown): unknown {
  const token = (record as { accessToken?: unknown } | undefined)?.accessToken;
  if (typeof token === "string" && token.length > MAX_ACCESS_TOKEN) {
    throw new Error("the stored access token is longer than a token response can carry");
  }
  return record;
}

/** The `until` of a lease or back-off value, if it is a finite number. */
function readUntil(value: unknown): number | undefined {
  const until = (value as { until?: unknown } | null)?.until;
  return typeof until === "number" && Number.isFinite(until) ? until : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  // AbortSignal.timeout, not setTimeout: a process's first setTimeout costs
  // milliseconds of start-up, and this is on the cold path (a token from KV).
  return unlessAborted(
    promise,
    AbortSignal.timeout(ms),
    () => new Error(`KV did not answer within ${ms} ms`),
  );
}

/**
 * The text of a thrown value, read so that no throwable can make the read
 * itself throw: a KV look-alike may throw a null-prototype object, a Proxy
 * whose traps throw, or an Error whose `message` getter throws.
 */
function messageOf(error: unknown): string {
  try {
    const message = error instanceof Error ? error.message : String(error);
    return typeof message === "string" ? message : "unreadable error";
  } catch {
    return "unreadable error";
  }
}
