// Token pools (poolSize): calls spread over up to N tokens, slots filled one
// at a time as calls need them, a 429 moving the call to another slot, a
// 401 forgetting only its slot's token, slots shared through KV
// (docs/DESIGN.md, "Token pools"). A real loopback token server, a real
// loopback API and real Deno KV.

import assert from "node:assert/strict";
import { createTokenClient, refreshIfDue } from "../deno/mod.ts";
import type { TokenClient, TokenClientOptions, TokenEvent } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import { serve, withKv } from "./_loopback.ts";

const SECRET = "pool-canary-secret-83";

/** What the API answers a call made with `token` (the n-th call overall, from 1). */
type Api = (token: string, n: number) => Response;

const OK: Api = () => new Response("ok");

/** A token server and an API answering as `api` says, with a way to make clients of both. */
async function withPool(
  api: Api,
  fn: (ctx: {
    make: (extra?: Partial<TokenClientOptions>) => TokenClient;
    calls: string[];
    events: TokenEvent[];
    tokenRequests: () => number;
  }) => Promise<void>,
): Promise<void> {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds: 3600 });
  const calls: string[] = [];
  try {
    await serve((request) => {
      const token = request.headers.get("authorization") ?? "";
      calls.push(token);
      return api(token, calls.length);
    }, async (origin) => {
      const events: TokenEvent[] = [];
      const make = (extra: Partial<TokenClientOptions> = {}) =>
        createTokenClient({
          tokenUrl: server.tokenUrl,
          clientId: "app",
          clientSecret: SECRET,
          baseUrl: origin,
          poolSize: 3,
          onEvent: (e) => events.push(e),
          ...extra,
        });
      await fn({ make, calls, events, tokenRequests: () => server.stats.tokenRequests });
    });
  } finally {
    await server.close();
  }
}

/** How many calls each distinct token made, in the order first seen. */
function spread(calls: string[]): number[] {
  const counts = new Map<string, number>();
  for (const token of calls) counts.set(token, (counts.get(token) ?? 0) + 1);
  return [...counts.values()];
}

async function ok(response: Promise<Response>): Promise<void> {
  const answer = await response;
  assert.equal(await answer.text(), "ok");
}

Deno.test("a pool spreads calls evenly over its slots, filling each the first time a call needs it", async () => {
  await withPool(OK, async ({ make, calls, tokenRequests }) => {
    const client = make();
    assert.deepEqual(client.status().slots, { size: 3, filled: 0, cooling: 0 });
    assert.equal(tokenRequests(), 0, "nothing is requested at start");
    for (let i = 0; i < 9; i++) await ok(client.fetch("/x"));
    assert.equal(tokenRequests(), 3);
    assert.deepEqual(spread(calls), [3, 3, 3]);
    assert.deepEqual(client.status().slots, { size: 3, filled: 3, cooling: 0 });
    assert.equal(client.status().fetches, 3);
  });
});

Deno.test("a pool never sends a burst of token requests: concurrent first calls share one", async () => {
  await withPool(OK, async ({ make, tokenRequests }) => {
    const client = make({ poolSize: 8 });
    const tokens = await Promise.all(Array.from({ length: 20 }, () => client.getToken()));
    assert.equal(tokenRequests(), 1);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
  });
});

Deno.test("a 429 moves the call at once to another slot, which is then preferred while the first cools", async () => {
  let limited = "";
  const api: Api = (token) => {
    limited ||= token; // the first token seen is over its limit
    return token === limited
      ? new Response("slow down", { status: 429, headers: { "retry-after": "60" } })
      : new Response("ok");
  };
  await withPool(api, async ({ make, calls, events }) => {
    const client = make({ poolSize: 2 });
    const started = performance.now();
    await ok(client.fetch("/x", { method: "POST", body: "{}" }));
    assert.ok(performance.now() - started < 1_000, "no wait");
    assert.equal(calls.length, 2);
    assert.notEqual(calls[0], calls[1]);
    const moved = events.find((e) => e.type === "rate_limited");
    assert.deepEqual({ ...moved, at: 0 }, {
      type: "rate_limited",
      at: 0,
      status: 429,
      coolingMs: 60_000,
      next: "move",
      slot: 0,
    });
    assert.deepEqual(client.status().slots, { size: 2, filled: 2, cooling: 1 });
    // The cooling slot is left alone: the next calls all go to the other one.
    for (let i = 0; i < 3; i++) await ok(client.fetch("/x"));
    assert.deepEqual(calls.slice(2), [calls[1], calls[1], calls[1]]);
  });
});

