// The pool benchmark (README, "Rate limits and pools"), run by bench/run.ts
// and alone by bench/pool.ts: a loopback API that allows PER_TOKEN calls
// per second per token over a sliding second (a scaled-down Genesys Cloud:
// 300 a minute per token) and answers 429 with Retry-After (whole seconds,
// at least 1) past it; PROCESSES client processes (bench/_pool_worker.ts)
// sharing one KV file offer a load between them; pool sizes 1, 2, 4 and 8.
//
// The API keeps what the callers cannot see, to say why a 429 reached a
// caller: each call carries an `x-call` id, so the API knows every send of
// a call, which token it used and what it answered; and it knows which
// token it had told to wait (a 429's Retry-After) and until when.

import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Calls per second the API allows each token. */
export const PER_TOKEN = 5;
const PROCESSES = 4;
const DURATION_MS = 8_000;
const DEADLINE_MS = 5_000;
/** `retry.maxAttempts`, freshtoken's default. */
const MAX_ATTEMPTS = 4;

/** One run's figures. */
export interface PoolRow {
  poolSize: number;
  /** Calls offered per second, all processes. */
  offeredPerSecond: number;
  /** Calls the API accepted per second within the run's window. */
  servedPerSecond: number;
  /** N × PER_TOKEN. */
  limit: number;
  calls: number;
  /** 429s handed to callers. */
  callers429: number;
  tokenRequests: number;
  moved: number;
  waited: number;
  /** Latency of calls that moved (and did not wait), median ms. */
  movedMedianMs: number;
  /** Latency of calls that waited, median ms. */
  waitedMedianMs: number;
  medianMs: number;
  p95Ms: number;
  /** Why each 429 handed to a caller was: */
  why: {
    /** its last wait would have passed the deadline; */
    deadline: number;
    /** it had sent `retry.maxAttempts` times (of which, moves spent some); */
    attempts: number;
    /** of `attempts`: calls that moved at least once. */
    attemptsWithMoves: number;
  };
  /** Sends on a token the API had already told to wait (a 429 with Retry-After not yet over). */
  sentWhileCooling: number;
  /** Of those, the ones answered 429. */
  refusedWhileCooling: number;
  /** Of those, the ones from the process that had got the 429 itself. */
  ownCooling: number;
  /** 429s the API answered in all. */
  api429: number;
  /** Mean ms a Retry-After asked beyond when the token's window next had room. */
  retryAfterExcessMs: number;
}

interface Worker {
  /** [ended at (ms after start), status, latency ms, call id]. */
  calls: [number, number, number, string][];
  moved: string[];
  waited: string[];
}

interface CallRecord {
  sends: number;
  tokens: Set<string>;
  /** The last 429's Retry-After, ms. */
  lastCoolingMs: number;
}

const quantile = (xs: number[], q: number) =>
  xs.length === 0
    ? 0
    : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

/** The loopback API: PER_TOKEN calls per sliding second per token, and its records. */
function startApi() {
  const used = new Map<string, number[]>();
  const coolingUntil = new Map<string, number>();
  const byCall = new Map<string, CallRecord>();
  const accepted: number[] = []; // epoch ms
  /** Which process each token's last 429 went to. */
  const cooledBy = new Map<string, string>();
  const stats = {
    sentWhileCooling: 0,
    refusedWhileCooling: 0,
    ownCooling: 0,
    api429: 0,
    excessMs: 0,
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const token = request.headers.get("authorization") ?? "";
    const id = request.headers.get("x-call") ?? "";
    const call = byCall.get(id) ?? { sends: 0, tokens: new Set(), lastCoolingMs: 0 };
    byCall.set(id, call);
    call.sends++;
    call.tokens.add(token);
    const now = performance.now();
    const told = now < (coolingUntil.get(token) ?? 0);
    const process = id.split("-")[0];
    if (told) stats.sentWhileCooling++;
    if (told && cooledBy.get(token) === process) stats.ownCooling++;
    const recent = (used.get(token) ?? []).filter((t) => t > now - 1_000);
    used.set(token, recent);
    if (recent.length >= PER_TOKEN) {
      if (told) stats.refusedWhileCooling++;
      const roomInMs = recent[0] + 1_000 - now;
      const seconds = Math.max(1, Math.ceil(roomInMs / 1_000));
      coolingUntil.set(token, now + seconds * 1000);
      cooledBy.set(token, process);
      call.lastCoolingMs = seconds * 1000;
      stats.api429++;
      stats.excessMs += seconds * 1000 - roomInMs;
      return new Response("rate limited", {
        status: 429,
        headers: { "retry-after": String(seconds) },
      });
    }
    recent.push(now);
    accepted.push(Date.now());
    return new Response("ok");
  });
  return { server, byCall, accepted, stats };
}

