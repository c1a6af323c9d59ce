// The hardening matrix: what a hostile token server, a hostile KV co-tenant
// and a careless caller can try, each against real loopback servers and a
// real Deno KV, and what freshtoken makes of it. tests/hardening_test.ts
// asserts every case; scripts/reliability.ts writes the outcomes to
// docs/RELIABILITY.md.

import {
  createTokenClient,
  genesysCloud,
  refreshIfDue,
  type TokenError,
  type TokenEvent,
} from "../deno/mod.ts";
import { backoffKey, leaseKey, tokenKey } from "../deno/kv_store.ts";
import { Token } from "../deno/token.ts";
import { failure, type Handler, kvIdOf, serve, withKv } from "./_loopback.ts";
import { startFaultServer } from "./servers/fault_server.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import { SETUP_CASES } from "./hardening_setup.ts";
import { CRON_CASES } from "./hardening_cron.ts";
import { CLI_CASES } from "./hardening_cli.ts";
import { FILE_CASES } from "./hardening_files.ts";
import { KV_CASES } from "./hardening_kv.ts";

/** What a case found, and whether that is what freshtoken must do. */
export interface Result {
  ok: boolean;
  outcome: string;
}

export interface HardeningCase {
  group: string;
  name: string;
  run(): Promise<Result>;
}

const form = (text: string) => new URLSearchParams({ x: text }).toString().slice(2);
const utf8Base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

/** Every way a server may echo `secret` (sent by `id`): raw, encoded, inside the Basic pair. */
function encodings(id: string, secret: string): string[] {
  const percent = encodeURIComponent(secret);
  return [
    secret,
    form(secret),
    percent,
    percent.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
    utf8Base64(`${form(id)}:${form(secret)}`).replace(/=+$/, ""),
    utf8Base64(`${id}:${secret}`).replace(/=+$/, ""),
  ];
}

/** A token endpoint that refuses with everything it received, echoed in every encoding. */
const echoing: Handler = async (request) => {
  const body = await request.text();
  const authorization = request.headers.get("authorization") ?? "";
  const pair = authorization.startsWith("Basic ")
    ? new TextDecoder().decode(
      Uint8Array.from(atob(authorization.slice(6)), (c) => c.charCodeAt(0)),
    )
    : "";
  const secret = pair
    ? decodeURIComponent(pair.slice(pair.indexOf(":") + 1).replaceAll("+", " "))
    : new URLSearchParams(body).get("client_secret") ?? "";
  const echo = [
    `header ${authorization}`,
    `body ${body}`,
    `raw ${secret}`,
    `form ${form(secret)}`,
    `percent ${encodeURIComponent(secret)}`,
    `lower ${encodeURIComponent(secret).toLowerCase()}`,
  ].join("; ");
  return Response.json({ error: "invalid_client", error_description: echo }, { status: 401 });
};

/** A secret whose encodings all differ; it contains "canary-secret" for the output scan. */
const ODD_SECRET = "s p:a@c/e+é~hardening-canary-secret";

function echoCase(authMethod: "client_secret_basic" | "client_secret_post"): HardeningCase {
  return {
    group: "credentials",
    name: `a server echoes the ${authMethod} credentials raw, form-, percent- and base64-encoded`,
    run: () =>
      serve(echoing, async (origin) => {
        const error = await failure(
          createTokenClient({
            tokenUrl: `${origin}/token`,
            clientId: "hard id",
            clientSecret: ODD_SECRET,
            authMethod,
          }).getToken(),
        );
        const shown = `${error.message}\n${error.description}`;
        const leaked = encodings("hard id", ODD_SECRET).filter((e) => shown.includes(e));
        return {
          ok: error.code === "invalid_client" && leaked.length === 0 &&
            shown.includes("[redacted]"),
          outcome: `${error.code}; ${shown.split("[redacted]").length - 1} echoes redacted, ` +
            `${leaked.length} left`,
        };
      }),
  };
}