Deno.test("with every slot cooling a call waits when that fits its deadline, else gets the 429", async () => {
  const seen = new Set<string>();
  const api: Api = (token) => {
    if (seen.size < 2 && !seen.has(token)) {
      seen.add(token);
      return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
    }
    return new Response("ok");
  };
  await withPool(api, async ({ make, calls, events }) => {
    const client = make({ poolSize: 2 });
    await ok(client.fetch("/x"));
    assert.equal(calls.length, 3, "429 on slot 0, moved: 429 on slot 1, waited, sent again");
    assert.deepEqual(
      events.filter((e) => e.type === "rate_limited" || e.type === "api_wait").map((e) => e.type),
      ["rate_limited", "rate_limited", "api_wait"],
    );
  });
  seen.clear();
  await withPool((token) => {
    seen.add(token);
    return new Response("slow down", { status: 429, headers: { "retry-after": "120" } });
  }, async ({ make, calls }) => {
    const client = make({ poolSize: 2 });
    const response = await client.fetch("/x");
    assert.equal(response.status, 429);
    await response.body?.cancel();
    assert.equal(calls.length, 2, "moved once, then every slot cools past the deadline");
  });
});

Deno.test("a call that met 429s on three slots spends its last attempt after the wait the API named, not on a fourth slot", async () => {
  // Every slot is over its limit for the first 1.5 s: a fourth slot would
  // answer 429 as the first three did; after the wait the API named, the
  // call is served.
  let overUntil = 0;
  const api: Api = () => {
    overUntil ||= performance.now() + 1_500;
    return performance.now() < overUntil
      ? new Response("slow down", { status: 429, headers: { "retry-after": "2" } })
      : new Response("ok");
  };
  await withPool(api, async ({ make, calls, events, tokenRequests }) => {
    const client = make({ poolSize: 5 }); // retry.maxAttempts 4
    await ok(client.fetch("/x"));
    assert.equal(calls.length, 4);
    assert.equal(new Set(calls.slice(0, 3)).size, 3, "moved twice");
    assert.equal(calls[3], calls[2], "the last attempt went to the slot whose wait it took");
    assert.equal(tokenRequests(), 3, "no fourth slot filled");
    assert.deepEqual(
      events.filter((e) => e.type === "rate_limited").map((e) => (e as { next: string }).next),
      ["move", "move", "wait"],
    );
  });
});

Deno.test("after 429s on three slots and the wait, the last attempt goes to a slot that named the wait, not to a fourth that never answered", async () => {
  const tokens: string[] = [];
  let armed = false;
  const answered = new Set<string>();
  const api: Api = (token) => {
    if (!armed) {
      if (!tokens.includes(token)) tokens.push(token);
      return new Response("ok");
    }
    // Slot 3 is over its limit through other isolates' calls: always 429.
    // Slots 0-2 answer 429 once, naming 1 s.
    if (token === tokens[3]) {
      return new Response("slow down", { status: 429, headers: { "retry-after": "60" } });
    }
    if (!answered.has(token)) {
      answered.add(token);
      return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
    }
    return new Response("ok");
  };
  await withPool(api, async ({ make, calls }) => {
    const client = make({ poolSize: 4 }); // retry.maxAttempts 4
    for (let i = 0; i < 4; i++) await ok(client.fetch("/fill"));
    assert.equal(tokens.length, 4, "four slots filled");
    armed = true;
    const before = calls.length;
    const response = await client.fetch("/x");
    const sent = calls.slice(before).map((t) => tokens.indexOf(t));
    assert.equal(response.status, 200, `sends by slot: ${sent}`);
    assert.deepEqual(
      sent,
      [0, 1, 2, 2],
      "the last attempt waits for the slot whose 429 it got last",
    );
    await response.body?.cancel();
  });
});

