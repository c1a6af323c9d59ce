/**
 * The freshtoken demo: a Genesys Cloud-like token server and API on
 * 127.0.0.1, tokens that live 20 s, and a client calling the API every
 * 250 ms for 30 s. The timeline shows each token fetched once, served from
 * memory, and refreshed in the background before it expires, so no call
 * ever meets a 401.
 *
 * Run: `scripts/demo.sh` (or `deno task demo`).
 *
 * @module
 */

import { createTokenClient, genesysCloud, type TokenEvent } from "../deno/mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const LIFETIME_SECONDS = 20;
const RUN_MS = 30_000;
const CALL_EVERY_MS = 250;

const server = startGenesysLike({
  clients: { "demo-client": "demo-secret" },
  lifetimeSeconds: LIFETIME_SECONDS,
  rateLimit: { max: 10, windowSeconds: 60 },
});
const started = Date.now();
const clock = () => `+${((Date.now() - started) / 1000).toFixed(2).padStart(6)} s`;
let hitsSinceLastLine = 0;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function describe(e: TokenEvent): string | undefined {
  switch (e.type) {
    case "cache_hit":
      hitsSinceLastLine++;
      return undefined;
    case "fetch_start":
      return "token request sent";
    case "fetch_ok":
      return `token received: lifetime ${e.lifetimeSeconds} s (set by the server), attempt ${e.attempts}`;
    case "background_refresh":
      return "inside the refresh window: serving the current token, refreshing in the background";
    case "fetch_error":
      return `token request failed: ${e.code}${e.status ? ` (HTTP ${e.status})` : ""}`;
    case "retry":
      return `retrying in ${Math.round(e.delayMs)} ms`;
    default:
      return e.type;
  }
}

const client = createTokenClient({
  ...genesysCloud({ region: "eu_west_1", clientId: "demo-client", clientSecret: "demo-secret" }),
  // The region preset, pointed at the loopback server instead of login.mypurecloud.ie.
  tokenUrl: server.tokenUrl,
  baseUrl: server.baseUrl,
  onEvent: (e) => {
    const line = describe(e);
    if (line === undefined) return;
    if (hitsSinceLastLine > 0) {
      console.log(`${clock()}  … ${plural(hitsSinceLastLine, "call")} served from memory`);
      hitsSinceLastLine = 0;
    }
    console.log(`${clock()}  ${line}`);
  },
});

console.log(
  `freshtoken demo: Genesys-like server at ${server.baseUrl}, ${LIFETIME_SECONDS} s tokens`,
);
console.log(
  `calling GET /api/v2/organizations/me every ${CALL_EVERY_MS} ms for ${RUN_MS / 1000} s\n`,
);

let calls = 0;
let unauthorized = 0;
while (Date.now() - started < RUN_MS) {
  const response = await client.fetch("/api/v2/organizations/me");
  calls++;
  if (response.status === 401) unauthorized++;
  await response.body?.cancel();
  await new Promise((r) => setTimeout(r, CALL_EVERY_MS));
}
if (hitsSinceLastLine > 0) {
  console.log(`${clock()}  … ${plural(hitsSinceLastLine, "call")} served from memory`);
}

const { tokenRequests } = server.stats;
console.log(
  `\nsummary: ${calls} API calls served with ${tokenRequests} token requests; ${unauthorized} answered 401`,
);
await server.close();
if (unauthorized > 0) Deno.exit(1);