/** Writes `value` under the client's token key. */
async function plant(
  kv: Deno.Kv,
  tokenUrl: string,
  key: "token" | "lease" | "backoff",
  value: unknown,
) {
  const id = await kvIdOf(kvClient(tokenUrl, kv));
  const at = { token: tokenKey, lease: leaseKey, backoff: backoffKey }[key](["freshtoken"], id);
  await kv.set(at, value);
}

/** A stored token that passes every check, to spoil one field at a time. */
function storedToken(now: number, spoil: Record<string, unknown>): Record<string, unknown> {
  return {
    v: 2,
    accessToken: "canary-token-planted",
    tokenType: "Bearer",
    lifetimeSeconds: 3600,
    expiresAt: now + 3_500_000,
    refreshAt: now + 3_100_000,
    usableUntil: now + 3_470_000,
    ...spoil,
  };
}

function plantedTokenCase(what: string, spoil: (now: number) => Record<string, unknown>) {
  return {
    group: "shared state",
    name: `a stored token ${what} is replaced, never served`,
    run: () => {
      const server = startGenesysLike({ clients: { "kv-app": "kv-canary-secret-h" } });
      return withKv(async (kv) => {
        try {
          await plant(kv, server.tokenUrl, "token", storedToken(Date.now(), spoil(Date.now())));
          const token = await kvClient(server.tokenUrl, kv).getToken();
          const served = token.accessToken === "canary-token-planted";
          return {
            ok: !served && server.stats.tokensIssued === 1,
            outcome: served ? "the planted token was served" : "a token from the server",
          };
        } finally {
          await server.close();
        }
      });
    },
  } satisfies HardeningCase;
}

function kvClient(tokenUrl: string, kv: Deno.Kv, extra: Record<string, unknown> = {}) {
  return createTokenClient({
    tokenUrl,
    clientId: "kv-app",
    clientSecret: "kv-canary-secret-h",
    kv,
    ...extra,
  });
}

/** A KV whose `getMany` answers `answer` instead; everything else is `kv`'s. */
function lyingKv(kv: Deno.Kv, answer: unknown[]): Deno.Kv {
  return new Proxy(kv, {
    get: (target, name) =>
      name === "getMany" ? () => Promise.resolve(answer) : Reflect.get(target, name),
  });
}

function lyingKvCase(what: string, answer: unknown[]): HardeningCase {
  return {
    group: "shared state",
    name: `a Deno.Kv look-alike whose getMany answers ${what}`,
    run: () => {
      const server = startGenesysLike({ clients: { "kv-app": "kv-canary-secret-h" } });
      return withKv(async (kv) => {
        try {
          const events: string[] = [];
          const token = await kvClient(server.tokenUrl, lyingKv(kv, answer), {
            onEvent: (e: TokenEvent) => events.push(e.type),
          }).getToken();
          return {
            ok: token.accessToken.startsWith("canary-token-") && events.includes("kv_error"),
            outcome: "kv_error, then a token in memory",
          };
        } finally {
          await server.close();
        }
      });
    },
  };
}

/** A 429 whose Retry-After asks for far too long, seen by a client sharing KV. */
function retryAfterCase(what: string, retryAfter: string, reported: number): HardeningCase {
  return {
    group: "shared state",
    name: `a 429 with Retry-After ${what}`,
    run: () => {
      const server = startFaultServer(() => ({
        kind: "respond",
        status: 429,
        body: "{}",
        headers: { "retry-after": retryAfter },
      }));
      return withKv(async (kv) => {
        try {
          const started = performance.now();
          const error = await failure(kvClient(server.tokenUrl, kv).getToken());
          const ms = performance.now() - started;
          const id = await kvIdOf(kvClient(server.tokenUrl, kv));
          const stored = (await kv.get<{ until: number }>(backoffKey(["freshtoken"], id))).value;
          const ahead = stored ? (stored.until - Date.now()) / 60_000 : 0;
          return {
            ok: error.code === "rate_limited" && error.retryAfterSeconds === reported &&
              ms < 1_000 &&
              stored !== null && ahead <= 10,
            outcome:
              `rate_limited in ${
                ms.toFixed(0)
              } ms, retryAfterSeconds ${error.retryAfterSeconds}; ` +
              `shared back-off ${ahead.toFixed(1)} min`,
          };
        } finally {
          await server.close();
        }
      });
    },
  };
}

