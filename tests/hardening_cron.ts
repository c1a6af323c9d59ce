// Hardening of the cron job. Every case runs Deno's own `Deno.cron`
// in a process of its own (DENO_CRON_TEST_SCHEDULE_OFFSET=1, Deno's hook
// that fires a job at once), against a real loopback token server and real
// SQLite KV files. Part of the hardening matrix (tests/hardening.ts).

import { createTokenClient, TokenError } from "../deno/mod.ts";
import type { TokenClientOptions } from "../deno/types.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import type { HardeningCase } from "./hardening.ts";
import { type DenoRun as Run, runDeno } from "./_processes.ts";

const MOD = new URL("../deno/mod.ts", import.meta.url).href;
const CRON = new URL("../deno/cron.ts", import.meta.url).href;
const README = new URL("../README.md", import.meta.url);
const SECRET = "round4-cron-canary-secret";
const REFRESHED = /freshtoken cron: app at http:\/\/127\.0\.0\.1:\d+: refreshed/g;

/** What a client made with `options` (and a KV) is refused with, or `undefined`. */
async function refusal(options: TokenClientOptions): Promise<TokenError | undefined> {
  const kv = await Deno.openKv(":memory:");
  try {
    createTokenClient({ ...options, kv });
    return undefined;
  } catch (error) {
    if (error instanceof TokenError) return error;
    throw error;
  } finally {
    kv.close();
  }
}

/**
 * `deno/cron.ts` imported with a configuration `createTokenClient` refuses:
 * it must end at once with that `config` error, not register a job that fails
 * at every run.
 */
