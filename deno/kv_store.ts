/**
 * Deno KV persistence for tokens (SPEC §5): one shared token per client
 * identity, a lease so that one isolate fetches for all, a shared back-off,
 * and optional AES-256-GCM encryption. Every KV failure is reported as a
 * `kv_error` event and answered with "nothing there", so the client falls
 * back to memory-only: KV never fails a caller.
 *
 * @module
 */

import { sleep, unlessAborted } from "./_internal.ts";
import { observe } from "./_observe.ts";
import type { TokenEvent } from "./types.ts";

/** Bumped when the stored shape changes; other versions read as absent. */
const FORMAT = 1;
/** A KV operation slower than this counts as a failure. */
const KV_TIMEOUT_MS = 2_000;
/** After a failure KV is skipped for this long, so a dead KV costs no time. */
const KV_COOLDOWN_MS = 5_000;
/** How long to keep retrying SQLite's "database is locked". */
const LOCKED_RETRY_MS = 3_000;

/** A token and its schedule, as the wasm core's `fetchToken()` resolves it. */
export interface IssuedToken {
  accessToken: string;
  tokenType: string;
  scope?: string;
  /** `expires_in` of the response; with `expiresAt` it gives when the token was requested. */
  lifetimeSeconds: number;
  expiresAt: number;
  refreshAt: number;
  usableUntil: number;
}

/** A token as stored in and read from KV. */
export interface StoredToken extends IssuedToken {
  /** Random id of this token, so an isolate only deletes the token it saw fail. */
  tokenId: string;
}

/** A lease held by this isolate. */
export interface Lease {
  holder: string;
  until: number;
  versionstamp: string;
}

/** The token key and the lease, read together. */
export interface Snapshot {
  token?: StoredToken;
  /** When another isolate's lease ends, if one is held. */
  leaseUntil?: number;
}

/** `[...prefix, "token", id]` */
export function tokenKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "token", id];
}

/** `[...prefix, "lease", id]` */
export function leaseKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "lease", id];
}

/** `[...prefix, "backoff", id]` */
export function backoffKey(prefix: Deno.KvKey, id: string): Deno.KvKey {
  return [...prefix, "backoff", id];
}

/**
 * The KV id of a client: SHA-256 of token URL, client id, scope, audience
 * and resource. Never the secret.
 */
