// Preloaded into every test process by the test command (deno test
// --preload): records every event, TokenError and KV value freshtoken
// produces to $FRESHTOKEN_CANARY_LOG, one JSON line each, for
// scripts/canary_scan.ts to search for canary secrets and tokens.

const path = Deno.env.get("FRESHTOKEN_CANARY_LOG");
if (path) {
  (globalThis as Record<symbol, unknown>)[Symbol.for("freshtoken.observer")] = (
    kind: string,
    value: unknown,
  ) => {
    const line = JSON.stringify(
      { kind, value },
      (_k, v) => v instanceof Uint8Array ? Array.from(v) : v,
    );
    Deno.writeTextFileSync(path, `${line}\n`, { append: true });
  };
}
