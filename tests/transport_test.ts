// The token request's transport rules (src/wasm/http.rs), against real
// loopback servers: no redirects, a 1 MiB cap on the delivered body (after
// the host decompresses it) whatever the headers say, a timeout that covers
// a slow body, and clear errors for answers that are not token responses.

import assert from "node:assert/strict";
import { createTokenClient, TokenError } from "../deno/mod.ts";
import { startFaultServer } from "./servers/fault_server.ts";

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
    release();
    assert.equal(error.code, "timeout");
    assert.equal(error.retryable, true);
    // The message says how long it waited, so a front end needs no copy of the setting.
    assert.match(error.message, /the token endpoint did not answer within 300 ms$/);
    assert.ok(took >= 290 && took < 2000, `took ${took} ms`);
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

/** `size` zero bytes, gzip-compressed without ever holding them all. */
async function gzipBomb(size: number): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new Uint8Array(1 << 20);
  let left = size;
  const zeros = new ReadableStream<BufferSource>({
    pull(c) {
      if (left <= 0) return c.close();
      c.enqueue(chunk);
      left -= chunk.length;
    },
  });
  return new Uint8Array(
    await new Response(zeros.pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

Deno.test("a small gzip body that inflates to 256 MiB is refused after 1 MiB, and memory barely moves", async () => {
  const bomb = await gzipBomb(256 << 20);
  assert.ok(bomb.length < 1 << 20, `the bomb itself is ${bomb.length} bytes`);
  await withServer(
    () => new Response(bomb, { headers: { "content-encoding": "gzip" } }),
    async (url) => {
      const before = Deno.memoryUsage().rss;
      const error = await failure(url);
      const grown = (Deno.memoryUsage().rss - before) / (1 << 20);
      assert.equal(error.code, "invalid_response");
      assert.match(error.message, /1 MiB/);
      assert.ok(grown < 64, `resident memory grew ${grown.toFixed(0)} MiB`);
    },
  );
});

/** What a client makes of `text`, sent verbatim as the whole HTTP response. */
async function rawAnswer(text: string): Promise<string> {
  const server = startFaultServer(() => ({ kind: "raw", text }));
  try {
    const token = await client(server.tokenUrl, { timeoutMs: 1_000 }).getToken();
    return `token ${token.accessToken}`;
  } catch (error) {
    assert.ok(error instanceof TokenError, String(error));
    return `${error.code}: ${error.message}`;
  } finally {
    await server.close();
  }
}

const BODY = JSON.stringify({ access_token: "canary-token-framing", expires_in: 60 });
const CHUNKED = `${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`;

Deno.test("Content-Length beside Transfer-Encoding: chunked: the chunks frame the body (RFC 9112 §6.3)", async () => {
  const both = (length: number) =>
    `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\nTransfer-Encoding: chunked\r\n` +
    `Connection: close\r\n\r\n${CHUNKED}`;
  assert.equal(await rawAnswer(both(5)), "token canary-token-framing");
  // A declared length over 1 MiB is refused unread, whatever else frames the body.
  assert.match(await rawAnswer(both(5_000_000)), /^invalid_response: .*1 MiB/);
});

Deno.test("a duplicated Content-Length is read when the copies agree and refused when they do not", async () => {
  const twice = (a: number, b: number, body = BODY) =>
    `HTTP/1.1 200 OK\r\nContent-Length: ${a}\r\nContent-Length: ${b}\r\n` +
    `Connection: close\r\n\r\n${body}`;
  assert.equal(await rawAnswer(twice(BODY.length, BODY.length)), "token canary-token-framing");
  assert.match(await rawAnswer(twice(5, BODY.length)), /^network: /);
  assert.match(await rawAnswer(twice(2_000_000, 2_000_000)), /^invalid_response: .*1 MiB/);
});
