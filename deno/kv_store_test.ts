import assert from "node:assert/strict";
import {
  backoffKey,
  clientId,
  decodeKey,
  KvStore,
  leaseKey,
  type StoredToken,
  tokenKey,
} from "./kv_store.ts";
import type { TokenEvent } from "./types.ts";

const identity = {
  tokenUrl: "https://login.example.com/oauth/token",
  clientId: "app",
  resource: [],
};
const RAW_KEY = crypto.getRandomValues(new Uint8Array(32));

function token(now: number, extra: Partial<StoredToken> = {}): StoredToken {
  return {
    accessToken: "canary-token-0f-kv-unit",
    tokenType: "Bearer",
    lifetimeSeconds: 3600,
    expiresAt: now + 3_600_000,
    refreshAt: now + 3_240_000,
    usableUntil: now + 3_570_000,
    tokenId: crypto.randomUUID(),
    ...extra,
  };
}

async function withStore(
  fn: (store: KvStore, kv: Deno.Kv, events: TokenEvent[]) => Promise<void>,
  key?: Uint8Array,
): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  const events: TokenEvent[] = [];
  const id = await clientId(identity);
  const store = new KvStore(kv, {
    prefix: ["freshtoken"],
    id,
    key,
    now: Date.now,
    emit: (e) => events.push(e),
  });
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

Deno.test("keys are built under the prefix from a SHA-256 id that ignores the secret", async () => {
  const id = await clientId(identity);
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(await clientId({ ...identity }), id);
  assert.notEqual(await clientId({ ...identity, scope: "read" }), id);
  assert.notEqual(await clientId({ ...identity, resource: ["https://api"] }), id);
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

Deno.test("a stored token reads back until it stops being usable", async () => {
  await withStore(async (store, _kv, events) => {
    const now = Date.now();
    const t = token(now);
    await store.write(t);
    assert.deepEqual((await store.snapshot()).token, t);
    assert.ok(events.some((e) => e.type === "kv_write"));
    await store.write(token(now, { usableUntil: now - 1, refreshAt: now - 2 }));
    assert.equal((await store.snapshot()).token, undefined, "an unusable token counts as absent");
  });
});

Deno.test("remove(tokenId) deletes only that token", async () => {
  await withStore(async (store) => {
    const t = token(Date.now());
    await store.write(t);
    await store.remove("some-other-token");
    assert.equal((await store.snapshot()).token?.tokenId, t.tokenId);
    await store.remove(t.tokenId);
    assert.equal((await store.snapshot()).token, undefined);
  });
});

Deno.test("encrypted values round-trip, and tampering or another key reads as absent", async () => {
  await withStore(async (store, kv) => {
    const t = token(Date.now());
    await store.write(t);
    assert.deepEqual((await store.snapshot()).token, t);
    const key = tokenKey(["freshtoken"], await clientId(identity));
    const raw = (await kv.get<Record<string, string>>(key)).value!;
    assert.ok(!JSON.stringify(raw).includes(t.accessToken));
    assert.deepEqual(Object.keys(raw).sort(), ["ct", "iv", "kid", "tokenId", "v"]);
    // Flip one bit of the ciphertext: the GCM tag no longer matches.
    const ct = Uint8Array.from(atob(raw.ct), (c) => c.charCodeAt(0));
    ct[0] ^= 1;
    await kv.set(key, { ...raw, ct: btoa(String.fromCharCode(...ct)) });
    assert.equal((await store.snapshot()).token, undefined);
    // The same ciphertext under another client's id fails too (bound as additional data).
    await store.write(t);
    const other = await clientId({ ...identity, clientId: "other" });
    await kv.set(tokenKey(["freshtoken"], other), (await kv.get(key)).value);
    const otherStore = new KvStore(kv, {
      prefix: ["freshtoken"],
      id: other,
      key: RAW_KEY,
      now: Date.now,
      emit: () => {},
    });
    assert.equal((await otherStore.snapshot()).token, undefined);
  }, RAW_KEY);
});

Deno.test("exactly one of many concurrent takers wins the lease; it can renew and release it", async () => {
  await withStore(async (store) => {
    const results = await Promise.all(Array.from({ length: 20 }, () => store.takeLease(5_000)));
    const won = results.filter((r) => typeof r === "object");
    assert.equal(won.length, 1);
    assert.ok(results.every((r) => r !== undefined));
    const lease = won[0] as Exclude<(typeof results)[number], "held" | undefined>;
    assert.ok((await store.snapshot()).leaseUntil! >= lease.until - 1);
    const renewed = await store.renewLease(lease, 10_000);
    assert.ok(renewed && renewed.until > lease.until);
    assert.equal(
      await store.renewLease(lease, 10_000),
      undefined,
      "a stale lease cannot be renewed",
    );
    await store.releaseLease(renewed!);
    assert.equal((await store.snapshot()).leaseUntil, undefined);
    assert.equal(typeof await store.takeLease(5_000), "object");
  });
});

Deno.test("an expired lease is taken over even before KV deletes it", async () => {
  await withStore(async (store, kv) => {
    const key = leaseKey(["freshtoken"], await clientId(identity));
    await kv.set(key, { holder: "dead", until: Date.now() - 1 });
    assert.equal(typeof await store.takeLease(5_000), "object");
  });
});

Deno.test("a shared back-off is stored and read back", async () => {
  await withStore(async (store) => {
    assert.equal(await store.backoffUntil(), 0);
    const until = Date.now() + 5_000;
    await store.setBackoff(until);
    assert.equal(await store.backoffUntil(), until);
  });
});

Deno.test("a closed KV answers nothing and reports kv_error once per cool-down", async () => {
  await withStore(async (store, kv, events) => {
    kv.close();
    assert.deepEqual(await store.snapshot(), {});
    assert.equal(await store.takeLease(1_000), undefined);
    await store.write(token(Date.now()));
    const errors = events.filter((e) => e.type === "kv_error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].type === "kv_error" && errors[0].operation, "read");
  });
});
