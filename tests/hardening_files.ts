// Hardening of the agent's and exec's files, and masking in GitHub
// Actions. Each case runs the CLI as real processes against a real loopback
// token server, with real files, a real FIFO and real symbolic links in a
// temporary folder. Part of the hardening matrix (tests/hardening.ts).

import { ended, type Run, runCliFor, spawnCliToFiles as spawnCli, stop, waitFor } from "./_cli.ts";
import { startFaultServer } from "./servers/fault_server.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import type { HardeningCase, Result } from "./hardening.ts";

const SECRET = "round4-canary-secret-files";
const CLIENT = "files";

/** The client's variables, for a server at `tokenUrl`. */
function clientEnv(tokenUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    FRESHTOKEN_TOKEN_URL: tokenUrl,
    FRESHTOKEN_CLIENT_ID: CLIENT,
    FRESHTOKEN_CLIENT_SECRET: SECRET,
    ...extra,
  };
}

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a folder holds, sorted. */
async function listing(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** A temporary folder and a Genesys-like server issuing `lifetime`-second tokens, for `fn`. */
async function withSetup(
  lifetime: number,
  fn: (dir: string, tokenUrl: string) => Promise<Result>,
): Promise<Result> {
  const server = startGenesysLike({ clients: { [CLIENT]: SECRET }, lifetimeSeconds: lifetime });
  const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
  try {
    return await fn(dir, server.tokenUrl);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Whether the process `pid` runs. */
function running(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** The CLI run to its end, or stopped after `ms`; the secret is never printed. */
const runCli = (args: string[], env: Record<string, string>, ms = 4_000): Promise<Run> =>
  runCliFor(args, env, ms, [SECRET]);

/** The process id a sink's lock file names. */
async function lockPid(lock: string): Promise<number | undefined> {
  const text = await Deno.readTextFile(lock).catch(() => "");
  const pid = Number(/pid (\d+)/.exec(text)?.[1]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** One refused sink: the exit, whether the message named the flag, and what became of the path. */
async function refusedSink(
  dir: string,
  tokenUrl: string,
  make: (path: string) => Promise<void>,
  check: (path: string) => Promise<boolean>,
  says: RegExp,
): Promise<{ ok: boolean; outcome: string }> {
  const path = `${dir}/sink`;
  await make(path);
  const before = await listing(dir);
  const run = await runCli(["agent", "--sink", path], clientEnv(tokenUrl));
  const kept = await check(path);
  const untouched = JSON.stringify(await listing(dir)) === JSON.stringify(before);
  const named = /--sink/.test(run.stderr) && says.test(run.stderr);
  return {
    ok: run.code === 2 && named && kept && untouched,
    outcome: `exit ${run.code}, ${named ? "names --sink and why" : "does not say why"}, ${
      kept && untouched ? "left as it was" : "changed"
    }`,
  };
}

/** A FIFO at `path`, made by mkfifo(1). */
async function mkfifo(path: string): Promise<void> {
  const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
  if (!success) throw new Error("mkfifo failed");
}

/** The tokens (`canary-token-…`) in `text`, in order of first appearance. */
function tokensIn(text: string): string[] {
  return [...new Set(text.match(/canary-token-[A-Za-z0-9_-]+/g) ?? [])];
}

/** The tokens `::add-mask::` lines in `text` register. */
function masksIn(text: string): Set<string> {
  return new Set([...text.matchAll(/^::add-mask::(.*)$/gm)].map((m) => m[1]));
}

/** A command that prints every new token in $FRESHTOKEN_TOKEN_FILE for `seconds`. */
const WATCHER = `
const file = Deno.env.get("FRESHTOKEN_TOKEN_FILE");
let last = "";
const end = Date.now() + Number(Deno.args[0]) * 1000;
while (Date.now() < end) {
  const token = Deno.readTextFileSync(file);
  if (token !== "" && token !== last) console.log("seen " + token);
  last = token;
  await new Promise((r) => setTimeout(r, 100));
}
`;

/**
 * A token endpoint in front of `target` that holds every request until
 * `release()`: the first token comes exactly when the test says.
 */
function gatedProxy(target: string) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      requests++;
      const body = await request.arrayBuffer();
      await gate;
      return await fetch(target, { method: "POST", headers: request.headers, body });
    },
  );
  return {
    tokenUrl: `http://127.0.0.1:${server.addr.port}/token`,
    release,
    get requests() {
      return requests;
    },
    async close() {
      release();
      await server.shutdown();
    },
  };
}

/** The command line of process `pid`, as ps shows it to anyone (Deno reads /proc only with -A). */
async function commandLine(pid: number): Promise<string> {
  const { stdout } = await new Deno.Command("cat", {
    args: [`/proc/${pid}/cmdline`],
    stderr: "null",
  })
    .output();
  return new TextDecoder().decode(stdout);
}

/** The files in `dir` the test did not make itself (those start with a dot). */
async function agentFiles(dir: string): Promise<string[]> {
  return (await listing(dir)).filter((name) => !name.startsWith("."));
}

export const FILE_CASES: HardeningCase[] = [
  {
    group: "round 4 files",
    name: "an existing file named as --sink, with a token endpoint that refuses",
    run: async () => {
      const server = startFaultServer(() => ({
        kind: "respond",
        status: 401,
        body: JSON.stringify({ error: "invalid_client" }),
        headers: { "content-type": "application/json" },
      }));
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
      try {
        const path = `${dir}/notes.txt`;
        await Deno.writeTextFile(path, "a user's own file\n");
        const run = await runCli(
          ["agent", "--sink", path],
          clientEnv(
            server.tokenUrl,
          ),
        );
        const kept = await Deno.readTextFile(path).catch(() => undefined) === "a user's own file\n";
        const left = await listing(dir);
        const named = /--sink/.test(run.stderr) && /exists/.test(run.stderr);
        return {
          ok: run.code === 2 && named && kept && left.length === 1 && server.requests === 0,
          outcome: `exit ${run.code}, ${
            named ? "names --sink and says the file exists" : "does not say why"
          }, the file ${kept ? "kept as it was" : "changed or deleted"}, ${
            left.length - 1
          } other files left, ${server.requests} token requests`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 files",
    name: "an existing file named as --sink, then SIGTERM",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const path = `${dir}/notes.txt`;
        await Deno.writeTextFile(path, "a user's own file\n");
        const out = `${dir}/.out`;
        const err = `${dir}/.err`;
        const agent = spawnCli(["agent", "--sink", path], clientEnv(tokenUrl), out, err);
        await sleep(1_500);
        const code = await stop(agent);
        const kept = await Deno.readTextFile(path).catch(() => undefined) === "a user's own file\n";
        return {
          ok: code === 2 && kept,
          outcome: `exit ${code}, the file ${kept ? "kept as it was" : "overwritten or deleted"}`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "an empty directory named as --sink",
    run: () =>
      withSetup(60, (dir, tokenUrl) =>
        refusedSink(
          dir,
          tokenUrl,
          (path) => Deno.mkdir(path),
          async (path) => (await Deno.lstat(path).catch(() => undefined))?.isDirectory === true,
          /directory/,
        )),
  },
  {
    group: "round 4 files",
    name: "a FIFO named as --sink",
    run: () =>
      withSetup(60, (dir, tokenUrl) =>
        refusedSink(
          dir,
          tokenUrl,
          mkfifo,
          async (path) => (await Deno.lstat(path).catch(() => undefined))?.isFifo === true,
          /not a regular file|FIFO|device/,
        )),
  },
  {
    group: "round 4 files",
    name: "a device (/dev/null) named as --sink",
    run: async () => {
      const server = startGenesysLike({ clients: { [CLIENT]: SECRET } });
      try {
        const run = await runCli(
          ["agent", "--sink", "/dev/null"],
          clientEnv(
            server.tokenUrl,
          ),
        );
        const device = (await Deno.lstat("/dev/null")).isCharDevice === true;
        const noLock = !(await exists("/dev/null.lock"));
        const named = /--sink/.test(run.stderr) && /not a regular file|device/.test(run.stderr);
        return {
          ok: run.code === 2 && named && device && noLock && server.stats.tokenRequests === 0,
          outcome: `exit ${run.code}, ${named ? "names --sink and why" : "does not say why"}, ${
            device ? "/dev/null still a device" : "/dev/null replaced"
          }, ${server.stats.tokenRequests} token requests`,
        };
      } finally {
        await server.close();
      }
    },
  },
  {
    group: "round 4 files",
    name: "a <sink>.lock file no agent made",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const lock = `${dir}/sink.lock`;
        await Deno.writeTextFile(lock, "a user's own file\n");
        const run = await runCli(["agent", "--sink", `${dir}/sink`], clientEnv(tokenUrl));
        const kept = await Deno.readTextFile(lock).catch(() => undefined) === "a user's own file\n";
        const left = await listing(dir);
        const named = /--sink/.test(run.stderr) && /lock/.test(run.stderr);
        return {
          ok: run.code === 2 && named && kept && left.length === 1,
          outcome: `exit ${run.code}, ${named ? "names --sink and its lock file" : "unclear"}, ${
            kept ? "the file kept as it was" : "the file changed or deleted"
          }, ${left.length - 1} other files left`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "a symbolic link planted as <sink>.lock (dangling, so create-new would follow it)",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        await Deno.symlink(`${dir}/target`, `${dir}/sink.lock`);
        const run = await runCli(["agent", "--sink", `${dir}/sink`], clientEnv(tokenUrl));
        const target = await exists(`${dir}/target`);
        const link = (await Deno.lstat(`${dir}/sink.lock`)).isSymlink;
        return {
          ok: run.code === 2 && !target && link && !(await exists(`${dir}/sink`)),
          outcome: `exit ${run.code}, the link's target ${target ? "written" : "never made"}, ${
            link ? "the link kept" : "the link removed"
          }`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "the sink and lock of an agent that died (SIGKILL), taken over by the next one",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const sink = `${dir}/sink`;
        const env = clientEnv(tokenUrl);
        const first = spawnCli(["agent", "--sink", sink], env, `${dir}/.out1`, `${dir}/.err1`);
        // Killed once its first write is over: a kill between linking the sink and removing the
        // temporary file would leave that file, which no later agent may take for its own.
        const wrote = await waitFor(async () =>
          (await Deno.readTextFile(sink).catch(() => "")) !== "" &&
          !(await listing(dir)).some((name) => name.startsWith(".freshtoken-"))
        );
        first.kill("SIGKILL");
        await first.status;
        const leftover = await exists(sink) && await exists(`${sink}.lock`);
        const second = spawnCli(["agent", "--sink", sink], env, `${dir}/.out2`, `${dir}/.err2`);
        const before = await Deno.readTextFile(sink).catch(() => "");
        const rewrote = await waitFor(async () => {
          const now = await Deno.readTextFile(sink).catch(() => "");
          return now !== "" && now !== before;
        });
        const code = await stop(second);
        const left = (await listing(dir)).filter((name) =>
          !name.startsWith(".out") &&
          !name.startsWith(".err")
        );
        return {
          ok: wrote && leftover && rewrote && code === 0 && left.length === 0,
          outcome: `the killed agent left its sink and lock: ${leftover}; the next agent wrote a ` +
            `new token: ${rewrote}, exit ${code} on SIGTERM, ${left.length} files left`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "the first token request fails: only the agent's own files are removed",
    run: async () => {
      const server = startFaultServer(() => ({
        kind: "respond",
        status: 401,
        body: JSON.stringify({ error: "invalid_client" }),
        headers: { "content-type": "application/json" },
      }));
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
      try {
        await Deno.writeTextFile(`${dir}/other`, "kept\n");
        const run = await runCli([
          "agent",
          "--sink",
          `${dir}/sink`,
          "--header-sink",
          `${dir}/header`,
        ], clientEnv(server.tokenUrl));
        const left = await listing(dir);
        return {
          ok: run.code === 3 && JSON.stringify(left) === '["other"]',
          outcome: `exit ${run.code}; the folder holds ${JSON.stringify(left)}`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 files",
    name: "a file put at the sink path while the first token request hangs, then SIGTERM",
    run: async () => {
      const server = startFaultServer(() => ({ kind: "hang" }));
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
      try {
        const sink = `${dir}/sink`;
        const agent = spawnCli(
          ["agent", "--sink", sink],
          clientEnv(server.tokenUrl),
          `${dir}/.out`,
          `${dir}/.err`,
        );
        const locked = await waitFor(() => exists(`${sink}.lock`));
        await Deno.writeTextFile(sink, "a user's own file\n");
        const started = Date.now();
        const code = await stop(agent);
        const ms = Date.now() - started;
        const kept = await Deno.readTextFile(sink).catch(() => undefined) === "a user's own file\n";
        const lock = await exists(`${sink}.lock`);
        return {
          ok: locked && code === 0 && ms < 2_000 && kept && !lock,
          outcome: `exit ${code} ${ms < 2_000 ? "at once" : `after ${ms} ms`} on SIGTERM; the ` +
            `file ${kept ? "kept as it was" : "deleted"}, the agent's lock file ${
              lock ? "left" : "removed"
            }`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 files",
    name: "a sink whose name is 240 bytes long (the file system allows 255)",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const sink = `${dir}/${"s".repeat(240)}`;
        const agent = spawnCli(
          ["agent", "--sink", sink],
          clientEnv(tokenUrl),
          `${dir}/.out`,
          `${dir}/.err`,
        );
        const wrote = await waitFor(async () =>
          (await Deno.readTextFile(sink).catch(() => "")).startsWith("canary-token-")
        );
        const code = await stop(agent);
        const log = await Deno.readTextFile(`${dir}/.err`);
        const left = (await listing(dir)).filter((name) => !name.startsWith("."));
        return {
          ok: wrote && code === 0 && left.length === 0 && !/unexpected failure/.test(log),
          outcome: `token written: ${wrote}, exit ${code} on SIGTERM, ${left.length} files left`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "a sink name too long for its lock file, and a sink in a folder that does not exist",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const outcomes: string[] = [];
        let ok = true;
        for (
          const [what, sink] of [
            ["a 253-byte name", `${dir}/${"s".repeat(253)}`],
            ["a missing folder", `${dir}/missing/sink`],
          ]
        ) {
          const run = await runCli(["agent", "--sink", sink], clientEnv(tokenUrl));
          const reason = run.stderr.match(/--sink[^\n(]*/)?.[0] ?? "";
          const vague = /unexpected failure|NotFound|\(Error\)/.test(run.stderr);
          ok &&= run.code === 2 && reason !== "" && !vague;
          outcomes.push(`${what}: exit ${run.code}, ${vague ? "vague" : `"${reason.trim()}"`}`);
        }
        ok &&= (await listing(dir)).length === 0;
        return { ok, outcome: outcomes.join("; ") };
      }),
  },
  {
    group: "round 4 files",
    name: "a file put at the sink path while the first token request is slow, then the token comes",
    run: () =>
      withSetup(60, async (dir, target) => {
        const proxy = gatedProxy(target);
        try {
          const sink = `${dir}/sink`;
          const agent = spawnCli(
            ["agent", "--sink", sink],
            clientEnv(proxy.tokenUrl),
            `${dir}/.out`,
            `${dir}/.err`,
          );
          const asked = await waitFor(() => Promise.resolve(proxy.requests > 0));
          await Deno.writeTextFile(sink, "a user's own file\n");
          proxy.release();
          const code = await ended(agent, 5_000) ?? await stop(agent);
          const kept = await Deno.readTextFile(sink).catch(() => undefined) ===
            "a user's own file\n";
          const log = await Deno.readTextFile(`${dir}/.err`);
          const named = /--sink/.test(log);
          const left = await agentFiles(dir);
          return {
            ok: asked && code === 2 && kept && named && JSON.stringify(left) === '["sink"]',
            outcome: `exit ${code}, ${named ? "names --sink" : "does not name --sink"}, the ` +
              `file ${kept ? "kept as it was" : "overwritten or deleted"}, files left: ${
                JSON.stringify(left)
              }`,
          };
        } finally {
          await proxy.close();
        }
      }),
  },
  {
    group: "round 4 files",
    name:
      "a file moved onto the sink while the agent runs (4 s tokens), then a refresh and SIGTERM",
    run: () =>
      withSetup(4, async (dir, tokenUrl) => {
        const sink = `${dir}/sink`;
        const agent = spawnCli(
          ["agent", "--sink", sink],
          clientEnv(tokenUrl),
          `${dir}/.out`,
          `${dir}/.err`,
        );
        const wrote = await waitFor(async () =>
          (await Deno.readTextFile(sink).catch(() => "")).startsWith("canary-token-")
        );
        await Deno.writeTextFile(`${dir}/mine`, "a user's own file\n");
        await Deno.rename(`${dir}/mine`, sink);
        await sleep(5_000); // Past the refresh of a 4 s token.
        const afterRefresh = await Deno.readTextFile(sink).catch(() => undefined);
        const code = await stop(agent);
        const atEnd = await Deno.readTextFile(sink).catch(() => undefined);
        const log = await Deno.readTextFile(`${dir}/.err`);
        const named = /--sink/.test(log);
        const lock = await exists(`${sink}.lock`);
        const mine = "a user's own file\n";
        return {
          ok: wrote && afterRefresh === mine && atEnd === mine && code === 0 && named && !lock,
          outcome:
            `the file ${afterRefresh === mine ? "kept" : "overwritten"} past a refresh, ${
              atEnd === mine ? "kept" : "deleted or changed"
            } after SIGTERM (exit ${code}); the log ${named ? "names --sink" : "is silent"}; the ` +
            `agent's lock file ${lock ? "left" : "removed"}`,
        };
      }),
  },
  {
    group: "round 4 files",
    name: "the same file named as --sink and as --header-sink (x, ./x, d/../x)",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        await Deno.mkdir(`${dir}/d`);
        const outcomes: string[] = [];
        let ok = true;
        for (const other of [`${dir}/./x`, `${dir}/d/../x`]) {
          const run = await runCli(
            ["agent", "--sink", `${dir}/x`, "--header-sink", other],
            clientEnv(tokenUrl),
          );
          const says = /must be two files/.test(run.stderr);
          ok &&= run.code === 2 && says;
          outcomes.push(`exit ${run.code}, ${says ? "says they must be two files" : "unclear"}`);
        }
        ok &&= JSON.stringify(await listing(dir)) === '["d"]';
        return { ok, outcome: outcomes.join("; ") };
      }),
  },
  {
    group: "round 4 messages cli",
    name: "a token request that times out under --timeout",
    run: async () => {
      const server = startFaultServer(() => ({ kind: "hang" }));
      try {
        const run = await runCli(
          ["token", "--timeout", "200"],
          clientEnv(server.tokenUrl),
          20_000,
        );
        const names = /within 200 ms/.test(run.stderr) && /--timeout/.test(run.stderr) &&
          !/timeoutMs/.test(run.stderr);
        return {
          ok: run.code === 4 && names,
          outcome: `exit ${run.code}, ${names ? "names --timeout" : "names timeoutMs"}`,
        };
      } finally {
        await server.close();
      }
    },
  },
  {
    group: "round 4 masking",
    name: "exec in GitHub Actions, 4 s tokens, a 6 s command reading its token file",
    run: () =>
      withSetup(4, async (dir, tokenUrl) => {
        await Deno.writeTextFile(`${dir}/watch.ts`, WATCHER);
        const out = `${dir}/out`;
        const child = spawnCli(
          [
            "exec",
            "--",
            Deno.execPath(),
            "run",
            "--allow-read",
            "--allow-env",
            `${dir}/watch.ts`,
            "6",
          ],
          clientEnv(tokenUrl, { GITHUB_ACTIONS: "true" }),
          out,
          out,
        );
        const { code } = await child.status;
        return maskedBefore(code, await Deno.readTextFile(out));
      }),
  },
  {
    group: "round 4 masking",
    name: "agent in GitHub Actions, its log sent to a file, 4 s tokens for 6 s",
    run: () =>
      withSetup(4, async (dir, tokenUrl) => {
        const out = `${dir}/out`;
        const log = `${dir}/agent.log`;
        const sink = `${dir}/token`;
        const agent = spawnCli(
          ["agent", "--sink", sink, "--header-sink", `${dir}/auth`],
          clientEnv(tokenUrl, { GITHUB_ACTIONS: "true" }),
          out,
          log,
        );
        // Each new token in the sink: its mask was written before it (the stdout file is read after).
        const seen: string[] = [];
        let unmasked = 0;
        const end = Date.now() + 6_000;
        while (Date.now() < end) {
          const token = await Deno.readTextFile(sink).catch(() => "");
          if (token !== "" && !seen.includes(token)) {
            seen.push(token);
            if (!masksIn(await Deno.readTextFile(out)).has(token)) unmasked++;
          }
          await sleep(50);
        }
        const code = await stop(agent);
        const logText = await Deno.readTextFile(log);
        const inLog = tokensIn(logText).length;
        return {
          ok: code === 0 && seen.length >= 2 && unmasked === 0 && inLog === 0,
          outcome: `${seen.length} tokens reached the sink, ${unmasked} of them before their ` +
            `::add-mask:: on stdout; ${inLog} tokens in the log file; exit ${code}`,
        };
      }),
  },
  {
    group: "round 4 readiness",
    name: "agent --background in GitHub Actions, its log sent to a file",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const sink = `${dir}/token`;
        const started = Date.now();
        const parent = spawnCli(
          ["agent", "--background", "--sink", sink],
          clientEnv(tokenUrl, { GITHUB_ACTIONS: "true" }),
          `${dir}/out`,
          `${dir}/agent.log`,
        );
        const { code } = await parent.status;
        const ms = Date.now() - started;
        const token = await Deno.readTextFile(sink).catch(() => "");
        const masked = masksIn(await Deno.readTextFile(`${dir}/out`)).has(token);
        const pid = await lockPid(`${sink}.lock`);
        const alive = pid !== undefined && running(pid);
        if (pid !== undefined) Deno.kill(pid, "SIGTERM");
        const removed = await waitFor(async () => !(await exists(sink)));
        const inLog = tokensIn(await Deno.readTextFile(`${dir}/agent.log`)).length;
        return {
          ok: code === 0 && token.startsWith("canary-token-") && masked && alive && removed &&
            inLog === 0,
          outcome: `exit ${code} after ${ms < 5_000 ? "under 5 s" : `${ms} ms`} with the token ` +
            `in the sink: ${token !== ""}, its ::add-mask:: on the step's stdout: ${masked}; ` +
            `the agent carried on detached: ${alive}, stopped by SIGTERM and its files removed: ` +
            `${removed}; ${inLog} tokens in the log`,
        };
      }),
  },
  {
    group: "round 4 readiness",
    name: "agent --background when no first token can be had, or the flags are wrong",
    run: async () => {
      const server = startFaultServer(() => ({
        kind: "respond",
        status: 401,
        body: JSON.stringify({ error: "invalid_client" }),
        headers: { "content-type": "application/json" },
      }));
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
      try {
        const outcomes: string[] = [];
        let ok = true;
        for (
          const [what, args, want] of [
            ["credentials refused", ["--sink", `${dir}/token`], 3],
            ["no sink", [], 2],
          ] as const
        ) {
          const parent = spawnCli(
            ["agent", "--background", ...args],
            clientEnv(server.tokenUrl),
            `${dir}/out`,
            `${dir}/log`,
          );
          const { code } = await parent.status;
          const log = await Deno.readTextFile(`${dir}/log`);
          const says = /freshtoken: /.test(log);
          ok &&= code === want && says;
          outcomes.push(`${what}: exit ${code}, ${says ? "says why" : "silent"}`);
        }
        const left = await listing(dir);
        ok &&= JSON.stringify(left) === '["log","out"]';
        outcomes.push(`${left.length - 2} agent files left`);
        return { ok, outcome: outcomes.join("; ") };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 readiness",
    name: "agent --background whose agent is stopped (SIGTERM, SIGKILL) before its first token",
    run: async () => {
      const server = startFaultServer(() => ({ kind: "hang" }));
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-" });
      try {
        const outcomes: string[] = [];
        let ok = true;
        for (const signal of ["SIGTERM", "SIGKILL"] as const) {
          const sink = `${dir}/token`;
          const parent = spawnCli(
            ["agent", "--background", "--sink", sink],
            clientEnv(server.tokenUrl),
            `${dir}/.out`,
            `${dir}/.log`,
          );
          let pid: number | undefined;
          await waitFor(async () => (pid = await lockPid(`${sink}.lock`)) !== undefined);
          if (pid !== undefined) Deno.kill(pid, signal);
          const code = await ended(parent, 5_000) ?? await stop(parent);
          const log = await Deno.readTextFile(`${dir}/.log`);
          const says = /^freshtoken: /m.test(log);
          ok &&= pid !== undefined && code !== 0 && says;
          outcomes.push(`${signal}: exit ${code}, ${says ? "says why" : "silent"}`);
          if (signal === "SIGKILL") {
            await Deno.remove(sink).catch(() => {});
            await Deno.remove(`${sink}.lock`).catch(() => {});
          }
        }
        return { ok, outcome: outcomes.join("; ") };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 readiness",
    name: "agent --background --client-secret S: the detached agent's command line",
    run: () =>
      withSetup(60, async (dir, tokenUrl) => {
        const outcomes: string[] = [];
        let ok = true;
        for (const given of [["--client-secret", SECRET], [`--client-secret=${SECRET}`]]) {
          const sink = `${dir}/token`;
          const env = clientEnv(tokenUrl, { FRESHTOKEN_CLIENT_SECRET: "wrong-canary-secret" });
          const parent = spawnCli(
            ["agent", "--background", "--sink", sink, ...given],
            env,
            `${dir}/.out`,
            `${dir}/.log`,
          );
          const code = await ended(parent, 10_000) ?? await stop(parent);
          const token = await Deno.readTextFile(sink).catch(() => "");
          const pid = await lockPid(`${sink}.lock`);
          const line = pid === undefined ? "" : await commandLine(pid);
          const shown = line.includes(SECRET);
          if (pid !== undefined) Deno.kill(pid, "SIGTERM");
          const removed = await waitFor(async () => !(await exists(sink)));
          ok &&= code === 0 && token.startsWith("canary-token-") && line !== "" && !shown &&
            removed;
          outcomes.push(
            `${given.length === 1 ? "--client-secret=S" : "--client-secret S"}: exit ${code}, ` +
              `token written: ${token !== ""}, the agent's command line ${
                line === "" ? "unread" : shown ? "holds the secret" : "holds no secret"
              }`,
          );
        }
        return { ok, outcome: outcomes.join("; ") };
      }),
  },
  {
    group: "round 4 readiness",
    name: "agent --background whose parent is killed before the first token comes",
    run: () =>
      withSetup(60, async (dir, target) => {
        const outcomes: string[] = [];
        let ok = true;
        for (const actions of [false, true]) {
          const proxy = gatedProxy(target);
          try {
            const sink = `${dir}/token`;
            const parent = spawnCli(
              ["agent", "--background", "--sink", sink],
              clientEnv(proxy.tokenUrl, actions ? { GITHUB_ACTIONS: "true" } : {}),
              `${dir}/.out`,
              `${dir}/.log`,
            );
            let pid: number | undefined;
            await waitFor(async () => (pid = await lockPid(`${sink}.lock`)) !== undefined);
            await waitFor(() => Promise.resolve(proxy.requests > 0));
            parent.kill("SIGKILL");
            await parent.status;
            proxy.release();
            const gone = pid !== undefined && await waitFor(() => Promise.resolve(!running(pid!)));
            if (!gone && pid !== undefined) Deno.kill(pid, "SIGTERM");
            const left = await agentFiles(dir);
            ok &&= gone && left.length === 0;
            outcomes.push(
              `${actions ? "in GitHub Actions" : "outside"}: the agent ${
                gone ? "stopped" : "carried on"
              }, files left: ${JSON.stringify(left)}`,
            );
            await waitFor(async () => (await agentFiles(dir)).length === 0);
          } finally {
            await proxy.close();
          }
        }
        return { ok, outcome: outcomes.join("; ") };
      }),
  },
];

/**
 * Whether, in `text` (one stream in write order), every token shows up
 * only after the `::add-mask::` line that registers it.
 */
function maskedBefore(code: number, text: string): Result {
  const masked = new Set<string>();
  let seen = 0;
  let early = 0;
  for (const line of text.split("\n")) {
    const mask = /^::add-mask::(.*)$/.exec(line);
    if (mask) {
      masked.add(mask[1]);
      continue;
    }
    for (const token of tokensIn(line)) {
      seen++;
      if (!masked.has(token)) early++;
    }
  }
  return {
    ok: code === 0 && seen >= 2 && early === 0,
    outcome: `exit ${code}; ${seen} tokens reached the command, ${early} of them before their ` +
      `::add-mask::`,
  };
}
