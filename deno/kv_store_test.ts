import assert from "node:assert/strict";
import type { TokenRecord } from "../pkg/freshtoken.js";
import { decodeKey } from "./_cipher.ts";
import { hex } from "./_cipher.ts";
import {
  backoffKey,
  KvStore,
  leaseKey,
  openRemoteStore,
  type Snapshot,
  tokenKey,
} from "./kv_store.ts";
import type { TokenEvent } from "./types.ts";

const identity = {
  tokenUrl: "https://login.example.com/oauth/token",
  clientId: "app",
  resource: [],
};
const RAW_KEY = crypto.getRandomValues(new Uint8Array(32));

function token(now: number, extra: Partial<TokenRecord> = {}): TokenRecord {
  return {
    accessToken: "canary-token-0f-kv-unit",
    tokenType: "Bearer",
    lifetimeSeconds: 3600,
    expiresAt: now + 3_600_000,
    refreshAt: now + 3_240_000,
    usableUntil: now + 3_570_000,
    ...extra,
  };
}

/** The snapshot, which a working KV always gives. */
async function read(store: KvStore): Promise<Snapshot> {
  const snapshot = await store.snapshot();
  assert.ok(snapshot !== undefined, "KV failed");
  return snapshot;
}

function storeFor(kv: Deno.Kv, id: string, key?: Uint8Array, events: TokenEvent[] = []) {
  return new KvStore(kv, {
    prefix: ["freshtoken"],
    id,
    key,
    now: Date.now,
    emit: (e) => events.push(e),
  });
}

/** An id for `identity` (the client's own is made by deno/_identity.ts, tested there). */
async function clientId(of: Record<string, unknown>): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(of))));
}

async function withStore(
  fn: (store: KvStore, kv: Deno.Kv, events: TokenEvent[]) => Promise<void>,
  key?: Uint8Array,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const events: TokenEvent[] = [];
  const id = await clientId(identity);
  const store = storeFor(kv, id, key, events);
  try {
    await fn(store, kv, events);
  } finally {
    try {
      kv.close();
    } catch {
      // The test closed it already.
    }
  }
}

Deno.test("keys are built under the prefix from the client's id", () => {
  const id = "f".repeat(64);
  assert.deepEqual(tokenKey(["p", 1], id), ["p", 1, "token", id]);
  assert.deepEqual(leaseKey(["p"], id), ["p", "lease", id]);
  assert.deepEqual(backoffKey(["p"], id), ["p", "backoff", id]);
});

Deno.test("decodeKey() accepts base64 of exactly 32 bytes", () => {
  const good = btoa(String.fromCharCode(...RAW_KEY));
  assert.deepEqual(decodeKey(good), RAW_KEY);
  assert.match(decodeKey(btoa("short")) as string, /32 bytes/);
  assert.match(decodeKey("%%%") as string, /base64/);
  assert.match(decodeKey(42) as string, /string/);
});

Deno.test("a stored token reads back as written, for the core to check", async () => {
  await withStore(async (store, _kv, events) => {
    const t = token(Date.now());
    await store.write(t);
    const { token: stored, tokenVersion } = await read(store);
    assert.deepEqual(stored, { v: 2, ...t });
    assert.ok(tokenVersion !== null);
    assert.ok(events.some((e) => e.type === "kv_write"));
  });
});

Deno.test("remove(accessToken) deletes only that token", async () => {
  await withStore(async (store) => {
    const t = token(Date.now());
    await store.write(t);
    await store.remove("canary-token-some-other");
    assert.ok((await read(store)).token !== undefined);
    await store.remove(t.accessToken);
    assert.equal((await read(store)).token, undefined);
  });
});

Deno.test("encrypted values round-trip, and tampering or another key reads as absent", async () => {
  await withStore(async (store, kv) => {
    const t = token(Date.now());
    await store.write(t);
    assert.deepEqual((await read(store)).token, t);
    const key = tokenKey(["freshtoken"], await clientId(identity));
    const raw = (await kv.get<Record<string, string>>(key)).value!;
    assert.ok(!JSON.stringify(raw).includes(t.accessToken));
    assert.deepEqual(Object.keys(raw).sort(), ["ct", "iv", "kid", "v"]);
    // Flip one bit of the ciphertext: the GCM tag no longer matches.
    const ct = Uint8Array.from(atob(raw.ct), (c) => c.charCodeAt(0));
    ct[0] ^= 1;
    await kv.set(key, { ...raw, ct: btoa(String.fromCharCode(...ct)) });
    assert.equal((await read(store)).token, undefined);
    // The same ciphertext under another client's id fails too (bound as additional data).
    await store.write(t);
    const other = await clientId({ ...identity, clientId: "other" });
    await kv.set(tokenKey(["freshtoken"], other), (await kv.get(key)).value);
    assert.equal((await read(storeFor(kv, other, RAW_KEY))).token, undefined);
  }, RAW_KEY);
});

