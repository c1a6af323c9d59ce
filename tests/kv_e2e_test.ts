// Tokens shared through Deno KV (SPEC §5, §6), against the real token
// server (oidc-provider) and real KVs: `:memory:`, one SQLite file shared
// by several processes, and a self-hosted `denokv` server over KV Connect.

import assert from "node:assert/strict";
import { createTokenClient, refreshIfDue, type TokenError, type TokenEvent } from "../deno/mod.ts";
import { backoffKey } from "../deno/kv_store.ts";
import { kvIdOf, serve } from "./_loopback.ts";
import { type OidcServer, type SecretClient, startOidcServer } from "./_oidc.ts";
import { freePort, startDenoKv, startWorker, type WorkerResult } from "./_processes.ts";

const APP: SecretClient = { client_id: "kv-app", client_secret: "kv-canary-secret-1" };
const KEY_A = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const KEY_B = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

async function withOidc(fn: (server: OidcServer) => Promise<void>): Promise<void> {
  const server = await startOidcServer([APP]);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

async function withKv(fn: (kv: Deno.Kv) => Promise<void>, path = ":memory:"): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}

function options(server: OidcServer | { tokenUrl: string }, kv: Deno.Kv, extra = {}) {
  return {
    tokenUrl: server.tokenUrl,
    clientId: APP.client_id,
    clientSecret: APP.client_secret,
    kv,
    ...extra,
  };
}

/** Every key and value under freshtoken's prefix, as text. */
async function dumpKv(kv: Deno.Kv): Promise<string> {
  const parts: string[] = [];
  for await (const entry of kv.list({ prefix: ["freshtoken"] })) {
    parts.push(JSON.stringify(entry.key), JSON.stringify(entry.value));
  }
  return parts.join("\n");
}

Deno.test("a second client on the same KV gets the token without a request", async () => {
  await withOidc(async (server) => {
    await withKv(async (kv) => {
      const events: TokenEvent[] = [];
      const first = await createTokenClient(options(server, kv)).getToken();
      const before = await server.tokenRequests();
      const second = createTokenClient(
        options(server, kv, { onEvent: (e: TokenEvent) => events.push(e) }),
      );
      const token = await second.getToken();
      assert.equal(token.accessToken, first.accessToken);
      assert.equal(await server.tokenRequests(), before);
      assert.ok(events.some((e) => e.type === "cache_hit" && e.source === "kv"));
      assert.equal(second.status().fetches, 0);
    });
  });
});

async function eightProcesses(
  server: OidcServer,
  kvEnv: Record<string, string>,
): Promise<WorkerResult[]> {
  const before = await server.tokenRequests();
  const startAt = String(Date.now() + 2500);
  const workers = Array.from({ length: 8 }, () =>
    startWorker({
      ...kvEnv,
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: APP.client_id,
      CLIENT_SECRET: APP.client_secret,
      START_AT: startAt,
    }));
  const results = await Promise.all(workers.map((w) => w.result));
  const fingerprints = new Set(results.map((r) => r.fingerprint ?? `error: ${r.error}`));
  assert.equal(fingerprints.size, 1, JSON.stringify(results));
  assert.equal(await server.tokenRequests() - before, 1, "token requests");
  // Lock contention was retried, never degraded to memory-only.
  assert.ok(results.every((r) => !r.events.includes("kv_error")), JSON.stringify(results));
  return results;
}

