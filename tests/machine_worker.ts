// One "machine" of tests/many_machines_test.ts: a library process that
// opens the shared store and makes its client as README's "Share tokens
// across machines" recipe does (FRESHTOKEN_KV, with DENO_KV_ACCESS_TOKEN
// read by Deno.openKv). It asks for a token every 100 ms from START_AT until
// LOOP_UNTIL (epoch ms), then prints one JSON line: how many different
// tokens it was served (never a token), its error code if a call failed,
// whether the store opened, and its events.

import { createTokenClient, type TokenEvent } from "../deno/mod.ts";

const env = (name: string) => Deno.env.get(name) ?? "";
const events: string[] = [];
// As the recipe: a store that cannot be opened leaves this process on its own, never failing it.
const kv = await Deno.openKv(env("FRESHTOKEN_KV")).catch(() => undefined);
const client = createTokenClient({
  tokenUrl: env("FRESHTOKEN_TOKEN_URL"),
  clientId: env("FRESHTOKEN_CLIENT_ID"),
  clientSecret: env("FRESHTOKEN_CLIENT_SECRET"),
  ...(kv && { kv, encryptionKey: env("FRESHTOKEN_ENCRYPTION_KEY") }),
  onEvent: (e: TokenEvent) =>
    events.push(e.type === "kv_error" ? `kv_error:${e.operation}` : e.type),
});

const at = (name: string) => Number(env(name) || 0);
await new Promise((r) => setTimeout(r, Math.max(0, at("START_AT") - Date.now())));
const seen = new Set<string>();
let error: string | undefined;
do {
  try {
    seen.add((await client.getToken()).accessToken);
  } catch (e) {
    error = (e as { code?: string }).code ?? String(e);
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
} while (Date.now() < at("LOOP_UNTIL"));
console.log(JSON.stringify({ tokens: seen.size, error, opened: kv !== undefined, events }));
kv?.close();
