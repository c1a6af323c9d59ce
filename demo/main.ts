/**
 * The freshtoken demo. On 127.0.0.1 it starts a Genesys Cloud-like token
 * server (20 s tokens, set server-side; 429 when hammered) and API, and a
 * Deno HTTP handler served by two "isolates" — two clients with their own
 * memory, sharing one Deno KV, as Deno Deploy isolates share the
 * deployment's KV — plus a cron tick that runs `refreshIfDue`, as the
 * `Deno.cron` job of deno/cron.ts does. Traffic runs for 45 s and the
 * timeline shows each token fetched once, read by the other isolate from KV,
 * and refreshed ahead of expiry, so no call meets a 401.
 *
 * With GENESYS_CLOUD_REGION, GENESYS_CLOUD_CLIENT_ID and
 * GENESYS_CLOUD_CLIENT_SECRET set, the same handler calls the real Genesys
 * Cloud (`GET /api/v2/organizations/me`) instead of the local servers.
 *
 * Run: `scripts/demo.sh` (or `deno task demo`).
 *
 * @module
 */

import {
  createTokenClient,
  genesysCloud,
  refreshIfDue,
  type TokenClient,
  type TokenClientOptions,
  type TokenEvent,
} from "../deno/mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const RUN_MS = Number(Deno.env.get("FRESHTOKEN_DEMO_SECONDS") ?? 45) * 1000;
const REQUEST_EVERY_MS = 200;
const CRON_EVERY_MS = 2_000;

const env = (name: string) => Deno.env.get(name)?.trim() || undefined;
const real = env("GENESYS_CLOUD_REGION") && env("GENESYS_CLOUD_CLIENT_ID") &&
  env("GENESYS_CLOUD_CLIENT_SECRET");
const local = real ? undefined : startGenesysLike({
  clients: { "demo-client": "demo-canary-secret" },
  lifetimeSeconds: 20,
  rateLimit: { max: 5, windowSeconds: 10 },
});
const target: TokenClientOptions = local
  ? {
    // The region preset, pointed at the loopback servers instead of mypurecloud.ie.
    ...genesysCloud({
      region: "eu_west_1",
      clientId: "demo-client",
      clientSecret: "demo-canary-secret",
    }),
    tokenUrl: local.tokenUrl,
    baseUrl: local.baseUrl,
  }
  : genesysCloud({
    region: env("GENESYS_CLOUD_REGION")!,
    clientId: env("GENESYS_CLOUD_CLIENT_ID")!,
    clientSecret: env("GENESYS_CLOUD_CLIENT_SECRET")!,
  });

const started = Date.now();
const clock = () => `+${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const memoryHits = new Map<string, number>();

function log(who: string, text: string) {
  for (const [name, hits] of memoryHits) {
    if (hits > 0) console.log(`${clock()}  ${name.padEnd(9)}  … ${hits} from memory`);
  }
  memoryHits.clear();
  console.log(`${clock()}  ${who.padEnd(9)}  ${text}`);
}

function describe(e: TokenEvent): string | undefined {
  switch (e.type) {
    case "fetch_start":
      return "token request sent";
    case "fetch_ok":
      return `token received (lifetime ${e.lifetimeSeconds} s, set by the server)`;
    case "fetch_error":
      return `token request failed: ${e.code}${e.status ? ` (HTTP ${e.status})` : ""}`;
    case "retry":
      return `retrying in ${Math.round(e.delayMs)} ms`;
    case "cache_hit":
      return e.source === "kv"
        ? "newer token read from KV (fetched by another isolate or cron)"
        : undefined;
    case "background_refresh":
      return "refresh window: serving the current token, refreshing in the background";
    case "lease_wait":
      return "another isolate holds the lease: waiting for its token";
    case "kv_write":
      return "token stored in KV";
    case "kv_error":
      return `KV failed (${e.operation}): carrying on in memory`;
  }
}

const kv = await Deno.openKv(":memory:");
function isolate(name: string, extra: Partial<TokenClientOptions> = {}): TokenClient {
  return createTokenClient({
    ...target,
    kv,
    ...extra,
    onEvent: (e) => {
      if (e.type === "cache_hit" && e.source === "memory") {
        if (name !== "cron") memoryHits.set(name, (memoryHits.get(name) ?? 0) + 1);
        return;
      }
      const text = describe(e);
      if (text !== undefined) log(name, text);
    },
  });
}
// Handlers refresh late (3 s ahead) as a fallback; the cron job refreshes at
// the usual window (10 s ahead for 20 s tokens), so it normally comes first
// and the isolates find the new token in KV.
const isolates = [
  isolate("isolate 1", { refreshAheadSeconds: 3 }),
  isolate("isolate 2", { refreshAheadSeconds: 3 }),
];
const cron = isolate("cron");

// The handler, as on Deno Deploy: each request lands on one of the isolates.
let next = 0;
let apiCalls = 0;
let unauthorized = 0;
const handler = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
  const client = isolates[next++ % isolates.length];
  const response = await client.fetch("/api/v2/organizations/me");
  apiCalls++;
  if (response.status === 401) unauthorized++;
  return new Response(response.body, { status: response.status });
});

console.log(
  local
    ? `freshtoken demo: Genesys-like token server and API at ${local.baseUrl} (20 s tokens)`
    : `freshtoken demo: Genesys Cloud, region ${env("GENESYS_CLOUD_REGION")}`,
);
console.log(
  `a handler on two isolates sharing one KV, a request every ${REQUEST_EVERY_MS} ms for ` +
    `${RUN_MS / 1000} s, refreshIfDue every ${CRON_EVERY_MS / 1000} s\n`,
);

const cronTimer = setInterval(async () => {
  const result = await refreshIfDue(cron);
  if (result !== "fresh") log("cron", `refreshIfDue: ${result} (ahead of expiry)`);
}, CRON_EVERY_MS);

let organization = "";
let served = 0;
while (Date.now() - started < RUN_MS) {
  const response = await fetch(`http://127.0.0.1:${handler.addr.port}/`);
  const body = await response.json().catch(() => ({}));
  organization ||= body.name ?? "";
  served++;
  await new Promise((r) => setTimeout(r, REQUEST_EVERY_MS));
}
clearInterval(cronTimer);
log("demo", "traffic stopped");

const tokenRequests = local?.stats.tokenRequests ??
  [...isolates, cron].reduce((n, c) => n + c.status().fetches, 0);
console.log(
  `\nsummary: ${served} requests served (${apiCalls} API calls to "${organization}") with ` +
    `${tokenRequests} token requests; ${unauthorized} answered 401` +
    (local ? `; 429s from the token server: ${local.stats.rateLimited}` : ""),
);
await handler.shutdown();
await local?.close();
kv.close();
if (unauthorized > 0) Deno.exit(1);
