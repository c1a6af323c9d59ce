// Reads of a replica that may lag (Deno KV's `consistency: "eventual"`):
// a stored token is read first from the nearest replica and served if it
// passes every check; anything else falls through to a strong read, and a
// token this client invalidated or got a 401 with is never taken again.
// The replica is a second real KV that answers the eventual reads.

import assert from "node:assert/strict";
import { createTokenClient, refreshIfDue, type TokenClient } from "../deno/mod.ts";
import { tokenKey } from "../deno/kv_store.ts";
import { kvIdOf, serve } from "./_loopback.ts";

const SECRET = "eventual-canary-secret-1";

/** A primary KV and a lagging replica behind one `Deno.Kv`-shaped object, recording each read's consistency. */
interface Split {
  kv: Deno.Kv;
  primary: Deno.Kv;
  replica: Deno.Kv;
  reads: string[];
}

async function withSplit(fn: (split: Split) => Promise<void>): Promise<void> {
  const primary = await Deno.openKv(":memory:");
  const replica = await Deno.openKv(":memory:");
  const reads: string[] = [];
  const kv = {
    getMany(keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) {
      const consistency = options?.consistency ?? "strong";
      reads.push(consistency);
      return (consistency === "eventual" ? replica : primary).getMany(keys, options);
    },
    get: (key: Deno.KvKey) => primary.get(key),
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      primary.set(key, value, options),
    delete: (key: Deno.KvKey) => primary.delete(key),
    atomic: () => primary.atomic(),
  } as unknown as Deno.Kv;
  try {
    await fn({ kv, primary, replica, reads });
  } finally {
    primary.close();
    replica.close();
  }
}

/** A token endpoint issuing `tok-1`, `tok-2`, … (an hour each), counting them. */
function tokenServer(): { handler: (r: Request) => Response; issued: () => number } {
  let issued = 0;
  return {
    handler: () =>
      Response.json({ access_token: `tok-${++issued}`, token_type: "Bearer", expires_in: 3600 }),
    issued: () => issued,
  };
}

function client(origin: string, kv: Deno.Kv): TokenClient {
  return createTokenClient({
    tokenUrl: `${origin}/token`,
    clientId: "eventual-app",
    clientSecret: SECRET,
    kv,
  });
}

/** Copies the primary's token entry to the replica: what the replica shows while it lags. */
async function replicate(
  { primary, replica }: Split,
  id: string,
): Promise<Record<string, unknown>> {
  const key = tokenKey(["freshtoken"], id);
  const entry = await primary.get<Record<string, unknown>>(key);
  assert.ok(entry.value, "the primary holds a token");
  await replica.set(key, entry.value);
  return entry.value;
}

/**
 * A client on the primary alone that fetched tok-1 and stored it, and the
 * replica showing it too: the client, its KV id and the stored entry.
 */
async function stored(split: Split, origin: string) {
  const writer = client(origin, split.primary);
  assert.equal((await writer.getToken()).accessToken, "tok-1");
  const id = await kvIdOf(writer);
  return { writer, id, entry: await replicate(split, id) };
}

Deno.test("a cold client serves a replica's usable token after one eventual read", async () => {
  const server = tokenServer();
  await serve(server.handler, (origin) =>
    withSplit(async (split) => {
      const { writer } = await stored(split, origin);
      await writer.refresh(); // the primary moves on; the replica still shows tok-1
      assert.equal(server.issued(), 2);

      const cold = client(origin, split.kv);
      const token = await cold.getToken();
      assert.equal(token.accessToken, "tok-1", "the replica's token, still usable, is served");
      assert.deepEqual(split.reads, ["eventual"]);
      assert.equal(server.issued(), 2, "no token request");
    }));
});

