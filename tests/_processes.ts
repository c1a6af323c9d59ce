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

/** Starts `denokv --sqlite-path … serve` on 127.0.0.1 and waits until it accepts connections. */
export async function startDenoKv(dir: string): Promise<DenoKvServer> {
  const port = freePort();
  const accessToken = `denokv-test-${crypto.randomUUID()}`;
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
