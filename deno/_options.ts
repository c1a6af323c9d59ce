// Turns JavaScript-shaped options into the flat, typed object the wasm core
// checks. Type errors are reported here, with the option's name; rules about
// values (https only, non-empty ids, ranges) live in the core.

import { configError } from "./token_error.ts";
import type { TokenClientOptions } from "./types.ts";

/** The options object `Engine` deserialises (see src/config.rs). */
export interface CoreOptions {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  authMethod?: string;
  scope?: string;
  audience?: string;
  resource: string[];
  extraParams: [string, string][];
  timeoutMs?: number;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  deadlineMs?: number;
  refreshAheadSeconds?: number;
}

export function coreOptions(options: TokenClientOptions): CoreOptions {
  if (typeof options !== "object" || options === null) {
    throw configError("options must be an object");
  }
  const o = options as unknown as Record<string, unknown>;
  const retry = o.retry ?? {};
  if (typeof retry !== "object" || retry === null) throw configError("retry must be an object");
  const r = retry as Record<string, unknown>;
  const extra = o.extraParams ?? {};
  if (typeof extra !== "object" || extra === null || Array.isArray(extra)) {
    throw configError("extraParams must be an object of strings");
  }
  return {
    tokenUrl: url("tokenUrl", o.tokenUrl),
    clientId: text("clientId", o.clientId) ?? "",
    clientSecret: text("clientSecret", o.clientSecret) ?? "",
    authMethod: text("authMethod", o.authMethod),
    scope: list("scope", o.scope)?.join(" ") || undefined,
    audience: text("audience", o.audience),
    resource: list("resource", o.resource) ?? [],
    extraParams: Object.entries(extra).map(([k, v]) => [k, text(`extraParams.${k}`, v) ?? ""]),
    timeoutMs: num("timeoutMs", o.timeoutMs),
    maxAttempts: num("retry.maxAttempts", r.maxAttempts),
    baseDelayMs: num("retry.baseDelayMs", r.baseDelayMs),
    maxDelayMs: num("retry.maxDelayMs", r.maxDelayMs),
    deadlineMs: num("retry.deadlineMs", r.deadlineMs),
    refreshAheadSeconds: num("refreshAheadSeconds", o.refreshAheadSeconds),
  };
}

/** Parses with the host's WHATWG URL parser; the core checks scheme and host. */
export function url(name: string, value: unknown): string {
  if (typeof value !== "string" && !(value instanceof URL)) {
    throw configError(`${name} must be a URL string`);
  }
  try {
    return new URL(value).href;
  } catch {
    throw configError(`${name} is not a valid absolute URL`);
  }
}

function text(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw configError(`${name} must be a string`);
  return value;
}

function list(name: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const items = Array.isArray(value) ? value : [value];
  return items.map((item) => {
    if (typeof item !== "string" || item.trim() === "") {
      throw configError(`${name} must be a non-empty string or an array of them`);
    }
    return item;
  });
}

function num(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number") throw configError(`${name} must be a number`);
  return value;
}

export function fn<T>(name: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== "function") throw configError(`${name} must be a function`);
  return value as T;
}
