// Cold start, third stage of freshtoken.ts: a client created (options checked in the core), no token asked for.
import { createTokenClient } from "../../deno/mod.ts";
const kv = await Deno.openKv(Deno.env.get("KV")!);
await kv.get(["freshtoken", "cold-start-floor"]);
createTokenClient({
  tokenUrl: Deno.env.get("TOKEN_URL")!,
  clientId: "bench-client",
  clientSecret: "bench-secret",
  kv,
});
kv.close();
