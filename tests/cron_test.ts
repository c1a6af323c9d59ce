// The cron job for a client made in code (registerRefreshCron) and the
// environment-configured one (deno/cron.ts), each in a process of its own,
// as Deno Deploy runs an entry module. DENO_CRON_TEST_SCHEDULE_OFFSET=1 is
// Deno's own hook that fires a job at once.

import assert from "node:assert/strict";
import { createTokenClient } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import { type DenoRun, runDeno } from "./_processes.ts";

const MOD = new URL("../deno/mod.ts", import.meta.url).href;
const CRON = new URL("../deno/cron.ts", import.meta.url).pathname;
const SECRET = "cron-canary-secret-1";

/**
 * Runs `args` under Deno (with `--unstable-kv` unless `kv` is false), the
 * cron hook set, until `done(output)` or 20 s.
 */
function run(
  args: string[],
  env: Record<string, string>,
  done: (stdout: string) => boolean = () => false,
  kv = true,
): Promise<DenoRun> {
  return runDeno(args, { DENO_CRON_TEST_SCHEDULE_OFFSET: "1", ...env }, { done, kv });
}

Deno.test("deno/cron.ts with nothing configured fails at start-up, naming the variables and registerRefreshCron", async () => {
  const { stderr, code } = await run([CRON], {});
  assert.notEqual(code, 0);
  assert.match(stderr, /nothing to refresh/);
  assert.match(stderr, /FRESHTOKEN_TOKEN_URL/);
  assert.match(stderr, /GENESYS_CLOUD_REGION/);
  assert.match(stderr, /registerRefreshCron/);
});

Deno.test("deno/cron.ts with FRESHTOKEN_KV in a folder that does not exist fails at start-up naming the variable", async () => {
  // A path may carry a credential (a URL's access token): it must not be printed.
  const path = "/nonexistent-freshtoken-folder/kv-canary-secret-path.sqlite";
  const { stderr, code } = await run([CRON], {
    FRESHTOKEN_KV: path,
    FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
    FRESHTOKEN_CLIENT_ID: "app",
    FRESHTOKEN_CLIENT_SECRET: SECRET,
  });
  assert.notEqual(code, 0);
  assert.match(stderr, /config: the FRESHTOKEN_KV store could not be opened/);
  assert.ok(!stderr.includes(SECRET));
  assert.ok(!stderr.includes("canary-secret-path"), stderr);
});

Deno.test("deno/cron.ts without Deno KV fails at start-up saying it needs Deno KV", async () => {
  const { stderr, code } = await run(
    [CRON],
    {
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
    },
    () => false,
    false,
  );
  assert.notEqual(code, 0);
  assert.match(stderr, /config: freshtoken\/cron needs Deno KV \(Deno Deploy, or --unstable-kv\)/);
  assert.ok(!stderr.includes(SECRET));
});

