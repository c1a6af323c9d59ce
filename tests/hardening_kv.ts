// Hardening of a shared KV: a clock that runs ahead, a `kv`
// look-alike whose values cannot be read, and the messages a new user meets
// when a URL is wrong. Each against real loopback servers, a real Deno KV
// (SQLite files) and the CLI as a process. Part of the hardening matrix
// (tests/hardening.ts).

import { createTokenClient, type TokenEvent } from "../deno/mod.ts";
import { tokenKey } from "../deno/kv_store.ts";
import { ALL_PERMISSIONS, runCli } from "./_cli.ts";
import type { HardeningCase } from "./hardening.ts";
import { failure, kvIdOf, serve, withKv } from "./_loopback.ts";
import { freePort } from "./_processes.ts";

const SECRET = "round4-kv-canary-secret";

/** A token endpoint issuing `lifetime`-second tokens, remembering when (real time) each was issued. */
function issuing(lifetime: number) {
  const issued = new Map<string, number>();
  let count = 0;
  const handler = () => {
    const token = `canary-token-r4-${++count}-${crypto.randomUUID()}`;
    issued.set(token, Date.now());
    return Response.json({ access_token: token, token_type: "Bearer", expires_in: lifetime });
  };
  return { handler, issued, requests: () => count };
}