Deno.test("exactly one of many concurrent takers wins the lease; it can renew and release it", async () => {
  await withStore(async (store) => {
    const seen = await read(store);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.takeLease(5_000, seen)),
    );
    const won = results.filter((r) => typeof r === "object");
    assert.equal(won.length, 1);
    assert.ok(results.every((r) => r !== undefined));
    const lease = won[0] as Exclude<(typeof results)[number], "held" | undefined>;
    assert.ok((await read(store)).leaseUntil! >= lease.until - 1);
    const renewed = await store.renewLease(lease, 10_000);
    assert.ok(renewed && renewed.until > lease.until);
    assert.equal(
      await store.renewLease(lease, 10_000),
      undefined,
      "a stale lease cannot be renewed",
    );
    await store.releaseLease(renewed!);
    assert.equal((await read(store)).leaseUntil, undefined);
    assert.equal(typeof await store.takeLease(5_000, await read(store)), "object");
  });
});

Deno.test("the lease is not taken when the token entry changed since it was read", async () => {
  await withStore(async (store) => {
    const seen = await read(store);
    await store.write(token(Date.now()));
    assert.equal(await store.takeLease(5_000, seen), "held");
    assert.equal(typeof await store.takeLease(5_000, await read(store)), "object");
  });
});

Deno.test("the lease is not taken past a back-off set since the entries were read", async () => {
  await withStore(async (store) => {
    const seen = await read(store);
    // Another isolate took the lease, failed, set a back-off and released the lease.
    await store.setBackoff(Date.now() + 5_000);
    assert.equal(await store.takeLease(5_000, seen), "held");
  });
});

Deno.test("a lease or back-off is handed over as KV holds it, for the core to judge", async () => {
  await withStore(async (store, kv) => {
    const id = await clientId(identity);
    const now = Date.now();
    // Past, or a year ahead: the core's driver judges them (src/driver/lease.rs, `Seen::judged`).
    for (const until of [now - 60_001, now + 365 * 86_400_000]) {
      await kv.set(leaseKey(["freshtoken"], id), { holder: "x", until, takenAt: now });
      const seen = await read(store);
      assert.deepEqual([seen.leaseUntil, seen.leaseHolder, seen.leaseTakenAt], [until, "x", now]);
      await kv.set(backoffKey(["freshtoken"], id), { until });
      assert.equal((await read(store)).backoffUntil, until);
    }
    // A lease whose `until` is not a finite number is no lease; a back-off likewise.
    await kv.set(leaseKey(["freshtoken"], id), { holder: "x", until: "soon" });
    await kv.set(backoffKey(["freshtoken"], id), { until: null });
    const seen = await read(store);
    assert.deepEqual([seen.leaseUntil, seen.backoffUntil], [undefined, 0]);
    // A lease that is over is taken over even before KV deletes it.
    await kv.set(leaseKey(["freshtoken"], id), { holder: "dead", until: now - 60_001 });
    assert.equal(typeof await store.takeLease(5_000, await read(store)), "object");
  });
});

Deno.test("a shared back-off is stored and read back", async () => {
  await withStore(async (store) => {
    assert.equal((await read(store)).backoffUntil, 0);
    const until = Date.now() + 5_000;
    await store.setBackoff(until);
    assert.equal((await read(store)).backoffUntil, until);
  });
});

Deno.test("a closed KV answers nothing and reports kv_error once per cool-down", async () => {
  await withStore(async (store, kv, events) => {
    kv.close();
    assert.equal(await store.snapshot(), undefined);
    assert.equal(
      await store.takeLease(1_000, {
        tokenVersion: null,
        leaseVersion: null,
        backoffUntil: 0,
        backoffVersion: null,
      }),
      undefined,
    );
    await store.write(token(Date.now()));
    const errors = events.filter((e) => e.type === "kv_error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].type === "kv_error" && errors[0].operation, "read");
  });
});

Deno.test("a KV whose getMany answers short or with nulls counts as failed", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const answer of [[], [null, null, null], [{ value: 1, versionstamp: null }]]) {
      const liar = new Proxy(kv, {
        get: (target, name) =>
          name === "getMany" ? () => Promise.resolve(answer) : Reflect.get(target, name),
      });
      const events: TokenEvent[] = [];
      const store = storeFor(liar, await clientId(identity), undefined, events);
      assert.equal(await store.snapshot(), undefined, JSON.stringify(answer));
      assert.ok(events.some((e) => e.type === "kv_error"));
    }
  } finally {
    kv.close();
  }
});

