// The hot path: getToken() on a cached token, beside the memoised promise a
// developer would write by hand and a bare variable read (the floor).
// Run: deno bench --allow-net=127.0.0.1 bench/hot_path_bench.ts

import { createTokenClient } from "../deno/mod.ts";
import { startGenesysLike } from "../tests/servers/genesys_like.ts";

const server = startGenesysLike({ clients: { bench: "bench-secret" } });
const client = createTokenClient({
  tokenUrl: server.tokenUrl,
  clientId: "bench",
  clientSecret: "bench-secret",
});
await client.getToken();
await server.close();

const variable = { accessToken: "abc", expiresAt: Date.now() + 3_600_000 };
let memo: Promise<typeof variable> | undefined;
const memoised = () => memo ??= Promise.resolve(variable);

Deno.bench("bare variable read", { group: "hot path" }, () => {
  if (variable.expiresAt < 0) throw new Error("unreachable");
});
Deno.bench("memoised promise (by hand)", { group: "hot path" }, async () => {
  await memoised();
});
Deno.bench("freshtoken getToken() (cached)", { group: "hot path", baseline: true }, async () => {
  await client.getToken();
});
