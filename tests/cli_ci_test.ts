// The CLI as a CI citizen, run as a pipeline runs it: masking in GitHub
// Actions, exports through the runner's files, and exec.

import assert from "node:assert/strict";
import { ALL_PERMISSIONS, cliCommand, runCli, waitFor } from "./_cli.ts";
import { type OidcServer, type SecretClient, startOidcServer } from "./_oidc.ts";

const APP: SecretClient = { client_id: "ci-app", client_secret: "ci-canary-secret-5" };
const FLAGS = ALL_PERMISSIONS;

const command = (args: string[], env: Record<string, string>) => cliCommand(FLAGS, args, env);
/** Runs the CLI; whatever happened, the secret is on neither stream. */
const cli = (args: string[], env: Record<string, string>) =>
  runCli(FLAGS, args, env, [APP.client_secret]);

async function withServer(fn: (server: OidcServer, env: Record<string, string>) => Promise<void>) {
  const server = await startOidcServer([APP]);
  try {
    await fn(server, {
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_CLIENT_ID: APP.client_id,
      FRESHTOKEN_CLIENT_SECRET: APP.client_secret,
    });
  } finally {
    await server.close();
  }
}

/** A token server that issues `token` (any visible ASCII), for the export tests. */
async function withOddToken(token: string, fn: (env: Record<string, string>) => Promise<void>) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ access_token: token, expires_in: 3600 }),
  );
  try {
    await fn({
      FRESHTOKEN_TOKEN_URL: `http://127.0.0.1:${server.addr.port}/token`,
      FRESHTOKEN_CLIENT_ID: "odd",
      FRESHTOKEN_CLIENT_SECRET: APP.client_secret,
    });
  } finally {
    await server.shutdown();
  }
}

/** Reads a `$GITHUB_ENV`-style file as the runner does: `NAME=value` or `NAME<<DELIMITER`. */
function parseRunnerFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const heredoc = lines[i].match(/^([^=<]+)<<(.+)$/);
    if (heredoc) {
      const body: string[] = [];
      while (lines[++i] !== heredoc[2]) body.push(lines[i]);
      values.set(heredoc[1], body.join("\n"));
    } else if (lines[i].includes("=")) {
      values.set(
        lines[i].slice(0, lines[i].indexOf("=")),
        lines[i].slice(lines[i].indexOf("=") + 1),
      );
    }
  }
  return values;
}

Deno.test("in GitHub Actions the token is masked on stderr first; stdout stays the bare token", async () => {
  await withServer(async (server, env) => {
    for (const args of [["token"], ["token", "--header"], ["token", "--json"]]) {
      const actions = await cli(args, { ...env, GITHUB_ACTIONS: "true" });
      assert.equal(actions.code, 0, actions.stderr);
      const mask = actions.stderr.match(/^::add-mask::(\S+)\n$/);
      assert.ok(mask, `no mask line on stderr for ${args.join(" ")}`);
      assert.ok(actions.stdout.includes(mask[1]), "the mask is the token printed");
      assert.ok(!actions.stdout.includes("::add-mask::"), "stdout carries only the output");
      assert.equal((await server.introspect(mask[1], APP)).active, true);

      const elsewhere = await cli(args, env);
      assert.equal(elsewhere.code, 0);
      assert.equal(elsewhere.stderr, "", "outside GitHub Actions nothing extra is printed");
    }
  });
});

Deno.test("--github-env and --github-output append the token in the runner's syntax, for any token", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const odd = `canary-token-a%0A<<EOF=b${"!#$&'()*+,/:;=?@[]~"}"\\\`{|}^`;
    await withOddToken(odd, async (env) => {
      const files = { GITHUB_ENV: `${dir}/env`, GITHUB_OUTPUT: `${dir}/output` };
      await Deno.writeTextFile(files.GITHUB_ENV, "EARLIER=kept\n");
      const run = await cli(
        ["token", "--github-env", "API_TOKEN", "--github-output", "token"],
        { ...env, ...files, GITHUB_ACTIONS: "true" },
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "", "exported, not printed");
      assert.match(run.stderr, /^::add-mask::canary-token-a%250A<<EOF=b.+\n$/);
      const exported = parseRunnerFile(await Deno.readTextFile(files.GITHUB_ENV));
      assert.equal(exported.get("EARLIER"), "kept");
      assert.equal(exported.get("API_TOKEN"), odd);
      const outputs = parseRunnerFile(await Deno.readTextFile(files.GITHUB_OUTPUT));
      assert.equal(outputs.get("token"), odd);
      assert.match(
        outputs.get("token_expires_at") ?? "",
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
      );
    });
    await withOddToken("canary-token-plain", async (env) => {
      const unset = await cli(["token", "--github-env", "API_TOKEN"], env);
      assert.equal(unset.code, 2);
      assert.match(unset.stderr, /\$GITHUB_ENV, which is not set/);
      const badName = await cli(["token", "--github-output", "no spaces-canary"], {
        ...env,
        GITHUB_OUTPUT: `${dir}/output`,
      });
      assert.equal(badName.code, 2);
      assert.ok(!badName.stderr.includes("no spaces"), "the name given is not echoed");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec runs a command with the token in its environment, never the secret, and passes its exit code", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withServer(async (server, env) => {
      const script = `printf %s "$API_TOKEN" > ${dir}/token; env > ${dir}/env; exit 7`;
      const run = await cli([
        "exec",
        "--env",
        "API_TOKEN",
        "--min-valid",
        "300",
        "--",
        "sh",
        "-c",
        script,
      ], env);
      assert.equal(run.code, 7, run.stderr);
      const token = await Deno.readTextFile(`${dir}/token`);
      assert.equal((await server.introspect(token, APP)).active, true);
      const childEnv = await Deno.readTextFile(`${dir}/env`);
      assert.ok(!childEnv.includes(APP.client_secret), "the child saw the client secret");
      assert.ok(childEnv.includes("FRESHTOKEN_CLIENT_ID=ci-app"));
      await Deno.remove(`${dir}/token`);

      const plain = await cli(
        ["exec", "--", "sh", "-c", 'test -n "$FRESHTOKEN_ACCESS_TOKEN"'],
        env,
      );
      assert.equal(plain.code, 0, "the default variable");
      const missing = await cli(["exec", "--", "no-such-command-here"], env);
      assert.equal(missing.code, 127);
      assert.equal((await cli(["exec"], env)).code, 2);
      assert.equal((await cli(["exec", "--json", "--", "true"], env)).code, 2);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec passes SIGTERM on to its command and returns what the command makes of it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withServer(async (_server, env) => {
      const script = `trap 'exit 42' TERM; : > ${dir}/ready; while :; do sleep 0.05; done`;
      const child = command(["exec", "--", "sh", "-c", script], env).spawn();
      await waitFor(() => Deno.stat(`${dir}/ready`).then(() => true, () => false));
      child.kill("SIGTERM");
      const { code } = await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
      assert.equal(code, 42, "the command's own answer to SIGTERM");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
