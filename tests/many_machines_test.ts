// Many machines, one token (docs/DESIGN.md, "Shared state"): processes
// that share nothing but a KV Connect endpoint — a self-hosted `denokv`
// server, as a Deno Deploy KV database's URL would be — and its access
// token, each in a folder of its own with an environment of its own: CLI
// runs, a CLI agent and library processes, tokens encrypted as the README's
// recipe has them; and what a wrong access token costs, at open and later.

import assert from "node:assert/strict";
import { createTokenClient, type TokenEvent } from "../deno/mod.ts";
import { startDenoKv } from "./_processes.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const CLI = new URL("../deno/cli.ts", import.meta.url).pathname;
const WORKER = new URL("./machine_worker.ts", import.meta.url).pathname;
const PERMISSIONS = [
  "--unstable-kv",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-read",
  "--allow-write",
];
const CLIENT = { id: "machines-app", secret: "machines-canary-secret-7" };

/** A random base64 AES-256 key. */
function encryptionKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

/** A process of its own: its own working folder, only `env` in its environment. */
function machine(script: string, args: string[], env: Record<string, string>, cwd: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, script, ...args],
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = (async () => {
    const [status, stdout, stderr] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    return { code: status.code, stdout, stderr };
  })();
  return { child, output };
}

/** A loopback token endpoint in front of the Genesys-like server that notes when each request came. */
function countingFront(tokenUrl: string) {
  const arrivals: number[] = [];
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    arrivals.push(Date.now());
    return await fetch(tokenUrl, { method: "POST", headers: req.headers, body: await req.text() });
  });
  return {
    tokenUrl: `http://127.0.0.1:${http.addr.port}/oauth/token`,
    arrivals,
    close: () => http.shutdown(),
  };
}

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

