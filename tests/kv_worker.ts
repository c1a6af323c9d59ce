// One "isolate" for the multi-process KV tests: a separate Deno process
// that opens the shared KV, waits for a common start time, asks for a token
// and prints one JSON line: a fingerprint of the token (never the token),
// its error code if it failed, and the events it saw.
//
// Environment: KV (a path or URL for Deno.openKv), TOKEN_URL, CLIENT_ID,
// CLIENT_SECRET, START_AT (epoch ms), optional DEADLINE_MS, ENCRYPTION_KEY;
// with LOOP_UNTIL (epoch ms) it asks for a token every 50 ms until then and
// reports how many different tokens it was served.

import { createTokenClient, type TokenEvent } from "../deno/mod.ts";

const env = (name: string) => Deno.env.get(name);
const kv = await Deno.openKv(env("KV"));
const events: string[] = [];
const client = createTokenClient({
  tokenUrl: env("TOKEN_URL")!,
  clientId: env("CLIENT_ID")!,
  clientSecret: env("CLIENT_SECRET")!,
  kv,
  encryptionKey: env("ENCRYPTION_KEY") || undefined,
  retry: env("DEADLINE_MS") ? { deadlineMs: Number(env("DEADLINE_MS")) } : undefined,
  timeoutMs: env("TIMEOUT_MS") ? Number(env("TIMEOUT_MS")) : undefined,
  onEvent: (e: TokenEvent) =>
    events.push(e.type === "cache_hit" ? `cache_hit:${e.source}` : e.type),
});

const startAt = Number(env("START_AT") ?? 0);
await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
console.log("ready");
let result: Record<string, unknown>;
try {
  const seen = new Set<string>();
  const until = Number(env("LOOP_UNTIL") ?? 0);
  while (Date.now() < until) {
    seen.add((await client.getToken()).accessToken);
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = await client.getToken();
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token.accessToken));
  const fingerprint = Array.from(
    new Uint8Array(digest).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  result = { fingerprint, expiresAt: token.expiresAt, tokens: seen.size };
} catch (error) {
  result = { error: (error as { code?: string }).code ?? String(error) };
}
console.log(JSON.stringify({ ...result, events }));
kv.close();
