// One "isolate" for the multi-process pool tests: a separate Deno process
// that opens the shared KV, waits for a common start time, makes CALLS
// calls through client.fetch to API (one every GAP_MS) and prints one JSON
// line: the statuses its callers got, the events it saw (by type) and
// status().slots. Never a token.
//
// Environment: KV, TOKEN_URL, CLIENT_ID, CLIENT_SECRET, API, POOL_SIZE,
// CALLS, START_AT (epoch ms); optional GAP_MS, DEADLINE_MS.

import { createTokenClient } from "../deno/mod.ts";

const env = (name: string) => Deno.env.get(name);

/** Opens the shared file, again while another process holds it locked as it opens it too. */
async function openShared(path: string | undefined): Promise<Deno.Kv> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.openKv(path);
    } catch (error) {
      if (attempt >= 50 || !/database is locked/i.test(String(error))) throw error;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}

const kv = await openShared(env("KV"));
const events: Record<string, number> = {};
const client = createTokenClient({
  tokenUrl: env("TOKEN_URL")!,
  clientId: env("CLIENT_ID")!,
  clientSecret: env("CLIENT_SECRET")!,
  baseUrl: env("API")!,
  kv,
  poolSize: Number(env("POOL_SIZE")),
  retry: env("DEADLINE_MS") ? { deadlineMs: Number(env("DEADLINE_MS")) } : undefined,
  onEvent: (e) => {
    const name = e.type === "rate_limited" ? `rate_limited:${e.next}` : e.type;
    events[name] = (events[name] ?? 0) + 1;
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(Math.max(0, Number(env("START_AT")) - Date.now()));
const statuses: Record<number, number> = {};
const waited: number[] = [];
for (let i = 0; i < Number(env("CALLS")); i++) {
  const started = performance.now();
  const response = await client.fetch("/api/v2/things");
  await response.body?.cancel();
  statuses[response.status] = (statuses[response.status] ?? 0) + 1;
  waited.push(performance.now() - started);
  await sleep(Number(env("GAP_MS") ?? 0));
}
console.log(JSON.stringify({ statuses, events, slots: client.status().slots ?? null, waited }));
kv.close();
