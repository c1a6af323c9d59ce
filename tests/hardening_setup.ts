// Hardening of a new user's setup: the CLI's defaults, secrets echoed or
// handed on, tenants that share one KV, options that look harmless, and
// process hygiene; each against real loopback servers, a real Deno KV and
// the CLI as a process. Part of the hardening matrix (tests/hardening.ts).

import { createTokenClient, TokenError } from "../deno/mod.ts";
import { leaseKey } from "../deno/kv_store.ts";
import type { TokenClientOptions } from "../deno/types.ts";
import { ALL_PERMISSIONS, cliCommand, runCli } from "./_cli.ts";
import { startDenoKv } from "./_processes.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import type { HardeningCase } from "./hardening.ts";
import { kvIdOf, serve, withKv } from "./_loopback.ts";

/** The error `fn` throws, or `undefined` when it throws none. */
async function thrown(fn: () => unknown): Promise<TokenError | Error | undefined> {
  try {
    await fn();
  } catch (error) {
    return error as Error;
  }
  return undefined;
}

const CLI_FLAGS = ALL_PERMISSIONS;

/** The CLI run against a Genesys-like server issuing tokens of `lifetime` seconds. */
async function cliAgainst(
  lifetime: number,
  args: string[],
  extraEnv: Record<string, string> = {},
  flags = CLI_FLAGS,
) {
  const secret = "round3-canary-secret-cli";
  const server = startGenesysLike({ clients: { cli: secret }, lifetimeSeconds: lifetime });
  try {
    const run = await runCli(flags, args, {
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_CLIENT_ID: "cli",
      FRESHTOKEN_CLIENT_SECRET: secret,
      ...extraEnv,
    }, [secret]);
    return { run, requests: server.stats.tokenRequests };
  } finally {
    await server.close();
  }
}

/** A throwaway EC key as PKCS#8 PEM and private JWK. */
async function ecKey(): Promise<{ pem: string; jwk: JsonWebKey }> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const body = btoa(String.fromCharCode(...der));
  return {
    pem: `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`,
    jwk: await crypto.subtle.exportKey("jwk", pair.privateKey),
  };
}

