// The API's 429 in client.fetch: the token cools until Retry-After, and the
// call is sent again after the wait when it fits retry.deadlineMs, else the
// 429 is returned (docs/DESIGN.md, "The API's rate limit"). A real loopback
// token server and a real loopback API.

import assert from "node:assert/strict";
import { createTokenClient } from "../deno/mod.ts";
import type { TokenClientOptions, TokenEvent } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import { serve, withKv } from "./_loopback.ts";

const SECRET = "rate-limit-canary-secret-57";

/** What the API saw: when each call came (performance.now()) and with which token. */
interface Seen {
  at: number;
  token: string;
}

/**
 * A token server, and an API whose answers `answer` gives in turn (a status
 * and headers; past its end, 200), with a client of both.
 */
async function withApi(
  answers: { status: number; headers?: Record<string, string> }[],
  extra: Partial<TokenClientOptions>,
  fn: (ctx: {
    client: ReturnType<typeof createTokenClient>;
    seen: Seen[];
    events: TokenEvent[];
    tokenRequests: () => number;
    /** Another client of the same server and API, with the same options. */
    another: () => ReturnType<typeof createTokenClient>;
  }) => Promise<void>,
): Promise<void> {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds: 3600 });
  const seen: Seen[] = [];
  try {
    await serve((request) => {
      seen.push({ at: performance.now(), token: request.headers.get("authorization") ?? "" });
      const answer = answers[seen.length - 1] ?? { status: 200 };
      return new Response(answer.status === 200 ? "ok" : "slow down", answer);
    }, async (origin) => {
      const events: TokenEvent[] = [];
      const another = () =>
        createTokenClient({
          tokenUrl: server.tokenUrl,
          clientId: "app",
          clientSecret: SECRET,
          baseUrl: origin,
          onEvent: (e) => events.push(e),
          ...extra,
        });
      const client = another();
      await fn({ client, seen, events, tokenRequests: () => server.stats.tokenRequests, another });
    });
  } finally {
    await server.close();
  }
}

const TOO_MANY = (retryAfter?: string): { status: number; headers: Record<string, string> } => ({
  status: 429,
  headers: retryAfter === undefined ? {} : { "retry-after": retryAfter },
});

/** The rate-limit events, without their times. */
function rateEvents(events: TokenEvent[]): unknown[] {
  return events
    .filter((e) => e.type === "rate_limited" || e.type === "api_wait")
    .map(({ at: _, ...rest }) => rest);
}

Deno.test("client.fetch waits out a 429's Retry-After (seconds) and sends again with the token", async () => {
  await withApi([TOO_MANY("1")], {}, async ({ client, seen, events, tokenRequests }) => {
    const response = await client.fetch("/api/v2/users/me", { method: "POST", body: "{}" });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ok");
    assert.equal(seen.length, 2);
    assert.equal(seen[0].token, seen[1].token, "the same token, once it stopped cooling");
    assert.ok(seen[1].at - seen[0].at >= 990, `waited ${seen[1].at - seen[0].at} ms`);
    assert.equal(tokenRequests(), 1, "a 429 fetches no new token");
    assert.deepEqual(rateEvents(events), [
      { type: "rate_limited", status: 429, coolingMs: 1000, next: "wait" },
      { type: "api_wait", delayMs: 1000 },
    ]);
  });
});

Deno.test("client.fetch reads a Retry-After date", async () => {
  const date = new Date(Date.now() + 2_000).toUTCString();
  await withApi([TOO_MANY(date)], {}, async ({ client, seen, events }) => {
    const response = await client.fetch("/api/v2/users/me");
    assert.equal(await response.text(), "ok");
    assert.equal(seen.length, 2);
    const waited = events.find((e) => e.type === "api_wait") as { delayMs: number };
    assert.ok(waited.delayMs > 0 && waited.delayMs <= 2_001, `${waited.delayMs}`);
  });
});

Deno.test("client.fetch returns the 429 when the wait does not fit retry.deadlineMs", async () => {
  await withApi([TOO_MANY("120")], {}, async ({ client, seen, events }) => {
    const started = performance.now();
    const response = await client.fetch("/api/v2/users/me");
    assert.equal(response.status, 429);
    assert.equal(response.headers.get("retry-after"), "120");
    assert.equal(await response.text(), "slow down", "the 429 itself, body and all");
    assert.ok(performance.now() - started < 1_000);
    assert.equal(seen.length, 1);
    assert.deepEqual(rateEvents(events), [
      { type: "rate_limited", status: 429, coolingMs: 120_000, next: "return" },
    ]);
  });
});

