// The fault matrix (SPEC §4, §7): every fault we can produce on loopback,
// what the client must make of it, and a runner that measures what it did.
// tests/fault_matrix_test.ts asserts it; scripts/reliability.ts writes it to
// docs/RELIABILITY.md.

import { createTokenClient, TokenError, type TokenEvent } from "../deno/mod.ts";
import { freePort } from "./_processes.ts";
import { type Fault, startFaultServer } from "./servers/fault_server.ts";

/** Client settings for every case: short, so the whole matrix runs in seconds. */
export const SETTINGS = {
  timeoutMs: 400,
  retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200, deadlineMs: 3_000 },
} as const;

/** What a case must end in. */
export type Expected =
  | { token: true; attempts: number }
  | { code: string; retryable: boolean; attempts: number | "many" };

export interface FaultCase {
  group: string;
  name: string;
  /** What request n (from 1) gets; `"refused"` means nothing listens. */
  script: ((n: number) => Fault) | "refused";
  expect: Expected;
  /** The first answer redirects to a second server, which must never be reached. */
  redirect?: boolean;
}

/** What the client did. */
export interface Outcome {
  result: string;
  status?: number;
  retryable?: boolean;
  retryAfterSeconds?: number;
  attempts: number;
  ms: number;
  /** Requests the redirect target received (redirect cases only). */
  elsewhere?: number;
}

const CANARY = "canary-token-0fa";
const json = (body: unknown, status = 200, headers: Record<string, string> = {}): Fault => ({
  kind: "respond",
  status,
  body: typeof body === "string" ? body : JSON.stringify(body),
  headers,
});
const token = (extra: Record<string, unknown> = {}) =>
  json({
    access_token: `${CANARY}${crypto.randomUUID()}`,
    token_type: "Bearer",
    expires_in: 300,
    ...extra,
  });
const once = (fault: Fault) => (n: number) => n === 1 ? fault : token();
const always = (fault: Fault) => () => fault;
const html = "<!doctype html><html><body><h1>Service Unavailable</h1></body></html>";
const invalid = { code: "invalid_response", retryable: false, attempts: 1 } as const;