Deno.test("with every slot cooling, a call waits for the slot free soonest when its own slot's wait would not fit", async () => {
  const tokens: string[] = [];
  let seen0 = false;
  let limit1 = false;
  const api: Api = (token) => {
    if (!tokens.includes(token)) tokens.push(token);
    const slot = tokens.indexOf(token);
    if (slot === 0 && !seen0) {
      seen0 = true;
      return new Response("slow down", { status: 429, headers: { "retry-after": "2" } });
    }
    if (slot === 1 && limit1) {
      return new Response("slow down", { status: 429, headers: { "retry-after": "60" } });
    }
    return new Response("ok");
  };
  await withPool(api, async ({ make, calls, events }) => {
    const client = make({ poolSize: 2 }); // retry.deadlineMs 30000
    await ok(client.fetch("/a")); // slot 0: 429 (2 s), moved to slot 1: ok
    assert.equal(tokens.length, 2);
    limit1 = true;
    const response = await client.fetch("/b"); // slot 1 (slot 0 cools): 429 (60 s)
    const sent = calls.slice(2).map((t) => tokens.indexOf(t));
    assert.equal(response.status, 200, `sends by slot: ${sent}`);
    assert.deepEqual(sent, [1, 0], "waited for slot 0, free within 2 s, and sent with it");
    await response.body?.cancel();
    assert.deepEqual(
      events.filter((e) => e.type === "rate_limited").map((e) => (e as { next: string }).next),
      ["move", "wait"],
    );
  });
});

Deno.test("a 401 forgets only the token of the slot that got it", async () => {
  let refused = "";
  await withPool((token, n) => {
    if (n === 3) refused = token;
    return token === refused ? new Response("no", { status: 401 }) : new Response("ok");
  }, async ({ make, calls, tokenRequests }) => {
    const client = make({ poolSize: 2 });
    await ok(client.fetch("/a")); // slot 0
    await ok(client.fetch("/b")); // slot 1
    assert.equal(tokenRequests(), 2);
    await ok(client.fetch("/c")); // slot 0 again: a 401, a new token for slot 0 only
    assert.equal(tokenRequests(), 3);
    await ok(client.fetch("/d"));
    await ok(client.fetch("/e"));
    const [slot0, slot1] = [calls[0], calls[1]];
    assert.equal(calls[2], slot0);
    assert.ok(![slot0, slot1].includes(calls[3]), "slot 0's new token");
    assert.ok(calls.slice(4).includes(slot1), "slot 1 kept its token");
  });
});

Deno.test("with KV, isolates share the slots: one token per slot between them", async () => {
  await withKv(async (kv) => {
    await withPool(OK, async ({ make, calls, tokenRequests }) => {
      const a = make({ kv, poolSize: 2 });
      const b = make({ kv, poolSize: 2 });
      for (let i = 0; i < 4; i++) {
        await ok(a.fetch("/a"));
        await ok(b.fetch("/b"));
      }
      assert.equal(tokenRequests(), 2);
      assert.deepEqual(spread(calls), [4, 4]);
    });
  });
});

Deno.test("the cron check keeps every filled slot fresh and leaves empty ones empty", async () => {
  await withKv(async (kv) => {
    await withPool(OK, async ({ make, tokenRequests }) => {
      const client = make({ kv, poolSize: 4 });
      await ok(client.fetch("/a"));
      await ok(client.fetch("/b"));
      assert.equal(tokenRequests(), 2);
      // Due within a day: both filled slots are refreshed, the two empty ones stay empty.
      assert.equal(await refreshIfDue(client, { aheadSeconds: 86_400 }), "refreshed");
      assert.equal(tokenRequests(), 4);
      assert.deepEqual(client.status().slots, { size: 4, filled: 2, cooling: 0 });
    });
  });
});

Deno.test("poolSize is a whole number from 1 to 50", () => {
  for (const poolSize of [0, 51, 2.5, Number.NaN]) {
    assert.throws(
      () =>
        createTokenClient({
          tokenUrl: "https://a.example/t",
          clientId: "i",
          clientSecret: "s",
          poolSize,
        }),
      (e: unknown) =>
        e instanceof Error && e.message.includes("poolSize must be a whole number from 1 to 50"),
    );
  }
});

