// Holds N freshtoken clients (each with a token unless TOKENS=0) and prints
// the process's memory: V8 heap, external memory, resident set, and the wasm
// core's linear memory (which Deno.memoryUsage() does not count).
import { createTokenClient, type TokenClient } from "../deno/mod.ts";
import * as wasm from "../pkg/freshtoken_bg.wasm";

const n = Number(Deno.env.get("CLIENTS"));
const tokens = Deno.env.get("TOKENS") !== "0";
const clients: TokenClient[] = [];
for (let i = 0; i < n; i++) {
  const client = createTokenClient({
    tokenUrl: Deno.env.get("TOKEN_URL")!,
    clientId: "bench-client",
    clientSecret: "bench-secret",
  });
  if (tokens) await client.getToken();
  clients.push(client);
}
const gc = (globalThis as unknown as { gc: () => void }).gc;
gc();
await new Promise((r) => setTimeout(r, 50));
gc();
console.log(JSON.stringify({
  ...Deno.memoryUsage(),
  wasm: wasm.memory.buffer.byteLength,
  clients: clients.length,
}));
