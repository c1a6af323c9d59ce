import assert from "node:assert/strict";
import { clientOptionsFromEnv, createTokenClient, TokenError } from "./mod.ts";
import type { TokenEvent } from "./mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const OLD = "rotation-canary-secret-old";
const NEW = "rotation-canary-secret-new";
const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));

/** A function that gives `values` one by one (the last one from then on), counting its calls. */
function secrets(...values: string[]): { fn: () => Promise<string>; calls: number } {
  const counter = {
    calls: 0,
    fn: () => Promise.resolve(values[Math.min(counter.calls++, values.length - 1)]),
  };
  return counter;
}

Deno.test("a clientSecret function is asked for every token request", async () => {
  const server = startGenesysLike({ clients: { app: OLD } });
  try {
    const secret = secrets(OLD);
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: "app",
      clientSecret: secret.fn,
    });
    await client.getToken();
    await client.getToken(); // from memory: no request, no call
    assert.equal(secret.calls, 1);
    await client.refresh();
    await client.refresh();
    assert.equal(secret.calls, 3);
    assert.equal(server.stats.tokenRequests, 3);
  } finally {
    await server.close();
  }
});

Deno.test("a secret rotated at the server is read again after invalid_client and the request succeeds", async () => {
  const clients = { app: NEW }; // the server already takes the new secret only
  const server = startGenesysLike({ clients });
  try {
    const secret = secrets(OLD, NEW); // the file still held the old one at the first read
    const events: TokenEvent[] = [];
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: "app",
      clientSecret: secret.fn,
      onEvent: (e) => events.push(e),
    });
    const token = await client.getToken();
    assert.ok(token.accessToken.startsWith("canary-token-"));
    assert.equal(secret.calls, 2);
    assert.equal(server.stats.tokenRequests, 2);
    assert.deepEqual(events.map((e) => e.type), [
      "fetch_start",
      "fetch_error",
      "retry",
      "fetch_ok",
    ]);
    const retry = events.find((e) => e.type === "retry") as { delayMs: number };
    assert.equal(retry.delayMs, 0);
  } finally {
    await server.close();
  }
});

Deno.test("an unchanged secret after invalid_client fails with invalid_client, one request sent", async () => {
  const server = startGenesysLike({ clients: { app: NEW } });
  try {
    const secret = secrets(OLD);
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: "app",
      clientSecret: secret.fn,
    });
    const error = await client.getToken().catch((e) => e);
    assert.ok(error instanceof TokenError);
    assert.equal(error.code, "invalid_client");
    assert.ok(!error.message.includes(OLD));
    assert.equal(secret.calls, 2, "read once more after the refusal");
    assert.equal(server.stats.tokenRequests, 1);
  } finally {
    await server.close();
  }
});

Deno.test("a clientSecret function that throws, gives no string or hangs fails with a config error", async () => {
  const server = startGenesysLike({ clients: { app: OLD } });
  try {
    const cases: [() => unknown, string][] = [
      [() => {
        throw new Error(`cannot read ${OLD}`);
      }, "clientSecret gave no credential"],
      [() => 42, "clientSecret gave no credential"],
      [() => new Promise(() => {}), "clientSecret gave no credential"],
      [() => `${OLD}\n`, "leading or trailing whitespace"],
    ];
    for (const [fn, expected] of cases) {
      const client = createTokenClient({
        tokenUrl: server.tokenUrl,
        clientId: "app",
        clientSecret: fn as () => string,
        timeoutMs: 200,
        retry: { deadlineMs: 1000 },
      });
      const started = performance.now();
      const error = await client.getToken().catch((e) => e);
      assert.ok(error instanceof TokenError);
      assert.equal(error.code, "config");
      assert.ok(error.message.includes(expected), error.message);
      assert.ok(!error.message.includes(OLD));
      assert.ok(performance.now() - started < 2000, "bounded by timeoutMs");
    }
    assert.equal(server.stats.tokenRequests, 0);
  } finally {
    await server.close();
  }
});

