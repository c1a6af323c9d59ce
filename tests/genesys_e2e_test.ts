// End to end against a loopback server that behaves like Genesys Cloud's
// token endpoint and API (tests/servers/genesys_like.ts).

import assert from "node:assert/strict";
import { createTokenClient, genesysCloud, TokenError } from "../deno/mod.ts";
import type { TokenClientOptions, TokenEvent } from "../deno/mod.ts";
import { type GenesysLike, startGenesysLike } from "./servers/genesys_like.ts";

const ID = "9c3b2f7e-5d41-4c8a-b7f0-2e6d1a9c4b35";
const SECRET = "gc-canary-secret-7Q2x";

async function withGenesys(
  options: Partial<Parameters<typeof startGenesysLike>[0]>,
  fn: (server: GenesysLike, base: TokenClientOptions) => Promise<void>,
): Promise<void> {
  const server = startGenesysLike({ clients: { [ID]: SECRET }, ...options });
  // The region preset, pointed at loopback: what a Genesys user writes, minus the host.
  const preset = genesysCloud({ region: "eu_west_1", clientId: ID, clientSecret: SECRET });
  try {
    await fn(server, { ...preset, tokenUrl: server.tokenUrl, baseUrl: server.baseUrl });
  } finally {
    await server.close();
  }
}

Deno.test("Genesys-like: Basic auth and a form body get a token the API accepts", async () => {
  await withGenesys({}, async (server, base) => {
    const client = createTokenClient(base);
    const response = await client.fetch("/api/v2/organizations/me");
    assert.equal(response.status, 200);
    assert.equal((await response.json()).name, "Loopback Org");
    assert.equal(server.stats.tokensIssued, 1);
  });
});

Deno.test("Genesys-like: client_secret_post is refused as invalid_client, not retried", async () => {
  await withGenesys({}, async (server, base) => {
    const client = createTokenClient({ ...base, authMethod: "client_secret_post" });
    const error = await client.getToken().catch((e) => e);
    assert.ok(error instanceof TokenError);
    assert.equal(error.code, "invalid_client");
    assert.equal(error.retryable, false);
    assert.equal(server.stats.tokenRequests, 1);
  });
});

Deno.test("Genesys-like: the lifetime is the server's, whatever the request asks", async () => {
  await withGenesys({ lifetimeSeconds: 300 }, async (_server, base) => {
    const sentAt = Date.now();
    const client = createTokenClient({ ...base, extraParams: { expires_in: "172800" } });
    const token = await client.getToken();
    const lifetime = (token.expiresAt - sentAt) / 1000;
    assert.ok(lifetime > 299 && lifetime <= 301, `lifetime ${lifetime}`);
    const { refreshAt, expiresAt } = client.status();
    // 300 s tokens refresh 30–33 s early.
    const window = (expiresAt! - refreshAt!) / 1000;
    assert.ok(window >= 30 && window <= 33, `window ${window}`);
  });
});

Deno.test("Genesys-like: a 429 with Retry-After is waited out, then the token arrives", async () => {
  await withGenesys(
    { rateLimit: { max: 1, windowSeconds: 2 } },
    async (server, base) => {
      const events: TokenEvent[] = [];
      const client = createTokenClient({ ...base, onEvent: (e) => events.push(e) });
      await client.getToken();
      await client.invalidate();
      const started = Date.now();
      await client.getToken();
      const waited = Date.now() - started;
      assert.equal(server.stats.rateLimited, 1);
      assert.equal(server.stats.tokensIssued, 2);
      const retry = events.find((e) => e.type === "retry");
      assert.ok(retry?.type === "retry" && retry.delayMs >= 1000, JSON.stringify(retry));
      assert.ok(waited >= 1000, `waited ${waited} ms`);
      const failure = events.find((e) => e.type === "fetch_error");
      assert.deepEqual(
        failure && { code: failure.code, status: failure.status, retryable: failure.retryable },
        { code: "rate_limited", status: 429, retryable: true },
      );
    },
  );
});

Deno.test("Genesys-like: a Retry-After past the deadline fails fast with rate_limited", async () => {
  await withGenesys(
    { rateLimit: { max: 1, windowSeconds: 60 } },
    async (_server, base) => {
      const client = createTokenClient({ ...base, retry: { deadlineMs: 5_000 } });
      await client.getToken();
      await client.invalidate();
      const started = Date.now();
      const error = await client.getToken().catch((e) => e);
      assert.ok(Date.now() - started < 1_000, "did not fail fast");
      assert.ok(error instanceof TokenError);
      assert.equal(error.code, "rate_limited");
      assert.equal(error.retryable, true);
      assert.ok(error.retryAfterSeconds! > 50 && error.retryAfterSeconds! <= 60);
    },
  );
});

Deno.test("Genesys-like: revoked tokens are replaced once and the call retried", async () => {
  await withGenesys({}, async (server, base) => {
    const client = createTokenClient(base);
    await (await client.fetch("/api/v2/organizations/me")).body?.cancel();
    server.revokeAll();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => client.fetch("/api/v2/organizations/me")),
    );
    for (const r of responses) {
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    // One token before revocation, exactly one after, for 20 concurrent calls.
    assert.equal(server.stats.tokensIssued, 2);
  });
});
