// Token pools and the API's 429 across processes sharing one KV (a SQLite
// file): the spread, the lazy fill, the per-slot 401, the 429 retried on
// another slot and after a wait, and the 429 returned when the wait does
// not fit. Each "isolate" is a Deno process (tests/pool_worker.ts); the
// token server and the API are real loopback servers in this process.

import assert from "node:assert/strict";
import { startGenesysLike } from "./servers/genesys_like.ts";
import { serve } from "./_loopback.ts";

const SECRET = "pool-kv-canary-secret-29";
const WORKER = new URL("./pool_worker.ts", import.meta.url).pathname;

interface Result {
  statuses: Record<string, number>;
  events: Record<string, number>;
  slots: { size: number; filled: number; cooling: number } | null;
  waited: number[];
}

/** The API's answer to a call with `token` (the n-th call overall, from 1). */
type Api = (token: string, n: number) => Response;

/** `processes` workers sharing a fresh KV file, each making `calls` calls; their results, and what the servers saw. */
async function run(
  options: {
    processes: number;
    poolSize: number;
    calls: number;
    gapMs?: number;
    deadlineMs?: number;
  },
  api: Api,
): Promise<{ results: Result[]; tokens: string[]; tokenRequests: number }> {
  const server = startGenesysLike({ clients: { app: SECRET }, lifetimeSeconds: 3600 });
  const dir = await Deno.makeTempDir();
  const tokens: string[] = [];
  try {
    return await serve((request) => {
      const token = request.headers.get("authorization") ?? "";
      tokens.push(token);
      return api(token, tokens.length);
    }, async (origin) => {
      // The file exists before the processes open it at once.
      (await Deno.openKv(`${dir}/kv.sqlite`)).close();
      const startAt = Date.now() + 1_500;
      const workers = Array.from(
        { length: options.processes },
        () =>
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--unstable-kv",
              "--allow-net=127.0.0.1",
              "--allow-read",
              "--allow-write",
              "--allow-env",
              WORKER,
            ],
            env: {
              KV: `${dir}/kv.sqlite`,
              TOKEN_URL: server.tokenUrl,
              CLIENT_ID: "app",
              CLIENT_SECRET: SECRET,
              API: origin,
              POOL_SIZE: String(options.poolSize),
              CALLS: String(options.calls),
              GAP_MS: String(options.gapMs ?? 20),
              START_AT: String(startAt),
              ...(options.deadlineMs ? { DEADLINE_MS: String(options.deadlineMs) } : {}),
            },
            stdout: "piped",
            stderr: "piped",
          }).output(),
      );
      const results = (await Promise.all(workers)).map((out) => {
        const text = new TextDecoder().decode(out.stdout).trim();
        assert.ok(out.success && text, new TextDecoder().decode(out.stderr).slice(0, 800));
        return JSON.parse(text.split("\n").at(-1)!) as Result;
      });
      return { results, tokens, tokenRequests: server.stats.tokenRequests };
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const OK: Api = () => new Response("ok");
const sum = (results: Result[], status: number) =>
  results.reduce((n, r) => n + (r.statuses[status] ?? 0), 0);
const counts = (tokens: string[]) => {
  const by = new Map<string, number>();
  for (const t of tokens) by.set(t, (by.get(t) ?? 0) + 1);
  return [...by.values()];
};

Deno.test("processes sharing KV spread calls over the pool's slots: one token per slot between them", async () => {
  const { results, tokens, tokenRequests } = await run({ processes: 3, poolSize: 3, calls: 9 }, OK);
  assert.equal(sum(results, 200), 27);
  assert.equal(tokenRequests, 3, "one token per slot for all three processes");
  const spread = counts(tokens);
  assert.equal(spread.length, 3);
  for (const n of spread) assert.ok(n >= 6 && n <= 12, `calls per token: ${spread}`);
});

Deno.test("processes fill a pool lazily: a pool of 8 with few calls asks for few tokens", async () => {
  const { results, tokenRequests } = await run({ processes: 3, poolSize: 8, calls: 2 }, OK);
  assert.equal(sum(results, 200), 6);
  assert.ok(tokenRequests <= 2, `${tokenRequests} token requests`);
  for (const r of results) assert.ok(r.slots!.filled <= 2, JSON.stringify(r.slots));
});

Deno.test("a 401 forgets only its slot's token, for every process", async () => {
  let revoked = "";
  const { results, tokens, tokenRequests } = await run(
    { processes: 2, poolSize: 2, calls: 8 },
    (token, n) => {
      if (n === 5) revoked = token; // from the fifth call on, one token is revoked
      return token === revoked ? new Response("no", { status: 401 }) : new Response("ok");
    },
  );
  assert.equal(sum(results, 200), 16, JSON.stringify(results));
  assert.equal(tokenRequests, 3, "the other slot kept its token");
  assert.equal(new Set(tokens).size, 3);
});

Deno.test("a 429 moves calls to another slot at once: none reaches a caller", async () => {
  let limited = "";
  const { results } = await run({ processes: 2, poolSize: 2, calls: 6 }, (token) => {
    limited ||= token;
    return token === limited
      ? new Response("slow down", { status: 429, headers: { "retry-after": "60" } })
      : new Response("ok");
  });
  assert.equal(sum(results, 200), 12, JSON.stringify(results));
  assert.equal(sum(results, 429), 0);
  const moved = results.reduce((n, r) => n + (r.events["rate_limited:move"] ?? 0), 0);
  assert.ok(
    moved >= 1 && moved <= 2,
    `${moved} moved: at most once per process, then the slot cools`,
  );
});

Deno.test("a 429 is waited out when every slot cools and the wait fits", async () => {
  const { results } = await run(
    { processes: 2, poolSize: 1, calls: 3 },
    (_, n) =>
      n <= 1
        ? new Response("slow down", { status: 429, headers: { "retry-after": "1" } })
        : new Response("ok"),
  );
  assert.equal(sum(results, 200), 6, JSON.stringify(results));
  const waits = results.reduce((n, r) => n + (r.events.api_wait ?? 0), 0);
  assert.ok(waits >= 1, "a call waited");
});

Deno.test("a 429 is returned when the wait does not fit the call's deadline", async () => {
  const { results } = await run(
    { processes: 2, poolSize: 2, calls: 2, deadlineMs: 2_000 },
    () => new Response("slow down", { status: 429, headers: { "retry-after": "120" } }),
  );
  assert.equal(sum(results, 429), 4);
  for (const r of results) assert.ok(Math.max(...r.waited) < 1_500, `${r.waited}`);
});
