// One client process of the pool benchmark (bench/_pool.ts): opens the
// shared KV, waits for the common start, fires one client.fetch every
// GAP_MS for DURATION_MS without waiting for the previous one (an open
// loop: the load offered does not fall when calls wait), waits for every
// call to end and prints one JSON line: when each call ended, its status,
// latency and id (sent to the API as `x-call`), and which calls moved to
// another slot or waited (never a token).
//
// Environment: KV, TOKEN_URL, API, POOL_SIZE, GAP_MS, DURATION_MS,
// DEADLINE_MS, START_AT (epoch ms), PROCESS (this process's number).

import { AsyncLocalStorage } from "node:async_hooks";
import { createTokenClient } from "../deno/mod.ts";

const env = (name: string) => Deno.env.get(name)!;
const kv = await Deno.openKv(env("KV"));
/** The id of the call whose code runs (events are emitted inside it). */
const current = new AsyncLocalStorage<string>();
const moved: string[] = [];
const waited: string[] = [];
const client = createTokenClient({
  tokenUrl: env("TOKEN_URL"),
  clientId: "bench-client",
  clientSecret: "bench-secret",
  baseUrl: env("API"),
  kv,
  poolSize: Number(env("POOL_SIZE")),
  retry: { deadlineMs: Number(env("DEADLINE_MS")) },
  onEvent: (e) => {
    if (e.type === "rate_limited" && e.next === "move") moved.push(current.getStore()!);
    if (e.type === "api_wait") waited.push(current.getStore()!);
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await sleep(Math.max(0, Number(env("START_AT")) - Date.now()));
const start = Date.now();
const calls: Promise<[number, number, number, string]>[] = [];
for (let n = 0; Date.now() - start < Number(env("DURATION_MS")); n++) {
  const id = `${env("PROCESS")}-${n}`;
  calls.push(current.run(id, async () => {
    const sent = performance.now();
    const response = await client.fetch("/api/v2/things", { headers: { "x-call": id } });
    await response.body?.cancel();
    return [Date.now() - start, response.status, performance.now() - sent, id] as [
      number,
      number,
      number,
      string,
    ];
  }));
  await sleep(Number(env("GAP_MS")));
}
console.log(JSON.stringify({ calls: await Promise.all(calls), moved, waited }));
kv.close();
