// One process of the "8 processes" benchmark: waits for START_AT, gets one
// token with the library named by PEER, prints "ok".
import { CLIENT_ID, CLIENT_SECRET, genesysSdk, oauth4webapiMemo } from "./_peers.ts";
import { createTokenClient } from "../deno/mod.ts";

const env = (name: string) => Deno.env.get(name)!;
await new Promise((r) => setTimeout(r, Math.max(0, Number(env("START_AT")) - Date.now())));
const peer = env("PEER");
if (peer === "freshtoken") {
  const kv = await Deno.openKv(env("KV"));
  await createTokenClient({
    tokenUrl: env("TOKEN_URL"),
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    kv,
  })
    .getToken();
  kv.close();
} else if (peer === "oauth4webapi") {
  await oauth4webapiMemo(env("TOKEN_URL")).get();
} else {
  await genesysSdk(env("BASE_URL")).get();
}
console.log("ok");
Deno.exit(0); // the Genesys SDK's configuration file watcher would keep the process alive
