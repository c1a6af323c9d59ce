import assert from "node:assert/strict";
import { createTokenClient, TokenError } from "./mod.ts";
import type { TokenClientOptions, TokenEvent } from "./mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const SECRET = "unit-canary-secret-31";

/** A real loopback token server plus a client whose clock the test moves. */
async function withClient(
  extra: Partial<TokenClientOptions>,
  fn: (ctx: {
    client: ReturnType<typeof createTokenClient>;
    server: ReturnType<typeof startGenesysLike>;
    clock: { now: number };
    events: TokenEvent[];
  }) => Promise<void>,
  lifetimeSeconds = 3600,
): Promise<void> {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds });
  const clock = { now: Date.now() };
  const events: TokenEvent[] = [];
  const client = createTokenClient({
    tokenUrl: server.tokenUrl,
    clientId: "app",
    clientSecret: SECRET,
    now: () => clock.now,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  try {
    await fn({ client, server, clock, events });
  } finally {
    await server.close();
  }
}

/** Lets background work (a refresh in flight) finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 5));
}

Deno.test("getToken() fetches once, then serves from memory", async () => {
  await withClient({}, async ({ client, server, events }) => {
    const a = await client.getToken();
    const b = await client.getToken();
    assert.equal(a, b);
    assert.equal(server.stats.tokenRequests, 1);
    assert.deepEqual(events.map((e) => e.type), ["fetch_start", "fetch_ok", "cache_hit"]);
    assert.deepEqual({ ...client.status(), expiresAt: 0, refreshAt: 0 }, {
      hasToken: true,
      fetches: 1,
      hits: 1,
      expiresAt: 0,
      refreshAt: 0,
    });
  });
});

Deno.test("inside the refresh window the current token is served at once and refreshed in the background", async () => {
  await withClient({}, async ({ client, server, clock, events }) => {
    const first = await client.getToken();
    const { refreshAt } = client.status();
    clock.now = refreshAt! + 1;
    const served = await client.getToken();
    assert.equal(served, first, "stale-while-revalidate serves the current token");
    await settle();
    assert.equal(server.stats.tokenRequests, 2);
    assert.ok(events.some((e) => e.type === "background_refresh"));
    assert.notEqual((await client.getToken()).accessToken, first.accessToken);
  });
});

Deno.test("a failed background refresh keeps serving the valid token and backs off", async () => {
  let failing = false;
  const flaky: typeof fetch = (input, init) =>
    failing ? Promise.resolve(new Response("down", { status: 503 })) : fetch(input, init);
  await withClient(
    { fetch: flaky, retry: { maxAttempts: 1 } },
    async ({ client, clock }) => {
      const first = await client.getToken();
      failing = true;
      clock.now = client.status().refreshAt! + 1;
      assert.equal(await client.getToken(), first);
      await settle();
      assert.equal(client.status().fetches, 2);
      assert.equal(client.status().lastError?.code, "server_error");
      // Held back: more calls right away do not start more refreshes.
      for (let i = 0; i < 20; i++) assert.equal(await client.getToken(), first);
      await settle();
      assert.equal(client.status().fetches, 2);
      // After the backoff (at most 1 s for the first failure) one more attempt is made.
      clock.now += 1_001;
      failing = false;
      assert.equal(await client.getToken(), first);
      await settle();
      assert.equal(client.status().fetches, 3);
      assert.notEqual((await client.getToken()).accessToken, first.accessToken);
    },
  );
});

Deno.test("past the usable time callers wait for a new token", async () => {
  await withClient({}, async ({ client, server, clock }) => {
    const first = await client.getToken();
    // 3600 s tokens stop being served 30 s before expiry (skew).
    clock.now = first.expiresAt - 30_000;
    const second = await client.getToken();
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(server.stats.tokenRequests, 2);
  });
});

Deno.test("minValidSeconds fetches a new token when the cached one would expire too soon", async () => {
  await withClient({}, async ({ client, clock }) => {
    const first = await client.getToken();
    clock.now = first.expiresAt - 120_000;
    assert.equal(await client.getToken({ minValidSeconds: 60 }), first);
    const fresh = await client.getToken({ minValidSeconds: 300 });
    assert.notEqual(fresh.accessToken, first.accessToken);
    await assert.rejects(client.getToken({ minValidSeconds: -1 }), { code: "config" });
  });
});

Deno.test("refresh() and invalidate() fetch anew, still single-flight", async () => {
  await withClient({}, async ({ client, server }) => {
    const first = await client.getToken();
    const [a, b] = await Promise.all([client.refresh(), client.refresh()]);
    assert.equal(a, b);
    assert.notEqual(a.accessToken, first.accessToken);
    await client.invalidate();
    assert.equal(client.status().hasToken, false);
    await client.getToken();
    assert.equal(server.stats.tokenRequests, 3);
  });
});

Deno.test("an aborted wait rejects with aborted without cancelling the shared fetch", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const slow: typeof fetch = async (input, init) => {
    await gate;
    return fetch(input, init);
  };
  await withClient({ fetch: slow }, async ({ client, server }) => {
    const controller = new AbortController();
    const patient = client.getToken();
    const impatient = client.getToken({ signal: controller.signal });
    controller.abort();
    await assert.rejects(
      impatient,
      (e: unknown) => e instanceof TokenError && e.code === "aborted",
    );
    await assert.rejects(
      client.getToken({ signal: AbortSignal.abort() }),
      { code: "aborted" },
    );
    release();
    await patient;
    assert.equal(server.stats.tokenRequests, 1);
  });
});

Deno.test("client.fetch() retries a 401 once with a new token, but not a stream body", async () => {
  await withClient({}, async ({ client, server }) => {
    const api = `${server.baseUrl}/api/v2/organizations/me`;
    await (await client.fetch(api)).body?.cancel();
    server.revokeAll();
    const retried = await client.fetch(api, { method: "GET" });
    assert.equal(retried.status, 200);
    await retried.body?.cancel();
    assert.equal(server.stats.tokensIssued, 2);

    server.revokeAll();
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode("once"));
        c.close();
      },
    });
    const notRetried = await client.fetch(api, { method: "POST", body: stream });
    assert.equal(notRetried.status, 404); // POST to this path: answered, not retried
    await notRetried.body?.cancel();
    assert.equal(server.stats.tokensIssued, 2);
  });
});

Deno.test("a throwing onEvent hook does not break token delivery", async () => {
  await withClient({
    onEvent: () => {
      throw new Error("hook bug");
    },
  }, async ({ client }) => {
    assert.equal((await client.getToken()).tokenType, "Bearer");
  });
});

Deno.test("bad options throw a config TokenError at creation", () => {
  const ok = {
    tokenUrl: "https://login.example.com/oauth/token",
    clientId: "id",
    clientSecret: "s",
  };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ clientId: "" }, /clientId/],
    [{ clientSecret: "" }, /clientSecret/],
    [{ clientId: 42 }, /clientId must be a string/],
    [{ tokenUrl: "http://login.example.com/oauth/token" }, /https/],
    [{ tokenUrl: "not a url" }, /tokenUrl/],
    [{ tokenUrl: "https://u:p@login.example.com/t" }, /credentials/],
    [{ authMethod: "password" }, /authMethod/],
    [{ authMethod: "private_key_jwt" }, /clientSecret is not used with private_key_jwt/],
    [{ scope: "" }, /scope/],
    [{ extraParams: { client_secret: "x" } }, /client_secret/],
    [{ extraParams: { a: 1 } }, /extraParams.a/],
    [{ timeoutMs: -5 }, /timeoutMs/],
    [{ retry: { maxAttempts: 0 } }, /maxAttempts/],
    [{ fetch: "nope" }, /fetch/],
    [{ baseUrl: "::" }, /baseUrl/],
  ];
  for (const [bad, message] of cases) {
    assert.throws(
      () => createTokenClient({ ...ok, ...bad } as TokenClientOptions),
      (e: unknown) => e instanceof TokenError && e.code === "config" && message.test(e.message),
      JSON.stringify(bad),
    );
  }
  assert.throws(() => createTokenClient(undefined as unknown as TokenClientOptions), {
    code: "config",
  });
});

Deno.test("a misspelt option is refused with the closest known name, never silently ignored", () => {
  const ok = {
    tokenUrl: "https://login.example.com/oauth/token",
    clientId: "id",
    clientSecret: "unit-canary-secret-9",
  };
  const cases: [Record<string, unknown>, string][] = [
    [{ encryption_key: "x" }, "unknown option encryption_key (did you mean encryptionKey?)"],
    [
      { retry: { maxAttemps: 3 } },
      "unknown option retry.maxAttemps (did you mean retry.maxAttempts?)",
    ],
    [{ tokenURL: "https://x" }, "unknown option tokenURL (did you mean tokenUrl?)"],
    [{ retry: { maxAttempts: "3" } }, "retry.maxAttempts must be a number"],
    [{ clientSecret: ["unit-canary-secret-9"] }, "clientSecret must be a string"],
    [{ scope: ["a", 7] }, "scope[1] must be a string"],
    [{ clientSecret: "unit-canary-secret-9\n" }, "clientSecret has leading or trailing whitespace"],
  ];
  for (const [bad, message] of cases) {
    const error = (() => {
      try {
        createTokenClient({ ...ok, ...bad } as unknown as TokenClientOptions);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof TokenError && error.code === "config", JSON.stringify(bad));
    assert.ok(error.message.includes(message), `${error.message} (expected ${message})`);
    assert.ok(!error.message.includes("canary"), error.message);
  }
});

Deno.test("every documented option is accepted", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // The key options (tests/key_auth_test.ts has them) exclude a client
    // secret, as clientAssertion (deno/credential_test.ts) does; issuer
    // (tests/discovery_test.ts) stands in for tokenUrl.
    type KeyOption =
      | "issuer"
      | "clientAssertion"
      | "privateKey"
      | "keyId"
      | "signingAlgorithm"
      | "assertionAudience"
      | "x5tS256"
      | "certificate"
      | "clientCertificate";
    const every: Required<Omit<TokenClientOptions, KeyOption>> = {
      tokenUrl: "https://login.example.com/oauth/token",
      clientId: "id",
      clientSecret: "secret",
      authMethod: "client_secret_post",
      scope: ["a", "b"],
      audience: "api",
      resource: ["https://api.example.com"],
      extraParams: { tenant: "t1" },
      baseUrl: "https://api.example.com",
      allowedOrigins: ["https://files.example.com"],
      kv,
      kvPrefix: ["app", "tokens"],
      encryptionKey: btoa(String.fromCharCode(...new Uint8Array(32))),
      fetch,
      now: Date.now,
      timeoutMs: 5000,
      retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 1000, deadlineMs: 5000 },
      refreshAheadSeconds: 60,
      poolSize: 2,
      onEvent: () => {},
    };
    const client = createTokenClient(every);
    assert.equal(client.status().hasToken, false);
    await client.invalidate(); // waits for the KV store, which the client opens in the background
  } finally {
    kv.close();
  }
});

Deno.test("logging a token, a client or an error never shows the token or the secret", async () => {
  await withClient({}, async ({ client, events }) => {
    const token = await client.getToken();
    const failing = createTokenClient({
      tokenUrl: "http://127.0.0.1:9/oauth/token",
      clientId: "app",
      clientSecret: SECRET,
      retry: { maxAttempts: 1 },
    });
    const error = await failing.getToken().catch((e) => e);
    assert.equal(error.code, "network");
    const shown = [
      Deno.inspect(token),
      Deno.inspect(client),
      Deno.inspect(failing),
      Deno.inspect(error),
      Deno.inspect(client.status()),
      JSON.stringify(token),
      JSON.stringify(client),
      JSON.stringify(error),
      JSON.stringify(events),
      String(error),
      error.stack,
    ].join("\n");
    assert.ok(!shown.includes(SECRET), "secret leaked");
    assert.ok(!shown.includes(token.accessToken), "token leaked");
    assert.match(Deno.inspect(token), /accessToken: \[redacted\]/);
    assert.match(JSON.stringify(token), /"accessToken":"\[redacted\]"/);
    assert.equal(token.accessToken.length > 0, true);
  });
});

Deno.test("every error says where: the endpoint's origin (never its path or query) and the client id", async () => {
  const client = createTokenClient({
    tokenUrl: "https://login.example.com:8443/oauth/token?tenant=t1",
    clientId: "7f3c-where",
    clientSecret: SECRET,
    fetch: () => Promise.resolve(new Response('{"error":"invalid_client"}', { status: 401 })),
  });
  const where = "from https://login.example.com:8443 for client 7f3c-where: ";
  const failed = await client.getToken().catch((e: TokenError) => e);
  assert.ok(failed instanceof TokenError);
  assert.ok(failed.message.startsWith(`invalid_client (HTTP 401) ${where}`), failed.message);
  assert.ok(!failed.message.includes("oauth/token") && !failed.message.includes("tenant"));
  assert.ok(client.status().lastError?.message.includes(where), "status().lastError");
  const controller = new AbortController();
  controller.abort();
  const aborted = await client.getToken({ signal: controller.signal }).catch((e: TokenError) => e);
  assert.ok(aborted instanceof TokenError && aborted.code === "aborted");
  assert.ok(aborted.message.startsWith(`aborted ${where}`), aborted.message);
});

Deno.test("invalidate() and a 401 delete the stored token: the delete the core names is performed", async () => {
  const kv = await Deno.openKv(":memory:");
  let refuse = false;
  const fetch = (input: RequestInfo | URL, init?: RequestInit) =>
    refuse && new Request(input, init).url.endsWith("/oauth/token")
      ? Promise.resolve(new Response("{}", { status: 503 }))
      : globalThis.fetch(input, init);
  const stored = async () => {
    const entries = [];
    for await (const entry of kv.list({ prefix: ["freshtoken", "token"] })) entries.push(entry);
    return entries.length;
  };
  try {
    await withClient(
      { kv, fetch, now: Date.now, retry: { maxAttempts: 1 } },
      async ({ client, server }) => {
        await client.getToken();
        assert.equal(await stored(), 1);
        await client.invalidate();
        assert.equal(await stored(), 0);

        await client.getToken();
        assert.equal(await stored(), 1);
        server.revokeAll();
        refuse = true; // no new token: what is left in KV is what the 401 left
        const api = `${server.baseUrl}/api/v2/organizations/me`;
        await assert.rejects(client.fetch(api), TokenError);
        assert.equal(await stored(), 0);
      },
    );
  } finally {
    kv.close();
  }
});