Deno.test("with KV the stored token follows the secret: a new secret is a new entry", async () => {
  const clients = { app: OLD };
  const server = startGenesysLike({ clients });
  const kv = await Deno.openKv(":memory:");
  try {
    const options = { tokenUrl: server.tokenUrl, clientId: "app", kv, encryptionKey: KEY };
    const first = createTokenClient({ ...options, clientSecret: secrets(OLD).fn });
    await first.getToken();
    assert.equal(server.stats.tokenRequests, 1);
    // Another isolate on the same secret, as a function or as a string: the same entry.
    const same = secrets(OLD);
    await createTokenClient({ ...options, clientSecret: same.fn }).getToken();
    await createTokenClient({ ...options, clientSecret: OLD }).getToken();
    assert.equal(server.stats.tokenRequests, 1);
    assert.equal(same.calls, 1, "a KV hit asks for the secret once, to name the entry");
    // The secret rotates at the server. An isolate still on the old secret
    // keeps serving the old entry's token, still valid; the first isolate
    // to read the new secret gets a token of its own, which the others
    // that read it share.
    clients.app = NEW;
    await createTokenClient({ ...options, clientSecret: secrets(OLD).fn }).getToken();
    assert.equal(server.stats.tokenRequests, 1);
    await createTokenClient({ ...options, clientSecret: secrets(NEW).fn }).getToken();
    await createTokenClient({ ...options, clientSecret: secrets(NEW).fn }).getToken();
    assert.equal(server.stats.tokenRequests, 2);
    // An isolate whose secret changes under it moves to the new entry at its next acquisition.
    const moving = secrets(OLD, NEW);
    const client = createTokenClient({ ...options, clientSecret: moving.fn });
    await client.getToken(); // the old entry
    await client.refresh(); // reads NEW to name the entry: takes the new entry's token
    assert.equal(server.stats.tokenRequests, 2);
  } finally {
    kv.close();
    await server.close();
  }
});

Deno.test("a client secret living in a closure rotates across an acquisition's retries too", async () => {
  // The secret changes while a request is refused for another reason (a 503
  // from a server that rotates): the retry reads it again.
  let current = OLD;
  let calls = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    calls++;
    await r.text();
    if (calls === 1) {
      current = NEW;
      return new Response("busy", { status: 503 });
    }
    const basic = r.headers.get("authorization") ?? "";
    const ok = atob(basic.slice(6)) === `app:${NEW}`;
    return ok
      ? Response.json({ access_token: "canary-token-0a", token_type: "Bearer", expires_in: 60 })
      : Response.json({ error: "invalid_client" }, { status: 401 });
  });
  try {
    const client = createTokenClient({
      tokenUrl: `http://127.0.0.1:${server.addr.port}/token`,
      clientId: "app",
      clientSecret: () => current,
      retry: { baseDelayMs: 1, maxDelayMs: 1 },
    });
    await client.getToken();
    assert.equal(calls, 2);
  } finally {
    await server.shutdown();
  }
});

/** A token endpoint that takes one client assertion (a JWT from elsewhere), counting requests. */
function assertionServer(accepted: () => string) {
  const seen = { requests: 0, forms: [] as URLSearchParams[] };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    seen.requests++;
    const form = new URLSearchParams(await r.text());
    seen.forms.push(form);
    const typeOk = form.get("client_assertion_type") ===
      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    if (!typeOk || form.get("client_assertion") !== accepted() || r.headers.has("authorization")) {
      return Response.json({ error: "invalid_client" }, { status: 401 });
    }
    const token = `canary-token-${crypto.randomUUID().replaceAll("-", "")}`;
    return Response.json({ access_token: token, token_type: "Bearer", expires_in: 3600 });
  });
  return {
    seen,
    tokenUrl: `http://127.0.0.1:${server.addr.port}/oauth2/v2.0/token`,
    close: () => server.shutdown(),
  };
}

/** A JWT-shaped canary: three base64url parts. */
const ASSERTION = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhc3NlcnRpb24tY2FuYXJ5LXNlY3JldCJ9.c2ln";

Deno.test("clientAssertion is sent as an RFC 7523 client assertion on every token request", async () => {
  const server = assertionServer(() => ASSERTION);
  try {
    let calls = 0;
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: "app",
      clientAssertion: () => {
        calls++;
        return Promise.resolve(ASSERTION);
      },
    });
    await client.getToken();
    await client.getToken();
    await client.refresh();
    assert.equal(calls, 2);
    assert.equal(server.seen.requests, 2);
    assert.equal(server.seen.forms[0].get("client_id"), "app");
    assert.equal(server.seen.forms[0].get("grant_type"), "client_credentials");
    const shown = [Deno.inspect(client), JSON.stringify(client), JSON.stringify(client.status())];
    for (const text of shown) assert.ok(!text.includes(ASSERTION), text);
  } finally {
    await server.close();
  }
});

