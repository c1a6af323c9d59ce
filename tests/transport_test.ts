// The wasm binding's transport rules (SPEC §4), against real loopback
// servers: no redirects, a 1 MiB body cap, a timeout that covers a slow
// body, and clear errors for answers that are not token responses.

import assert from "node:assert/strict";
import { createTokenClient, TokenError } from "../deno/mod.ts";

type Handler = (request: Request) => Response | Promise<Response>;

async function withServer(handler: Handler, fn: (url: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

function client(tokenUrl: string, extra = {}) {
  return createTokenClient({
    tokenUrl,
    clientId: "id",
    clientSecret: "transport-canary-secret",
    retry: { maxAttempts: 1 },
    ...extra,
  });
}

async function failure(tokenUrl: string, extra = {}): Promise<TokenError> {
  const error = await client(tokenUrl, extra).getToken().then(() => undefined, (e) => e);
  assert.ok(error instanceof TokenError, `expected a TokenError, got ${error}`);
  return error;
}

Deno.test("a redirect is not followed and the second server never sees the credentials", async () => {
  let reached = 0;
  await withServer(() => {
    reached++;
    return Response.json({ access_token: "stolen", expires_in: 60 });
  }, async (elsewhere) => {
    await withServer(() => Response.redirect(`${elsewhere}/token`, 307), async (url) => {
      const error = await failure(`${url}/token`);
      assert.equal(error.code, "invalid_response");
      assert.equal(error.status, 307);
      assert.match(error.message, /redirect/);
    });
  });
  assert.equal(reached, 0);
});

Deno.test("a body over 1 MiB is refused, with or without Content-Length", async () => {
  const big = JSON.stringify({ access_token: "x".repeat(1024 * 1024), expires_in: 60 });
  await withServer(() => new Response(big), async (url) => {
    const error = await failure(url);
    assert.equal(error.code, "invalid_response");
    assert.match(error.message, /1 MiB/);
  });
  await withServer(() => {
    // Streamed in chunks with no declared length.
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    return new Response(
      new ReadableStream({
        pull(c) {
          if (sent++ < 40) c.enqueue(chunk);
          else c.close();
        },
      }),
    );
  }, async (url) => {
    assert.match((await failure(url)).message, /1 MiB/);
  });
});

Deno.test("a body just under 1 MiB is read", async () => {
  const token = "t".repeat(1024 * 1024 - 100);
  await withServer(() => Response.json({ access_token: token, expires_in: 60 }), async (url) => {
    assert.equal((await client(url).getToken()).accessToken.length, token.length);
  });
});

Deno.test("a server that never answers times out after timeoutMs", async () => {
  const hung: Promise<Response>[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  await withServer(() => {
    const never = gate.then(() => new Response("late"));
    hung.push(never);
    return never;
  }, async (url) => {
    const started = Date.now();
    const error = await failure(url, { timeoutMs: 300 });
    const took = Date.now() - started;
    assert.equal(error.code, "timeout");
    assert.equal(error.retryable, true);
    assert.ok(took >= 290 && took < 2000, `took ${took} ms`);
    release();
  });
});

/** Serves `text` one character per 50 ms; a client with a 400 ms timeout must give up. */
async function assertTrickleTimesOut(text: string, headers: HeadersInit): Promise<void> {
  let stop = false;
  await withServer(() => {
    let sent = 0;
    return new Response(
      new ReadableStream({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 50));
          if (stop || sent >= text.length) return c.close();
          c.enqueue(new TextEncoder().encode(text[sent++]));
        },
      }),
      { headers },
    );
  }, async (url) => {
    const error = await failure(url, { timeoutMs: 400 });
    assert.equal(error.code, "timeout");
    // Let the server's last pending chunk timer finish inside this test.
    stop = true;
    await new Promise((r) => setTimeout(r, 120));
  });
}

Deno.test("a body that trickles past the timeout times out", async () => {
  await assertTrickleTimesOut(" ".repeat(1000), { "content-type": "application/json" });
});

Deno.test("a body of declared length that trickles past the timeout times out", async () => {
  const text = JSON.stringify({ access_token: "abc", expires_in: 60 });
  await assertTrickleTimesOut(text, { "content-length": String(text.length) });
});

Deno.test("a body that is not UTF-8 is invalid_response, not a token with replacement characters", async () => {
  const json = new TextEncoder().encode('{"access_token":"ab?","expires_in":60}');
  json[json.indexOf("?".charCodeAt(0))] = 0xff; // a byte that never occurs in UTF-8
  // With a length (read at once) and streamed without one (read chunk by chunk).
  for (const streamed of [false, true]) {
    const body = () => streamed ? ReadableStream.from([json]) : json;
    await withServer(() => new Response(body()), async (url) => {
      const error = await failure(url);
      assert.equal(error.code, "invalid_response");
    });
  }
});

Deno.test("an HTML page or truncated JSON is invalid_response; a refused connection is network", async () => {
  await withServer(() => new Response("<html><body>Login</body></html>"), async (url) => {
    const error = await failure(url);
    assert.equal(error.code, "invalid_response");
    assert.equal(error.retryable, false);
  });
  await withServer(() => new Response('{"access_token":"abc","expires_in":'), async (url) => {
    assert.equal((await failure(url)).code, "invalid_response");
  });
  await withServer(
    () => new Response("<html>502 Bad Gateway</html>", { status: 502 }),
    async (url) => {
      const error = await failure(url);
      assert.equal(error.code, "server_error");
      assert.equal(error.status, 502);
      assert.equal(error.retryable, true);
    },
  );
  const refused = await failure("http://127.0.0.1:9/token");
  assert.equal(refused.code, "network");
  assert.equal(refused.retryable, true);
});

Deno.test("the token request is a form POST with Basic credentials and Accept: application/json", async () => {
  let seen: {
    method: string;
    type: string | null;
    accept: string | null;
    auth: string | null;
    body: string;
  } | undefined;
  await withServer(async (request) => {
    seen = {
      method: request.method,
      type: request.headers.get("content-type"),
      accept: request.headers.get("accept"),
      auth: request.headers.get("authorization"),
      body: await request.text(),
    };
    return Response.json({ access_token: "abc", token_type: "bearer", expires_in: 60 });
  }, async (url) => {
    await client(url, { scope: "a b", audience: "api", resource: ["r1", "r2"] }).getToken();
  });
  assert.deepEqual(seen, {
    method: "POST",
    type: "application/x-www-form-urlencoded",
    accept: "application/json",
    auth: `Basic ${btoa("id:transport-canary-secret")}`,
    body: "grant_type=client_credentials&scope=a+b&audience=api&resource=r1&resource=r2",
  });
});