/** A KV on an SQLite file of its own, for the length of `fn`, opened twice (two clients' handles). */
async function withSqliteKv<T>(fn: (a: Deno.Kv, b: Deno.Kv) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "freshtoken-r4-kv-" });
  const path = `${dir}/kv.sqlite3`;
  const a = await Deno.openKv(path);
  const b = await Deno.openKv(path);
  try {
    return await fn(a, b);
  } finally {
    a.close();
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A value nested `depth` arrays deep. */
function deep(depth: number): unknown {
  let value: unknown = "x";
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

/** `kv`'s own member `name`, its methods bound to it (they use private fields). */
function own(kv: Deno.Kv, name: string | symbol): unknown {
  const member = Reflect.get(kv, name);
  return typeof member === "function" ? member.bind(kv) : member;
}

/** A `kv` that is `kv` except that `getMany` answers what `answer` makes of the real answer. */
function lookAlike(kv: Deno.Kv, answer: (entries: unknown[]) => unknown): Deno.Kv {
  return new Proxy(kv, {
    get: (target, name) =>
      name === "getMany"
        ? async (...args: Parameters<Deno.Kv["getMany"]>) =>
          answer(await target.getMany(...args) as unknown[])
        : own(target, name),
  });
}

/** A `kv` that is `kv` except that `get` answers what `answer` makes of the real answer. */
function lookAlikeGet(kv: Deno.Kv, answer: (entry: unknown) => unknown): Deno.Kv {
  return new Proxy(kv, {
    get: (target, name) =>
      name === "get"
        ? async (...args: Parameters<Deno.Kv["get"]>) => answer(await target.get(...args))
        : own(target, name),
  });
}

/** The kv_error events among `events`, with what each said. */
function kvErrors(events: TokenEvent[]): string {
  const said = events.flatMap((e) => e.type === "kv_error" ? [`${e.operation}: ${e.message}`] : []);
  return said.length === 0 ? "0 kv_error" : `${said.length} kv_error (${said.join("; ")})`;
}

const throwing = () => {
  throw new Error("look-alike value");
};

/**
 * Odd answers of a look-alike's `getMany`, each replacing the token entry, and
 * whether reading it must count as a store failure (`kv_error`) or as a miss
 * (a value of a shape freshtoken never writes, which a real KV can hold too).
 */
/** Values a look-alike may throw that are hard to read as an error. */
const ODD_THROWABLES: [string, () => unknown][] = [
  ["a null-prototype object", () => Object.create(null)],
  [
    "a Proxy whose getPrototypeOf trap throws",
    () => new Proxy({}, { getPrototypeOf: throwing, get: throwing }),
  ],
  [
    "an Error whose message getter throws",
    () =>
      Object.defineProperty(new Error("odd"), "message", {
        get: () => {
          throw Object.create(null);
        },
      }),
  ],
  ["a symbol", () => Symbol("odd")],
];

const ODD_ENTRIES: [string, (entry: { versionstamp: unknown }) => unknown, boolean][] = [
  ...ODD_THROWABLES.map(([what, thrown]): [
    string,
    (entry: { versionstamp: unknown }) => unknown,
    boolean,
  ] => [
    `an entry whose value getter throws ${what}`,
    (e) =>
      Object.defineProperty({ versionstamp: e.versionstamp }, "value", {
        get: () => {
          throw thrown();
        },
      }),
    true,
  ]),
  [
    "an entry whose value getter throws",
    (e) => Object.defineProperty({ versionstamp: e.versionstamp }, "value", { get: throwing }),
    true,
  ],
  [
    "an entry that is a Proxy whose traps throw",
    () => new Proxy({}, { get: throwing, has: throwing, ownKeys: throwing }),
    true,
  ],
  [
    "a value that is a Proxy whose traps throw",
    (e) => ({
      value: new Proxy({}, { get: throwing, has: throwing, ownKeys: throwing }),
      versionstamp: e.versionstamp,
    }),
    true,
  ],
  [
    "a value whose fields are getters that throw",
    (e) => ({
      value: Object.defineProperties({}, {
        v: { get: throwing, enumerable: true },
        accessToken: { get: throwing, enumerable: true },
      }),
      versionstamp: e.versionstamp,
    }),
    true,
  ],
  [
    "a value 20,000 arrays deep",
    (e) => ({ value: deep(20_000), versionstamp: e.versionstamp }),
    false,
  ],
  [
    "a token record with a field 20,000 arrays deep",
    (e) => ({
      value: { v: 2, accessToken: "canary-token-deep", tokenType: "Bearer", extra: deep(20_000) },
      versionstamp: e.versionstamp,
    }),
    false,
  ],
];

/** A stored record, as a writer on `writerNow` would store a `lifetime`-second token it just got. */
function record(token: string, writerNow: number, lifetime: number) {
  const expiresAt = writerNow + lifetime * 1000;
  return {
    v: 2,
    accessToken: token,
    tokenType: "Bearer",
    lifetimeSeconds: lifetime,
    expiresAt,
    refreshAt: expiresAt - lifetime * 500,
    usableUntil: expiresAt - lifetime * 50,
  };
}

/**
 * Calls `getToken` every `everyMs` for `forMs`: how many calls, how late past
 * its real expiry the latest-served token was (0 if none was), and how many
 * tokens the server never issued were served.
 */
async function serveFor(
  client: { getToken(): Promise<{ accessToken: string }> },
  expiryOf: (token: string) => number | undefined,
  forMs: number,
  everyMs: number,
): Promise<{ calls: number; worstLateMs: number; unknown: number }> {
  const end = Date.now() + forMs;
  let calls = 0;
  let worstLateMs = 0;
  let unknown = 0;
  while (Date.now() < end) {
    const token = (await client.getToken()).accessToken;
    const servedAt = Date.now();
    calls++;
    const expiry = expiryOf(token);
    if (expiry === undefined) unknown++;
    else worstLateMs = Math.max(worstLateMs, servedAt - expiry);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return { calls, worstLateMs, unknown };
}

function kvCases(): HardeningCase[] {
  const group = "round 4: shared kv";
  return [
    {
      group,
      name: "a co-writer whose clock runs 3 minutes ahead, on one SQLite file, with 5 s tokens",
      run: () => {
        const server = issuing(5);
        return serve(server.handler, (origin) =>
          withSqliteKv(async (kvFast, kvNormal) => {
            const options = { tokenUrl: `${origin}/token`, clientId: "r4", clientSecret: SECRET };
            const fast = createTokenClient({
              ...options,
              kv: kvFast,
              now: () => Date.now() + 180_000,
            });
            const normal = createTokenClient({ ...options, kv: kvNormal });
            const fastToken = (await fast.getToken()).accessToken;
            const first = (await normal.getToken()).accessToken;
            const stored = (await kvNormal.get<{ accessToken?: string }>(
              tokenKey(["freshtoken"], await kvIdOf(normal)),
            )).value?.accessToken;
            const replaced = first !== fastToken && stored === first;
            const expiry = (t: string) => {
              const at = server.issued.get(t);
              return at === undefined ? undefined : at + 5_000;
            };
            const { calls, worstLateMs, unknown } = await serveFor(normal, expiry, 7_000, 200);
            const ok = replaced && worstLateMs <= 0 && unknown === 0;
            return {
              ok,
              outcome:
                `the far-future record ${replaced ? "was refused and replaced" : "was taken"}; ` +
                `${calls} calls over 7 s, ` +
                (worstLateMs > 0
                  ? `a token served ${worstLateMs} ms past its real expiry`
                  : "no token served past its real expiry") +
                `; ${server.requests()} token requests`,
            };
          }));
      },
    },
    {
      group,
      name: "a co-writer 29 s ahead, read 10 s after its write, with 5 s tokens",
      run: () => {
        const server = issuing(5);
        return serve(server.handler, (origin) =>
          withSqliteKv(async (kvFast, kvNormal) => {
            const options = { tokenUrl: `${origin}/token`, clientId: "r4", clientSecret: SECRET };
            const fast = createTokenClient({
              ...options,
              kv: kvFast,
              now: () => Date.now() + 29_000,
            });
            const normal = createTokenClient({ ...options, kv: kvNormal });
            await fast.getToken();
            await new Promise((resolve) => setTimeout(resolve, 10_000));
            const expiry = (t: string) => {
              const at = server.issued.get(t);
              return at === undefined ? undefined : at + 5_000;
            };
            const { calls, worstLateMs, unknown } = await serveFor(normal, expiry, 3_000, 200);
            return {
              ok: worstLateMs <= 0 && unknown === 0,
              outcome: `${calls} calls over 3 s, ` +
                (worstLateMs > 0
                  ? `a token served ${worstLateMs} ms past its real expiry`
                  : "no token served past its real expiry") +
                `; ${server.requests()} token requests`,
            };
          }));
      },
    },
    {
      group,
      name:
        "a record issued 20 s in the reader's future, 5 s tokens (beyond their 0.25 s allowance)",
      run: () => {
        const server = issuing(5);
        return serve(server.handler, (origin) =>
          withSqliteKv(async (kv) => {
            const client = createTokenClient({
              tokenUrl: `${origin}/token`,
              clientId: "r4",
              clientSecret: SECRET,
              kv,
            });
            const plantedAt = Date.now();
            const planted = "canary-token-r4-planted-ahead";
            await kv.set(
              tokenKey(["freshtoken"], await kvIdOf(client)),
              record(planted, plantedAt + 20_000, 5),
            );
            const expiry = (t: string) =>
              t === planted ? plantedAt + 5_000 : (server.issued.get(t) ?? -Infinity) + 5_000;
            const { calls, worstLateMs } = await serveFor(client, expiry, 7_000, 200);
            return {
              ok: worstLateMs <= 0,
              outcome: `${calls} calls over 7 s, ` +
                (worstLateMs > 0
                  ? `a token served ${worstLateMs} ms past the lifetime its record states`
                  : "none served past the lifetime its record states from the reader's clock") +
                `; ${server.requests()} token requests`,
            };
          }));
      },
    },
    ...ODD_ENTRIES.map(([what, replace, failure]): HardeningCase => ({
      group,
      name: `a kv look-alike's getMany answers ${what}`,
      run: () => {
        const server = issuing(3600);
        return serve(server.handler, (origin) =>
          withKv(async (kv) => {
            const events: TokenEvent[] = [];
            const client = createTokenClient({
              tokenUrl: `${origin}/token`,
              clientId: "r4",
              clientSecret: SECRET,
              kv: lookAlike(kv, (entries) => [
                replace(entries[0] as { versionstamp: unknown }),
                ...entries.slice(1),
              ]),
              onEvent: (e) => events.push(e),
            });
            try {
              const token = (await client.getToken()).accessToken;
              const errors = kvErrors(events);
              return {
                ok: server.issued.has(token) && errors.startsWith("0 ") !== failure,
                outcome: `a token from the server (${server.requests()} request), ${errors}` +
                  (failure ? "" : " (a miss)"),
              };
            } catch (error) {
              return { ok: false, outcome: `the caller failed: ${(error as Error).message}` };
            }
          }));
      },
    })),
    {
      group,
      name: "a kv look-alike stores a 2 MiB access token (longer than a token response can carry)",
      run: () => {
        const server = issuing(3600);
        return serve(server.handler, (origin) =>
          withKv(async (kv) => {
            const events: TokenEvent[] = [];
            const huge = `canary-token-${"x".repeat(2 << 20)}`;
            const now = Date.now();
            const client = createTokenClient({
              tokenUrl: `${origin}/token`,
              clientId: "r4",
              clientSecret: SECRET,
              kv: lookAlike(kv, (entries) => [
                { value: record(huge, now, 3600), versionstamp: "00000000000000010000" },
                ...entries.slice(1),
              ]),
              onEvent: (e) => events.push(e),
            });
            const token = (await client.getToken()).accessToken;
            const errors = kvErrors(events);
            return {
              ok: server.issued.has(token) && !errors.startsWith("0 "),
              outcome: server.issued.has(token)
                ? `refused: a token from the server (${server.requests()} request), ${errors}`
                : `the stored ${token.length}-character token was served`,
            };
          }));
      },
    },
    ...([
      [
        "whose value getter throws",
        true,
        (e: { versionstamp?: unknown }) =>
          Object.defineProperty({ versionstamp: e?.versionstamp ?? null }, "value", {
            get: throwing,
          }),
      ],
      ["with a value 20,000 arrays deep", false, (e: { versionstamp?: unknown }) => ({
        value: { v: 2, copy: deep(20_000), mac: deep(20_000) },
        versionstamp: e?.versionstamp ?? null,
      })],
    ] as const).map(([what, failure, replace]): HardeningCase => ({
      group,
      name: `a kv look-alike's metadata entry ${what}`,
      run: () => {
        let requests = 0;
        return serve((request) => {
          const url = new URL(request.url);
          if (url.pathname === "/.well-known/openid-configuration") {
            return Response.json({ issuer: url.origin, token_endpoint: `${url.origin}/token` });
          }
          requests++;
          return Response.json({
            access_token: `canary-token-r4-issuer-${requests}`,
            expires_in: 3600,
          });
        }, (origin) =>
          withKv(async (kv) => {
            const events: TokenEvent[] = [];
            const client = createTokenClient({
              issuer: origin,
              clientId: "r4",
              clientSecret: SECRET,
              kv: lookAlikeGet(kv, (entry) => replace(entry as { versionstamp?: unknown })),
              onEvent: (e) => events.push(e),
            });
            try {
              const token = (await client.getToken()).accessToken;
              const errors = kvErrors(events);
              return {
                ok: token.startsWith("canary-token-r4-issuer-") &&
                  errors.startsWith("0 ") !== failure,
                outcome: `a token from the server (${requests} request), ${errors}` +
                  (failure ? "" : " (a miss)"),
              };
            } catch (error) {
              return { ok: false, outcome: `the caller failed: ${(error as Error).message}` };
            }
          }));
      },
    })),
  ];
}

/** A plain-HTTP loopback server that answers anything with a token: reached with https:, TLS fails. */
const plainToken = () => Response.json({ access_token: "canary-token-r4-plain", expires_in: 3600 });

/**
 * A loopback TCP server that accepts each connection and closes it, at once
 * or after reading the client's first bytes (its ClientHello): a server
 * restarting or a balancer with no backend, as an https: client meets it.
 */
async function cutting<T>(readFirst: boolean, body: (origin: string) => Promise<T>): Promise<T> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const connection of listener) {
      if (readFirst) await connection.read(new Uint8Array(16384)).catch(() => null);
      connection.close();
    }
  })().catch(() => {});
  try {
    return await body(`https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
  } finally {
    listener.close();
    await accepting;
  }
}

function cutHandshakeCases(group: string): HardeningCase[] {
  return ([[false, "at once"], [true, "after reading the ClientHello"]] as const).map((
    [readFirst, when],
  ): HardeningCase => ({
    group,
    name: `https: to a server that closes the connection ${when} (an outage, not a TLS setup)`,
    run: () =>
      cutting(readFirst, async (origin) => {
        const tokenUrl = `${origin}/token`;
        const error = await failure(
          createTokenClient({ tokenUrl, clientId: "r4", clientSecret: SECRET }).getToken(),
        );
        const run = await runCli(ALL_PERMISSIONS, ["token"], {
          FRESHTOKEN_TOKEN_URL: tokenUrl,
          FRESHTOKEN_CLIENT_ID: "r4",
          FRESHTOKEN_CLIENT_SECRET: SECRET,
        }, [SECRET]);
        const said = run.stderr.trim().split("\n").at(-1) ?? "";
        return {
          ok: error.code === "network" && error.retryable && run.code === 4,
          outcome: `${error.code}, retryable ${error.retryable}; CLI exit ${run.code}: ${
            said.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT")
          }`,
        };
      }),
  }));
}

function messageCases(): HardeningCase[] {
  const group = "round 4: first messages";
  return [
    ...cutHandshakeCases(group),
    {
      group,
      name: "https: to a plain-HTTP token endpoint (the TLS handshake fails)",
      run: () =>
        serve(plainToken, async (origin) => {
          const tokenUrl = `${origin.replace("http:", "https:")}/token`;
          const started = performance.now();
          const error = await failure(
            createTokenClient({ tokenUrl, clientId: "r4", clientSecret: SECRET }).getToken(),
          );
          const ms = Math.round(performance.now() - started);
          const run = await runCli(ALL_PERMISSIONS, ["token"], {
            FRESHTOKEN_TOKEN_URL: tokenUrl,
            FRESHTOKEN_CLIENT_ID: "r4",
            FRESHTOKEN_CLIENT_SECRET: SECRET,
          }, [SECRET]);
          const said = run.stderr.trim().split("\n").at(-1) ?? "";
          return {
            ok: error.code === "config" && !error.retryable && /TLS/.test(error.message) &&
              run.code === 2 && !said.includes("transient"),
            outcome: `${error.code}, retryable ${error.retryable}, after ${
              ms < 1000 ? "under 1 s" : `${Math.round(ms / 1000)} s`
            }; CLI exit ${run.code}: ${said.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT")}`,
          };
        }),
    },
    {
      group,
      name: "https: to a plain-HTTP issuer (the metadata request's TLS handshake fails)",
      run: () =>
        serve(plainToken, async (origin) => {
          const issuer = origin.replace("http:", "https:");
          const error = await failure(
            createTokenClient({ issuer, clientId: "r4", clientSecret: SECRET }).getToken(),
          );
          return {
            ok: error.code === "config" && !error.retryable && /metadata/.test(error.message),
            outcome: `${error.code}, retryable ${error.retryable}: ${
              error.message.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT")
            }`,
          };
        }),
    },
    {
      group,
      name: "a 404 from the token endpoint (a wrong path)",
      run: () =>
        serve(() => new Response("not found", { status: 404 }), async (origin) => {
          const error = await failure(
            createTokenClient({
              tokenUrl: `${origin}/oauth/tokn`,
              clientId: "r4",
              clientSecret: SECRET,
            })
              .getToken(),
          );
          return {
            ok: error.status === 404 && /path/.test(error.message) && !error.retryable,
            outcome: error.message.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT"),
          };
        }),
    },
    {
      group,
      name: "an issuer nothing listens on (the metadata request fails)",
      run: async () => {
        const issuer = `http://127.0.0.1:${freePort()}`;
        const error = await failure(
          createTokenClient({
            issuer,
            clientId: "r4",
            clientSecret: SECRET,
            retry: { maxAttempts: 1 },
          }).getToken(),
        );
        return {
          ok: error.code === "network" && /metadata request/.test(error.message) &&
            !/token request/.test(error.message),
          outcome: error.message.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT"),
        };
      },
    },
    {
      group,
      name: "an issuer whose metadata names another issuer (with credentials, query and a newline)",
      run: () =>
        serve((request) => {
          const url = new URL(request.url);
          return Response.json({
            issuer:
              `https://user:canary-secret-pw@auth.example.com/tenant?code=canary-secret-q\nX: 1`,
            token_endpoint: `${url.origin}/token`,
          });
        }, async (origin) => {
          const error = await failure(
            createTokenClient({ issuer: `${origin}/tenant`, clientId: "r4", clientSecret: SECRET })
              .getToken(),
          );
          const message = error.message;
          const shows = message.includes(`${origin}/tenant`) &&
            message.includes("https://auth.example.com/tenant");
          const clean = !/canary-secret|user:|code=|\n|X: 1/.test(message);
          return {
            ok: error.code === "config" && shows && clean,
            outcome: `${error.code}: ${message.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT")}`,
          };
        }),
    },
  ];
}

export const KV_CASES: HardeningCase[] = [...kvCases(), ...messageCases()];
