// Run with --v8-flags=--expose-gc by tests/gc_test.ts: creates clients the
// way a handler that makes one per request would (each with a token, an
// event hook that refers to the client, and KV), drops them, collects
// garbage, and prints how many are still alive.

import { createTokenClient, type TokenClient } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const COUNT = 100;
const gc = (globalThis as unknown as { gc: () => void }).gc;
const server = startGenesysLike({ clients: { "gc-app": "gc-canary-secret" } });
const kv = await Deno.openKv(":memory:");
const refs: WeakRef<TokenClient>[] = [];

async function useAndDrop(i: number): Promise<void> {
  const client: TokenClient = createTokenClient({
    tokenUrl: server.tokenUrl,
    clientId: "gc-app",
    clientSecret: "gc-canary-secret",
    kv,
    kvPrefix: ["gc", i],
    onEvent: () => client.status(),
  });
  await client.getToken();
  refs.push(new WeakRef(client));
}

for (let i = 0; i < COUNT; i++) await useAndDrop(i);
for (let round = 0; round < 5; round++) {
  gc();
  await new Promise((r) => setTimeout(r, 20));
}
const alive = refs.filter((ref) => ref.deref() !== undefined).length;
console.log(JSON.stringify({ created: COUNT, alive }));
kv.close();
await server.close();