Deno.test("values a look-alike KV cannot let be read count as a KV failure, read inside the guard", async () => {
  const kv = await Deno.openKv(":memory:");
  const throwing = () => {
    throw new Error("look-alike");
  };
  const huge = token(Date.now(), { accessToken: "t".repeat((1 << 20) + 1) });
  try {
    for (
      const entry of [
        Object.defineProperty({ versionstamp: null }, "value", { get: throwing }),
        new Proxy({}, { get: throwing, has: throwing }),
        { value: new Proxy({}, { ownKeys: throwing }), versionstamp: null },
        { value: { v: 2 }, versionstamp: 42 },
        { value: { v: 2, ...huge }, versionstamp: "00000000000000010000" },
      ]
    ) {
      const events: TokenEvent[] = [];
      const liar = new Proxy(kv, {
        get: (target, name) =>
          name === "getMany"
            ? () => Promise.resolve([entry, { value: null, versionstamp: null }, entry])
            : Reflect.get(target, name),
      });
      const store = storeFor(liar, await clientId(identity), undefined, events);
      assert.equal(await store.snapshot(), undefined);
      assert.ok(events.some((e) => e.type === "kv_error"));
    }
  } finally {
    kv.close();
  }
});

Deno.test("a stored value is read as a flat copy: nested or array fields are left out, not followed", async () => {
  await withStore(async (store, kv) => {
    const nested: unknown = [[[[["deep"]]]]];
    const stored = { v: 2, ...token(Date.now()), scope: { not: "a string" }, extra: nested };
    await kv.set(tokenKey(["freshtoken"], store.id), stored);
    const seen = (await read(store)).token as Record<string, unknown>;
    assert.equal(seen.accessToken, "canary-token-0f-kv-unit");
    assert.ok(!("scope" in seen) && !("extra" in seen));
    await kv.set(tokenKey(["freshtoken"], store.id), [stored]);
    assert.equal((await read(store)).token, undefined);
  });
});

/** A store on a KV whose `getMany` throws `message` (counting calls), on the clock `now`. */
async function failingStore(message: string, now: () => number, events: TokenEvent[]) {
  const kv = await Deno.openKv(":memory:");
  const calls = { getMany: 0 };
  const failing = new Proxy(kv, {
    get: (target, name) =>
      name === "getMany"
        ? () => {
          calls.getMany++;
          return Promise.reject(new Error(message));
        }
        : Reflect.get(target, name),
  });
  const store = new KvStore(failing, {
    prefix: ["freshtoken"],
    id: await clientId(identity),
    now,
    emit: (e) => events.push(e),
  });
  return { store, calls, kv };
}

Deno.test("the cool-down after a KV failure is timed by the client's clock", async () => {
  let t = 1_700_000_000_000;
  const events: TokenEvent[] = [];
  const { store, calls, kv } = await failingStore("boom", () => t, events);
  try {
    assert.equal(await store.snapshot(), undefined);
    assert.equal(calls.getMany, 1);
    t += 4_999;
    assert.equal(await store.snapshot(), undefined);
    assert.equal(calls.getMany, 1, "skipped while cooling down");
    t += 1;
    assert.equal(await store.snapshot(), undefined);
    assert.equal(calls.getMany, 2, "tried again 5 s later by the client's clock");
    assert.equal(events.filter((e) => e.type === "kv_error").length, 2);
  } finally {
    kv.close();
  }
});

Deno.test("a KV locked for 3 s of the client's clock is given up on", async () => {
  let t = 1_700_000_000_000;
  const events: TokenEvent[] = [];
  // Each read of the clock is 400 ms later: 3 s pass within a few tries.
  const { store, calls, kv } = await failingStore("database is locked", () => t += 400, events);
  try {
    const started = performance.now();
    assert.equal(await store.snapshot(), undefined);
    assert.ok(performance.now() - started < 1_000, "not 3 s of real time");
    assert.ok(calls.getMany > 1 && calls.getMany < 10, `${calls.getMany} tries`);
    const errors = events.filter((e) => e.type === "kv_error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].type === "kv_error" && errors[0].message, "database is locked");
  } finally {
    kv.close();
  }
});

Deno.test("openRemoteStore() answers a store it cannot open with a kv_error and no store; a malformed URL throws", async () => {
  const saved = Deno.env.get("DENO_KV_ACCESS_TOKEN");
  Deno.env.delete("DENO_KV_ACCESS_TOKEN");
  try {
    const events: TokenEvent[] = [];
    const store = await openRemoteStore("http://127.0.0.1:9", (e) => events.push(e), () => 42);
    assert.equal(store, undefined);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.ok(event.type === "kv_error" && event.operation === "open" && event.at === 42);
    assert.match(event.message, /DENO_KV_ACCESS_TOKEN/);
    await assert.rejects(openRemoteStore("https://", () => {}), /Invalid database url/);
  } finally {
    if (saved !== undefined) Deno.env.set("DENO_KV_ACCESS_TOKEN", saved);
  }
});