export const FAULTS: FaultCase[] = [
  ...[500, 502, 503, 504].map((status): FaultCase => ({
    group: "transient",
    name: `${status}, then a token`,
    script: once(json({ error: "server_error" }, status)),
    expect: { token: true, attempts: 2 },
  })),
  {
    group: "transient",
    name: "408, then a token",
    script: once(json("", 408)),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "500 with an HTML page, then a token",
    script: once({
      kind: "respond",
      status: 500,
      body: html,
      headers: { "content-type": "text/html" },
    }),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "429 Retry-After: 1 (seconds), then a token",
    script: once(json({ message: "slow down" }, 429, { "retry-after": "1" })),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "429 Retry-After as an HTTP date, then a token",
    // Two seconds ahead when the 429 is sent; HTTP dates have whole seconds, so 1–2 s.
    script: (n) =>
      n === 1
        ? json({}, 429, { "retry-after": new Date(Date.now() + 2_000).toUTCString() })
        : token(),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "429 without Retry-After, then a token",
    script: once(json({}, 429)),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "connection reset mid-response, then a token",
    script: once({ kind: "reset" }),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "no answer (timeout), then a token",
    script: once({ kind: "hang" }),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "transient",
    name: "body trickling past the timeout, then a token",
    script: once({ kind: "trickle", everyMs: 50 }),
    expect: { token: true, attempts: 2 },
  },
  {
    group: "outage",
    name: "503 on every attempt",
    script: always(json({}, 503)),
    expect: { code: "server_error", retryable: true, attempts: 4 },
  },
  {
    group: "outage",
    name: "429 Retry-After: 1 year",
    script: always(json({}, 429, { "retry-after": "31536000" })),
    expect: { code: "rate_limited", retryable: true, attempts: 1 },
  },
  {
    group: "outage",
    name: "connection refused",
    script: "refused",
    expect: { code: "network", retryable: true, attempts: 4 },
  },
  {
    group: "outage",
    name: "no answer on any attempt",
    script: always({ kind: "hang" }),
    expect: { code: "timeout", retryable: true, attempts: "many" },
  },
  {
    group: "refused",
    name: "302 redirect to another server",
    script: always(json("", 302)),
    redirect: true,
    expect: invalid,
  },
  {
    group: "refused",
    name: "body over 1 MiB",
    script: always(token({ padding: "x".repeat(1024 * 1024) })),
    expect: invalid,
  },
  {
    group: "refused",
    name: "200 with an HTML login page",
    script: always({
      kind: "respond",
      status: 200,
      body: html,
      headers: { "content-type": "text/html" },
    }),
    expect: invalid,
  },
  ...([
    ["access_token missing", { token_type: "Bearer", expires_in: 300 }],
    ["access_token empty", { access_token: "", expires_in: 300 }],
    ["access_token a number", { access_token: 12345, expires_in: 300 }],
    ["access_token an object", { access_token: { value: "x" }, expires_in: 300 }],
    ["expires_in negative", { access_token: "abc", expires_in: -60 }],
    ["expires_in zero", { access_token: "abc", expires_in: 0 }],
    ["expires_in huge (1e12)", { access_token: "abc", expires_in: 1e12 }],
    ["expires_in a word", { access_token: "abc", expires_in: "soon" }],
    ["token_type mac", { access_token: "abc", token_type: "mac", expires_in: 300 }],
    ["a JSON array", [{ access_token: "abc" }]],
  ] as const).map(([name, body]): FaultCase => ({
    group: "malformed",
    name,
    script: always(json(body)),
    expect: invalid,
  })),
  {
    group: "malformed",
    name: "truncated JSON",
    script: always(json('{"access_token":"abc","expires_in":')),
    expect: invalid,
  },
  ...([
    ["expires_in missing (3600 s assumed)", { expires_in: undefined }],
    ['expires_in a numeric string ("300")', { expires_in: "300" }],
    ["expires_in a float (299.5)", { expires_in: 299.5 }],
    ['token_type "bearer" (any case)', { token_type: "bearer" }],
  ] as const).map(([name, extra]): FaultCase => ({
    group: "accepted",
    name,
    script: always(token(extra)),
    expect: { token: true, attempts: 1 },
  })),
  ...([
    ["400 invalid_request (OAuth body)", 400, {
      error: "invalid_request",
      error_description: "grant_type missing",
    }, "invalid_request"],
    ["400 invalid_scope (OAuth body)", 400, { error: "invalid_scope" }, "invalid_scope"],
    ["401 invalid_client (OAuth body)", 401, {
      error: "invalid_client",
      error_description: "Bad credentials",
    }, "invalid_client"],
    [
      "400 invalid_client (Genesys body)",
      400,
      {
        error: "invalid_client",
        description: "client not found",
        error_description: "client not found",
      },
      "invalid_client",
    ],
    ["401 with an empty body", 401, "", "invalid_client"],
    ["403 access_denied", 403, { error: "access_denied" }, "access_denied"],
  ] as const).map(([name, status, body, code]): FaultCase => ({
    group: "oauth error",
    name,
    script: always(json(body, status)),
    expect: { code, retryable: false, attempts: 1 },
  })),
];

/** Runs one case against fresh servers and a fresh client. */
export async function runCase(c: FaultCase): Promise<Outcome> {
  let elsewhereHits = 0;
  const elsewhere = c.redirect
    ? Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      elsewhereHits++;
      return Response.json({ access_token: "stolen", expires_in: 300 });
    })
    : undefined;
  const script = c.script === "refused" ? undefined : c.script;
  const server = script === undefined ? undefined : startFaultServer((n) => {
    const fault = script(n);
    return elsewhere && fault.kind === "respond" && fault.status === 302
      ? { ...fault, headers: { location: `http://127.0.0.1:${elsewhere.addr.port}/token` } }
      : fault;
  });
  const tokenUrl = server?.tokenUrl ?? `http://127.0.0.1:${freePort()}/token`;
  let failures = 0;
  const client = createTokenClient({
    tokenUrl,
    clientId: "matrix",
    clientSecret: "matrix-canary-secret",
    ...SETTINGS,
    onEvent: (e: TokenEvent) => {
      if (e.type === "fetch_error") failures++;
    },
  });
  const started = performance.now();
  const outcome: Outcome = { result: "", attempts: 0, ms: 0 };
  try {
    await client.getToken();
    outcome.result = "token";
    outcome.attempts = failures + 1;
  } catch (error) {
    if (!(error instanceof TokenError)) throw error;
    outcome.result = error.code;
    outcome.status = error.status;
    outcome.retryable = error.retryable;
    outcome.retryAfterSeconds = error.retryAfterSeconds;
    outcome.attempts = failures;
  } finally {
    outcome.ms = Math.round(performance.now() - started);
    await server?.close();
    if (elsewhere) {
      await elsewhere.shutdown();
      outcome.elsewhere = elsewhereHits;
    }
  }
  return outcome;
}
