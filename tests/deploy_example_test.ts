// examples/deploy runs under `deno run` with no --unstable-* flag on the
// command line, as today's Deno Deploy runs an entry module: it registers
// its refresh job during module evaluation, before it serves, and answers
// with a token from the local Genesys-like server.

import assert from "node:assert/strict";
import { freePort } from "./_processes.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const EXAMPLE = new URL("../examples/deploy/", import.meta.url).pathname;
const ORDER = new URL("./_deploy_order_preload.ts", import.meta.url).pathname;

/** A random base64 AES-256 key. */
function encryptionKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

/** The example as Deploy starts it, in its folder, with only `env` set; its stdout as it comes. */
function startExample(env: Record<string, string>, preload: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...preload.flatMap((path) => ["--preload", path]),
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "main.ts",
    ],
    cwd: EXAMPLE,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let log = "";
  const logging = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) log += text;
  })();
  return {
    log: () => log,
    /** Waits up to `ms` for `pattern` in its stdout. */
    async waitFor(pattern: RegExp, ms = 10_000): Promise<void> {
      for (let waited = 0; waited < ms && !pattern.test(log); waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(): Promise<void> {
      // SIGTERM makes the server wait for idle keep-alive connections (ours) to close.
      child.kill("SIGKILL");
      await child.status;
      await logging;
    },
  };
}

Deno.test("the Deno Deploy example registers its refresh job during module evaluation, before Deno.serve", async () => {
  const dir = await Deno.makeTempDir();
  const example = startExample({
    PORT: String(freePort()),
    FRESHTOKEN_TOKEN_URL: "http://127.0.0.1:9/token", // never asked: nothing is due yet
    FRESHTOKEN_API_URL: "http://127.0.0.1:9",
    FRESHTOKEN_CLIENT_ID: "deploy-app",
    FRESHTOKEN_CLIENT_SECRET: "deploy-canary-secret-5",
    FRESHTOKEN_ENCRYPTION_KEY: encryptionKey(),
    FRESHTOKEN_KV: `${dir}/deploy.sqlite`,
  }, [ORDER]);
  try {
    await example.waitFor(/order: evaluated/);
    const order = example.log().split("\n").flatMap((line) =>
      line.startsWith("order: ") ? [line.slice("order: ".length)] : []
    );
    assert.deepEqual(
      order.map((step) => step.startsWith("cron freshtoken refresh") ? "cron" : step),
      ["cron", "serve", "evaluated"],
      example.log(),
    );
  } finally {
    await example.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Deno Deploy example serves a request with a token from the token server", async () => {
  const server = startGenesysLike({ clients: { "deploy-app": "deploy-canary-secret-4" } });
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const example = startExample({
    PORT: String(port),
    // Deno's hook that fires the example's refresh job at once: it and the handler share one token.
    DENO_CRON_TEST_SCHEDULE_OFFSET: "1",
    FRESHTOKEN_TOKEN_URL: server.tokenUrl,
    FRESHTOKEN_API_URL: server.baseUrl,
    FRESHTOKEN_CLIENT_ID: "deploy-app",
    FRESHTOKEN_CLIENT_SECRET: "deploy-canary-secret-4",
    FRESHTOKEN_ENCRYPTION_KEY: encryptionKey(),
    FRESHTOKEN_KV: `${dir}/deploy.sqlite`,
  });
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
    await example.waitFor(/freshtoken cron: deploy-app/, 5_000);
    assert.match(
      example.log(),
      /freshtoken cron: deploy-app at http:\/\/127\.0\.0\.1:\d+: (refreshed|fresh)/,
    );
    assert.equal(server.stats.tokensIssued, 1);
    assert.equal(server.stats.api401, 0);
  } finally {
    await example.stop();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
