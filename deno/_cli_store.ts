// The CLI's shared store (`--kv`): a KV Connect URL that cannot be opened
// leaves the run on a token of its own, as a store that fails later does
// (docs/DESIGN.md, "Shared state"), and every store failure is told on
// stderr once, in freshtoken's words: Deno's own may quote the store's path
// or URL, which the CLI never prints.

import { openRemoteStore } from "./kv_store.ts";
import { openKv } from "./_cli_options.ts";
import type { TokenClientOptions, TokenEvent } from "./types.ts";

/** Whether `path` names a store reached over KV Connect rather than a file. */
export function isRemoteStore(path: string): boolean {
  return /^https?:/i.test(path);
}

/**
 * The `--kv` store at `path`, or `undefined` when a KV Connect store cannot
 * be opened (told through `report`, as a `kv_error`). A file that cannot be
 * opened, a missing permission or a malformed URL is a `config` error
 * naming `--kv`.
 */
export async function openSharedStore(
  path: string,
  report: (event: TokenEvent) => void,
): Promise<Deno.Kv | undefined> {
  if (!isRemoteStore(path)) return await openKv(path);
  try {
    return await openRemoteStore(path, report);
  } catch {
    // What is the caller's to fix, named as for a file: opening again throws the same.
    return await openKv(path);
  }
}

/**
 * The client's options on `kv`, reporting to `onEvent`; without a store
 * (none given, or none opened), without the key that encrypts what a store
 * keeps: the run goes on in memory.
 */
export function onStore(
  options: TokenClientOptions,
  kv: Deno.Kv | undefined,
  onEvent: (event: TokenEvent) => void,
): TokenClientOptions {
  if (kv !== undefined) return { ...options, kv, onEvent };
  const { encryptionKey: _storeOnly, ...inMemory } = options;
  return { ...inMemory, onEvent };
}

/**
 * An `onEvent` that tells each different store failure once on `err`:
 * which operation, why in words that quote nothing, and that the run goes
 * on without the store.
 */
export function storeFailureReporter(err: (text: string) => void): (event: TokenEvent) => void {
  const told = new Set<string>();
  return (event) => {
    if (event.type !== "kv_error") return;
    const line =
      `freshtoken: --kv store: ${storeFailure(event.message)}; carrying on without it: ` +
      `the token is not shared while it fails (${event.operation})\n`;
    if (told.has(line)) return;
    told.add(line);
    err(line);
  };
}

/** What a store's error message says, in words of freshtoken's own. */
function storeFailure(message: string): string {
  if (/missing DENO_KV_ACCESS_TOKEN/i.test(message)) return "DENO_KV_ACCESS_TOKEN is not set";
  if (/\b40[13]\b|access token|unauthori[sz]ed|forbidden/i.test(message)) {
    return "it refused the access token in DENO_KV_ACCESS_TOKEN";
  }
  if (/did not answer within/i.test(message)) return "it did not answer within 2 s";
  if (/database is locked/i.test(message)) return "its file stayed locked by other processes";
  if (/connect|connection|dns|error sending request|tls|certificate/i.test(message)) {
    return "it could not be reached";
  }
  return "an operation on it failed";
}