Deno.test("a refused assertion is an invalid_client error that never shows the assertion", async () => {
  const server = assertionServer(() => "another.jwt.value");
  try {
    const events: TokenEvent[] = [];
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: "app",
      clientAssertion: () => ASSERTION,
      onEvent: (e) => events.push(e),
    });
    const error = await client.getToken().catch((e) => e);
    assert.equal(error.code, "invalid_client");
    assert.equal(server.seen.requests, 1, "an assertion is not read again for rotation");
    for (const text of [error.message, Deno.inspect(error), JSON.stringify(events)]) {
      assert.ok(!text.includes(ASSERTION));
    }
  } finally {
    await server.close();
  }
});

Deno.test("a cold isolate takes the KV token without calling clientAssertion", async () => {
  const server = assertionServer(() => ASSERTION);
  const kv = await Deno.openKv(":memory:");
  try {
    const options = { tokenUrl: server.tokenUrl, clientId: "app", kv, encryptionKey: KEY };
    await createTokenClient({ ...options, clientAssertion: () => ASSERTION }).getToken();
    let called = 0;
    const cold = createTokenClient({
      ...options,
      clientAssertion: () => {
        called++;
        return ASSERTION;
      },
    });
    await cold.getToken();
    assert.equal(called, 0, "no call to the assertion's issuer on a KV hit");
    assert.equal(server.seen.requests, 1);
    // A client with a secret under the same client id names another entry.
    const secretClient = createTokenClient({ ...options, clientSecret: OLD });
    await secretClient.getToken().catch(() => {});
    assert.equal(server.seen.requests, 2);
  } finally {
    kv.close();
    await server.close();
  }
});

Deno.test("clientAssertion refuses what it cannot go with, naming options, never values", () => {
  const base = { tokenUrl: "https://login.example.com/token", clientId: "app" };
  const cases: [Record<string, unknown>, string][] = [
    [{ clientAssertion: ASSERTION }, "clientAssertion must be a function"],
    [{ clientAssertion: () => "", clientSecret: OLD }, "leave clientSecret out"],
    [{ clientAssertion: () => "", authMethod: "client_secret_basic" }, "leave authMethod out"],
    [{ clientSecret: () => OLD, authMethod: "client_secret_jwt" }, "clientSecret as a function"],
  ];
  for (const [extra, expected] of cases) {
    const error = (() => {
      try {
        createTokenClient({ ...base, ...extra } as never);
      } catch (e) {
        return e as TokenError;
      }
    })();
    assert.ok(error instanceof TokenError, JSON.stringify(expected));
    assert.equal(error.code, "config");
    assert.ok(error.message.includes(expected), error.message);
    assert.ok(!error.message.includes(ASSERTION) && !error.message.includes(OLD));
  }
});

Deno.test("clientOptionsFromEnv reads FRESHTOKEN_CLIENT_SECRET_FILE again for every token request", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/secret`;
  await Deno.writeTextFile(file, `${OLD}\n`);
  const clients = { app: OLD };
  const server = startGenesysLike({ clients });
  try {
    const [options] = clientOptionsFromEnv({
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET_FILE: file,
    });
    const client = createTokenClient(options);
    await client.getToken();
    await Deno.writeTextFile(file, NEW);
    clients.app = NEW;
    await client.refresh();
    assert.equal(server.stats.tokensIssued, 2);
    assert.throws(
      () =>
        clientOptionsFromEnv({
          FRESHTOKEN_TOKEN_URL: server.tokenUrl,
          FRESHTOKEN_CLIENT_ID: "app",
          FRESHTOKEN_CLIENT_SECRET: OLD,
          FRESHTOKEN_CLIENT_SECRET_FILE: file,
        }),
      /set one of FRESHTOKEN_CLIENT_SECRET and FRESHTOKEN_CLIENT_SECRET_FILE/,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
