// Runs deno/cli.ts as a pipeline runs it: a process of its own, given its
// permission flags, its arguments, and only the variables a test passes
// (and PATH, for the commands `exec` runs).

import assert from "node:assert/strict";

/** Every permission the CLI's commands use, exec's and agent's included. */
export const ALL_PERMISSIONS = [
  "--unstable-kv",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-run",
];

/** deno/cli.ts, by path. */
export const CLI = new URL("../deno/cli.ts", import.meta.url).pathname;

/** What one run printed, and its exit code. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI's process, ready to run or spawn. */
export function cliCommand(
  flags: string[],
  args: string[],
  env: Record<string, string>,
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, CLI, ...args],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the CLI to its end; whatever happened, none of `secrets` is on either stream. */
export async function runCli(
  flags: string[],
  args: string[],
  env: Record<string, string>,
  secrets: string[] = [],
): Promise<Run> {
  const output = await cliCommand(flags, args, env).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  const run = { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  for (const secret of secrets) {
    assert.ok(!`${run.stdout}${run.stderr}`.includes(secret), "a secret was printed");
  }
  return run;
}

/**
 * The CLI run to its end, or stopped with SIGTERM after `ms` (an agent
 * that should have refused keeps running); none of `secrets` is printed.
 */
export async function runCliFor(
  args: string[],
  env: Record<string, string>,
  ms: number,
  secrets: string[] = [],
): Promise<Run> {
  const child = cliCommand(ALL_PERMISSIONS, args, env).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGTERM");
    } catch {
      // It has ended.
    }
  }, ms);
  try {
    const output = await child.output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    const run = { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
    for (const secret of secrets) {
      if (`${run.stdout}${run.stderr}`.includes(secret)) throw new Error("a secret was printed");
    }
    return run;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The CLI as a process (every permission) whose stdout and stderr go to
 * the files `out` and `err`, as a recipe's redirection sends them (so what
 * it writes there is in order with what it writes to other files).
 */
export function spawnCliToFiles(
  args: string[],
  env: Record<string, string>,
  out: string,
  err: string,
): Deno.ChildProcess {
  return new Deno.Command("sh", {
    args: [
      "-c",
      // The same file for both: one stream, in the order it was written.
      out === err
        ? 'out=$1; shift 2; exec "$@" >"$out" 2>&1'
        : 'out=$1; err=$2; shift 2; exec "$@" >"$out" 2>"$err"',
      "sh",
      out,
      err,
      Deno.execPath(),
      "run",
      ...ALL_PERMISSIONS,
      CLI,
      ...args,
    ],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Stops a process with SIGTERM; its exit code. */
export async function stop(child: Deno.ChildProcess): Promise<number> {
  try {
    child.kill("SIGTERM");
  } catch {
    // It has ended.
  }
  return (await child.status).code;
}

/** Waits up to `ms` for `child` to end: its exit code, or `undefined` if it still runs. */
export async function ended(child: Deno.ChildProcess, ms: number): Promise<number | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) =>
    timer = setTimeout(() => resolve(undefined), ms)
  );
  try {
    return (await Promise.race([child.status, late]))?.code;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits up to `ms` for `check`, asking every 25 ms; whether it came true. */
export async function waitFor(check: () => Promise<boolean>, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return await check();
}
