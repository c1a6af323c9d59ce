// Cold-start floor for any cache kept in Deno KV: open KV and read one key.
const kv = await Deno.openKv(Deno.env.get("KV")!);
await kv.get(["freshtoken", "cold-start-floor"]);
kv.close();
