// Latency of getting a token across refreshes, in a process of its own (the
// token server runs in the runner): an open-loop load of RATE calls per
// second for SECONDS, each call timed from its start to its answer. Tokens
// live 8 s, so the run crosses several refreshes. Prints JSON: percentiles
// of all calls and of the calls within 50 ms of each token change (the
// refresh boundary), where a cache that fetches on expiry makes callers wait.
import { freshtoken } from "./peers/freshtoken.ts";
import { oauth4webapiMemo } from "./peers/oauth4webapi.ts";
import type { Getter } from "./peers/common.ts";

const env = (name: string) => Deno.env.get(name)!;
const RATE = 1000;
const SECONDS = Number(env("SECONDS"));
const resolved = Promise.resolve("floor");
const getter: Getter = env("PEER") === "freshtoken"
  ? freshtoken(env("TOKEN_URL"))
  : env("PEER") === "oauth4webapi"
  ? oauth4webapiMemo(env("TOKEN_URL"))
  : { get: async () => await resolved }; // the floor: no cache, no clock, no network

interface Call {
  at: number;
  micros: number;
  token: string;
}
const calls: Call[] = [];
const call = (at: number) =>
  getter.get().then((token) => calls.push({ at, micros: (performance.now() - at) * 1000, token }));

await getter.get();
const start = performance.now();
let issued = 0;
const pending: Promise<unknown>[] = [];
await new Promise<void>((done) => {
  // One interval, not a timer per tick: making a timer would land inside the calls' timing.
  const tick = setInterval(() => {
    // Every call that is due now starts now, whether earlier ones answered or not.
    while (start + (issued * 1000) / RATE <= performance.now()) {
      pending.push(call(performance.now()));
      issued++;
    }
    if (performance.now() - start >= SECONDS * 1000) {
      clearInterval(tick);
      done();
    }
  }, 1);
});
await Promise.all(pending);

calls.sort((a, b) => a.at - b.at);
const changes = calls.filter((c, i) => i > 0 && c.token !== calls[i - 1].token).map((c) => c.at);
const near = calls.filter((c) => changes.some((at) => Math.abs(c.at - at) <= 50));
const stats = (xs: Call[]) => {
  const sorted = xs.map((c) => c.micros).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0 };
};
console.log(
  JSON.stringify({ all: stats(calls), boundary: stats(near), refreshes: changes.length }),
);
Deno.exit(0);
