// Cold start: import freshtoken, instantiate the wasm, serve a token already in KV.
import { createTokenClient } from "../../deno/mod.ts";
const kv = await Deno.openKv(Deno.env.get("KV")!);
const client = createTokenClient({
  tokenUrl: Deno.env.get("TOKEN_URL")!,
  clientId: "bench-client",
  clientSecret: "bench-secret",
  kv,
});
await client.getToken();
kv.close();
