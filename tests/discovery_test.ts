// Discovery from an issuer (RFC 8414, OpenID Connect discovery): against
// oidc-provider's real metadata, and against servers that lie about it.

import assert from "node:assert/strict";
import { createTokenClient, type TokenClientOptions, TokenError } from "../deno/mod.ts";
import { metadataKey } from "../deno/kv_store.ts";
import { ALL_PERMISSIONS, runCli } from "./_cli.ts";
import { kvIdOf, serve, withKv } from "./_loopback.ts";
import { type OidcServer, type SecretClient, startOidcServer } from "./_oidc.ts";

const BASIC: SecretClient = {
  client_id: "discovering-client",
  client_secret: "discovery-canary-secret-1",
};
const POST: SecretClient = {
  client_id: "discovering-post",
  client_secret: "discovery-canary-secret-2",
  token_endpoint_auth_method: "client_secret_post",
};
const RESOURCE: SecretClient = { client_id: "rs", client_secret: "rs-canary-secret-3" };

async function withServer(fn: (server: OidcServer) => Promise<void>): Promise<void> {
  const server = await startOidcServer([BASIC, POST, RESOURCE]);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** The oidc-provider server, a KV, and the options of BASIC by issuer with that KV. */
async function withIssuerAndKv(
  fn: (server: OidcServer, options: TokenClientOptions & { kv: Deno.Kv }) => Promise<void>,
): Promise<void> {
  await withServer((server) =>
    withKv((kv) =>
      fn(server, {
        issuer: server.issuer,
        clientId: BASIC.client_id,
        clientSecret: BASIC.client_secret,
        kv,
      })
    )
  );
}

/**
 * A second loopback server, where a lie would send the credential, for the
 * length of `fn`; resolves to the number of requests that reached it.
 */
async function withThief(fn: (elsewhere: string) => Promise<void>): Promise<number> {
  let stolen = 0;
  await serve(() => {
    stolen++;
    return Response.json({ access_token: "stolen", token_type: "Bearer", expires_in: 60 });
  }, fn);
  return stolen;
}

/** A fetch that counts the requests to each path, then sends them on. */
function counting(): { fetch: typeof fetch; paths: string[] } {
  const paths: string[] = [];
  return {
    paths,
    fetch: (input, init) => {
      const request = new Request(input, init);
      paths.push(`${request.method} ${new URL(request.url).pathname}`);
      return fetch(request);
    },
  };
}

/** An error `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<TokenError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TokenError, String(error));
    return error;
  }
  assert.fail("expected a TokenError");
}

Deno.test("an issuer's real metadata names the endpoint, read once for many token requests", async () => {
  await withServer(async (server) => {
    for (const c of [BASIC, POST]) {
      const { fetch, paths } = counting();
      const client = createTokenClient({
        issuer: server.issuer,
        clientId: c.client_id,
        clientSecret: c.client_secret,
        authMethod: c.token_endpoint_auth_method,
        fetch,
      });
      const token = await client.getToken();
      const info = await server.introspect(token.accessToken, RESOURCE);
      assert.equal(info.active, true);
      assert.equal(info.client_id, c.client_id);
      await client.refresh();
      await client.refresh();
      assert.deepEqual(paths, [
        "GET /.well-known/openid-configuration",
        "POST /token",
        "POST /token",
        "POST /token",
      ]);
    }
    assert.equal(await server.metadataRequests(), 2);
  });
});

Deno.test("an authMethod the issuer does not list fails the first getToken, unsent", async () => {
  const asked: string[] = [];
  await serve((request) => {
    const url = new URL(request.url);
    asked.push(`${request.method} ${url.pathname}`);
    return Response.json({
      issuer: url.origin,
      token_endpoint: `${url.origin}/token`,
      token_endpoint_auth_methods_supported: [
        "private_key_jwt",
        "x-unheard-of",
        "client_secret_post",
      ],
    });
  }, async (origin) => {
    // No authMethod: client_secret_basic, which this issuer does not list; it is not swapped.
    const client = createTokenClient({
      issuer: origin,
      clientId: "id",
      clientSecret: "unlisted-method-secret",
    });
    const error = await failure(client.getToken());
    assert.equal(error.code, "config");
    assert.match(
      error.message,
      /authMethod client_secret_basic is not among the issuer's token_endpoint_auth_methods_supported \(it lists client_secret_post, private_key_jwt; set authMethod\)/,
    );
  });
  assert.deepEqual(asked, ["GET /.well-known/openid-configuration"]);
});

Deno.test("the KV id names the configured issuer; errors name the discovered endpoint", async () => {
  await withKv(async (kv) => {
    // The endpoint on another origin than the issuer: localhost, not 127.0.0.1.
    const endpoint = (origin: string) =>
      `${origin.replace("127.0.0.1", "localhost")}/elsewhere/token`;
    const metadata = (origin: string) => ({
      issuer: `${origin}/tenant`,
      token_endpoint: endpoint(origin),
    });
    await serve((request) => {
      const path = new URL(request.url).pathname;
      const origin = new URL(request.url).origin;
      if (path === "/tenant/.well-known/openid-configuration") {
        return Response.json(metadata(origin));
      }
      return Response.json({ error: "invalid_client" }, { status: 401 });
    }, async (origin) => {
      const options = {
        clientId: "id",
        clientSecret: "kv-id-canary-secret",
        kv,
        retry: { maxAttempts: 1 },
      };
      const byIssuer = createTokenClient({ issuer: `${origin}/tenant`, ...options });
      const before = await kvIdOf(byIssuer);
      const error = await failure(byIssuer.getToken());
      assert.equal(error.code, "invalid_client");
      const endpointOrigin = new URL(endpoint(origin)).origin;
      assert.match(error.message, new RegExp(`from ${endpointOrigin} for client id`));
      assert.equal(await kvIdOf(byIssuer), before);
      const byUrl = createTokenClient({ tokenUrl: endpoint(origin), ...options });
      assert.notEqual(await kvIdOf(byUrl), before);
    });
  });
});

Deno.test("an issuer not written as a URL parser writes it is a config error at creation", () => {
  for (const issuer of ["https://Auth.example.com", "https://auth.example.com/a/../b"]) {
    assert.throws(
      () => createTokenClient({ issuer, clientId: "id", clientSecret: "s" }),
      (e: unknown) =>
        e instanceof TokenError && e.code === "config" &&
        e.message.includes("issuer must be written as a URL parser writes it"),
      issuer,
    );
  }
});

Deno.test("RFC 8414's location is asked when OpenID Connect's has nothing", async () => {
  const paths: string[] = [];
  await serve((request) => {
    const url = new URL(request.url);
    paths.push(`${request.method} ${url.pathname}`);
    // The issuer is configured with a terminating "/", which the locations drop (RFC 8414 §3.1).
    if (url.pathname === "/.well-known/oauth-authorization-server/t1") {
      return Response.json({
        issuer: `${url.origin}/t1/`,
        token_endpoint: `${url.origin}/t1/token`,
      });
    }
    if (url.pathname === "/t1/token") {
      return Response.json({ access_token: "tok-8414", token_type: "Bearer", expires_in: 60 });
    }
    return new Response("not found", { status: 404 });
  }, async (origin) => {
    const client = createTokenClient({
      issuer: `${origin}/t1/`,
      clientId: "id",
      clientSecret: "s",
    });
    assert.equal((await client.getToken()).accessToken, "tok-8414");
  });
  assert.deepEqual(paths, [
    "GET /t1/.well-known/openid-configuration",
    "GET /.well-known/oauth-authorization-server/t1",
    "POST /t1/token",
  ]);
});

Deno.test("a lying or broken issuer never gets the credential sent anywhere", async () => {
  const secret = "lying-issuer-canary-secret";
  const stolen = await withThief(async (elsewhere) => {
    const lies: [string, (origin: string) => Response | Promise<Response>, RegExp][] = [
      [
        "another issuer",
        () => Response.json({ issuer: elsewhere, token_endpoint: `${elsewhere}/token` }),
        /config.*names another issuer/,
      ],
      [
        "the issuer with a trailing slash",
        (origin) => Response.json({ issuer: `${origin}/`, token_endpoint: `${elsewhere}/t` }),
        /config.*names another issuer/,
      ],
      [
        "an http: endpoint off loopback",
        (origin) => Response.json({ issuer: origin, token_endpoint: "http://evil.example/token" }),
        /config.*token_endpoint must use https:/,
      ],
      [
        "a credential-like query on the endpoint",
        (origin) => Response.json({ issuer: origin, token_endpoint: `${elsewhere}/t?api_key=1` }),
        /config.*token_endpoint must not carry a credential/,
      ],
      [
        "a redirect to its own metadata elsewhere",
        () => Response.redirect(`${elsewhere}/.well-known/openid-configuration`, 302),
        /invalid_response \(HTTP 302\).*redirect/,
      ],
      [
        "a document over 1 MiB",
        (origin) =>
          new Response(`{"issuer":"${origin}","pad":"${"x".repeat(1 << 20)}"}`, {
            headers: { "content-type": "application/json" },
          }),
        /invalid_response.*over 1 MiB/,
      ],
      [
        "not JSON",
        () => new Response("<html>login</html>"),
        /config.*publishes no metadata/,
      ],
      [
        "an issuer with no metadata",
        () => new Response("nothing", { status: 404 }),
        /config.*publishes no metadata/,
      ],
      [
        "a document echoing the secret",
        () => Response.json({ issuer: secret, token_endpoint: secret }),
        /config.*names another issuer/,
      ],
    ];
    for (const [name, lie, expected] of lies) {
      const asked: string[] = [];
      await serve((request) => {
        const url = new URL(request.url);
        asked.push(`${request.method} ${url.pathname}`);
        return lie(url.origin);
      }, async (origin) => {
        const client = createTokenClient({
          issuer: origin,
          clientId: "id",
          clientSecret: secret,
          retry: { maxAttempts: 1 },
        });
        const error = await failure(client.getToken());
        assert.match(error.message, expected, name);
        assert.ok(!JSON.stringify(error).includes(secret), name);
        assert.ok(!error.message.includes("evil.example"), name);
        assert.ok(asked.every((a) => a.startsWith("GET /.well-known/")), `${name}: ${asked}`);
      });
    }
  });
  assert.equal(stolen, 0);
});

Deno.test("an issuer that does not answer in time fails like a token request", async () => {
  // Answers a second after the client gave up (so that the server can shut down).
  const never = () =>
    new Promise<Response>((resolve) => setTimeout(() => resolve(new Response(null)), 1000));
  await serve(never, async (origin) => {
    const client = createTokenClient({
      issuer: origin,
      clientId: "id",
      clientSecret: "s",
      timeoutMs: 200,
      retry: { maxAttempts: 1 },
    });
    const error = await failure(client.getToken());
    assert.equal(error.code, "timeout");
  });
});

Deno.test("metadata is kept for its Cache-Control lifetime, and the old copy serves while the issuer is down", async () => {
  let now = Date.now();
  let metadataRequests = 0;
  let down = false;
  await serve((request) => {
    const url = new URL(request.url);
    if (url.pathname === "/.well-known/openid-configuration") {
      metadataRequests++;
      if (down) return new Response("down", { status: 503 });
      return Response.json({ issuer: url.origin, token_endpoint: `${url.origin}/token` }, {
        headers: { "cache-control": "public, max-age=600" },
      });
    }
    return Response.json({ access_token: `t${now}`, token_type: "Bearer", expires_in: 60 });
  }, async (origin) => {
    const client = createTokenClient({
      issuer: origin,
      clientId: "id",
      clientSecret: "s",
      now: () => now,
      retry: { maxAttempts: 1 },
    });
    await client.getToken();
    now += 300_000;
    await client.refresh();
    assert.equal(metadataRequests, 1, "within max-age: kept");
    now += 301_000;
    down = true;
    await client.refresh(); // past max-age: asked again, down, the old copy serves
    assert.equal(metadataRequests, 2);
    down = false;
    now += 1000;
    await client.refresh();
    assert.equal(metadataRequests, 3, "still past max-age: asked again");
  });
});

Deno.test("with KV a cold client serves the stored token without the metadata, and another takes its sealed copy", async () => {
  await withIssuerAndKv(async (server, options) => {
    const first = counting();
    const firstClient = createTokenClient({ ...options, fetch: first.fetch });
    await firstClient.getToken();
    assert.deepEqual(first.paths, ["GET /.well-known/openid-configuration", "POST /token"]);
    const cold = counting();
    await createTokenClient({ ...options, fetch: cold.fetch }).getToken();
    assert.deepEqual(cold.paths, [], "a stored token is served without any request");
    await firstClient.invalidate(); // the stored token goes; the metadata copy stays
    const refreshing = counting();
    await createTokenClient({ ...options, fetch: refreshing.fetch }).getToken();
    assert.deepEqual(refreshing.paths, ["POST /token"], "the KV copy of the metadata serves");
    assert.equal(await server.metadataRequests(), 1);
  });
});

Deno.test("a metadata copy planted in KV by another process is ignored", async () => {
  const stolen = await withThief(async (elsewhere) => {
    await withIssuerAndKv(async (server, options) => {
      const client = createTokenClient(options);
      await client.getToken();
      await client.invalidate(); // each client below must request a token
      const key = metadataKey(["freshtoken"], await kvIdOf(client));
      const stored = (await options.kv.get<{ v: number; copy: string; mac: string }>(key)).value!;
      assert.ok(stored.copy.includes(`${server.issuer}/token`));
      // A co-tenant rewrites the copy to send the next token request elsewhere.
      const forged = stored.copy.replace(`${server.issuer}/token`, `${elsewhere}/token`);
      for (const mac of [stored.mac, "AA=="]) {
        await options.kv.set(key, { ...stored, copy: forged, mac });
        const other = counting();
        const fooled = createTokenClient({ ...options, fetch: other.fetch });
        await fooled.getToken();
        await fooled.invalidate();
        assert.deepEqual(other.paths, ["GET /.well-known/openid-configuration", "POST /token"]);
      }
    });
  });
  assert.equal(stolen, 0);
});

Deno.test("the CLI takes --issuer and FRESHTOKEN_ISSUER", async () => {
  await withServer(async (server) => {
    const env = {
      FRESHTOKEN_CLIENT_ID: BASIC.client_id,
      FRESHTOKEN_CLIENT_SECRET: BASIC.client_secret,
    };
    const secrets = [BASIC.client_secret];
    const byFlag = await runCli(
      ALL_PERMISSIONS,
      ["token", "--issuer", server.issuer],
      env,
      secrets,
    );
    assert.equal(byFlag.code, 0, byFlag.stderr);
    const info = await server.introspect(byFlag.stdout.trim(), RESOURCE);
    assert.equal(info.client_id, BASIC.client_id);
    const byEnv = await runCli(ALL_PERMISSIONS, ["token"], {
      ...env,
      FRESHTOKEN_ISSUER: server.issuer,
    }, secrets);
    assert.equal(byEnv.code, 0, byEnv.stderr);
    const both = await runCli(
      ALL_PERMISSIONS,
      ["token", "--issuer", server.issuer, "--token-url", server.tokenUrl],
      env,
      secrets,
    );
    assert.equal(both.code, 2);
    assert.match(both.stderr, /choose one of --token-url and --issuer/);
    const bothEnv = await runCli(
      ALL_PERMISSIONS,
      ["token"],
      { ...env, FRESHTOKEN_ISSUER: server.issuer, FRESHTOKEN_TOKEN_URL: server.tokenUrl },
      secrets,
    );
    assert.equal(bothEnv.code, 2);
    assert.match(bothEnv.stderr, /FRESHTOKEN_TOKEN_URL and FRESHTOKEN_ISSUER are both set/);
  });
});
