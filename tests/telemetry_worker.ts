// Run by tests/telemetry_test.ts with OTEL_DENO=true, exporting to its
// loopback receiver: makes freshtoken produce every span and metric it has,
// against a loopback token server, then waits for a metrics export.

import { createTokenClient, type TokenClientOptions } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const server = startGenesysLike({ clients: { "otel-app": "otel-canary-secret" } });
const kv = await Deno.openKv(":memory:");
const options: TokenClientOptions = {
  tokenUrl: server.tokenUrl,
  clientId: "otel-app",
  clientSecret: "otel-canary-secret",
  baseUrl: server.baseUrl,
  kv,
};

// Two isolates at once on one KV: one fetches, the other waits on its lease, then takes the token from KV.
const first = createTokenClient(options);
const second = createTokenClient(options);
await Promise.all([first.getToken(), second.getToken()]);
for (let i = 0; i < 5; i++) await first.getToken(); // cache hits from memory
await (await first.fetch("/api/v2/organizations/me")).body?.cancel();
await first.refresh();

// A background refresh that fails while the current token is still served.
let failing = false;
const clock = { now: Date.now() };
const flaky = createTokenClient({
  ...options,
  kv: undefined,
  now: () => clock.now,
  fetch: (input, init) =>
    failing ? Promise.resolve(new Response("down", { status: 503 })) : fetch(input, init),
  retry: { maxAttempts: 1 },
});
await flaky.getToken();
failing = true;
clock.now = flaky.status().refreshAt! + 1;
await flaky.getToken();

// A private_key_jwt client, signing with the key the test passes in.
const signed = createTokenClient({
  tokenUrl: server.tokenUrl,
  clientId: "otel-key-app",
  authMethod: "private_key_jwt",
  privateKey: JSON.parse(Deno.env.get("TEST_PRIVATE_JWK")!),
  fetch: async (request) => {
    await (request as Request).arrayBuffer();
    return Response.json({
      access_token: "canary-token-5a1d",
      token_type: "Bearer",
      expires_in: 600,
    });
  },
});
await signed.getToken();

// A pool of two meeting the API's 429: slot 0's first call is answered 429
// after ROUND_TRIP_MS and moves to slot 1, whose first call is answered 429
// too; every slot then cools, so the call waits for slot 1, whose 429 named
// the wait, and is served by it.
const seen = new Set<string>();
const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
  const token = request.headers.get("authorization") ?? "";
  if (seen.has(token)) return new Response("ok");
  seen.add(token);
  await new Promise((r) => setTimeout(r, Number(Deno.env.get("ROUND_TRIP_MS"))));
  return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
});
const pool = createTokenClient({
  ...options,
  kv: undefined,
  baseUrl: `http://127.0.0.1:${api.addr.port}`,
  poolSize: 2,
});
await (await pool.fetch("/api/v2/users")).body?.cancel();
await api.shutdown();

await new Promise((r) => setTimeout(r, 800)); // at least one metrics export
kv.close();
await server.close();
console.log("done");
