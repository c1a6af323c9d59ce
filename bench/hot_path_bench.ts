// The hot path: getToken() on a cached token, beside oauth4webapi behind the
// memoised promise a developer would write (the peer), the least a
// promise-returning cache can do (a memoised promise with no expiry check),
// and a bare variable read (the floor); and a pool of 8 slots, all filled.
// Run: deno bench --allow-net=127.0.0.1 bench/hot_path_bench.ts

import { createTokenClient } from "../deno/mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";
import { oauth4webapiMemo } from "./peers/oauth4webapi.ts";

const server = startGenesysLike({ clients: { "bench-client": "bench-secret" } });
const client = createTokenClient({
  tokenUrl: server.tokenUrl,
  clientId: "bench-client",
  clientSecret: "bench-secret",
});
/** A pool of 8 with every slot filled: each getToken() asks the core which slot serves. */
const pool = createTokenClient({
  tokenUrl: server.tokenUrl,
  clientId: "bench-client",
  clientSecret: "bench-secret",
  poolSize: 8,
});
for (let i = 0; i < 8; i++) await pool.getToken();
const peer = oauth4webapiMemo(server.tokenUrl);
await client.getToken();
await peer.get();
await server.close();

const variable = { accessToken: "abc", expiresAt: Date.now() + 3_600_000 };
let memo: Promise<typeof variable> | undefined;
const memoised = () => memo ??= Promise.resolve(variable);

Deno.bench("bare variable read", { group: "hot path" }, () => {
  if (variable.expiresAt < 0) throw new Error("unreachable");
});
Deno.bench("memoised promise, no expiry check", { group: "hot path" }, async () => {
  await memoised();
});
Deno.bench("oauth4webapi + memoised promise", { group: "hot path" }, async () => {
  await peer.get();
});
Deno.bench("freshtoken getToken() (cached)", { group: "hot path", baseline: true }, async () => {
  await client.getToken();
});
Deno.bench("freshtoken getToken() (cached), poolSize 8", { group: "hot path" }, async () => {
  await pool.getToken();
});