Deno.test("processes that share only a denokv URL and its access token make one token request per refresh window", async () => {
  const root = await Deno.makeTempDir();
  const denokv = await startDenoKv(root);
  const server = startGenesysLike({ clients: { [CLIENT.id]: CLIENT.secret }, lifetimeSeconds: 6 });
  const front = countingFront(server.tokenUrl);
  const key = encryptionKey();
  /** What each machine is given: the store's URL and access token, and the OAuth client's settings. */
  const env = () => ({
    FRESHTOKEN_TOKEN_URL: front.tokenUrl,
    FRESHTOKEN_CLIENT_ID: CLIENT.id,
    FRESHTOKEN_CLIENT_SECRET: CLIENT.secret,
    FRESHTOKEN_ENCRYPTION_KEY: key,
    DENO_KV_ACCESS_TOKEN: denokv.accessToken,
  });
  const folder = async (name: string) => {
    const path = `${root}/${name}`;
    await Deno.mkdir(path);
    return path;
  };
  try {
    const startAt = Date.now() + 3_000;
    const until = startAt + 15_000;
    const libraries = await Promise.all([1, 2, 3].map(async (n) =>
      machine(WORKER, [], {
        ...env(),
        FRESHTOKEN_KV: denokv.url,
        START_AT: String(startAt),
        LOOP_UNTIL: String(until),
      }, await folder(`library-${n}`))
    ));
    const agentFolder = await folder("agent");
    const agent = machine(
      CLI,
      ["agent", "--sink", `${agentFolder}/token`, "--kv", denokv.url],
      env(),
      agentFolder,
    );
    // CI steps on other runners: one `freshtoken token` every 2.5 s, each from a fresh folder.
    const steps = [];
    for (let at = startAt + 1_000, n = 1; at < until - 1_000; at += 2_500, n++) {
      await sleepUntil(at);
      steps.push(machine(CLI, ["token", "--kv", denokv.url], env(), await folder(`step-${n}`)));
    }
    const stepRuns = await Promise.all(steps.map((s) => s.output));
    const libraryRuns = await Promise.all(libraries.map((l) => l.output));
    await sleepUntil(until);
    agent.child.kill("SIGTERM");
    const agentRun = await agent.output;

    const results = libraryRuns.map((run) => JSON.parse(run.stdout.trim().split("\n").at(-1)!));
    for (const result of results) {
      assert.equal(result.error, undefined, JSON.stringify(results));
      assert.ok(result.opened);
      assert.ok(
        !result.events.some((e: string) => e.startsWith("kv_error")),
        JSON.stringify(results),
      );
    }
    for (const run of stepRuns) {
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.trim().length > 0);
      assert.doesNotMatch(run.stderr, /kv_error|store/);
    }
    assert.equal(agentRun.code, 0, agentRun.stderr);
    const gaps = front.arrivals.slice(1).map((at, i) => at - front.arrivals[i]);
    console.log(
      `${front.arrivals.length} token requests from ${stepRuns.length} CLI runs, an agent and ` +
        `${results.length} library processes; gaps ${gaps.join(", ")} ms`,
    );
    // 6 s tokens enter their refresh window about 3 s after they are issued: 15 s hold 4 to 6
    // windows, and two requests for one window would come milliseconds apart.
    assert.ok(front.arrivals.length >= 4, `${front.arrivals.length} token requests in 15 s`);
    // At most one a window from the first (the agent's, before the others start) to the end.
    const windows = Math.ceil((until - front.arrivals[0]) / 2_700);
    assert.ok(front.arrivals.length <= windows, `${front.arrivals.length} in ${windows} windows`);
    assert.ok(gaps.every((gap) => gap >= 1_000), `token requests ${gaps.join(", ")} ms apart`);
    // Encrypted in the store: no token the server issued is readable there.
    Deno.env.set("DENO_KV_ACCESS_TOKEN", denokv.accessToken);
    const kv = await Deno.openKv(denokv.url);
    Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    try {
      const stored: string[] = [];
      for await (const entry of kv.list({ prefix: ["freshtoken"] })) {
        stored.push(JSON.stringify(entry.value));
      }
      assert.ok(stored.length > 0, "nothing stored");
      assert.ok(stored.every((value) => !value.includes("canary-token-")), stored.join("\n"));
    } finally {
      kv.close();
    }
  } finally {
    await front.close();
    await server.close();
    await denokv.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a wrong access token leaves each process on a token of its own, says so, and fails no call", async () => {
  const root = await Deno.makeTempDir();
  const denokv = await startDenoKv(root);
  const server = startGenesysLike({ clients: { [CLIENT.id]: CLIENT.secret } });
  const wrong = `ddo_wrong${crypto.randomUUID().replaceAll("-", "")}`;
  const env = {
    FRESHTOKEN_TOKEN_URL: server.tokenUrl,
    FRESHTOKEN_CLIENT_ID: CLIENT.id,
    FRESHTOKEN_CLIENT_SECRET: CLIENT.secret,
    FRESHTOKEN_ENCRYPTION_KEY: encryptionKey(),
    DENO_KV_ACCESS_TOKEN: wrong,
  };
  try {
    await Deno.mkdir(`${root}/step`);
    await Deno.mkdir(`${root}/library`);
    const step = await machine(CLI, ["token", "--kv", denokv.url], env, `${root}/step`).output;
    const library = await machine(
      WORKER,
      [],
      { ...env, FRESHTOKEN_KV: denokv.url },
      `${root}/library`,
    )
      .output;

    assert.equal(step.code, 0, step.stderr);
    assert.match(step.stdout, /^canary-token-\w+\n$/);
    assert.match(
      step.stderr,
      /^freshtoken: --kv store: it refused the access token in DENO_KV_ACCESS_TOKEN; carrying on without it/m,
    );
    assert.ok(!step.stderr.includes(wrong) && !step.stderr.includes(denokv.url), step.stderr);

    const result = JSON.parse(library.stdout.trim().split("\n").at(-1)!);
    assert.equal(result.error, undefined, library.stdout);
    assert.equal(result.tokens, 1);
    // Deno 2.9 refuses the token as it opens the store (the recipe then goes on without one);
    // Deno 2.5 opens it, and the first read fails: freshtoken's kv_error, then a token in memory.
    assert.ok(!result.opened || result.events.includes("kv_error:read"), library.stdout);
    assert.equal(server.stats.tokenRequests, 2);
  } finally {
    await server.close();
    await denokv.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a store that stops accepting the access token (rotated on the server) costs kv_error events, never a failed or slow call", async () => {
  const root = await Deno.makeTempDir();
  const before = `denokv-before-${crypto.randomUUID()}`;
  let denokv = await startDenoKv(root, { accessToken: before });
  const server = startGenesysLike({ clients: { [CLIENT.id]: CLIENT.secret }, lifetimeSeconds: 4 });
  const events: TokenEvent[] = [];
  Deno.env.set("DENO_KV_ACCESS_TOKEN", before);
  const kv = await Deno.openKv(denokv.url);
  Deno.env.delete("DENO_KV_ACCESS_TOKEN");
  try {
    const client = createTokenClient({
      tokenUrl: server.tokenUrl,
      clientId: CLIENT.id,
      clientSecret: CLIENT.secret,
      kv,
      encryptionKey: encryptionKey(),
      onEvent: (e) => events.push(e),
    });
    await client.getToken();
    assert.ok(events.some((e) => e.type === "kv_write"), "the token was stored");
    // The store's operator rotates its access token: this process still holds the old one.
    await denokv.close();
    const port = Number(new URL(denokv.url).port);
    denokv = await startDenoKv(root, { port, accessToken: `denokv-after-${crypto.randomUUID()}` });
    let slowest = 0;
    for (const until = Date.now() + 6_000; Date.now() < until;) {
      const started = Date.now();
      await client.getToken(); // a failed call throws and fails the test
      slowest = Math.max(slowest, Date.now() - started);
      await new Promise((r) => setTimeout(r, 100));
    }
    const failures = events.filter((e) => e.type === "kv_error");
    assert.ok(failures.length > 0, "no kv_error");
    assert.ok(!JSON.stringify(failures).includes(before), "the access token was in an event");
    assert.ok(events.filter((e) => e.type === "fetch_ok").length >= 2, "no refresh after rotation");
    // One store operation is bounded by the store guard's 2 s; callers mostly never wait at all.
    assert.ok(slowest < 2_500, `a call took ${slowest} ms`);
  } finally {
    kv.close();
    await server.close();
    await denokv.close();
    await Deno.remove(root, { recursive: true });
  }
});
