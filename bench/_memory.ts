// Holds N freshtoken clients, each with a token, and prints the process's memory.
import { createTokenClient, type TokenClient } from "../deno/mod.ts";
const n = Number(Deno.env.get("CLIENTS"));
const clients: TokenClient[] = [];
for (let i = 0; i < n; i++) {
  const client = createTokenClient({
    tokenUrl: Deno.env.get("TOKEN_URL")!,
    clientId: "bench-client",
    clientSecret: "bench-secret",
  });
  await client.getToken();
  clients.push(client);
}
(globalThis as unknown as { gc: () => void }).gc();
await new Promise((r) => setTimeout(r, 50));
(globalThis as unknown as { gc: () => void }).gc();
console.log(JSON.stringify({ ...Deno.memoryUsage(), clients: clients.length }));