Deno.test("an unusable or missing replica token falls through to a strong read", async () => {
  const server = tokenServer();
  await serve(server.handler, (origin) =>
    withSplit(async (split) => {
      const { writer, id, entry } = await stored(split, origin);
      await writer.refresh(); // tok-2 in the primary
      // The replica's copy has expired by now.
      const past = Date.now() - 1_000;
      await split.replica.set(tokenKey(["freshtoken"], id), {
        ...entry,
        expiresAt: past,
        refreshAt: past - 60_000,
        usableUntil: past - 30_000,
      });
      const cold = client(origin, split.kv);
      assert.equal((await cold.getToken()).accessToken, "tok-2");
      assert.deepEqual(split.reads, ["eventual", "strong"]);
      assert.equal(server.issued(), 2, "the primary's token, no token request");

      // Nothing in the replica at all: the same.
      await split.replica.delete(tokenKey(["freshtoken"], id));
      split.reads.length = 0;
      const another = client(origin, split.kv);
      assert.equal((await another.getToken()).accessToken, "tok-2");
      assert.deepEqual(split.reads, ["eventual", "strong"]);

      // The cron job's "is it due?" check reads the replica first, and the
      // primary when the replica shows nothing that settles it.
      split.reads.length = 0;
      const job = client(origin, split.kv);
      assert.equal(await refreshIfDue(job), "fresh");
      assert.deepEqual(split.reads, ["eventual", "strong"]);
      await replicate(split, id);
      split.reads.length = 0;
      const nextJob = client(origin, split.kv);
      assert.equal(await refreshIfDue(nextJob), "fresh");
      assert.deepEqual(split.reads, ["eventual"], "a replica's token that is not due settles it");
      assert.equal(server.issued(), 2);
    }));
});

Deno.test("a token invalidated, or refused with a 401, is never taken again from any read", async () => {
  const server = tokenServer();
  await serve(server.handler, (origin) =>
    withSplit(async (split) => {
      const { id, entry: first } = await stored(split, origin);

      const c = client(origin, split.kv);
      assert.equal((await c.getToken()).accessToken, "tok-1");
      await c.invalidate();
      // The replica lags behind the deletion, and the primary shows tok-1 again
      // (another isolate's late write): neither may bring it back.
      await split.primary.set(tokenKey(["freshtoken"], id), first);
      split.reads.length = 0;
      const after = await c.getToken();
      assert.equal(after.accessToken, "tok-2", "a new token, not the invalidated one");
      assert.equal(split.reads[0], "strong", "the read after an invalidation is strong");
      assert.ok(!split.reads.includes("eventual"));
      assert.equal(server.issued(), 2);

      // A 401 with tok-2 through a client that holds it: the client gets tok-3.
      await replicate(split, id);
      const d = client(origin, split.kv);
      assert.equal((await d.getToken()).accessToken, "tok-2");
      let calls = 0;
      await serve((request) => {
        calls++;
        const ok = request.headers.get("authorization") === "Bearer tok-3";
        return new Response(ok ? "ok" : "no", { status: ok ? 200 : 401 });
      }, async (api) => {
        const response = await d.fetch(`${api}/resource`);
        assert.equal(response.status, 200);
        assert.equal(await response.text(), "ok");
      });
      assert.equal(calls, 2);
      assert.equal(server.issued(), 3);
      // tok-2 comes back in both copies, later-expiring than tok-3 (so only
      // the 401 keeps it out): a forced refresh must not take it.
      const held = (await split.primary.get<Record<string, unknown>>(tokenKey(["freshtoken"], id)))
        .value!;
      const refused = {
        ...held,
        accessToken: "tok-2",
        expiresAt: (held.expiresAt as number) + 60_000,
        refreshAt: (held.refreshAt as number) + 60_000,
        usableUntil: (held.usableUntil as number) + 60_000,
      };
      for (const kv of [split.primary, split.replica]) {
        await kv.set(tokenKey(["freshtoken"], id), refused);
      }
      const refreshed = await d.refresh();
      assert.notEqual(refreshed.accessToken, "tok-2", "the token refused with a 401 stays refused");
      assert.equal(refreshed.accessToken, "tok-4");

      // A client that holds nothing and invalidates reads strongly next: a
      // replica may still show the token just deleted.
      const fresh = client(origin, split.kv);
      await fresh.invalidate();
      split.reads.length = 0;
      await fresh.getToken();
      assert.equal(split.reads[0], "strong");
    }));
});