Deno.test("deno/cron.ts with a malformed FRESHTOKEN_CRON_SCHEDULE fails at start-up naming the variable", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { stderr, code } = await run([CRON], {
      FRESHTOKEN_KV: `${dir}/kv.sqlite`,
      FRESHTOKEN_CRON_SCHEDULE: "*/5 * * *",
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
    });
    assert.notEqual(code, 0);
    assert.match(
      stderr,
      /config: Deno\.cron refused the job "freshtoken refresh tokens": Invalid cron schedule \(FRESHTOKEN_CRON_SCHEDULE sets the schedule/,
    );
    assert.ok(!stderr.includes(SECRET));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno/cron.ts with a private key WebCrypto cannot import fails at start-up with the config error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // createTokenClient accepts it (an RSA JWK with "d"); only importing it fails.
    const key = JSON.stringify({ kty: "RSA", d: "canary-secret-d", n: "y", e: "AQAB" });
    const { stdout, stderr, code } = await run(
      [CRON],
      {
        FRESHTOKEN_KV: `${dir}/kv.sqlite`,
        FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
        FRESHTOKEN_CLIENT_ID: "app",
        FRESHTOKEN_PRIVATE_KEY: key,
      },
      (out) => out.includes("freshtoken cron: "),
    );
    assert.doesNotMatch(stdout, /freshtoken cron: /, "the job ran");
    assert.notEqual(code, 0);
    assert.match(stderr, /config: privateKey could not be imported/);
    assert.ok(!stdout.includes("canary-secret") && !stderr.includes("canary-secret"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno/cron.ts exports its clients frozen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      `import { clients } from ${JSON.stringify(CRON)};
console.log("frozen: " + Object.isFrozen(clients));
Deno.exit(0);
`,
    );
    const { stdout, stderr } = await run([script], {
      FRESHTOKEN_KV: `${dir}/kv.sqlite`,
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
    });
    assert.match(stdout, /frozen: true/, stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registerRefreshCron: a name Deno.cron would refuse, or one of freshtoken's own, is a precise config error; a name taken twice gets Deno's reason", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      `import { createTokenClient, registerRefreshCron } from ${JSON.stringify(MOD)};
const options = { tokenUrl: "https://auth.example.com/oauth/token", clientId: "app", clientSecret: ${
        JSON.stringify(SECRET)
      } };
for (const name of ["my.job", "x".repeat(65), "freshtoken refresh in memory", "mine", "mine"]) {
  try {
    await registerRefreshCron(createTokenClient(options), { name });
    console.log("ok: " + name);
  } catch (error) {
    console.log("refused: " + (error as Error).message);
  }
}
Deno.exit(0);
`,
    );
    const { stdout, stderr } = await run([script], {});
    const lines = stdout.trim().split("\n");
    assert.equal(lines.length, 5, stdout + stderr);
    assert.match(
      lines[0],
      /^refused: config: name may hold only ASCII letters, digits, whitespace, - and _ \(Deno\.cron's rule\)$/,
    );
    assert.match(
      lines[1],
      /^refused: config: name must be at most 64 characters long \(Deno\.cron's rule\)$/,
    );
    assert.match(
      lines[2],
      /^refused: config: names that start with "freshtoken refresh" are freshtoken's own/,
    );
    assert.equal(lines[3], "ok: mine");
    assert.match(
      lines[4],
      /^refused: config: Deno\.cron refused the job "mine": Cron with this name already exists$/,
    );
    assert.ok(!stdout.includes(SECRET) && !stderr.includes(SECRET));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registerRefreshCron: one job per store, prefix and KV identity, however often it is called; each keeps its token fresh", async () => {
  const server = startGenesysLike({ clients: { app: SECRET } });
  const dir = await Deno.makeTempDir();
  try {
    const kvPath = `${dir}/kv.sqlite`;
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      `import { createTokenClient, registerRefreshCron } from "${MOD}";
const kv = await Deno.openKv(${JSON.stringify(kvPath)});
const options = { tokenUrl: ${JSON.stringify(server.tokenUrl)}, clientId: "app", clientSecret: ${
        JSON.stringify(SECRET)
      }, kv };
const handler = createTokenClient({ ...options, scope: "read" });
const sameIdentity = createTokenClient({ ...options, scope: "read" });
const other = createTokenClient(options);
// Deno.cron refuses a second job of one name: these would throw if registered twice.
await registerRefreshCron(handler);
await registerRefreshCron(handler);
await registerRefreshCron(sameIdentity);
await registerRefreshCron(other, { name: "other client", schedule: "*/4 * * * *" });
console.log("registered");
`,
    );
    const { stdout, stderr } = await run(
      [script],
      {},
      (out) =>
        (out.match(/freshtoken cron: app at http:\/\/127\.0\.0\.1:\d+: refreshed/g) ?? []).length >=
          2,
    );
    assert.match(stdout, /registered/, stderr);
    const runs = stdout.match(/freshtoken cron: app at http:\/\/127\.0\.0\.1:\d+: refreshed/g) ??
      [];
    assert.equal(runs.length, 2, stdout + stderr);
    assert.equal(server.stats.tokenRequests, 2);
    // A handler on that KV with the same options reads the job's token: no request of its own.
    const kv = await Deno.openKv(kvPath);
    try {
      const client = createTokenClient({
        tokenUrl: server.tokenUrl,
        clientId: "app",
        clientSecret: SECRET,
        scope: "read",
        kv,
      });
      await client.getToken();
      assert.equal(server.stats.tokenRequests, 2);
    } finally {
      kv.close();
    }
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registerRefreshCron refuses what is not a client, and a bad name", async () => {
  const { registerRefreshCron, TokenError } = await import("../deno/mod.ts");
  for (
    const [client, options] of [
      [{}, {}],
      [
        createTokenClient({
          tokenUrl: "https://a.example/t",
          clientId: "i",
          clientSecret: "s-canary-secret",
        }),
        { name: "" },
      ],
    ] as const
  ) {
    await assert.rejects(
      () => registerRefreshCron(client as never, options),
      (e: unknown) => e instanceof TokenError && e.code === "config",
    );
  }
});
