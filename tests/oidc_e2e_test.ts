// End to end against a real OAuth 2.0 authorization server we did not
// write: `oidc-provider` on 127.0.0.1 (see tests/servers/oidc_server.mjs).

import assert from "node:assert/strict";
import { createTokenClient, TokenError } from "../deno/mod.ts";
import type { TokenEvent } from "../deno/mod.ts";
import { type OidcClient, type OidcServer, type SecretClient, startOidcServer } from "./_oidc.ts";

const BASIC: SecretClient = {
  client_id: "svc basic",
  client_secret: "basic-canary-secret-1",
  scope: "api:read api:write",
};
const POST: SecretClient = {
  client_id: "svc-post",
  client_secret: "post-canary-secret-2",
  token_endpoint_auth_method: "client_secret_post",
};
// Every character RFC 6749 allows in an id or secret that form encoding changes.
const ODD: SecretClient = {
  client_id: "odd id:1@x+y/z%&=?#",
  client_secret: "s p:a@c%e+&=/?#~!$'()*,;[]-canary-secret",
};
const SHORT: SecretClient = {
  client_id: "short-lived",
  client_secret: "short-canary-secret-3",
  ttl: 8,
};
const RESOURCE: SecretClient = {
  client_id: "resource-server",
  client_secret: "rs-canary-secret-4",
};

async function withServer(fn: (server: OidcServer) => Promise<void>): Promise<void> {
  const server = await startOidcServer([BASIC, POST, ODD, SHORT, RESOURCE]);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function clientFor(server: OidcServer, c: OidcClient, extra = {}) {
  return createTokenClient({
    tokenUrl: server.tokenUrl,
    clientId: c.client_id,
    clientSecret: c.client_secret,
    authMethod: c.token_endpoint_auth_method,
    ...extra,
  });
}

Deno.test("oidc-provider issues real tokens through both client authentication methods", async () => {
  await withServer(async (server) => {
    for (const c of [BASIC, POST]) {
      const token = await clientFor(server, c).getToken();
      const info = await server.introspect(token.accessToken, RESOURCE);
      assert.equal(info.active, true, c.client_id);
      assert.equal(info.client_id, c.client_id);
      assert.equal(token.tokenType, "Bearer");
    }
  });
});

Deno.test("odd characters in client id and secret are form-encoded as RFC 6749 §2.3.1 asks", async () => {
  await withServer(async (server) => {
    for (const authMethod of ["client_secret_basic", "client_secret_post"] as const) {
      const token = await clientFor(server, ODD, { authMethod }).getToken();
      const info = await server.introspect(token.accessToken, RESOURCE);
      assert.equal(info.active, true, authMethod);
      assert.equal(info.client_id, ODD.client_id);
    }
  });
});

Deno.test("scope is requested and granted", async () => {
  await withServer(async (server) => {
    const token = await clientFor(server, BASIC, { scope: ["api:read"] }).getToken();
    const info = await server.introspect(token.accessToken, RESOURCE);
    assert.equal(info.scope, "api:read");
    assert.equal(token.scope, "api:read");
  });
});

Deno.test("500 concurrent callers cause exactly one token request", async () => {
  await withServer(async (server) => {
    const client = clientFor(server, BASIC);
    const before = await server.tokenRequests();
    const tokens = await Promise.all(Array.from({ length: 500 }, () => client.getToken()));
    assert.equal(await server.tokenRequests() - before, 1);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
    assert.equal(client.status().fetches, 1);
  });
});

Deno.test("20 s of calls with 8 s tokens never see an expired token", async () => {
  await withServer(async (server) => {
    const events: TokenEvent[] = [];
    const client = clientFor(server, SHORT, { onEvent: (e: TokenEvent) => events.push(e) });
    const before = await server.tokenRequests();
    const seen = new Set<string>();
    const end = Date.now() + 20_000;
    let calls = 0;
    let lastCheck = 0;
    while (Date.now() < end) {
      const token = await client.getToken();
      calls++;
      seen.add(token.accessToken);
      assert.ok(token.expiresAt > Date.now(), "served an expired token");
      if (Date.now() - lastCheck >= 250) {
        // Ask the server itself: the token we were just given must be live.
        const info = await server.introspect(token.accessToken, RESOURCE);
        assert.equal(info.active, true, `inactive token served after ${calls} calls`);
        lastCheck = Date.now();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const requests = await server.tokenRequests() - before;
    // 8 s tokens refresh about 4 s early: a new token every ~4 s, fetched in the background.
    assert.ok(seen.size >= 4 && seen.size <= 7, `${seen.size} distinct tokens`);
    assert.equal(requests, seen.size);
    assert.ok(events.filter((e) => e.type === "background_refresh").length >= 3);
    // Let the last background refresh (if any) settle before the server stops.
    await client.getToken();
  });
});

Deno.test("a wrong secret fails with invalid_client after one request, without retry", async () => {
  await withServer(async (server) => {
    const client = clientFor(server, { ...BASIC, client_secret: "wrong-canary-secret" });
    const before = await server.tokenRequests();
    const error = await client.getToken().then(() => undefined, (e) => e);
    assert.ok(error instanceof TokenError);
    assert.equal(error.code, "invalid_client");
    assert.equal(error.status, 401);
    assert.equal(error.retryable, false);
    assert.equal(await server.tokenRequests() - before, 1);
    assert.ok(!error.message.includes("wrong-canary-secret"));
    assert.equal(client.status().lastError?.code, "invalid_client");
  });
});

Deno.test("a revoked token gets a 401, then exactly one new token and a retried call", async () => {
  await withServer(async (server) => {
    // A resource server that accepts only live tokens, asking the authorization server.
    const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      const token = req.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
      const info = await server.introspect(token, RESOURCE);
      return info.active ? Response.json({ ok: true }) : new Response("revoked", { status: 401 });
    });
    try {
      const client = clientFor(server, BASIC, { baseUrl: `http://127.0.0.1:${api.addr.port}` });
      const first = await client.fetch("/things");
      assert.equal(first.status, 200);
      await first.body?.cancel();
      const old = await client.getToken();
      await server.revoke(old.accessToken, BASIC);
      assert.equal((await server.introspect(old.accessToken, RESOURCE)).active, false);

      const before = await server.tokenRequests();
      const again = await client.fetch("/things", { method: "POST", body: "replayable" });
      assert.equal(again.status, 200);
      await again.body?.cancel();
      assert.equal(await server.tokenRequests() - before, 1);
      assert.notEqual((await client.getToken()).accessToken, old.accessToken);
    } finally {
      await api.shutdown();
    }
  });
});