Deno.test("a call whose slot cannot be filled is served by a slot that has a token", async () => {
  await withPool(OK, async ({ make, calls }) => {
    let refuse = false;
    const client = make({
      poolSize: 2,
      retry: { maxAttempts: 1 },
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        return refuse && url.includes("/oauth/token")
          ? Promise.resolve(new Response("down", { status: 503 }))
          : globalThis.fetch(input, init);
      },
    });
    await ok(client.fetch("/a")); // slot 0 filled
    refuse = true;
    await ok(client.fetch("/b")); // slot 1's fill fails: slot 0 serves
    assert.equal(await client.getToken().then((t) => `Bearer ${t.accessToken}`), calls[0]);
    assert.deepEqual(calls, [calls[0], calls[0]]);
    assert.deepEqual(client.status().slots, { size: 2, filled: 1, cooling: 0 });
  });
});

Deno.test("while the token endpoint fails, a pool fills no other slot: its callers wait out slot 0's back-off", async () => {
  await withPool(OK, async ({ make, events }) => {
    const client = make({
      poolSize: 4,
      retry: { maxAttempts: 1, deadlineMs: 1_000 },
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        return url.includes("/oauth/token")
          ? Promise.resolve(new Response("down", { status: 503 }))
          : globalThis.fetch(input, init);
      },
    });
    for (let i = 0; i < 4; i++) {
      await assert.rejects(client.getToken(), (e: unknown) => e instanceof Error && "code" in e);
    }
    const slots = events.filter((e) => e.type === "fetch_start").map((e) => e.slot);
    assert.ok(slots.length >= 1);
    assert.deepEqual(new Set(slots), new Set([0]), `token requests from slots ${slots}`);
  });
});

Deno.test("without KV, a slot's failed token request holds back every slot's refresh, as the shared back-off does with KV", async () => {
  await withPool(OK, async ({ make }) => {
    const clock = { now: Date.now() };
    let down = false;
    let requests = 0;
    const tokenRequests = () => requests;
    const client = make({
      poolSize: 2,
      now: () => clock.now,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (url.includes("/oauth/token")) requests++;
        return down && url.includes("/oauth/token")
          ? Promise.resolve(new Response("down", { status: 503, headers: { "retry-after": "60" } }))
          : globalThis.fetch(input, init);
      },
    });
    await ok(client.fetch("/a")); // slot 0
    await ok(client.fetch("/b")); // slot 1
    assert.equal(tokenRequests(), 2);
    // Both tokens are due; the token endpoint is down, asking for 60 s.
    clock.now = client.status().expiresAt! - 120_000;
    down = true;
    const settle = () => new Promise((r) => setTimeout(r, 50));
    await client.getToken(); // slot 0 serves and refreshes in the background: 503
    await settle();
    const failed = tokenRequests();
    assert.equal(failed, 3);
    await client.getToken(); // slot 1 serves: its refresh is held back too
    await settle();
    assert.equal(tokenRequests(), failed, "no token request while the endpoint asked for 60 s");
    await ok(client.fetch("/c"));
    await ok(client.fetch("/d"));
    await settle();
    assert.equal(tokenRequests(), failed);
    // After the 60 s, refreshes go out again.
    down = false;
    clock.now += 61_000;
    await client.getToken();
    await settle();
    assert.equal(tokenRequests(), failed + 1);
  });
});