export const SETUP_CASES: HardeningCase[] = [
  ...[8, 20, 30, 60].map((lifetime): HardeningCase => ({
    group: "day one",
    name: `the CLI without --min-valid against ${lifetime} s tokens`,
    run: async () => {
      const outcomes: string[] = [];
      let ok = true;
      for (const args of [["token"], ["token", "--header"], ["token", "--json"]]) {
        const { run, requests } = await cliAgainst(lifetime, args);
        ok &&= run.code === 0 && run.stdout.includes("canary-token-") && requests === 1;
        outcomes.push(`${args.join(" ")}: exit ${run.code}, ${requests} request`);
      }
      const { run, requests } = await cliAgainst(lifetime, ["exec", "--", "true"]);
      ok &&= run.code === 0 && requests === 1;
      outcomes.push(`exec: exit ${run.code}, ${requests} request`);
      return { ok, outcome: outcomes.join("; ") };
    },
  })),
  {
    group: "day one",
    name: "an explicit --min-valid longer than the server's 20 s tokens",
    run: async () => {
      const { run, requests } = await cliAgainst(20, ["token", "--min-valid", "60"]);
      return {
        ok: run.code === 2 && run.stderr.includes("--min-valid 60 cannot be met") &&
          run.stderr.includes("valid for 20 s") && !run.stderr.includes("minValidSeconds") &&
          requests === 1,
        outcome: `exit ${run.code}, ${requests} request: ${run.stderr.trim()}`,
      };
    },
  },
  {
    group: "day one",
    name: "a server echoes a mixed-case secret lower-cased, raw and percent-encoded",
    run: async () => {
      const secret = "hard-Secret+/Canary-SECRET=x";
      return await serve(() => {
        const lower = encodeURIComponent(secret).toLowerCase();
        const text = `got ${secret.toLowerCase()} or ${lower} or ${lower.toUpperCase()}`;
        return Response.json({ error: "invalid_client", error_description: text }, {
          status: 401,
        });
      }, async (origin) => {
        const error = await thrown(() =>
          createTokenClient({ tokenUrl: `${origin}/t`, clientId: "id", clientSecret: secret })
            .getToken()
        ) as TokenError;
        const shown = `${error.message}\n${error.description}`.toLowerCase();
        const leaked = shown.includes("canary-secret") ||
          shown.includes("canary-secret".toUpperCase());
        return { ok: !leaked && error.code === "invalid_client", outcome: error.description ?? "" };
      });
    },
  },
  {
    group: "secrets",
    name: "--private-key and --certificate given the key's text instead of a file name",
    run: async () => {
      const { pem, jwk } = await ecKey();
      const outcomes: string[] = [];
      let ok = true;
      for (
        const [flag, text] of [
          ["--private-key", pem],
          ["--private-key", JSON.stringify(jwk)],
          ["--certificate", pem],
        ]
      ) {
        for (const flags of [CLI_FLAGS.filter((f) => f !== "--allow-read"), CLI_FLAGS]) {
          const args = flag === "--certificate"
            ? ["token", "--private-key", "/nonexistent/key.pem", flag, text]
            : ["token", flag, text];
          const { run } = await cliAgainst(3600, args, {}, flags);
          const shown = run.stdout + run.stderr;
          const leaked = shown.includes(pem.split("\n")[1].slice(0, 24)) ||
            shown.includes(jwk.d!) || shown.includes("BEGIN PRIVATE KEY");
          ok &&= run.code === 2 && !leaked;
          outcomes.push(`${flag}: exit ${run.code}${leaked ? " and the key printed" : ""}`);
        }
      }
      const { run } = await cliAgainst(3600, ["token", "--private-key", pem], {}, [
        ...CLI_FLAGS,
        "--allow-read",
      ]);
      ok &&= run.stderr.includes("FRESHTOKEN_PRIVATE_KEY");
      return { ok, outcome: `${outcomes.join("; ")}; says: ${run.stderr.trim()}` };
    },
  },
  {
    group: "secrets",
    name: "exec's command gets the token and none of the credentials freshtoken used",
    run: async () => {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
      const dir = await Deno.makeTempDir();
      try {
        const env = {
          FRESHTOKEN_ENCRYPTION_KEY: key,
          FRESHTOKEN_KV: `${dir}/t.kv`,
          MY_COPY_OF_THE_SECRET: "round3-canary-secret-cli",
          UNRELATED: "kept",
        };
        const flags = [...CLI_FLAGS, "--allow-read", "--allow-write"];
        const plain = await cliAgainst(3600, ["exec", "--", "env"], env, flags);
        const kept = await cliAgainst(
          3600,
          ["exec", "--pass-env", "FRESHTOKEN_ENCRYPTION_KEY", "--", "env"],
          env,
          flags,
        );
        const has = (out: string, name: string) =>
          out.split("\n").some((l) => l.startsWith(`${name}=`));
        const out = plain.run.stdout;
        const ok = plain.run.code === 0 && has(out, "FRESHTOKEN_ACCESS_TOKEN") &&
          has(out, "UNRELATED") && !out.includes(key) && !has(out, "FRESHTOKEN_CLIENT_SECRET") &&
          !has(out, "MY_COPY_OF_THE_SECRET") && has(kept.run.stdout, "FRESHTOKEN_ENCRYPTION_KEY");
        return {
          ok,
          outcome: ok
            ? "token passed; secret, encryption key and a copy of the secret removed; --pass-env keeps one"
            : `child saw: ${out.split("\n").map((l) => l.split("=")[0]).join(" ")}`,
        };
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "secrets",
    name: "exec with a remote --kv (KV Connect): the command gets no DENO_KV_ACCESS_TOKEN",
    run: async () => {
      const dir = await Deno.makeTempDir();
      const denokv = await startDenoKv(dir);
      try {
        const env = { FRESHTOKEN_KV: denokv.url, DENO_KV_ACCESS_TOKEN: denokv.accessToken };
        const { run } = await cliAgainst(3600, ["exec", "--", "env"], env);
        const names = run.stdout.split("\n").map((l) => l.split("=")[0]);
        const ok = run.code === 0 && names.includes("FRESHTOKEN_ACCESS_TOKEN") &&
          !run.stdout.includes(denokv.accessToken);
        return {
          ok,
          outcome: ok
            ? "the token is passed; the KV Connect access token is not"
            : `exit ${run.code}; the command saw ${names.join(" ")}`,
        };
      } finally {
        await denokv.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "secrets",
    name: 'token --json in GitHub Actions with a token holding " and \\',
    run: async () => {
      const token = 'canary-token-q"uo\\te';
      return await serve(
        () => Response.json({ access_token: token, expires_in: 3600 }),
        async (origin) => {
          const run = await runCli(CLI_FLAGS, ["token", "--json"], {
            FRESHTOKEN_TOKEN_URL: `${origin}/t`,
            FRESHTOKEN_CLIENT_ID: "gh",
            FRESHTOKEN_CLIENT_SECRET: "round3-canary-secret-gh",
            GITHUB_ACTIONS: "true",
          });
          const masks = run.stderr.split("\n").filter((l) => l.startsWith("::add-mask::"))
            .map((l) => l.slice("::add-mask::".length).replaceAll("%25", "%"));
          // What the runner's log would show once every mask is applied.
          let log = run.stdout;
          for (const mask of masks.sort((a, b) => b.length - a.length)) {
            log = log.replaceAll(mask, "***");
          }
          const ok = run.code === 0 && !log.includes("canary-token");
          return { ok, outcome: `${masks.length} masks; the log shows ${log.trim()}` };
        },
      );
    },
  },
  {
    group: "secrets",
    name: "a token URL with a credential in its query",
    run: async () => {
      const outcomes: string[] = [];
      let ok = true;
      for (const name of ["client_secret", "API_KEY", "sig", "Token"]) {
        const error = await thrown(() =>
          createTokenClient({
            tokenUrl: `https://login.example.com/t?tenant=a&${name}=canary-secret-q`,
            clientId: "id",
            clientSecret: "round3-canary-secret-q",
          })
        ) as TokenError;
        ok &&= error?.code === "config" && error.message.includes(`(${name})`) &&
          !error.message.includes("canary");
        outcomes.push(error?.message ?? "accepted");
      }
      return { ok, outcome: outcomes[0] };
    },
  },
  {
    group: "one tenant, one token",
    name: "two clients on one KV that differ only in extraParams (a tenant)",
    run: () => {
      let requests = 0;
      return serve(async (request) => {
        requests++;
        const org = new URLSearchParams(await request.text()).get("organization");
        return Response.json({ access_token: `canary-token-${org}`, expires_in: 3600 });
      }, (origin) =>
        withKv(async (kv) => {
          const tenant = (organization: string) =>
            createTokenClient({
              tokenUrl: `${origin}/t`,
              clientId: "app",
              clientSecret: "round3-canary-secret-t",
              extraParams: { organization },
              kv,
            });
          const a = await tenant("org_A").getToken();
          const b = await tenant("org_B").getToken();
          const ok = a.accessToken.endsWith("org_A") && b.accessToken.endsWith("org_B") &&
            requests === 2;
          return {
            ok,
            outcome: `tenant B got ${b.accessToken.endsWith("org_B") ? "its own" : "A's"} token; ` +
              `${requests} token requests`,
          };
        }));
    },
  },
  {
    group: "one tenant, one token",
    name: "a client with a wrong (rotated) secret on the KV of a good one",
    run: () => {
      const server = startGenesysLike({ clients: { app: "round3-canary-secret-good" } });
      return withKv(async (kv) => {
        try {
          const client = (clientSecret: string) =>
            createTokenClient({ tokenUrl: server.tokenUrl, clientId: "app", clientSecret, kv });
          await client("round3-canary-secret-good").getToken();
          const error = await thrown(() => client("round3-canary-secret-bad").getToken());
          const code = error instanceof TokenError ? error.code : "served the good client's token";
          return {
            ok: code === "invalid_client" && server.stats.tokenRequests === 2,
            outcome: `${code}, after ${server.stats.tokenRequests} token requests`,
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  {
    group: "one tenant, one token",
    name: "a co-tenant renews a plausible lease forever",
    run: () => {
      const server = startGenesysLike({ clients: { app: "round3-canary-secret-l" } });
      return withKv(async (kv) => {
        const options: TokenClientOptions = {
          tokenUrl: server.tokenUrl,
          clientId: "app",
          clientSecret: "round3-canary-secret-l",
          timeoutMs: 1_000,
          kv,
        };
        const key = leaseKey(["freshtoken"], await kvIdOf(createTokenClient(options)));
        const rewrite = async () => {
          await kv.set(key, { holder: "hostile", until: Date.now() + 1_500 }, { expireIn: 1_500 });
        };
        await rewrite();
        const timer = setInterval(rewrite, 200);
        try {
          const started = performance.now();
          const error = await thrown(() => createTokenClient(options).getToken());
          const ms = performance.now() - started;
          return {
            ok: error === undefined && server.stats.tokenRequests === 1 && ms < 5_000,
            outcome: error === undefined
              ? `a token after ${
                (ms / 1000).toFixed(1)
              } s (lease 2 s), ${server.stats.tokenRequests} request`
              : `${error.message} after ${(ms / 1000).toFixed(1)} s`,
          };
        } finally {
          clearInterval(timer);
          await server.close();
        }
      });
    },
  },
  {
    group: "one tenant, one token",
    name: "a lease holder whose token requests hang keeps renewing; a waiter takes over",
    run: () => {
      const server = startGenesysLike({ clients: { app: "round3-canary-secret-h" } });
      return withKv(async (kv) => {
        const options = (): TokenClientOptions => ({
          tokenUrl: server.tokenUrl,
          clientId: "app",
          clientSecret: "round3-canary-secret-h",
          timeoutMs: 1_000,
          retry: { maxAttempts: 10, baseDelayMs: 200, maxDelayMs: 400, deadlineMs: 4_000 },
          kv,
        });
        try {
          // The holder's requests never answer: it times out, renews the lease and retries.
          const stuck = createTokenClient({ ...options(), fetch: () => new Promise(() => {}) });
          const holder = stuck.getToken().catch(() => undefined);
          await new Promise((r) => setTimeout(r, 100));
          const started = performance.now();
          const error = await thrown(() => createTokenClient(options()).getToken());
          const ms = performance.now() - started;
          await holder;
          return {
            ok: error === undefined && ms < 4_000 && server.stats.tokenRequests === 1,
            outcome: error === undefined
              ? `the waiter had a token after ${(ms / 1000).toFixed(1)} s (lease 2 s); ` +
                `${server.stats.tokenRequests} request reached the server`
              : `${error.message} after ${(ms / 1000).toFixed(1)} s`,
          };
        } finally {
          await server.close();
        }
      });
    },
  },
  {
    group: "one tenant, one token",
    name: "ten isolates on one KV through a 5 s outage, the lease holder retrying",
    run: () =>
      withKv(async (kv) => {
        const started = performance.now();
        const requesters = new Set<number>();
        let inFlight = 0;
        let peak = 0;
        const fetchFor = (i: number) => async () => {
          requesters.add(i);
          peak = Math.max(peak, ++inFlight);
          await new Promise((r) => setTimeout(r, 30));
          inFlight--;
          return performance.now() - started < 5_000
            ? new Response("down", { status: 503 })
            : Response.json({ access_token: `canary-token-${i}a`, expires_in: 3600 });
        };
        const outcomes = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
          await new Promise((r) => setTimeout(r, i * 150));
          const client = createTokenClient({
            tokenUrl: "https://login.example.com/oauth/token",
            clientId: "app",
            clientSecret: "round3-canary-secret-o",
            timeoutMs: 1_000,
            retry: { maxAttempts: 50, baseDelayMs: 200, maxDelayMs: 400, deadlineMs: 12_000 },
            kv,
            fetch: fetchFor(i),
          });
          return await client.getToken().then(() => "token", (e: TokenError) => e.code);
        }));
        const tokens = outcomes.filter((o) => o === "token").length;
        return {
          ok: tokens === 10 && requesters.size <= 5 && peak <= 4,
          outcome: `${tokens} of 10 calls got a token; ${requesters.size} isolates sent ` +
            `requests, at most ${peak} at once (a waiter takes a renewed lease over after one ` +
            `attempt, 2 s here)`,
        };
      }),
  },
  {
    group: "options",
    name: "refreshAheadSeconds 600 with 300 s tokens, 300 calls",
    run: () => {
      const server = startGenesysLike({
        clients: { app: "round3-canary-secret-r" },
        lifetimeSeconds: 300,
      });
      return (async () => {
        try {
          const client = createTokenClient({
            tokenUrl: server.tokenUrl,
            clientId: "app",
            clientSecret: "round3-canary-secret-r",
            refreshAheadSeconds: 600,
          });
          for (let i = 0; i < 300; i++) await client.getToken();
          await new Promise((r) => setTimeout(r, 50));
          const requests = server.stats.tokenRequests;
          return {
            ok: requests === 1,
            outcome: `${requests} token request (the window is clamped to half the lifetime)`,
          };
        } finally {
          await server.close();
        }
      })();
    },
  },
  {
    group: "options",
    name: "a getter or Proxy trap that throws inside the options",
    run: async () => {
      const base = {
        tokenUrl: "https://login.example.com/t",
        clientId: "id",
        clientSecret: "round3-canary-secret-g",
      };
      const getter = Object.defineProperty({ ...base }, "timeoutMs", {
        enumerable: true,
        get() {
          throw new Error("canary-secret in a getter");
        },
      });
      const trap = new Proxy({ ...base, retry: {} }, {
        get(target, name) {
          if (name === "retry") throw new Error("trap");
          return Reflect.get(target, name);
        },
      });
      const keys = new Proxy({ ...base }, {
        ownKeys() {
          throw new Error("trap");
        },
      });
      const outcomes: string[] = [];
      let ok = true;
      for (const options of [getter, trap, keys]) {
        const error = await thrown(() => createTokenClient(options as TokenClientOptions));
        const e = error as TokenError;
        ok &&= e instanceof TokenError && e.code === "config" && !e.retryable &&
          !e.message.includes("canary");
        outcomes.push(e?.message ?? "accepted");
      }
      ok &&= outcomes[0].includes("timeoutMs") && outcomes[1].includes("retry");
      return { ok, outcome: outcomes.join("; ") };
    },
  },
  {
    group: "options",
    name: "absurd numbers: timeoutMs 1e308, a BigInt, retry.deadlineMs 1e12",
    run: async () => {
      const base = {
        tokenUrl: "https://login.example.com/t",
        clientId: "id",
        clientSecret: "round3-canary-secret-n",
      };
      const outcomes: string[] = [];
      let ok = true;
      for (
        const extra of [
          { timeoutMs: 1e308 },
          { timeoutMs: 10n },
          { retry: { deadlineMs: 1e12 } },
          { refreshAheadSeconds: Infinity },
        ]
      ) {
        const error = await thrown(() =>
          createTokenClient({ ...base, ...extra } as unknown as TokenClientOptions)
        ) as TokenError;
        ok &&= error?.code === "config";
        outcomes.push(error?.message ?? "accepted");
      }
      return { ok, outcome: outcomes.join("; ") };
    },
  },
  {
    group: "process",
    name: "exec passes SIGHUP and SIGQUIT on to its command",
    run: async () => {
      const outcomes: string[] = [];
      let ok = true;
      for (const [signal, number] of [["SIGHUP", 1], ["SIGQUIT", 3]] as const) {
        const dir = await Deno.makeTempDir();
        const secret = "round3-canary-secret-s";
        const server = startGenesysLike({ clients: { sig: secret } });
        try {
          const script = `trap 'exit ${40 + number}' ${signal.slice(3)}; : > ${dir}/ready; ` +
            `while :; do sleep 0.05; done`;
          const child = cliCommand(CLI_FLAGS, ["exec", "--", "sh", "-c", script], {
            FRESHTOKEN_TOKEN_URL: server.tokenUrl,
            FRESHTOKEN_CLIENT_ID: "sig",
            FRESHTOKEN_CLIENT_SECRET: secret,
          }).spawn();
          // A signal before the command runs would meet no forwarding yet: wait for it (a loaded
          // machine may take seconds to start the CLI and fetch the token).
          let ready = false;
          for (let i = 0; i < 1200 && !ready; i++) {
            ready = await Deno.stat(`${dir}/ready`).then(() => true, () => false);
            if (!ready) await new Promise((r) => setTimeout(r, 25));
          }
          child.kill(signal);
          const { code } = await child.status;
          await child.stdout.cancel();
          await child.stderr.cancel();
          ok &&= ready && code === 40 + number;
          outcomes.push(`${signal}: ${ready ? "" : "the command never started; "}exit ${code}`);
        } finally {
          await server.close();
          await Deno.remove(dir, { recursive: true });
        }
      }
      return { ok, outcome: `${outcomes.join(", ")} (the command's own answer)` };
    },
  },
];