Deno.test("client.fetch cools a token for a default time when the 429 names none", async () => {
  // The default (3 s) does not fit a 2 s deadline: the 429 is returned.
  await withApi([TOO_MANY()], { retry: { deadlineMs: 2_000 } }, async ({ client, events }) => {
    const response = await client.fetch("/x");
    assert.equal(response.status, 429);
    await response.body?.cancel();
    assert.deepEqual(rateEvents(events), [
      { type: "rate_limited", status: 429, coolingMs: 3_000, next: "return" },
    ]);
  });
});

Deno.test("client.fetch returns a 429 for a stream body, which cannot be sent again", async () => {
  await withApi([TOO_MANY("1")], {}, async ({ client, seen }) => {
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode("{}"));
        c.close();
      },
    });
    const response = await client.fetch("/x", { method: "POST", body });
    assert.equal(response.status, 429);
    await response.body?.cancel();
    assert.equal(seen.length, 1);
  });
});

Deno.test("client.fetch sends at most retry.maxAttempts times for 429s", async () => {
  const answers = [TOO_MANY("0"), TOO_MANY("0"), TOO_MANY("0")];
  await withApi(answers, { retry: { maxAttempts: 2 } }, async ({ client, seen }) => {
    const response = await client.fetch("/x");
    assert.equal(response.status, 429);
    await response.body?.cancel();
    assert.equal(seen.length, 2);
  });
});

Deno.test("client.fetch stops waiting out a 429 when its request's signal aborts, rejecting with the signal's reason", async () => {
  await withApi([TOO_MANY("3")], {}, async ({ client, seen }) => {
    const started = performance.now();
    const signal = AbortSignal.timeout(300);
    await assert.rejects(client.fetch("/x", { signal }), (e: Error) => e === signal.reason);
    const took = performance.now() - started;
    assert.ok(took < 1_500, `aborted after 300 ms, settled after ${took} ms`);
    assert.equal(seen.length, 1, "nothing sent after the abort");
  });
});

Deno.test("a call made while the token cools stops waiting when its request's signal aborts", async () => {
  await withApi([TOO_MANY("3")], {}, async ({ client, seen }) => {
    const first = client.fetch("/a", { signal: AbortSignal.timeout(200) }).catch(() => {});
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // the 429 has arrived and cools the token
    const started = performance.now();
    const signal = AbortSignal.timeout(200);
    await assert.rejects(client.fetch("/b", { signal }), (e: Error) => e === signal.reason);
    assert.ok(performance.now() - started < 1_500, "stopped waiting at the abort");
    await first;
    assert.equal(seen.length, 1, "nothing sent while the token cooled");
  });
});

Deno.test("a call made while the token cools waits before it sends", async () => {
  await withApi([TOO_MANY("1")], {}, async ({ client, seen }) => {
    const first = client.fetch("/a");
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50)); // the 429 has arrived and cools the token
    const second = await client.fetch("/b");
    assert.equal(await second.text(), "ok");
    assert.equal(await (await first).text(), "ok");
    assert.equal(seen.length, 3);
    assert.ok(seen[1].at - seen[0].at >= 900, "nothing sent while the token cooled");
  });
});

Deno.test("with KV, a 429 cools the token for every isolate: one starting later waits before it sends", async () => {
  await withKv(async (kv) => {
    await withApi([TOO_MANY("2")], { kv }, async ({ client, another, seen, tokenRequests }) => {
      const first = client.fetch("/a");
      while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100)); // the 429 is in, its cooling stored
      const other = another(); // a new isolate: it reads the token (and the cooling) from KV
      const response = await other.fetch("/b");
      assert.equal(await response.text(), "ok");
      assert.equal(await (await first).text(), "ok");
      assert.equal(seen.length, 3);
      assert.equal(tokenRequests(), 1, "the second isolate took the stored token");
      for (const later of seen.slice(1)) {
        assert.ok(later.at - seen[0].at >= 1_900, `sent ${later.at - seen[0].at} ms after the 429`);
      }
    });
  });
});