export async function clientId(identity: {
  tokenUrl: string;
  clientId: string;
  scope?: string;
  audience?: string;
  resource: string[];
}): Promise<string> {
  const { tokenUrl, clientId, scope, audience, resource } = identity;
  const text = JSON.stringify([tokenUrl, clientId, scope ?? null, audience ?? null, resource]);
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * Checks an `encryptionKey` option: base64 of exactly 32 bytes. Returns the
 * raw key, or an error message.
 */
export function decodeKey(encoded: unknown): Uint8Array | string {
  if (typeof encoded !== "string") return "encryptionKey must be a base64 string";
  let raw: Uint8Array;
  try {
    raw = Uint8Array.from(atob(encoded.trim()), (c) => c.charCodeAt(0));
  } catch {
    return "encryptionKey is not valid base64";
  }
  return raw.length === 32
    ? raw
    : `encryptionKey must be 32 bytes (base64 of 32 random bytes), got ${raw.length}`;
}

interface StoreOptions {
  prefix: Deno.KvKey;
  /** The id from {@linkcode clientId}. */
  id: string;
  /** Raw AES-256 key; values are plaintext without it. */
  key?: Uint8Array;
  now: () => number;
  emit: (event: TokenEvent) => void;
}

/** One client's view of KV. */
export class KvStore {
  readonly #kv: Deno.Kv;
  readonly #tokenKey: Deno.KvKey;
  readonly #leaseKey: Deno.KvKey;
  readonly #backoffKey: Deno.KvKey;
  readonly #now: () => number;
  readonly #emit: (event: TokenEvent) => void;
  readonly #cipher?: Promise<Cipher>;
  #downUntil = 0;

  constructor(kv: Deno.Kv, options: StoreOptions) {
    this.#kv = kv;
    this.#tokenKey = tokenKey(options.prefix, options.id);
    this.#leaseKey = leaseKey(options.prefix, options.id);
    this.#backoffKey = backoffKey(options.prefix, options.id);
    this.#now = options.now;
    this.#emit = options.emit;
    if (options.key) this.#cipher = Cipher.create(options.key, options.id);
  }

  /** The stored token and the lease. Garbage, stale or undecryptable values read as absent. */
  async snapshot(): Promise<Snapshot> {
    const entries = await this.#op(
      "read",
      () => this.#kv.getMany([this.#tokenKey, this.#leaseKey]),
    );
    if (entries === undefined) return {};
    const [token, lease] = entries;
    const now = this.#now();
    const snapshot: Snapshot = {};
    const stored = await this.#decode(token.value);
    if (stored !== undefined && now < stored.usableUntil) snapshot.token = stored;
    const until = readLease(lease.value)?.until;
    if (until !== undefined && until > now) snapshot.leaseUntil = until;
    return snapshot;
  }

  /** Stores a token until it stops being usable. */
  async write(token: StoredToken): Promise<void> {
    const expireIn = Math.max(1, Math.floor(token.usableUntil - this.#now()));
    const value = await this.#encode(token);
    observe("kv", { encrypted: this.#cipher !== undefined, key: this.#tokenKey, value });
    const ok = await this.#op("write", () => this.#kv.set(this.#tokenKey, value, { expireIn }));
    if (ok !== undefined) this.#emit({ type: "kv_write", at: this.#now() });
  }

  /** Deletes the stored token; with `tokenId`, only if it is still that token. */
  async remove(tokenId?: string): Promise<void> {
    await this.#op("delete", async () => {
      if (tokenId === undefined) return await this.#kv.delete(this.#tokenKey);
      const entry = await this.#kv.get(this.#tokenKey);
      const stored = await this.#decode(entry.value);
      if (stored?.tokenId !== tokenId) return;
      await this.#kv.atomic().check(entry).delete(this.#tokenKey).commit();
    });
  }

  /**
   * Takes the lease for `ttlMs` unless another isolate holds a live one.
   * `"held"` means wait for the holder; `undefined` means KV failed.
   */
  async takeLease(ttlMs: number): Promise<Lease | "held" | undefined> {
    return await this.#op("lease", async () => {
      const entry = await this.#kv.get(this.#leaseKey);
      const current = readLease(entry.value);
      const now = this.#now();
      if (current !== undefined && current.until > now) return "held" as const;
      const lease = { holder: crypto.randomUUID(), until: now + ttlMs };
      // Exactly one isolate wins this check-and-set; KV expiry is eventual, hence `until`.
      const result = await this.#kv.atomic()
        .check(entry)
        .set(this.#leaseKey, lease, { expireIn: Math.ceil(ttlMs) })
        .commit();
      return result.ok ? { ...lease, versionstamp: result.versionstamp } : "held" as const;
    });
  }

  /** Extends a lease this isolate holds; `undefined` if it was lost. */
  async renewLease(lease: Lease, ttlMs: number): Promise<Lease | undefined> {
    return await this.#op("lease", async () => {
      const until = this.#now() + ttlMs;
      const result = await this.#kv.atomic()
        .check({ key: this.#leaseKey, versionstamp: lease.versionstamp })
        .set(this.#leaseKey, { holder: lease.holder, until }, { expireIn: Math.ceil(ttlMs) })
        .commit();
      return result.ok
        ? { holder: lease.holder, until, versionstamp: result.versionstamp }
        : undefined;
    });
  }

  /** Releases a lease if this isolate still holds it. */
  async releaseLease(lease: Lease): Promise<void> {
    await this.#op("lease", () =>
      this.#kv.atomic()
        .check({ key: this.#leaseKey, versionstamp: lease.versionstamp })
        .delete(this.#leaseKey)
        .commit());
  }

  /** Until when every isolate must hold its token requests back (epoch ms, 0 for none). */
  async backoffUntil(): Promise<number> {
    const entry = await this.#op("read", () => this.#kv.get(this.#backoffKey));
    const until = (entry?.value as { until?: unknown } | null)?.until;
    return typeof until === "number" && Number.isFinite(until) ? until : 0;
  }

  /** Tells every isolate to hold token requests back until `until`. */
  async setBackoff(until: number): Promise<void> {
    const expireIn = Math.ceil(until - this.#now());
    if (expireIn <= 0) return;
    await this.#op("write", () => this.#kv.set(this.#backoffKey, { until }, { expireIn }));
  }

  /**
   * Runs one KV operation: bounded in time, retried while SQLite says
   * "database is locked" (other processes committing), and on any other
   * failure reported as `kv_error` and answered with `undefined`.
   */
  async #op<T>(operation: string, run: () => Promise<T>): Promise<T | undefined> {
    if (Date.now() < this.#downUntil) return undefined;
    const started = Date.now();
    for (let attempt = 1;; attempt++) {
      try {
        return await withTimeout(run(), KV_TIMEOUT_MS);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (/database is locked/i.test(message) && Date.now() - started < LOCKED_RETRY_MS) {
          await sleep(Math.random() * Math.min(100, 5 * 2 ** attempt));
          continue;
        }
        this.#downUntil = Date.now() + KV_COOLDOWN_MS;
        this.#emit({ type: "kv_error", at: this.#now(), operation, message });
        return undefined;
      }
    }
  }

  async #encode(token: StoredToken): Promise<unknown> {
    // Named fields only: callers may pass a richer object (the client's cache entry).
    const secret: IssuedToken = {
      accessToken: token.accessToken,
      tokenType: token.tokenType,
      scope: token.scope,
      lifetimeSeconds: token.lifetimeSeconds,
      expiresAt: token.expiresAt,
      refreshAt: token.refreshAt,
      usableUntil: token.usableUntil,
    };
    const { tokenId } = token;
    if (this.#cipher === undefined) return { v: FORMAT, tokenId, ...secret };
    const cipher = await this.#cipher;
    return { v: FORMAT, tokenId, ...await cipher.seal(JSON.stringify(secret)) };
  }

  async #decode(value: unknown): Promise<StoredToken | undefined> {
    if (typeof value !== "object" || value === null) return undefined;
    const v = value as Record<string, unknown>;
    if (v.v !== FORMAT || typeof v.tokenId !== "string") return undefined;
    let fields: unknown = v;
    if (this.#cipher !== undefined) {
      const plain = await (await this.#cipher).open(v);
      if (plain === undefined) return undefined;
      try {
        fields = JSON.parse(plain);
      } catch {
        return undefined;
      }
    } else if ("ct" in v) {
      return undefined; // Encrypted by a client with a key; this one has none.
    }
    return readToken(fields, v.tokenId);
  }
}

function readToken(value: unknown, tokenId: string): StoredToken | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const t = value as Record<string, unknown>;
  const finite = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);
  if (
    typeof t.accessToken !== "string" || t.accessToken === "" ||
    typeof t.tokenType !== "string" ||
    (t.scope !== undefined && typeof t.scope !== "string") ||
    !finite(t.lifetimeSeconds) || t.lifetimeSeconds <= 0 ||
    !finite(t.expiresAt) || !finite(t.refreshAt) || !finite(t.usableUntil) ||
    !(t.refreshAt <= t.usableUntil && t.usableUntil <= t.expiresAt)
  ) {
    return undefined;
  }
  const token: StoredToken = {
    accessToken: t.accessToken,
    tokenType: t.tokenType,
    lifetimeSeconds: t.lifetimeSeconds,
    expiresAt: t.expiresAt,
    refreshAt: t.refreshAt,
    usableUntil: t.usableUntil,
    tokenId,
  };
  if (typeof t.scope === "string") token.scope = t.scope;
  return token;
}

function readLease(value: unknown): { holder: string; until: number } | undefined {
  const lease = value as { holder?: unknown; until?: unknown } | null;
  return typeof lease?.holder === "string" && typeof lease.until === "number" &&
      Number.isFinite(lease.until)
    ? { holder: lease.holder, until: lease.until }
    : undefined;
}

/**
 * AES-256-GCM with a random 96-bit IV per value. The key id (from the key
 * itself) and the client's KV id are bound as additional data, so a value
 * cannot be moved to another client's key or read with another key.
 */
class Cipher {
  private constructor(
    readonly kid: string,
    readonly key: CryptoKey,
    readonly aad: Uint8Array<ArrayBuffer>,
  ) {}

  static async create(raw: Uint8Array, id: string): Promise<Cipher> {
    const bytes = new Uint8Array(raw);
    const kid = hex(await crypto.subtle.digest("SHA-256", bytes)).slice(0, 16);
    const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    return new Cipher(kid, key, new TextEncoder().encode(`freshtoken/v${FORMAT}/${kid}/${id}`));
  }

  async seal(plain: string): Promise<{ kid: string; iv: string; ct: string }> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: this.aad },
      this.key,
      new TextEncoder().encode(plain),
    );
    return { kid: this.kid, iv: base64(iv), ct: base64(new Uint8Array(ct)) };
  }

  async open(value: Record<string, unknown>): Promise<string | undefined> {
    if (value.kid !== this.kid || typeof value.iv !== "string" || typeof value.ct !== "string") {
      return undefined;
    }
    try {
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: unbase64(value.iv), additionalData: this.aad },
        this.key,
        unbase64(value.ct),
      );
      return new TextDecoder().decode(plain);
    } catch {
      return undefined;
    }
  }
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
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
