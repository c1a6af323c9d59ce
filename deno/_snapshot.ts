// The options of createTokenClient, read once (docs/DESIGN.md, "The data
// flow", step 1): objects and arrays are copied, whatever their prototype,
// with their enumerable properties, inherited ones too, so that every
// getter or Proxy trap runs once and what the core checks is what the
// client uses; one that throws is a `config` error naming the option. What
// the host uses as it is is kept: the kv, kvPrefix (KV key parts may be
// BigInts), fetch, now and onEvent options, a CryptoKey, any function.

import { configError, type TokenError } from "./token_error.ts";

/** Deeper than any option goes: a cycle, not options. */
const MAX_DEPTH = 8;

/** Options the host uses as they are: objects of its own, or functions. */
const HOST_OPTIONS = new Set(["kv", "kvPrefix", "fetch", "now", "onEvent"]);

/** `options` copied into plain objects, or a `config` error naming what could not be read. */
export function snapshot<T>(options: T): T {
  return copy(options, "", 0) as T;
}

function copy(value: unknown, path: string, depth: number): unknown {
  // No option takes a BigInt: the core reads numbers only.
  if (typeof value === "bigint") throw configError(`${path} must be a number, not a BigInt`);
  if (typeof value !== "object" || value === null) return value;
  if (depth === 1 && HOST_OPTIONS.has(path)) return value;
  if (attempt(path, () => value instanceof CryptoKey)) return value;
  if (depth > MAX_DEPTH) throw configError(`${path} nests too deeply`);
  const array = attempt(path, () => Array.isArray(value));
  const names = attempt(path, () => {
    const all: string[] = [];
    for (const name in value) all.push(name);
    return all;
  });
  const out: Record<string, unknown> = array ? [] as unknown as Record<string, unknown> : {};
  for (const name of names) {
    const at = array ? `${path}[${name}]` : path === "" ? name : `${path}.${name}`;
    const item = attempt(at, () => (value as Record<string, unknown>)[name]);
    out[name] = copy(item, at, depth + 1);
  }
  return out;
}

/** `read()`, or a `config` error saying that `path` could not be read (never why: the text may quote a value). */
function attempt<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch {
    throw unreadable(path);
  }
}

function unreadable(path: string): TokenError {
  return configError(
    `${path === "" ? "the options" : path} could not be read (a getter or Proxy trap threw)`,
  );
}