/** Sends `secret` to an echoing server and returns the error's description. */
async function echoedDescription(secret: string, text: (secret: string) => string) {
  return await serve(
    () =>
      Response.json({ error: "invalid_client", error_description: text(secret) }, { status: 401 }),
    async (origin) =>
      (await failure(
        createTokenClient({ tokenUrl: `${origin}/t`, clientId: "id", clientSecret: secret })
          .getToken(),
      )).description,
  );
}

/** Runs `fn` with `Date.now` moved by what `offset()` says at each call. */
async function withWallClock<T>(offset: () => number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + offset();
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

/**
 * A job running `refreshIfDue` every `period` s over two simulated hours of
 * `lifetime`-second tokens, and a handler call every 60 s, each on a fresh
 * client (a new isolate) sharing the KV: how often a handler waited on the
 * token endpoint. With `aheadSeconds` = the period, never, as long as a
 * token stays usable (lifetime minus clock skew) longer than the period.
 */
function cronCase(lifetime: number, period: number, ahead: boolean): HardeningCase {
  return {
    group: "cron",
    name: `${lifetime} s tokens, a job every ${period / 60} minutes ${
      ahead ? "passing its period as aheadSeconds" : "without aheadSeconds"
    }`,
    run: () => {
      const server = startGenesysLike({
        clients: { "kv-app": "kv-canary-secret-h" },
        lifetimeSeconds: lifetime,
      });
      return withKv(async (kv) => {
        // The clients' connections go through an HTTP client of the case's own,
        // closed before the server: Deno 2.5's graceful shutdown can wait about
        // 3 minutes on a connection that never sent a request (later Deno
        // releases close it), and closing the client drops it.
        const http = Deno.createHttpClient({});
        const fetch: typeof globalThis.fetch = (input, init) =>
          globalThis.fetch(input, { ...init, client: http });
        try {
          const clock = { now: Date.now() };
          const now = () => clock.now;
          const job = kvClient(server.tokenUrl, kv, { now, fetch });
          let waits = 0;
          for (let second = 0; second < 7_200; second += 30) {
            clock.now += 30_000;
            if (second % period === 0) {
              await refreshIfDue(job, ahead ? { aheadSeconds: period } : {});
            }
            if (second % 60 !== 30) continue;
            const handler = kvClient(server.tokenUrl, kv, { now, fetch });
            await handler.getToken();
            if (handler.status().fetches > 0) waits++;
          }
          // Let the handlers' last background refreshes end before the server does.
          await new Promise((r) => setTimeout(r, 300));
          return {
            ok: ahead ? waits === 0 : waits > 0,
            outcome: `handler calls that waited on the token endpoint: ${waits} of 120`,
          };
        } finally {
          http.close();
          await server.close();
        }
      });
    },
  };
}

const FAST = { timeoutMs: 500, retry: { maxAttempts: 2, baseDelayMs: 5, deadlineMs: 2_000 } };

export const CASES: HardeningCase[] = [
  echoCase("client_secret_basic"),
  echoCase("client_secret_post"),
  {
    group: "credentials",
    name: "a server quotes the access token the client holds in an error",
    run: async () => {
      let issued: string | undefined;
      return await serve(() => {
        if (issued === undefined) {
          issued = `canary-token-${crypto.randomUUID()}/x+y=`;
          return Response.json({ access_token: issued, expires_in: 3600 });
        }
        const text = `token ${issued} (${encodeURIComponent(issued)}) is revoked`;
        return Response.json({ error: "invalid_request", error_description: text }, {
          status: 400,
        });
      }, async (origin) => {
        const client = createTokenClient({
          tokenUrl: `${origin}/t`,
          clientId: "id",
          clientSecret: "quoting-canary-secret",
        });
        await client.getToken();
        const error = await failure(client.refresh());
        const shown = `${error.message}\n${error.description}`;
        return {
          ok: !shown.includes(issued!) && !shown.includes(encodeURIComponent(issued!)),
          outcome: error.description ?? "",
        };
      });
    },
  },
  {
    group: "credentials",
    name: "a short secret is redacted only where it stands as a word",
    run: async () => {
      const description = await echoedDescription(
        "abc123",
        (s) => `client ${s}4 unknown; secret ${s} rejected`,
      );
      return {
        ok: description === "client abc1234 unknown; secret [redacted] rejected",
        outcome: description ?? "",
      };
    },
  },
  {
    group: "credentials",
    name: "a secret with a trailing newline (from a secrets file)",
    run: () => {
      const secret = "newline-canary-secret\n";
      try {
        createTokenClient({
          tokenUrl: "https://login.example.com/t",
          clientId: "id",
          clientSecret: secret,
        });
        return Promise.resolve({ ok: false, outcome: "accepted" });
      } catch (error) {
        const e = error as TokenError;
        return Promise.resolve({
          ok: e.code === "config" && !e.message.includes("newline-canary") &&
            /whitespace/.test(e.message),
          outcome: e.message,
        });
      }
    },
  },
  {
    group: "credentials",
    name: "genesysCloud() options are printed (inspect, console.log, JSON.stringify)",
    run: () => {
      const options = genesysCloud({
        region: "eu_west_1",
        clientId: "id",
        clientSecret: "printed-canary-secret",
      });
      const printed = [Deno.inspect(options), JSON.stringify(options)];
      const spread = { ...options };
      return Promise.resolve({
        ok: printed.every((p) => !p.includes("printed-canary") && p.includes("[redacted]")) &&
          spread.clientSecret === "printed-canary-secret",
        outcome: "clientSecret: [redacted] when printed; a spread keeps it",
      });
    },
  },
  retryAfterCase("of a year", "31536000", 31_536_000),
  retryAfterCase("of an HTTP date in 9999", "Fri, 31 Dec 9999 23:59:59 GMT", 315_360_000),
  {
    group: "shared state",
    name: "a co-tenant stores a back-off a year ahead",
    run: () => {
      const server = startGenesysLike({ clients: { "kv-app": "kv-canary-secret-h" } });
      return withKv(async (kv) => {
        try {
          await plant(kv, server.tokenUrl, "backoff", { until: Date.now() + 365 * 86_400_000 });
          const token = await kvClient(server.tokenUrl, kv).getToken();
          return {
            ok: token.accessToken.startsWith("canary-token-") && server.stats.tokenRequests === 1,
            outcome: "treated as corrupt: a token from the server",
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  {
    group: "shared state",
    name: "a co-tenant (or a clock far ahead) holds a lease a year ahead",
    run: () => {
      const server = startGenesysLike({ clients: { "kv-app": "kv-canary-secret-h" } });
      return withKv(async (kv) => {
        try {
          await plant(kv, server.tokenUrl, "lease", {
            holder: "x",
            until: Date.now() + 365 * 86_400_000,
          });
          const events: string[] = [];
          const started = performance.now();
          await kvClient(server.tokenUrl, kv, { onEvent: (e: TokenEvent) => events.push(e.type) })
            .getToken();
          const ms = performance.now() - started;
          return {
            ok: ms < 1_000 && !events.includes("lease_wait") && server.stats.tokenRequests === 1,
            outcome: `taken over at once: a token in ${ms.toFixed(0)} ms, no lease wait`,
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  plantedTokenCase(
    "with CR LF in it",
    () => ({ accessToken: "canary-token-planted\r\nX-Evil: 1" }),
  ),
  plantedTokenCase("with a space in it", () => ({ accessToken: "canary-token planted" })),
  plantedTokenCase("of token type mac", () => ({ tokenType: "mac" })),
  plantedTokenCase("that expires years ahead", (now) => ({
    expiresAt: now + 5 * 365 * 86_400_000,
    refreshAt: now + 5 * 365 * 86_400_000 - 2,
    usableUntil: now + 5 * 365 * 86_400_000 - 1,
  })),
  plantedTokenCase("that expired before 1970", () => ({
    expiresAt: -1_000,
    refreshAt: -3_000,
    usableUntil: -2_000,
  })),
  plantedTokenCase("with NaN for its expiry", () => ({ expiresAt: NaN })),
  lyingKvCase("fewer entries than asked", [{ key: ["a"], value: null, versionstamp: null }]),
  lyingKvCase("nulls", [null, null, null]),
  {
    group: "shared state",
    name: "Deno.inspect of tokens with absurd expiry times",
    run: () => {
      const shown = [8.64e15 + 1, NaN, -Infinity].map((at) =>
        Deno.inspect(new Token("x", "Bearer", at))
      );
      return Promise.resolve({
        ok: shown.every((s) => s.includes("[redacted]")),
        outcome: "never throws",
      });
    },
  },
  {
    group: "hammering",
    name: "minValidSeconds above what a token read from KV has left",
    run: () => {
      const server = startGenesysLike({
        clients: { "kv-app": "kv-canary-secret-h" },
        lifetimeSeconds: 3600,
      });
      return withKv(async (kv) => {
        try {
          const first = await kvClient(server.tokenUrl, kv).getToken();
          // Another isolate, 100 s before that token expires, needs 300 s.
          const later = kvClient(server.tokenUrl, kv, { now: () => first.expiresAt - 100_000 });
          const token = await later.getToken({ minValidSeconds: 300 });
          return {
            ok: token.accessToken !== first.accessToken && server.stats.tokenRequests === 2,
            outcome: "not served from KV: a new token",
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  {
    group: "hammering",
    name: "minValidSeconds 60 of a server that grants 20 s tokens, 50 calls",
    run: async () => {
      const server = startGenesysLike({
        clients: { app: "min-valid-canary-secret" },
        lifetimeSeconds: 20,
      });
      try {
        const client = createTokenClient({
          tokenUrl: server.tokenUrl,
          clientId: "app",
          clientSecret: "min-valid-canary-secret",
        });
        const errors: TokenError[] = [];
        for (let i = 0; i < 50; i++) {
          errors.push(await failure(client.getToken({ minValidSeconds: 60 })));
        }
        return {
          ok: server.stats.tokenRequests === 1 &&
            errors.every((e) => e.code === "config" && /valid for 20 s/.test(e.message)),
          outcome: `${server.stats.tokenRequests} token request; every call: ${errors[0].message}`,
        };
      } finally {
        await server.close();
      }
    },
  },
  {
    group: "hammering",
    name: "client.fetch against an API that always answers 401, 50 calls in a second",
    run: async () => {
      const server = startGenesysLike({ clients: { app: "api401-canary-secret" } });
      try {
        return await serve(() => new Response("no", { status: 401 }), async (api) => {
          const client = createTokenClient({
            tokenUrl: server.tokenUrl,
            clientId: "app",
            clientSecret: "api401-canary-secret",
            baseUrl: api,
          });
          let unauthorized = 0;
          for (let i = 0; i < 50; i++) {
            const response = await client.fetch("/v1/things");
            await response.body?.cancel();
            if (response.status === 401) unauthorized++;
          }
          return {
            ok: unauthorized === 50 && server.stats.tokenRequests <= 2,
            outcome:
              `${unauthorized} × 401 to the caller, ${server.stats.tokenRequests} token requests`,
          };
        });
      } finally {
        await server.close();
      }
    },
  },
  {
    group: "hammering",
    name: "getToken() in a tight loop while the token endpoint fails, 100 calls",
    run: async () => {
      const server = startFaultServer(() => ({ kind: "respond", status: 503, body: "{}" }));
      try {
        const client = createTokenClient({
          tokenUrl: server.tokenUrl,
          clientId: "loop",
          clientSecret: "loop-canary-secret",
          ...FAST,
        });
        const codes = new Set<string>();
        for (let i = 0; i < 100; i++) codes.add((await failure(client.getToken())).code);
        return {
          ok: server.requests <= 8 && codes.size === 1 && codes.has("server_error"),
          outcome: `${server.requests} token requests, spaced by the hold-back: a call waits ` +
            `for it to end and tries while its deadline allows, else gets the error at once`,
        };
      } finally {
        await server.close();
      }
    },
  },
  ...([
    ["an absolute URL to another origin", (other: string) => `${other}/steal`],
    ["a protocol-relative URL", (other: string) => `${other.replace("http:", "")}/steal`],
  ] as const).map(([what, url]): HardeningCase => ({
    group: "destinations",
    name: `client.fetch with baseUrl, given ${what}`,
    run: async () => {
      const server = startGenesysLike({ clients: { app: "dest-canary-secret" } });
      let reached = 0;
      try {
        return await serve(() => {
          reached++;
          return new Response("stolen");
        }, async (other) => {
          const client = createTokenClient({
            tokenUrl: server.tokenUrl,
            clientId: "app",
            clientSecret: "dest-canary-secret",
            baseUrl: server.baseUrl,
          });
          const error = await failure(client.fetch(url(other)));
          return {
            ok: error.code === "config" && error.message.includes(other) && reached === 0,
            outcome:
              `${error.code}: refused, naming ${other}; the other origin reached ${reached}×`,
          };
        });
      } finally {
        await server.close();
      }
    },
  })),
  {
    group: "destinations",
    name: "client.fetch to an origin listed in allowedOrigins",
    run: async () => {
      const server = startGenesysLike({ clients: { app: "dest-canary-secret" } });
      try {
        return await serve((request) => {
          const bearer = request.headers.get("authorization")?.startsWith("Bearer ");
          return new Response(null, { status: bearer ? 204 : 403 });
        }, async (files) => {
          const client = createTokenClient({
            tokenUrl: server.tokenUrl,
            clientId: "app",
            clientSecret: "dest-canary-secret",
            baseUrl: server.baseUrl,
            allowedOrigins: [files],
          });
          const response = await client.fetch(`${files}/upload`);
          return {
            ok: response.status === 204,
            outcome: `sent with the token: HTTP ${response.status}`,
          };
        });
      } finally {
        await server.close();
      }
    },
  },
  {
    group: "destinations",
    name: "a redirect followed by client.fetch to another origin",
    run: async () => {
      const server = startGenesysLike({ clients: { app: "dest-canary-secret" } });
      let seen: string | null = "not reached";
      try {
        return await serve(
          (request) => {
            seen = request.headers.get("authorization");
            return new Response("elsewhere");
          },
          (elsewhere) =>
            serve(() => Response.redirect(`${elsewhere}/landing`, 302), async (api) => {
              const client = createTokenClient({
                tokenUrl: server.tokenUrl,
                clientId: "app",
                clientSecret: "dest-canary-secret",
                baseUrl: api,
              });
              const response = await client.fetch("/moved");
              await response.body?.cancel();
              return {
                ok: response.status === 200 && seen === null,
                outcome: seen === null
                  ? "followed; the Authorization header dropped"
                  : `header sent: ${seen !== null}`,
              };
            }),
        );
      } finally {
        await server.close();
      }
    },
  },
  cronCase(600, 300, false),
  cronCase(600, 300, true),
  cronCase(300, 240, true),
  {
    group: "misuse",
    name: "the wall clock is set back a minute after a 2 s token expired",
    run: () => {
      const server = startGenesysLike({
        clients: { app: "clock-canary-secret" },
        lifetimeSeconds: 2,
      });
      let offset = 0;
      return withWallClock(() => offset, async () => {
        try {
          const client = createTokenClient({
            tokenUrl: server.tokenUrl,
            clientId: "app",
            clientSecret: "clock-canary-secret",
          });
          const first = await client.getToken();
          await new Promise((r) => setTimeout(r, 2_200));
          offset = -60_000;
          const second = await client.getToken();
          return {
            ok: second.accessToken !== first.accessToken && server.stats.tokenRequests === 2,
            outcome: second.accessToken !== first.accessToken
              ? "the expired token was not served: a new one"
              : "the expired token was served",
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  ...SETUP_CASES,
  ...FILE_CASES,
  ...CLI_CASES,
  ...KV_CASES,
  ...CRON_CASES,
];
