// examples/deploy runs under `deno serve`, as Deno Deploy runs it, and
// answers with a token from the local Genesys-like server.

import assert from "node:assert/strict";
import { freePort } from "./_processes.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const EXAMPLE = new URL("../examples/deploy/", import.meta.url).pathname;

Deno.test("the Deno Deploy example serves a request with a token from the token server", async () => {
  const server = startGenesysLike({ clients: { "deploy-app": "deploy-canary-secret-4" } });
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "main.ts",
    ],
    cwd: EXAMPLE,
    env: {
      // Deno's hook that fires the example's refresh job at once: it and the handler share one token.
      DENO_CRON_TEST_SCHEDULE_OFFSET: "1",
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_API_URL: server.baseUrl,
      FRESHTOKEN_CLIENT_ID: "deploy-app",
      FRESHTOKEN_CLIENT_SECRET: "deploy-canary-secret-4",
      FRESHTOKEN_ENCRYPTION_KEY: btoa(
        String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))),
      ),
      FRESHTOKEN_KV: `${dir}/deploy.sqlite`,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let log = "";
  const logging = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) log += text;
  })();
  try {
    let response: Response | undefined;
    for (let i = 0; i < 200 && response === undefined; i++) {
      response = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      if (response === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(response, "the example never started");
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.status, 200);
    assert.equal(body.organization, "Loopback Org");
    assert.ok(body.token.expiresAt > Date.now());
    // A second request reuses the token.
    await (await fetch(`http://127.0.0.1:${port}/`)).body?.cancel();
    for (let i = 0; i < 100 && !log.includes("freshtoken cron: deploy-app"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(
      log,
      /freshtoken cron: deploy-app at http:\/\/127\.0\.0\.1:\d+: (refreshed|fresh)/,
    );
    assert.equal(server.stats.tokensIssued, 1);
    assert.equal(server.stats.api401, 0);
  } finally {
    // SIGTERM makes `deno serve` wait for idle keep-alive connections (ours) to close.
    child.kill("SIGKILL");
    await child.status;
    await logging;
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