/** One run: `poolSize` slots, each process firing a call every `gapMs`. */
export async function poolRun(poolSize: number, gapMs: number): Promise<PoolRow> {
  const tokens = startGenesysLike({
    clients: { "bench-client": "bench-secret" },
    lifetimeSeconds: 3600,
  });
  const api = startApi();
  const dir = await Deno.makeTempDir();
  await (await Deno.openKv(`${dir}/kv.sqlite`)).close(); // made once, before the processes open it
  const startAt = Date.now() + 2_000;
  const outputs = await Promise.all(
    Array.from({ length: PROCESSES }, (_, p) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--unstable-kv", `${ROOT}bench/_pool_worker.ts`],
        env: {
          KV: `${dir}/kv.sqlite`,
          TOKEN_URL: tokens.tokenUrl,
          API: `http://127.0.0.1:${api.server.addr.port}`,
          POOL_SIZE: String(poolSize),
          GAP_MS: String(gapMs),
          DURATION_MS: String(DURATION_MS),
          DEADLINE_MS: String(DEADLINE_MS),
          START_AT: String(startAt),
          PROCESS: String(p),
        },
        stdout: "piped",
        stderr: "inherit",
      }).output()),
  );
  const workers = outputs.map((o) => JSON.parse(new TextDecoder().decode(o.stdout)) as Worker);
  await api.server.shutdown();
  await tokens.close();
  await Deno.remove(dir, { recursive: true });

  const calls = workers.flatMap((w) => w.calls);
  const moved = new Set(workers.flatMap((w) => w.moved));
  const waited = new Set(workers.flatMap((w) => w.waited));
  const latency = (ids: (id: string) => boolean) =>
    quantile(calls.filter(([, , , id]) => ids(id)).map(([, , ms]) => ms), 0.5);
  const served = api.accepted.filter((t) => t >= startAt && t < startAt + DURATION_MS).length;
  const refused = calls.filter(([, status]) => status === 429);
  const why = { deadline: 0, attempts: 0, attemptsWithMoves: 0 };
  for (const [, , , id] of refused) {
    const call = api.byCall.get(id)!;
    if (call.sends >= MAX_ATTEMPTS) {
      why.attempts++;
      if (call.tokens.size > 1) why.attemptsWithMoves++;
    } else why.deadline++;
  }
  return {
    poolSize,
    offeredPerSecond: (calls.length / DURATION_MS) * 1000,
    servedPerSecond: (served / DURATION_MS) * 1000,
    limit: PER_TOKEN * poolSize,
    calls: calls.length,
    callers429: refused.length,
    tokenRequests: tokens.stats.tokenRequests,
    moved: workers.reduce((n, w) => n + w.moved.length, 0),
    waited: workers.reduce((n, w) => n + w.waited.length, 0),
    movedMedianMs: latency((id) => moved.has(id) && !waited.has(id)),
    waitedMedianMs: latency((id) => waited.has(id)),
    medianMs: quantile(calls.map(([, , ms]) => ms), 0.5),
    p95Ms: quantile(calls.map(([, , ms]) => ms), 0.95),
    why,
    sentWhileCooling: api.stats.sentWhileCooling,
    refusedWhileCooling: api.stats.refusedWhileCooling,
    ownCooling: api.stats.ownCooling,
    api429: api.stats.api429,
    retryAfterExcessMs: api.stats.api429 ? api.stats.excessMs / api.stats.api429 : 0,
  };
}

/** The gap between one process's calls that offers `perSecond` calls a second in all. */
export function gapFor(perSecond: number): number {
  return (PROCESSES * 1000) / perSecond;
}

/** A goal met or missed, as bench/run.ts records it. */
export type Verdict = (met: boolean, text: string) => void;

/**
 * The pool part of the benchmark run: pool sizes 1, 2, 4 and 8 at 8 times
 * one token's limit, and the pool of 8 at 80 % of its limit. Prints the
 * table as it goes, records the goals' verdicts, and returns the section
 * for docs/BENCHMARKS.md.
 */