function refusedAtImport(
  what: string,
  env: Record<string, string>,
  options: TokenClientOptions,
): HardeningCase {
  return {
    group: "round 4 cron",
    name: `deno/cron.ts with ${what} fails on import with createTokenClient's config error`,
    async run() {
      const expected = await refusal(options);
      if (expected === undefined) {
        return { ok: false, outcome: "createTokenClient accepts this configuration" };
      }
      const dir = await Deno.makeTempDir();
      try {
        const started = performance.now();
        const run = await runDeno([CRON], { FRESHTOKEN_KV: `${dir}/kv.sqlite`, ...env }, {
          limitMs: 8_000,
        });
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const named = run.stderr.includes(expected.message);
        const leaked = run.stderr.includes(SECRET) || run.stdout.includes(SECRET);
        const ok = !run.timedOut && run.code !== 0 && named && !leaked;
        return {
          ok,
          outcome: run.timedOut
            ? `still running after ${seconds} s (the job registered; its runs fail)`
            : `exit ${run.code} after ${seconds} s; ${
              named ? `stderr names "${expected.message}"` : "stderr lacks the config error"
            }${leaked ? "; the secret was printed" : ""}`,
        };
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
}

/** The README's handler for `freshtoken/cron` (under "The cron job"), runnable from this checkout. */
async function readmeCronHandler(): Promise<string | undefined> {
  const text = await Deno.readTextFile(README);
  const section = text.split(/^## /m).find((s) => s.startsWith("The cron job")) ?? "";
  const block = [...section.matchAll(/^```ts\n([\s\S]*?)^```$/gm)]
    .map((m) => m[1])
    .find((code) => code.includes('"jsr:@freshtoken/freshtoken/cron"'));
  return block
    ?.replaceAll('"jsr:@freshtoken/freshtoken/cron"', JSON.stringify(CRON))
    .replaceAll('"jsr:@freshtoken/freshtoken"', JSON.stringify(MOD));
}

/** Script text that prints "job: <name>" for each job registered with `Deno.cron`. */
const LOG_JOBS = `const cron = Deno.cron;
Object.defineProperty(Deno, "cron", {
  value: (name: string, ...rest: unknown[]) => {
    console.log("job: " + name);
    return (cron as (...args: unknown[]) => Promise<void>)(name, ...rest);
  },
});
`;

/** The jobs `run` registered, by the lines `LOG_JOBS` printed. */
function jobsOf(run: Run): string[] {
  return run.stdout.match(/^job: .*$/gm) ?? [];
}

export const CRON_CASES: HardeningCase[] = [
  {
    group: "round 4 cron",
    name:
      "registerRefreshCron for one identity on two KV stores, under two key prefixes and without KV: a job per place, every store refreshed",
    async run() {
      const server = startGenesysLike({ clients: { app: SECRET } });
      const dir = await Deno.makeTempDir();
      try {
        const [first, second] = [`${dir}/first.sqlite`, `${dir}/second.sqlite`];
        const script = `${dir}/main.ts`;
        await Deno.writeTextFile(
          script,
          `import { createTokenClient, registerRefreshCron } from ${JSON.stringify(MOD)};
${LOG_JOBS}const options = {
  tokenUrl: ${JSON.stringify(server.tokenUrl)},
  clientId: "app",
  clientSecret: Deno.env.get("SECRET")!,
};
const first = await Deno.openKv(${JSON.stringify(first)});
const second = await Deno.openKv(${JSON.stringify(second)});
for (
  const client of [
    createTokenClient({ ...options, kv: first }),
    createTokenClient({ ...options, kv: first }), // the same job as the one before
    createTokenClient({ ...options, kv: second }), // the first one's job, for this store too
    createTokenClient({ ...options, kv: first, kvPrefix: ["other"] }),
    createTokenClient(options),
  ]
) await registerRefreshCron(client);
// The clients above are referenced by nothing but their registrations: a collection here must not
// stop the job refreshing the second store, which is still open.
(globalThis as unknown as { gc: () => void }).gc();
console.log("registered");
`,
        );
        // Two starts of the same entry module. Deno's hook fires each job again and again, and a
        // job refreshes once: four refreshes on the first start, from three jobs (one per place:
        // the second store is refreshed by the first one's job); on the second, which finds the
        // stores' tokens fresh, only the client without KV refreshes.
        const starts: Run[] = [];
        for (const refreshes of [4, 1]) {
          starts.push(
            await runDeno([script], { DENO_CRON_TEST_SCHEDULE_OFFSET: "1", SECRET }, {
              done: (out) => (out.match(REFRESHED) ?? []).length >= refreshes,
              limitMs: 15_000,
              flags: ["--v8-flags=--expose-gc"],
            }),
          );
        }
        const [run, again] = starts;
        const jobs = jobsOf(run);
        const names = new Set(jobs);
        const stable = jobs.join("\n") === jobsOf(again).join("\n");
        const runs = starts.map((start) => (start.stdout.match(REFRESHED) ?? []).length);
        const requests = server.stats.tokenRequests;
        // A handler on each store and prefix reads the job's token: no request of its own.
        const stores: [string, Deno.KvKey | undefined][] = [
          [first, undefined],
          [second, undefined],
          [first, ["other"]],
        ];
        let handlersFetching = 0;
        for (const [path, kvPrefix] of stores) {
          const kv = await Deno.openKv(path);
          try {
            const handler = createTokenClient({
              tokenUrl: server.tokenUrl,
              clientId: "app",
              clientSecret: SECRET,
              kv,
              ...(kvPrefix ? { kvPrefix } : {}),
            });
            await handler.getToken();
            if (handler.status().fetches > 0) handlersFetching++;
          } finally {
            kv.close();
          }
        }
        const registered = starts.every((start) => start.stdout.includes("registered"));
        return {
          ok: registered && jobs.length === 3 && names.size === 3 && stable && runs[0] === 4 &&
            runs[1] === 1 && requests === 5 && handlersFetching === 0,
          outcome:
            `${registered ? "" : "the registrations failed; "}jobs registered: ${jobs.length} ` +
            `(${names.size} names, ${stable ? "the same" : "others"} on a second start); ` +
            `runs that refreshed: ${runs[0]}, then ${runs[1]} on the second start; ` +
            `token requests: ${requests}; handlers on the 3 stores that fetched for themselves: ${handlersFetching}`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  refusedAtImport(
    "an http: token URL to a remote host",
    {
      FRESHTOKEN_TOKEN_URL: "http://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
    },
    { tokenUrl: "http://auth.example.com/oauth/token", clientId: "app", clientSecret: SECRET },
  ),
  refusedAtImport(
    "a secret ending in a whitespace character the variable reading keeps (U+0085)",
    {
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: `${SECRET}\u0085`,
    },
    {
      tokenUrl: "https://auth.example.com/oauth/token",
      clientId: "app",
      clientSecret: `${SECRET}\u0085`,
    },
  ),
  refusedAtImport(
    "an encryption key that is not 32 bytes of base64",
    {
      FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
      FRESHTOKEN_CLIENT_ID: "app",
      FRESHTOKEN_CLIENT_SECRET: SECRET,
      FRESHTOKEN_ENCRYPTION_KEY: "not-a-key",
    },
    {
      tokenUrl: "https://auth.example.com/oauth/token",
      clientId: "app",
      clientSecret: SECRET,
      encryptionKey: "not-a-key",
    },
  ),
  {
    group: "round 4 cron",
    name:
      "the README's handler for freshtoken/cron, and one from clientOptionsFromEnv() with the module's kv, with FRESHTOKEN_KV set, each in its own process: one token between them and their jobs",
    async run() {
      const readme = await readmeCronHandler();
      if (readme === undefined) {
        return { ok: false, outcome: "no handler importing freshtoken/cron under The cron job" };
      }
      const ownOptions = `import { kv } from ${JSON.stringify(CRON)};
import { clientOptionsFromEnv, createTokenClient } from ${JSON.stringify(MOD)};

const [options] = clientOptionsFromEnv();
const client = createTokenClient({ ...options, kv });
`;
      const server = startGenesysLike({ clients: { app: SECRET } });
      const dir = await Deno.makeTempDir();
      try {
        const env = {
          DENO_CRON_TEST_SCHEDULE_OFFSET: "1",
          // Where Deno.openKv() without a path keeps its file: inside the case's folder.
          DENO_DIR: `${dir}/deno`,
          FRESHTOKEN_KV: `${dir}/kv.sqlite`,
          FRESHTOKEN_TOKEN_URL: server.tokenUrl,
          FRESHTOKEN_CLIENT_ID: "app",
          FRESHTOKEN_CLIENT_SECRET: SECRET,
        };
        const done = (out: string) =>
          out.includes("handler: ") && /freshtoken cron: app at .*: (refreshed|fresh)/.test(out);
        const runs: Run[] = [];
        for (const [i, handler] of [readme, ownOptions].entries()) {
          // Each handler as written, then one call of its own.
          const script = `${dir}/main${i}.ts`;
          await Deno.writeTextFile(
            script,
            `${handler}\nconsole.log("handler: " + (await client.getToken()).expiresAt);\n`,
          );
          runs.push(await runDeno([script], env, { done, limitMs: 15_000 }));
        }
        const served = runs.map((r) => r.stdout.match(/^handler: (\d+)$/m)?.[1]);
        const jobs = runs.map((r) => r.stdout.match(/freshtoken cron: app at .*: (\w+)/)?.[1]);
        const requests = server.stats.tokenRequests;
        const oneToken = served[0] !== undefined && served[0] === served[1];
        return {
          ok: served.every((s) => s !== undefined) && jobs.every((j) => j !== undefined) &&
            oneToken && requests === 1,
          outcome: `token requests: ${requests} (job runs: ${
            jobs.map((j) => j ?? "none").join(", ")
          }; handlers that served: ${served.filter((s) => s !== undefined).length} of 2, ${
            oneToken ? "one token" : "different tokens"
          })`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 cron",
    name:
      "registerRefreshCron for one store opened twice, then for 300 requests that each open it, register and close it: one job, never refused, one token request",
    async run() {
      const server = startGenesysLike({ clients: { app: SECRET } });
      const dir = await Deno.makeTempDir();
      try {
        const path = `${dir}/kv.sqlite`;
        const script = `${dir}/main.ts`;
        await Deno.writeTextFile(
          script,
          `import { createTokenClient, registerRefreshCron } from ${JSON.stringify(MOD)};
${LOG_JOBS}const options = {
  tokenUrl: ${JSON.stringify(server.tokenUrl)},
  clientId: "app",
  clientSecret: Deno.env.get("SECRET")!,
};
const path = ${JSON.stringify(path)};
// Two modules, each with a store of its own: two Deno.Kv objects on one store.
const client = createTokenClient({ ...options, kv: await Deno.openKv(path) });
await registerRefreshCron(client);
await registerRefreshCron(createTokenClient({ ...options, kv: await Deno.openKv(path) }));
// A handler that opens the store for each request.
try {
  for (let i = 0; i < 300; i++) {
    const kv = await Deno.openKv(path);
    const perRequest = createTokenClient({ ...options, kv });
    await registerRefreshCron(perRequest);
    await perRequest.getToken();
    kv.close();
  }
  console.log("registered");
} catch (error) {
  console.log("refused: " + (error as Error).message);
}
`,
        );
        // Deno's hook fires the job again and again: two runs after the requests are enough. The
        // job's first run may fetch while the first request does (the job refreshes what it finds
        // due), so up to 2 token requests, not one per request.
        const run = await runDeno([script], { DENO_CRON_TEST_SCHEDULE_OFFSET: "1", SECRET }, {
          done: (out) => /^refused/m.test(out) || runsAfter(out, "registered") >= 2,
        });
        const jobs = jobsOf(run);
        const refused = run.stdout.match(/^refused: (.*)$/m)?.[1];
        const requests = server.stats.tokenRequests;
        const runs = runsAfter(run.stdout, "registered");
        return {
          ok: refused === undefined && run.stdout.includes("registered") && jobs.length === 1 &&
            runs >= 2 && requests <= 2,
          outcome: `jobs registered: ${jobs.length}${
            refused === undefined ? "" : `; registration refused: "${refused}"`
          }; job runs after the requests: ${runs}; token requests: ${requests}`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 cron",
    name:
      "registerRefreshCron for one identity under 6 key prefixes, in one order and then in the other on a second start: each place keeps its job's name",
    async run() {
      const dir = await Deno.makeTempDir();
      try {
        const script = `${dir}/main.ts`;
        await Deno.writeTextFile(
          script,
          `import { createTokenClient, registerRefreshCron } from ${JSON.stringify(MOD)};
const kv = await Deno.openKv(":memory:");
const names: string[] = [];
const cron = Deno.cron;
Object.defineProperty(Deno, "cron", {
  value: (name: string, ...rest: unknown[]) => {
    names.push(name);
    return (cron as (...args: unknown[]) => Promise<void>)(name, ...rest);
  },
});
const prefixes = ["a", "b", "c", "d", "e", "f"];
if (Deno.env.get("REVERSED")) prefixes.reverse();
for (const prefix of prefixes) {
  const client = createTokenClient({
    tokenUrl: "https://auth.example.com/oauth/token",
    clientId: "app",
    clientSecret: Deno.env.get("SECRET")!,
    kv,
    kvPrefix: [prefix],
  });
  await registerRefreshCron(client);
  console.log("place " + prefix + ": " + names.at(-1));
}
Deno.exit(0);
`,
        );
        const starts = [
          await runDeno([script], { SECRET }),
          await runDeno([script], { SECRET, REVERSED: "1" }),
        ];
        const places = starts.map((start) =>
          new Map([...start.stdout.matchAll(/^place (\w): (.*)$/gm)].map((m) => [m[1], m[2]]))
        );
        const moved = [...places[0]].filter(([prefix, name]) => places[1].get(prefix) !== name);
        const names = new Set(places[0].values());
        return {
          ok: places.every((p) => p.size === 6) && names.size === 6 && moved.length === 0,
          outcome: `places registered: ${
            places.map((p) => p.size).join(" and ")
          } of 6 (${names.size} names); places whose job's name changed on the second start: ${moved.length}`,
        };
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 cron",
    name:
      "registerRefreshCron for freshtoken/cron's own client, and for a client of one of its places: the module's job, no second one",
    async run() {
      const server = startGenesysLike({ clients: { app: SECRET } });
      const dir = await Deno.makeTempDir();
      try {
        const script = `${dir}/main.ts`;
        await Deno.writeTextFile(
          script,
          `${LOG_JOBS}const { clients, kv } = await import(${JSON.stringify(CRON)});
const { clientOptionsFromEnv, createTokenClient, registerRefreshCron } = await import(${
            JSON.stringify(MOD)
          });
await registerRefreshCron(clients[0]);
await registerRefreshCron(createTokenClient({ ...clientOptionsFromEnv()[0], kv }));
console.log("registered");
`,
        );
        const run = await runDeno(
          [script],
          {
            DENO_CRON_TEST_SCHEDULE_OFFSET: "1",
            FRESHTOKEN_KV: `${dir}/kv.sqlite`,
            FRESHTOKEN_TOKEN_URL: server.tokenUrl,
            FRESHTOKEN_CLIENT_ID: "app",
            FRESHTOKEN_CLIENT_SECRET: SECRET,
          },
          {
            done: (out) => out.includes("registered") && runsAfter(out, "registered") >= 1,
            limitMs: 15_000,
          },
        );
        const jobs = jobsOf(run);
        const registered = run.stdout.includes("registered");
        return {
          ok: registered && jobs.length === 1 && server.stats.tokenRequests === 1,
          outcome: `${
            registered ? "" : "the registrations failed; "
          }jobs registered: ${jobs.length} (${
            jobs.map((j) => j.slice(5)).join(", ")
          }); token requests: ${server.stats.tokenRequests}`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 cron",
    name:
      "registerRefreshCron for 10,000 requests that each open the store, register and close it: never refused; memory after garbage collection, against the same requests without registering",
    async run() {
      const dir = await Deno.makeTempDir();
      try {
        const script = `${dir}/main.ts`;
        await Deno.writeTextFile(
          script,
          `import { createTokenClient, registerRefreshCron } from ${JSON.stringify(MOD)};
const options = {
  tokenUrl: "https://auth.example.com/oauth/token",
  clientId: "app",
  clientSecret: Deno.env.get("SECRET")!,
};
const path = ${JSON.stringify(`${dir}/kv.sqlite`)};
const register = Deno.env.get("REGISTER") === "1";
const gc = (globalThis as unknown as { gc: () => void }).gc;
try {
  await registerRefreshCron(createTokenClient({ ...options, kv: await Deno.openKv(path) }));
  for (let i = 0; i < 10_000; i++) {
    const kv = await Deno.openKv(path);
    const client = createTokenClient({ ...options, kv });
    if (register) await registerRefreshCron(client);
    kv.close();
  }
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const { heapUsed, rss } = Deno.memoryUsage();
  console.log("memory: " + heapUsed + " " + rss);
} catch (error) {
  console.log("refused: " + (error as Error).message);
}
Deno.exit(0);
`,
        );
        // [heap, resident set] in MB: a client's state lives in the wasm memory, outside the heap.
        const memory: number[][] = [];
        let refused: string | undefined;
        for (const register of ["0", "1"]) {
          // 10,000 stores opened: about 20 s alone, several times that on a loaded machine.
          const run = await runDeno([script], { SECRET, REGISTER: register }, {
            limitMs: 300_000,
            flags: ["--v8-flags=--expose-gc"],
          });
          const measured = run.stdout.match(/^memory: (\d+) (\d+)$/m);
          if (measured === null) {
            const how = run.timedOut ? "was stopped at its time limit" : `exited ${run.code}`;
            throw new Error(`the run with REGISTER=${register} ${how}: ${run.stderr.slice(-500)}`);
          }
          const [, heap, rss] = measured;
          memory.push([Number(heap) / 1e6, Number(rss) / 1e6]);
          refused ??= run.stdout.match(/^refused: (.*)$/m)?.[1];
        }
        const [base, registered] = memory;
        // Measured, not judged: the resident set holds the wasm memory's high-water mark, which
        // depends on when the collector ran. The judgement is that none is refused and the heap
        // keeps no client and store per request.
        const ok = refused === undefined && registered[0] - base[0] < 2;
        const mb = ([heap, rss]: number[]) =>
          `${heap.toFixed(1)} MB heap, ${rss.toFixed(0)} MB resident`;
        return {
          ok,
          outcome: refused !== undefined
            ? `registration refused: "${refused}"`
            : `after GC: ${mb(registered)} registering, ${mb(base)} without`,
        };
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
];

/** How many job runs logged after the line `marker` in `out`. */
function runsAfter(out: string, marker: string): number {
  const at = out.indexOf(marker);
  return at < 0 ? 0 : (out.slice(at).match(/^freshtoken cron: /gm) ?? []).length;
}
