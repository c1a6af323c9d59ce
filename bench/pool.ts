// The pool benchmark (README, "Rate limits and pools"): a loopback API that
// allows PER_TOKEN calls per second per token (a scaled-down Genesys
// Cloud: 300 a minute per token) and answers 429 with Retry-After past it;
// PROCESSES client processes sharing one KV file offer several times one
// token's limit between them; pool sizes 1, 2, 4 and 8. Reports calls
// served per second, 429s the callers saw, token requests, and the latency
// of calls (median, p95) with the moves and waits behind it.
//
// Usage: deno run -A --unstable-kv bench/pool.ts

import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const PER_TOKEN = 5;
const PROCESSES = 4;
const GAP_MS = 100; // each process offers 10 calls a second: 40 in all, 8 × one token's limit
const DURATION_MS = 8_000;
const DEADLINE_MS = 5_000;

interface Worker {
  calls: [number, number, number][];
  moved: number;
  waits: number[];
}

const quantile = (xs: number[], q: number) =>
  xs.length === 0
    ? 0
    : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

async function run(poolSize: number) {
  const server = startGenesysLike({
    clients: { "bench-client": "bench-secret" },
    lifetimeSeconds: 3600,
  });
  const used = new Map<string, number[]>();
  const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const token = request.headers.get("authorization") ?? "";
    const now = performance.now();
    const recent = (used.get(token) ?? []).filter((t) => t > now - 1_000);
    used.set(token, recent);
    if (recent.length >= PER_TOKEN) {
      const seconds = Math.max(1, Math.ceil((recent[0] + 1_000 - now) / 1_000));
      return new Response("rate limited", {
        status: 429,
        headers: { "retry-after": String(seconds) },
      });
    }
    recent.push(now);
    return new Response("ok");
  });
  const dir = await Deno.makeTempDir();
  const startAt = Date.now() + 2_000;
  const outputs = await Promise.all(
    Array.from({ length: PROCESSES }, () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--unstable-kv", `${ROOT}bench/_pool_worker.ts`],
        env: {
          KV: `${dir}/kv.sqlite`,
          TOKEN_URL: server.tokenUrl,
          API: `http://127.0.0.1:${api.addr.port}`,
          POOL_SIZE: String(poolSize),
          GAP_MS: String(GAP_MS),
          DURATION_MS: String(DURATION_MS),
          DEADLINE_MS: String(DEADLINE_MS),
          START_AT: String(startAt),
        },
        stdout: "piped",
        stderr: "inherit",
      }).output()),
  );
  const workers = outputs.map((o) => JSON.parse(new TextDecoder().decode(o.stdout)) as Worker);
  await api.shutdown();
  await server.close();
  await Deno.remove(dir, { recursive: true });
  const calls = workers.flatMap((w) => w.calls);
  const served = calls.filter(([end, status]) => status === 200 && end <= DURATION_MS).length;
  const latencies = calls.map(([, , ms]) => ms);
  const waits = workers.flatMap((w) => w.waits);
  return {
    poolSize,
    offeredPerSecond: (calls.length / DURATION_MS) * 1000,
    servedPerSecond: (served / DURATION_MS) * 1000,
    ceiling: PER_TOKEN * poolSize,
    callers429: calls.filter(([, status]) => status === 429).length,
    calls: calls.length,
    tokenRequests: server.stats.tokenRequests,
    moved: workers.reduce((n, w) => n + w.moved, 0),
    waited: waits.length,
    meanWaitMs: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : 0,
    medianMs: quantile(latencies, 0.5),
    p95Ms: quantile(latencies, 0.95),
  };
}

const rows = [];
for (const size of [1, 2, 4, 8]) rows.push(await run(size));
console.log(
  `| poolSize | offered/s | served/s (limit N×${PER_TOKEN}) | 429s to callers | token requests | moved | waited (mean ms) | latency median / p95 ms |`,
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  console.log(
    `| ${r.poolSize} | ${r.offeredPerSecond.toFixed(1)} | ${
      r.servedPerSecond.toFixed(1)
    } (${r.ceiling}) | ` +
      `${r.callers429} of ${r.calls} | ${r.tokenRequests} | ${r.moved} | ${r.waited} (${
        r.meanWaitMs.toFixed(0)
      }) | ` +
      `${r.medianMs.toFixed(1)} / ${r.p95Ms.toFixed(1)} |`,
  );
}
