// Cold start, second stage of freshtoken.ts: every module of deno/mod.ts loaded, then KV opened and a key read.
import { createTokenClient } from "../../deno/mod.ts";
const kv = await Deno.openKv(Deno.env.get("KV")!);
await kv.get(["freshtoken", "cold-start-floor"]);
kv.close();
if (typeof createTokenClient !== "function") throw new Error("deno/mod.ts did not load");
