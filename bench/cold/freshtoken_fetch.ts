// Cold start with nothing stored yet: import freshtoken, open an empty KV, make the token request.
import { createTokenClient } from "../../deno/mod.ts";
const kv = await Deno.openKv(":memory:");
const client = createTokenClient({
  tokenUrl: Deno.env.get("TOKEN_URL")!,
  clientId: "bench-client",
  clientSecret: "bench-secret",
  kv,
});
await client.getToken();
kv.close();