Deno.test("8 processes started together on one SQLite KV file make exactly one token request", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withOidc(async (server) => {
      const results = await eightProcesses(server, { KV: `${dir}/shared.sqlite` });
      const waited = results.filter((r) => r.events.includes("lease_wait")).length;
      const fetched = results.filter((r) => r.events.includes("fetch_ok")).length;
      assert.equal(fetched, 1);
      assert.ok(waited + results.filter((r) => r.events.includes("cache_hit:kv")).length >= 7);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("8 processes started together on one denokv server make exactly one token request", async () => {
  const dir = await Deno.makeTempDir();
  const denokv = await startDenoKv(dir);
  try {
    await withOidc(async (server) => {
      await eightProcesses(server, { KV: denokv.url, DENO_KV_ACCESS_TOKEN: denokv.accessToken });
    });
  } finally {
    await denokv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A loopback token endpoint in front of the real server, scripted per request. */
function proxy(
  server: OidcServer,
  script: (n: number) => Response | Promise<Response> | undefined,
) {
  const arrivals: number[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    arrivals.push(Date.now());
    const body = await req.arrayBuffer();
    const scripted = await script(arrivals.length);
    if (scripted !== undefined) return scripted;
    return await fetch(server.tokenUrl, { method: "POST", headers: req.headers, body });
  });
  return {
    tokenUrl: `http://127.0.0.1:${http.addr.port}/token`,
    arrivals,
    /** Never answers until the test ends. */
    hang: () => released.then(() => new Response("gone", { status: 503 })),
    async close() {
      release();
      await http.shutdown();
    },
  };
}

Deno.test("16 processes on one SQLite file, 6 s tokens for 15 s: never two token requests in one refresh window", async () => {
  const dir = await Deno.makeTempDir();
  const SHORT = { client_id: "kv-short", client_secret: "kv-canary-secret-2", ttl: 6 };
  const server = await startOidcServer([APP, SHORT]);
  const front = proxy(server, () => undefined);
  try {
    const startAt = Date.now() + 4_000;
    const workers = Array.from({ length: 16 }, () =>
      startWorker({
        KV: `${dir}/race.sqlite`,
        TOKEN_URL: front.tokenUrl,
        CLIENT_ID: SHORT.client_id,
        CLIENT_SECRET: SHORT.client_secret,
        START_AT: String(startAt),
        LOOP_UNTIL: String(startAt + 15_000),
      }));
    const results = await Promise.all(workers.map((w) => w.result));
    assert.ok(results.every((r) => r.fingerprint !== undefined), JSON.stringify(results));
    const gaps = front.arrivals.slice(1).map((at, i) => at - front.arrivals[i]);
    console.log(`${front.arrivals.length} token requests, gaps ${gaps.join(", ")} ms`);
    // A refresh window of a 6 s token is about 3 s: two requests for one window come ms apart.
    assert.ok(front.arrivals.length >= 4, `${front.arrivals.length} token requests in 15 s`);
    assert.ok(gaps.every((gap) => gap >= 1_000), `token requests ${gaps.join(", ")} ms apart`);
  } finally {
    await front.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lease holder killed while its request hangs is taken over after the lease deadline", async () => {
  const dir = await Deno.makeTempDir();
  await withOidc(async (server) => {
    let firstArrived!: () => void;
    const arrived = new Promise<void>((r) => firstArrived = r);
    const front = proxy(server, (n) => {
      if (n !== 1) return undefined;
      firstArrived();
      return front.hang();
    });
    const env = {
      KV: `${dir}/takeover.sqlite`,
      TOKEN_URL: front.tokenUrl,
      CLIENT_ID: APP.client_id,
      CLIENT_SECRET: APP.client_secret,
      TIMEOUT_MS: "2000",
    };
    try {
      const holder = startWorker({ ...env, START_AT: "0" });
      await arrived;
      const leaseTakenBy = Date.now();
      const others = Array.from({ length: 3 }, () => startWorker({ ...env, START_AT: "0" }));
      await Promise.all(others.map((w) => w.ready));
      holder.child.kill("SIGKILL");
      const results = await Promise.all(others.map((w) => w.result));
      const done = Date.now();
      assert.equal(new Set(results.map((r) => r.fingerprint)).size, 1, JSON.stringify(results));
      assert.ok(results[0].fingerprint !== undefined, JSON.stringify(results));
      assert.equal(front.arrivals.length, 2);
      // Lease = timeoutMs + 1 s = 3 s from when the holder took it; then one timeoutMs at most.
      const bound = 3_000 + 2_000 + 1_500; // + process start-up slack
      assert.ok(done - leaseTakenBy < bound, `took ${done - leaseTakenBy} ms`);
      assert.ok(front.arrivals[1] - front.arrivals[0] >= 2_500, "took over before the lease ended");
      assert.ok(results.some((r) => r.events.includes("lease_wait")));
      await holder.result;
    } finally {
      await front.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("after a 429 with Retry-After: 5 seen by one process, no process asks for 5 s", async () => {
  const dir = await Deno.makeTempDir();
  await withOidc(async (server) => {
    const front = proxy(
      server,
      (n) =>
        n === 1
          ? Response.json({ error: "rate_limited" }, {
            status: 429,
            headers: { "Retry-After": "5" },
          })
          : undefined,
    );
    try {
      const startAt = String(Date.now() + 2500);
      const workers = Array.from({ length: 8 }, () =>
        startWorker({
          KV: `${dir}/backoff.sqlite`,
          TOKEN_URL: front.tokenUrl,
          CLIENT_ID: APP.client_id,
          CLIENT_SECRET: APP.client_secret,
          START_AT: startAt,
          // Waiting 5 s is past this deadline, so the process that saw the 429
          // fails fast and leaves the back-off in KV for the others.
          DEADLINE_MS: "3000",
        }));
      const results = await Promise.all(workers.map((w) => w.result));
      assert.equal(front.arrivals.length, 2, JSON.stringify(results));
      const gap = front.arrivals[1] - front.arrivals[0];
      assert.ok(gap >= 5_000, `second request only ${gap} ms after the 429`);
      const failed = results.filter((r) => r.error !== undefined);
      assert.deepEqual(failed.map((r) => r.error), ["rate_limited"]);
      const served = results.filter((r) => r.fingerprint !== undefined);
      assert.equal(served.length, 7);
      assert.equal(new Set(served.map((r) => r.fingerprint)).size, 1);
    } finally {
      await front.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("with encryptionKey, KV holds neither token nor secret; another key refetches", async () => {
  await withOidc(async (server) => {
    await withKv(async (kv) => {
      const token = await createTokenClient(options(server, kv, { encryptionKey: KEY_A }))
        .getToken();
      const stored = await dumpKv(kv);
      assert.ok(stored.length > 0);
      assert.ok(!stored.includes(token.accessToken), "token stored in plaintext");
      assert.ok(!stored.includes(APP.client_secret), "secret stored");

      const before = await server.tokenRequests();
      const sameKey = await createTokenClient(options(server, kv, { encryptionKey: KEY_A }))
        .getToken();
      assert.equal(sameKey.accessToken, token.accessToken);
      assert.equal(await server.tokenRequests(), before);

      const otherKey = await createTokenClient(options(server, kv, { encryptionKey: KEY_B }))
        .getToken();
      assert.notEqual(otherKey.accessToken, token.accessToken);
      assert.equal(await server.tokenRequests(), before + 1);
      // And a client without a key does not take the ciphertext for a token.
      const noKey = await createTokenClient(options(server, kv)).getToken();
      assert.notEqual(noKey.accessToken, otherKey.accessToken);
    });
  });
});

Deno.test("garbage under our keys and a closed KV never fail getToken", async () => {
  await withOidc(async (server) => {
    await withKv(async (kv) => {
      await createTokenClient(options(server, kv)).getToken();
      const garbage: unknown[] = [
        "not a token",
        42,
        null,
        [1, 2],
        { v: 1 },
        { v: 1, tokenId: "x", accessToken: 5, tokenType: "Bearer" },
        {
          v: 1,
          tokenId: "x",
          accessToken: "a",
          tokenType: "Bearer",
          expiresAt: 1,
          refreshAt: 9,
          usableUntil: 5,
        },
        { v: 99, tokenId: "x" },
        { v: 1, tokenId: "x", kid: "k", iv: "!!", ct: "??" },
        new Uint8Array([1, 2, 3]),
      ];
      const keys: Deno.KvKey[] = [];
      for await (const entry of kv.list({ prefix: ["freshtoken"] })) keys.push(entry.key);
      assert.ok(keys.length >= 1);
      for (const value of garbage) {
        for (const key of keys) await kv.set(key, value);
        // Garbage leases and back-offs too.
        await kv.set([...keys[0].slice(0, -2), "lease", keys[0].at(-1)!], value);
        await kv.set([...keys[0].slice(0, -2), "backoff", keys[0].at(-1)!], value);
        for (const encryptionKey of [undefined, KEY_A]) {
          const token = await createTokenClient(options(server, kv, { encryptionKey })).getToken();
          assert.ok(token.accessToken.length > 0, JSON.stringify(value));
        }
      }
    });

    const closed = await Deno.openKv(":memory:");
    closed.close();
    const events: TokenEvent[] = [];
    const client = createTokenClient(
      options(server, closed, { onEvent: (e: TokenEvent) => events.push(e) }),
    );
    assert.ok((await client.getToken()).accessToken.length > 0);
    await client.invalidate();
    assert.ok((await client.getToken()).accessToken.length > 0);
    const kvErrors = events.filter((e) => e.type === "kv_error");
    assert.ok(kvErrors.length >= 1);
    assert.ok(!JSON.stringify(events).includes(APP.client_secret));
  });
});

Deno.test("a KV that never answers costs a bounded wait, then memory-only", async () => {
  await withOidc(async (server) => {
    const never = () => new Promise<never>(() => {});
    const stuck = {
      get: never,
      getMany: never,
      set: never,
      delete: never,
      atomic: () => ({
        check: () => stuck.atomic(),
        set: () => stuck.atomic(),
        delete: () => stuck.atomic(),
        commit: never,
      }),
    } as unknown as Deno.Kv;
    const events: TokenEvent[] = [];
    const client = createTokenClient(
      options(server, stuck, { onEvent: (e: TokenEvent) => events.push(e) }),
    );
    const started = Date.now();
    const token = await client.getToken();
    assert.ok(token.accessToken.length > 0);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.ok(events.some((e) => e.type === "kv_error"));
  });
});

Deno.test("refreshIfDue() says fresh, then refreshes inside the window for every isolate", async () => {
  await withOidc(async (server) => {
    await withKv(async (kv) => {
      const clock = { now: Date.now() };
      const now = () => clock.now;
      const cron = createTokenClient(options(server, kv, { now }));
      assert.equal(await refreshIfDue(cron), "refreshed"); // nothing stored yet
      const first = await cron.getToken();
      assert.equal(await refreshIfDue(cron), "fresh");

      clock.now = cron.status().refreshAt! + 1;
      const before = await server.tokenRequests();
      assert.equal(await refreshIfDue(cron), "refreshed");
      assert.equal(await server.tokenRequests(), before + 1);

      // Another isolate, inside the old token's window, reads the refreshed token from KV.
      const handler = createTokenClient(options(server, kv, { now }));
      const token = await handler.getToken();
      assert.notEqual(token.accessToken, first.accessToken);
      assert.equal(token.accessToken, (await cron.getToken()).accessToken);
      assert.equal(await server.tokenRequests(), before + 1);
      assert.equal(await refreshIfDue(handler), "fresh");

      const broken = createTokenClient(
        options({ tokenUrl: `http://127.0.0.1:${freePort()}/token` }, kv, {
          now,
          retry: { maxAttempts: 1 },
        }),
      );
      assert.equal(await refreshIfDue(broken), "failed");
    });
  });
});

Deno.test("deno/cron.ts registers its job, which refreshes the token into KV", async () => {
  const dir = await Deno.makeTempDir();
  await withOidc(async (server) => {
    const kvPath = `${dir}/cron.sqlite`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-cron",
        "--unstable-kv",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        new URL("../deno/cron.ts", import.meta.url).pathname,
      ],
      env: {
        DENO_CRON_TEST_SCHEDULE_OFFSET: "1",
        FRESHTOKEN_KV: kvPath,
        FRESHTOKEN_TOKEN_URL: server.tokenUrl,
        FRESHTOKEN_CLIENT_ID: APP.client_id,
        FRESHTOKEN_CLIENT_SECRET: APP.client_secret,
        FRESHTOKEN_ENCRYPTION_KEY: KEY_A,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let output = "";
      const deadline = Date.now() + 20_000;
      while (!output.includes("freshtoken cron:") && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        output += value;
      }
      await reader.cancel();
      assert.match(output, /freshtoken cron: .+ at http:\/\/127\.0\.0\.1:\d+: refreshed/);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stderr.cancel();
    }
    const before = await server.tokenRequests();
    await withKv(async (kv) => {
      const token = await createTokenClient(options(server, kv, { encryptionKey: KEY_A }))
        .getToken();
      assert.ok(token.accessToken.length > 0);
    }, kvPath);
    assert.equal(await server.tokenRequests(), before, "the handler fetched instead of reading KV");
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a client held back after an outage takes the token another isolate stored since, not its old error", async () => {
  let down = true;
  let requests = 0;
  await serve((request) => {
    requests++;
    void request.body?.cancel();
    if (down) {
      return Response.json({ error: "temporarily_unavailable" }, {
        status: 503,
        headers: { "Retry-After": "30" },
      });
    }
    return Response.json({
      access_token: `tok-${requests}`,
      token_type: "Bearer",
      expires_in: 600,
    });
  }, async (origin) => {
    await withKv(async (kv) => {
      const shared = {
        tokenUrl: `${origin}/token`,
        clientId: "id",
        clientSecret: "held-back-secret",
        kv,
      };
      // Isolate A meets the outage: held back 30 s (Retry-After), and may wait 200 ms at most.
      const a = createTokenClient({ ...shared, retry: { maxAttempts: 1, deadlineMs: 200 } });
      const first = await a.getToken().then(() => undefined, (error) => error as TokenError);
      assert.equal(first?.code, "server_error");
      // The outage ends; isolate B, which never met it, stores a token (past the shared back-off).
      down = false;
      await kv.delete(backoffKey(["freshtoken"], await kvIdOf(a)));
      const b = createTokenClient(shared);
      const stored = await b.getToken();
      assert.equal(requests, 2);
      // A is still held back, but reads the store instead of repeating its error.
      const served = await a.getToken();
      assert.equal(served.accessToken, stored.accessToken);
      assert.equal(requests, 2, "no token request from the held-back isolate");
    });
  });
});
