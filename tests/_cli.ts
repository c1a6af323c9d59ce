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
