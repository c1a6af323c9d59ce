// Run by tests/telemetry_test.ts with OTEL_DENO=true: a pool of three meets
// a 429 on slot 0; right as the call moves, another caller takes a slot
// (here from onEvent; in an app, any concurrent call while the 429's body is
// cancelled). Prints the slot whose token the moved call was sent with.

import { createTokenClient, type TokenClient } from "../deno/mod.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";

const server = startGenesysLike({ clients: { "otel-move": "otel-move-canary-secret" } });
const tokens: string[] = [];
const sent: string[] = [];
let armed = false;
const api = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
  const token = request.headers.get("authorization") ?? "";
  if (!tokens.includes(token)) tokens.push(token);
  if (armed) sent.push(token);
  if (armed && token === tokens[0]) {
    return new Response("slow down", { status: 429, headers: { "retry-after": "60" } });
  }
  return new Response("ok");
});
let pool: TokenClient | undefined;
pool = createTokenClient({
  tokenUrl: server.tokenUrl,
  clientId: "otel-move",
  clientSecret: "otel-move-canary-secret",
  baseUrl: `http://127.0.0.1:${api.addr.port}`,
  poolSize: 3,
  onEvent: (e) => {
    if (e.type === "rate_limited") void pool!.getToken(); // another caller, right then
  },
});
for (let i = 0; i < 3; i++) await (await pool.fetch("/fill")).body?.cancel();
armed = true;
await (await pool.fetch("/x")).body?.cancel();
await api.shutdown();
await server.close();
console.log(
  JSON.stringify({ movedTo: tokens.indexOf(sent[1]), sends: sent.map((t) => tokens.indexOf(t)) }),
);
pool = undefined;
