// Cold start, first stage of freshtoken.ts: the wasm core loaded (pkg/), then KV opened and a key read.
import { Core } from "../../pkg/freshtoken.js";
const kv = await Deno.openKv(Deno.env.get("KV")!);
await kv.get(["freshtoken", "cold-start-floor"]);
kv.close();
if (typeof Core !== "function") throw new Error("pkg/ did not load");
