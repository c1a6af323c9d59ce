// Helpers for the multi-process tests: KV worker processes and a
// self-hosted denokv server, all on 127.0.0.1.

const WORKER = new URL("./kv_worker.ts", import.meta.url).pathname;

/** What one worker printed. */
export interface WorkerResult {
  fingerprint?: string;
  expiresAt?: number;
  tokens?: number;
  error?: string;
  events: string[];
}

/** A running worker process. */
export interface Worker {
  child: Deno.ChildProcess;
  /** Resolves once the worker is about to ask for its token. */
  ready: Promise<void>;
  result: Promise<WorkerResult>;
}

/** Starts `tests/kv_worker.ts` in its own Deno process. */
export function startWorker(env: Record<string, string>): Worker {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      WORKER,
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let markReady!: () => void;
  const ready = new Promise<void>((r) => markReady = r);
  const result = (async () => {
    const lines: string[] = [];
    const decoder = child.stdout.pipeThrough(new TextDecoderStream());
    let buffer = "";
    for await (const chunk of decoder) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line === "ready") markReady();
        else lines.push(line);
      }
    }
    const stderr = await new Response(child.stderr).text();
    const status = await child.status;
    const last = lines.at(-1);
    if (last === undefined) {
      return {
        error: `exited ${status.code} (signal ${status.signal}): ${stderr.slice(0, 500)}`,
        events: [],
      };
    }
    return JSON.parse(last) as WorkerResult;
  })();
  return { child, ready, result };
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A self-hosted `denokv` server (the KV Connect protocol of Deno Deploy's KV). */
export interface DenoKvServer {
  url: string;
  accessToken: string;
  close(): Promise<void>;
}

/**
 * Starts `denokv --sqlite-path … serve` on 127.0.0.1 and waits until it accepts connections;
 * `port` and `accessToken` start it again on the same file as another operator would.
 */
export async function startDenoKv(
  dir: string,
  { port = freePort(), accessToken = `denokv-test-${crypto.randomUUID()}` } = {},
): Promise<DenoKvServer> {
  const child = new Deno.Command("denokv", {
    args: [
      "--sqlite-path",
      `${dir}/denokv.sqlite`,
      "serve",
      "--access-token",
      accessToken,
      "--addr",
      `127.0.0.1:${port}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    accessToken,
    async close() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** What a program run by {@linkcode runDeno} printed and how it ended. */
export interface DenoRun {
  stdout: string;
  stderr: string;
  code: number;
  /** Whether it was stopped at the time limit rather than ending or being done. */
  timedOut: boolean;
}

/** How {@linkcode runDeno} runs a program. */
export interface DenoRunOptions {
  /** Stops it (SIGTERM) once its stdout so far satisfies this. */
  done?: (stdout: string) => boolean;
  /** Stops it after this long, ms (default 20 s). */
  limitMs?: number;
  /** Runtime flags before the permissions (`--v8-flags=…`). */
  flags?: string[];
  /** `--unstable-kv` too (default true). */
  kv?: boolean;
}

/**
 * Runs `args` (a script, then its arguments) under `deno run` with
 * `--unstable-cron`, net on 127.0.0.1, read, write and env, and with only
 * `env` set, until it ends, `done` holds or the time limit passes: as Deno
 * Deploy runs an entry module, and as the cron tests need it.
 */
export async function runDeno(
  args: string[],
  env: Record<string, string>,
  options: DenoRunOptions = {},
): Promise<DenoRun> {
  const { done = () => false, limitMs = 20_000, flags = [], kv = true } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...flags,
      "--unstable-cron",
      ...(kv ? ["--unstable-kv"] : []),
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      ...args,
    ],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  let stopped = false;
  let timedOut = false;
  /** Once, and only while it runs: it may have ended on its own. */
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // It has ended already.
    }
  };
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      stdout += chunk;
      if (done(stdout)) stop();
    }
  })();
  const timer = setTimeout(() => {
    timedOut = !stopped;
    stop();
  }, limitMs);
  const [{ code }, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
    reading,
  ]);
  clearTimeout(timer);
  return { stdout, stderr, code, timedOut };
}