export async function poolSection(verdict: Verdict): Promise<string> {
  console.log(HEADER.join("\n"));
  const rows: PoolRow[] = [];
  const load = 8 * PER_TOKEN;
  for (const size of [1, 2, 4, 8, 8]) {
    const offered = rows.length < 4 ? load : 0.8 * size * PER_TOKEN;
    rows.push(await poolRun(size, gapFor(offered)));
    console.log(tableRow(rows.at(-1)!));
  }
  const [full, under] = rows.slice(3);
  verdict(
    full.callers429 === 0 && full.servedPerSecond >= 0.95 * full.limit,
    `a pool of 8 offered its limit (${full.limit}/s) served ${full.servedPerSecond.toFixed(1)}/s ` +
      `(${(100 * full.servedPerSecond / full.limit).toFixed(0)} %) and ${full.callers429} of ` +
      `${full.calls} calls got a 429 (goal: N × one token's limit, no 429 to a caller)`,
  );
  verdict(
    under.callers429 === 0,
    `a pool of 8 offered 80 % of its limit: ${under.callers429} of ${under.calls} calls got a 429 ` +
      `(goal: none)`,
  );
  verdict(
    rows.every((r) => r.tokenRequests <= r.poolSize),
    `token requests per pool of N, ${PROCESSES} processes sharing KV: ` +
      `${rows.map((r) => `${r.tokenRequests} for ${r.poolSize}`).join(", ")} (goal: ≤ N)`,
  );
  for (const r of rows) console.log(behind(r));
  return [
    `Measured with ${SETUP}. The first four rows offer 8 times one token's limit; the last, the`,
    `pool of 8 at 80 % of its limit. "deadline / attempts": of the 429s handed to callers, those`,
    `whose wait would have passed the deadline and those that had sent \`retry.maxAttempts\` times.`,
    `"Served" counts the calls the API accepted within the ${DURATION_MS / 1000} s.`,
    "",
    ...HEADER,
    ...rows.map(tableRow),
    "",
    "What the API saw behind each row:",
    "",
    ...rows.map((r) => `- ${behind(r)}`),
  ].join("\n");
}

/** How the runs were made, for the tables' captions. */
export const SETUP = `a loopback API allowing ${PER_TOKEN} calls per sliding second per token ` +
  `(Genesys's 300 a minute, scaled down), answering 429 with \`Retry-After\` in whole seconds past it; ` +
  `${PROCESSES} client processes sharing one KV file fire calls at a steady rate without waiting ` +
  `for earlier ones (an open loop) for ${
    DURATION_MS / 1000
  } s, \`retry.deadlineMs\` ${DEADLINE_MS}`;

/** The table's header lines (markdown). */
export const HEADER = [
  `| poolSize | offered/s | served/s (limit) | 429s to callers (deadline / attempts) | token requests | moved | waited | latency moved / waited, median ms | latency median / p95 ms |`,
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];

/** One row of the table (markdown). */
export function tableRow(r: PoolRow): string {
  return `| ${r.poolSize} | ${r.offeredPerSecond.toFixed(1)} | ${
    r.servedPerSecond.toFixed(1)
  } (${r.limit}) | ${r.callers429} of ${r.calls} (${r.why.deadline} / ${r.why.attempts}) | ${r.tokenRequests} | ${r.moved} | ${r.waited} | ${
    r.movedMedianMs.toFixed(0)
  } / ${r.waitedMedianMs.toFixed(0)} | ${r.medianMs.toFixed(0)} / ${r.p95Ms.toFixed(0)} |`;
}

/** What the API saw beyond the table, for one row (a line of text). */
export function behind(r: PoolRow): string {
  return `poolSize ${r.poolSize} at ${
    r.offeredPerSecond.toFixed(0)
  }/s: ${r.api429} 429s from the API, ` +
    `${r.sentWhileCooling} sends on a token the API had already told to wait ` +
    `(${r.refusedWhileCooling} of them refused; ${r.ownCooling} from the process told), ` +
    `of the 429s to callers ${r.why.attemptsWithMoves} had spent attempts on moves; ` +
    `Retry-After asked on average ${
      r.retryAfterExcessMs.toFixed(0)
    } ms beyond the window's next room`;
}
