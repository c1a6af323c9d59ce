// Jobs longer than a token: exec's token files and the agent's sink files,
// against a real loopback token server whose tokens live a few seconds, with
// children and agents as real processes.

import assert from "node:assert/strict";
import { createTokenClient } from "../deno/mod.ts";
import { keepFresh, writeTokenFiles } from "../deno/_token_files.ts";
import { ALL_PERMISSIONS, cliCommand, runCli, waitFor } from "./_cli.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const SECRET = "files-canary-secret-1";
const FLAGS = ALL_PERMISSIONS;

/** A child that calls the API once a second with the header file's line, and says what it got. */
const CALLER = `
const file = Deno.env.get("FRESHTOKEN_HEADER_FILE");
const codes = [];
for (let i = 0; i < Number(Deno.args[0]); i++) {
  const line = Deno.readTextFileSync(file).trim();
  const [name, value] = [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()];
  const response = await fetch(Deno.args[1], { headers: { [name]: value } });
  await response.body?.cancel();
  codes.push(response.status);
  await new Promise((r) => setTimeout(r, 1000));
}
const mode = Deno.statSync(file).mode & 0o777;
console.log(JSON.stringify({ codes, mode, file }));
`;

Deno.test("exec keeps token files fresh: a 9 s job against 4 s tokens gets a usable token on every call", async () => {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds: 4 });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/caller.ts`, CALLER);
    const run = await runCli(FLAGS, [
      "exec",
      "--",
      Deno.execPath(),
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-net=127.0.0.1",
      `${dir}/caller.ts`,
      "9",
      `${server.baseUrl}/api/v2/organizations/me`,
    ], {
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
    }, [SECRET]);
    assert.equal(run.code, 0, run.stderr);
    const { codes, mode, file } = JSON.parse(run.stdout);
    assert.deepEqual(codes, Array(9).fill(200), `every call with a usable token: ${codes}`);
    assert.equal(mode, 0o600);
    assert.ok(
      server.stats.tokensIssued >= 3,
      `refreshed while the job ran: ${server.stats.tokensIssued}`,
    );
    assert.ok(!(await Deno.stat(file).then(() => true, () => false)), "the files are removed");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("through an outage longer than the token the files are emptied, then filled again", async () => {
  let down = false;
  let issued = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    if (down) return new Response("down", { status: 503 });
    issued++;
    return Response.json({ access_token: `canary-token-${issued}f`, expires_in: 2 });
  });
  const dir = await Deno.makeTempDir();
  const stop = new AbortController();
  try {
    const client = createTokenClient({
      tokenUrl: `http://127.0.0.1:${server.addr.port}/token`,
      clientId: "app",
      clientSecret: SECRET,
      retry: { maxAttempts: 1 },
    });
    const files = { token: `${dir}/token`, header: `${dir}/header` };
    const failures: string[] = [];
    await writeTokenFiles(files, await client.getToken());
    const fresh = keepFresh(client, files, stop.signal, {
      failed: (line) => failures.push(line),
    });
    const read = () => Deno.readTextFileSync(files.token);
    assert.equal(read(), "canary-token-1f");
    down = true;
    await new Promise((r) => setTimeout(r, 2_500)); // the 2 s token is no longer usable
    assert.equal(read(), "", "emptied, never left holding an expired token");
    assert.equal(Deno.readTextFileSync(files.header), "");
    down = false;
    for (let i = 0; i < 40 && read() === ""; i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(read(), /^canary-token-\df$/);
    assert.ok(failures.some((line) => /empty/.test(line)), failures.join("\n"));
    assert.ok(!failures.join("\n").includes("canary-token"), "no token in the log");
    stop.abort();
    await fresh;
  } finally {
    stop.abort();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent keeps sink files fresh until SIGTERM, refuses a held or symlinked sink, prints nothing", async () => {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds: 4 });
  const dir = await Deno.makeTempDir();
  const env = {
    FRESHTOKEN_TOKEN_URL: server.tokenUrl,
    FRESHTOKEN_CLIENT_ID: "app",
    FRESHTOKEN_CLIENT_SECRET: SECRET,
  };
  const sink = `${dir}/token`;
  const header = `${dir}/header`;
  const agent = cliCommand(FLAGS, ["agent", "--sink", sink, "--header-sink", header], env).spawn();
  try {
    await waitFor(async () => (await Deno.readTextFile(sink).catch(() => "")) !== "");
    const call = async () => {
      const line = (await Deno.readTextFile(header)).trim();
      const response = await fetch(`${server.baseUrl}/api/v2/organizations/me`, {
        headers: { Authorization: line.slice("Authorization: ".length) },
      });
      await response.body?.cancel();
      return response.status;
    };
    const first = await Deno.readTextFile(sink);
    assert.equal(await call(), 200);
    assert.equal((await Deno.stat(sink)).mode! & 0o777, 0o600);

    // Another agent on the same sink, and a sink that is a symbolic link, are refused.
    const second = await runCli(FLAGS, ["agent", "--sink", sink], env, [SECRET]);
    assert.equal(second.code, 2, second.stderr);
    assert.match(second.stderr, /held by another running agent/);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/link`);
    const linked = await runCli(FLAGS, ["agent", "--sink", `${dir}/link`], env, [SECRET]);
    assert.equal(linked.code, 2, linked.stderr);
    assert.match(linked.stderr, /symbolic link/);

    await new Promise((r) => setTimeout(r, 4_500)); // longer than a token lives
    assert.notEqual(await Deno.readTextFile(sink), first, "rewritten before the first expired");
    assert.equal(await call(), 200);

    agent.kill("SIGTERM");
    const { code } = await agent.status;
    const stdout = await new Response(agent.stdout).text();
    const stderr = await new Response(agent.stderr).text();
    assert.equal(code, 0, stderr);
    assert.equal(stdout, "", "the agent prints nothing on stdout");
    assert.ok(!stderr.includes("canary-token") && !stderr.includes(SECRET), stderr);
    for (const file of [sink, header, `${sink}.lock`, `${header}.lock`]) {
      assert.ok(!(await Deno.stat(file).then(() => true, () => false)), `${file} removed`);
    }
  } finally {
    try {
      agent.kill("SIGKILL");
    } catch {
      // It has ended.
    }
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
