// Holds N freshtoken clients (each with a token unless TOKENS=0) and prints
// the process's memory: V8 heap, external memory, resident set, and the wasm
// core's linear memory (which Deno.memoryUsage() does not count), once the
// token requests' timers have lapsed, and also right after the requests.
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
const measure = async () => {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  gc();
  return { ...Deno.memoryUsage(), wasm: wasm.memory.buffer.byteLength };
};
// Right after the token requests, each request's attempt timer (an
// AbortSignal.timeout of timeoutMs, 10 s by default) is still pending; once
// it has fired, what is left is what a client holds.
const afterRequests = await measure();
if (tokens) await new Promise((r) => setTimeout(r, 10_500));
console.log(JSON.stringify({ ...(await measure()), afterRequests, clients: clients.length }));