Deno.test("without KV, a sibling's failure no longer shows in status().lastError once the token endpoint answers again", async () => {
  const tokens: string[] = [];
  let reject = false;
  const api: Api = (token) => {
    if (!tokens.includes(token)) tokens.push(token);
    if (reject && token === tokens[0]) {
      reject = false;
      return new Response("no", { status: 401 });
    }
    return new Response("ok");
  };
  await withPool(api, async ({ make, tokenRequests }) => {
    const clock = { now: Date.now() };
    let down = false;
    let failed = 0;
    const client = make({
      poolSize: 2,
      now: () => clock.now,
      fetch: (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        if (down && url.includes("/oauth/token")) {
          failed++;
          return Promise.resolve(
            new Response("down", { status: 503, headers: { "retry-after": "60" } }),
          );
        }
        return globalThis.fetch(input, init);
      },
    });
    const settle = () => new Promise((r) => setTimeout(r, 50));
    await ok(client.fetch("/a")); // slot 0
    await ok(client.fetch("/b")); // slot 1
    // 40 minutes on, slot 0's token is refused once: slot 0 gets a new
    // token, so slot 1's now falls due first.
    clock.now += 40 * 60_000;
    reject = true;
    await ok(client.fetch("/c")); // slot 0: 401, new token, ok
    assert.equal(tokens.length, 3);
    // Slot 1 falls due; the endpoint is down: its refresh fails (60 s).
    down = true;
    clock.now += 15 * 60_000;
    for (let i = 0; i < 2; i++) {
      await client.getToken();
      await settle();
    }
    assert.equal(failed, 1, "slot 1's refresh failed once");
    // The endpoint answers again; after the 60 s slot 1 refreshes.
    down = false;
    clock.now += 61_000;
    const before = tokenRequests();
    for (let i = 0; i < 2; i++) {
      await client.getToken();
      await settle();
    }
    assert.equal(tokenRequests(), before + 1, "slot 1 refreshed: the endpoint answers again");
    assert.equal(
      client.status().lastError,
      undefined,
      `status().lastError still reports ${client.status().lastError?.code} after slot 1 recovered`,
    );
  });
});

Deno.test("invalidate() on a pool of 50 with KV deletes every slot's stored token without asking the clientSecret function once per slot", async () => {
  await withKv(async (kv) => {
    await withPool(OK, async ({ make, events }) => {
      // Another isolate stored the tokens of slots 0 to 2.
      const other = make({ kv, poolSize: 50 });
      for (let i = 0; i < 3; i++) await ok(other.fetch("/fill"));
      const stored = () => Array.fromAsync(kv.list({ prefix: ["freshtoken", "token"] }));
      assert.equal((await stored()).length, 3);
      let asked = 0;
      const client = make({
        kv,
        poolSize: 50,
        clientSecret: () => {
          asked++;
          return SECRET;
        },
      });
      await ok(client.fetch("/a")); // slot 0, from KV
      const before = asked;
      await client.invalidate();
      assert.ok(
        asked - before <= 1,
        `invalidate() asked the clientSecret function ${asked - before} times`,
      );
      assert.deepEqual(events.filter((e) => e.type === "kv_error"), []);
      assert.deepEqual(await stored(), [], "every slot's stored token is deleted");
    });
  });
});

Deno.test("invalidate() on a pool forgets every slot, and with KV deletes every slot's stored token, made here or not", async () => {
  await withKv(async (kv) => {
    await withPool(OK, async ({ make, calls, tokenRequests }) => {
      const a = make({ kv, poolSize: 2 });
      await ok(a.fetch("/a"));
      await ok(a.fetch("/b"));
      assert.equal(tokenRequests(), 2);
      const b = make({ kv, poolSize: 2 });
      await ok(b.fetch("/c")); // b has made slot 0 only
      assert.equal(tokenRequests(), 2);
      await b.invalidate();
      assert.deepEqual(b.status().slots, { size: 2, filled: 0, cooling: 0 });
      // Another isolate finds no stored token in either slot.
      const c = make({ kv, poolSize: 2 });
      await ok(c.fetch("/d"));
      await ok(c.fetch("/e"));
      assert.equal(tokenRequests(), 4, "both slots fetched anew");
      assert.ok(!calls.slice(0, 3).includes(calls[4]), "slot 1's stored token was deleted");
    });
  });
  await withPool(OK, async ({ make, tokenRequests }) => {
    const client = make({ poolSize: 2 });
    await ok(client.fetch("/a"));
    await ok(client.fetch("/b"));
    await client.invalidate();
    assert.deepEqual(client.status().slots, { size: 2, filled: 0, cooling: 0 });
    await ok(client.fetch("/c"));
    assert.equal(tokenRequests(), 3);
  });
});
