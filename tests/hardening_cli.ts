// Hardening of the CLI: secrets typed into the wrong place
// (the Genesys region, a variable that holds a credential inside it) and
// the messages a new user meets, each against the CLI as a process, real
// loopback token servers and a real Deno KV file. Part of the hardening
// matrix (tests/hardening.ts).

import { createTokenClient, genesysCloud, TokenError } from "../deno/mod.ts";
import { ALL_PERMISSIONS, runCli } from "./_cli.ts";
import { serve } from "./_loopback.ts";
import { startGenesysLike } from "./servers/genesys_like.ts";
import type { HardeningCase } from "./hardening.ts";
import { keyPair, pem, RSA } from "./_keys.ts";

/** The error `fn` throws, or `undefined` when it throws none. */
function thrown(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  return undefined;
}

/** stderr's first line, for an outcome. */
const said = (stderr: string) => stderr.trim().split("\n")[0];

/** The names of the variables in `env`'s output. */
const names = (stdout: string) =>
  stdout.split("\n").filter((l) => l.includes("=")).map((l) => l.split("=")[0]);

/** The CLI against a Genesys-like server on loopback, with client `cli` and its `secret`. */
async function cliAgainst(
  secret: string,
  args: string[],
  env: Record<string, string>,
  hidden: string[] = [secret],
) {
  const server = startGenesysLike({ clients: { cli: secret }, lifetimeSeconds: 3600 });
  try {
    const run = await runCli(ALL_PERMISSIONS, args, {
      FRESHTOKEN_TOKEN_URL: server.tokenUrl,
      FRESHTOKEN_CLIENT_ID: "cli",
      FRESHTOKEN_CLIENT_SECRET: secret,
      ...env,
    }, hidden);
    return { run, requests: server.stats.tokenRequests };
  } finally {
    await server.close();
  }
}

const utf8Base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

/**
 * `exec` with an RSA key (`private_key_jwt`, against a loopback server that
 * takes any assertion), given as PEM and as a JWK, and variables that hold
 * the key as a service-account JSON keeps it (newlines as `\n`), with CRLF
 * line ends, wrapped anew without its armour; the JWK inside JSON text, or
 * one of its primes.
 */
async function keyVariables(): Promise<{ ok: boolean; outcome: string }> {
  const pair = await keyPair(RSA);
  const keyPem = pem(await crypto.subtle.exportKey("pkcs8", pair.privateKey), "PRIVATE KEY");
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const body = keyPem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
  const variables = {
    SERVICE_ACCOUNT: JSON.stringify({ type: "service_account", private_key: keyPem }),
    CRLF_KEY: keyPem.replaceAll("\n", "\r\n"),
    KEY_BODY: body.match(/.{1,76}/g)!.join("\n"),
  };
  const token = `canary-token-${crypto.randomUUID()}`;
  const answer = () =>
    Response.json({ access_token: token, token_type: "Bearer", expires_in: 3600 });
  return await serve(answer, async (origin) => {
    const outcomes: string[] = [];
    let ok = true;
    for (
      const [as, key, extra] of [
        ["PEM", keyPem, variables],
        ["JWK", JSON.stringify(jwk), {
          KEY_JSON: JSON.stringify({ key: JSON.stringify(jwk) }),
          JWK_PRIME: `p=${jwk.p}`,
        }],
      ] as const
    ) {
      const run = await runCli(ALL_PERMISSIONS, ["exec", "--", "env"], {
        FRESHTOKEN_TOKEN_URL: `${origin}/token`,
        FRESHTOKEN_CLIENT_ID: "cli",
        FRESHTOKEN_PRIVATE_KEY: key,
        UNRELATED: "kept",
        ...extra,
      });
      const seen = names(run.stdout);
      const expected = Object.keys(extra);
      const leaked = expected.filter((n) => seen.includes(n));
      const unnamed = expected.filter((n) => !run.stderr.includes(n));
      ok &&= run.code === 0 && seen.includes("UNRELATED") && leaked.length === 0 &&
        unnamed.length === 0 && !seen.includes("FRESHTOKEN_PRIVATE_KEY") &&
        ![body.slice(100, 140), jwk.p!].some((part) => run.stderr.includes(part));
      outcomes.push(
        `key as ${as}: exit ${run.code}, ${
          leaked.length === 0
            ? `none of the ${expected.length} holding the key passed on`
            : `passed on ${leaked.join(" ")}`
        }, stderr names ${expected.length - unnamed.length} of them`,
      );
    }
    return { ok, outcome: outcomes.join("; ") };
  });
}

export const CLI_CASES: HardeningCase[] = [
  {
    group: "round 4 secrets cli",
    name: "a secret given as the Genesys region (--region, GENESYS_CLOUD_REGION, " +
      "GENESYSCLOUD_REGION, genesysCloud({ region }))",
    run: async () => {
      const secret = "r4-canary-secret-in-region";
      const creds = { GENESYS_CLOUD_CLIENT_ID: "id", GENESYS_CLOUD_CLIENT_SECRET: "a-secret" };
      const outcomes: string[] = [];
      let ok = true;
      for (
        const [where, args, env] of [
          ["--region", ["status", "--region", secret], creds],
          ["GENESYS_CLOUD_REGION", ["status"], { ...creds, GENESYS_CLOUD_REGION: secret }],
          ["GENESYSCLOUD_REGION", ["status"], { ...creds, GENESYSCLOUD_REGION: secret }],
        ] as const
      ) {
        const run = await runCli(ALL_PERMISSIONS, [...args], env, [secret]);
        const clean = !`${run.stdout}${run.stderr}`.includes(secret);
        ok &&= run.code === 2 && clean && run.stderr.includes(where) &&
          !run.stderr.includes("did you mean") && !run.stderr.includes("domain:");
        outcomes.push(`${where}: exit ${run.code}${clean ? "" : ", value printed"}`);
      }
      const library = thrown(() =>
        genesysCloud({ region: secret, clientId: "id", clientSecret: "s" })
      );
      const libraryClean = library instanceof TokenError && library.code === "config" &&
        !library.message.includes(secret) && !Deno.inspect(library).includes(secret);
      ok &&= libraryClean;
      outcomes.push(`genesysCloud: ${libraryClean ? "config error, value not shown" : "echoed"}`);
      const domain = thrown(() =>
        genesysCloud({ domain: `login.${secret}.cloud`, clientId: "id", clientSecret: "s" })
      );
      ok &&= domain instanceof TokenError && !domain.message.includes(secret);
      // A near miss of a region name gets the name; the value itself is still not shown.
      const typo = await runCli(ALL_PERMISSIONS, ["status", "--region", "eu_wset_1"], creds);
      const suggested = typo.code === 2 && typo.stderr.includes('did you mean "eu_west_1"') &&
        !typo.stderr.includes("eu_wset_1");
      ok &&= suggested;
      outcomes.push(`--region eu_wset_1: exit ${typo.code}; says: ${said(typo.stderr)}`);
      return { ok, outcome: outcomes.join("; ") };
    },
  },
  {
    group: "round 4 secrets cli",
    name: "exec: variables that contain a credential without being equal to it",
    run: async () => {
      const secret = "r4-canary-secret/exec+x";
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
      const dir = await Deno.makeTempDir();
      try {
        const env = {
          FRESHTOKEN_ENCRYPTION_KEY: key,
          FRESHTOKEN_KV: `${dir}/t.kv`,
          DATABASE_URL: `postgres://cli:${encodeURIComponent(secret)}@db.internal/app`,
          PLAIN_URL: `https://cli:${secret}@api.internal/`,
          BASIC_AUTH: `Basic ${utf8Base64(`cli:${secret}`)}`,
          SHOUTED: `SECRET=${secret.toUpperCase()}`,
          KEY_BACKUP: `key=${key};`,
          SECRET_B64: btoa(secret),
          SECRET_B64URL: btoa(secret).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""),
          UNRELATED: "kept",
        };
        const plain = await cliAgainst(secret, ["exec", "--", "env"], env, [secret, key]);
        const seen = names(plain.run.stdout);
        const withheld = [
          "DATABASE_URL",
          "PLAIN_URL",
          "BASIC_AUTH",
          "SHOUTED",
          "KEY_BACKUP",
          "SECRET_B64",
          "SECRET_B64URL",
          "FRESHTOKEN_CLIENT_SECRET",
          "FRESHTOKEN_ENCRYPTION_KEY",
        ];
        const leaked = withheld.filter((n) => seen.includes(n));
        const unnamed = withheld.slice(0, 7).filter((n) => !plain.run.stderr.includes(n));
        const valuesShown = [secret, key, encodeURIComponent(secret)].some((v) =>
          plain.run.stderr.includes(v)
        );
        // --pass-env keeps one on purpose; the child prints it, so that run is not scanned.
        const kept = await cliAgainst(
          secret,
          ["exec", "--pass-env", "DATABASE_URL", "--", "env"],
          env,
          [],
        );
        const keptSeen = names(kept.run.stdout);
        const keyed = await keyVariables();
        const ok = plain.run.code === 0 && seen.includes("FRESHTOKEN_ACCESS_TOKEN") &&
          seen.includes("UNRELATED") && leaked.length === 0 && unnamed.length === 0 &&
          !valuesShown && kept.run.code === 0 && keptSeen.includes("DATABASE_URL") &&
          !keptSeen.includes("PLAIN_URL") && keyed.ok;
        return {
          ok,
          outcome: `exit ${plain.run.code}; the command got ${seen.length} variables, ${
            leaked.length === 0 ? "none of the 9 holding a credential" : `also ${leaked.join(" ")}`
          }; stderr names ${7 - unnamed.length} of the 7 withheld for what they hold${
            valuesShown ? " and shows a value" : ", no value"
          }: ${said(plain.run.stderr)}; with --pass-env DATABASE_URL: exit ${kept.run.code}, ${
            keptSeen.includes("DATABASE_URL") ? "kept" : "withheld"
          }; ${keyed.outcome}`,
        };
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 messages cli",
    name: "--region or a Genesys region variable with FRESHTOKEN_CLIENT_ID/SECRET: " +
      "precedence per value",
    run: async () => {
      const fresh = { FRESHTOKEN_CLIENT_ID: "fresh-id", FRESHTOKEN_CLIENT_SECRET: "fresh-secret" };
      const genesys = { GENESYS_CLOUD_CLIENT_ID: "gc-id", GENESYS_CLOUD_CLIENT_SECRET: "gc-s" };
      const cases: [string, string[], Record<string, string>, string][] = [
        ["--region + FRESHTOKEN_*", ["--region", "eu_west_1"], fresh, "fresh-id"],
        ["--region + FRESHTOKEN_* + GENESYS_CLOUD_*", ["--region", "eu_west_1"], {
          ...fresh,
          ...genesys,
        }, "fresh-id"],
        [
          "--region --client-id + FRESHTOKEN_*",
          ["--region", "eu_west_1", "--client-id", "flag-id"],
          {
            ...fresh,
          },
          "flag-id",
        ],
        ["GENESYS_CLOUD_REGION + FRESHTOKEN_*", [], {
          ...fresh,
          GENESYS_CLOUD_REGION: "eu_west_1",
        }, "fresh-id"],
        ["GENESYS_CLOUD_* + GENESYSCLOUD_OAUTHCLIENT_ID", [], {
          ...genesys,
          GENESYS_CLOUD_REGION: "eu_west_1",
          GENESYSCLOUD_OAUTHCLIENT_ID: "gc-id",
        }, "gc-id"],
        ["GENESYSCLOUD_* alone", [], {
          GENESYSCLOUD_REGION: "eu-west-1",
          GENESYSCLOUD_OAUTHCLIENT_ID: "tf-id",
          GENESYSCLOUD_OAUTHCLIENT_SECRET: "tf-s",
        }, "tf-id"],
      ];
      const outcomes: string[] = [];
      let ok = true;
      for (const [what, args, env, id] of cases) {
        const run = await runCli(ALL_PERMISSIONS, ["status", ...args], env);
        const right = run.code === 1 &&
          run.stdout.includes(`client ${id} at https://login.mypurecloud.ie`);
        ok &&= right;
        outcomes.push(`${what}: exit ${run.code}, ${right ? `client ${id}` : said(run.stderr)}`);
      }
      // The Genesys secret never goes to another endpoint, whatever is missing.
      const mixed = await runCli(ALL_PERMISSIONS, ["status"], {
        FRESHTOKEN_TOKEN_URL: "https://auth.example.com/oauth/token",
        FRESHTOKEN_CLIENT_ID: "fresh-id",
        GENESYS_CLOUD_REGION: "eu_west_1",
        ...genesys,
      });
      ok &&= mixed.code === 2 && mixed.stderr.includes("FRESHTOKEN_CLIENT_SECRET");
      outcomes.push(`FRESHTOKEN_TOKEN_URL without its secret: exit ${mixed.code}`);
      return { ok, outcome: outcomes.join("; ") };
    },
  },
  {
    group: "round 4 messages cli",
    name: "configuration errors name the flag or variable that was set, not the library option",
    run: async () => {
      const id = { FRESHTOKEN_CLIENT_ID: "id" };
      const cases: [string[], Record<string, string>, string][] = [
        [["--token-url", "http://auth.example.com/t", "--client-secret", "s"], id, "--token-url"],
        [[], {
          ...id,
          FRESHTOKEN_TOKEN_URL: "http://auth.example.com/t",
          FRESHTOKEN_CLIENT_SECRET: "s",
        }, "FRESHTOKEN_TOKEN_URL must use https:"],
        [["--issuer", "http://auth.example.com", "--client-secret", "s"], id, "--issuer"],
        [
          ["--token-url", "https://auth.example.com/t", "--client-secret", "s "],
          id,
          "--client-secret has leading or trailing whitespace",
        ],
        [[], {
          ...id,
          FRESHTOKEN_TOKEN_URL: "https://auth.example.com/t",
          FRESHTOKEN_CLIENT_SECRET: "s\n",
        }, "FRESHTOKEN_CLIENT_SECRET has leading or trailing whitespace"],
        [
          ["--token-url", "https://auth.example.com/t"],
          { FRESHTOKEN_CLIENT_SECRET: "s" },
          "FRESHTOKEN_CLIENT_ID",
        ],
        [[], {
          FRESHTOKEN_TOKEN_URL: "https://auth.example.com/t",
          FRESHTOKEN_CLIENT_SECRET: "s",
          FRESHTOKEN_ENCRYPTION_KEY: "a2V5",
          ...id,
        }, "FRESHTOKEN_ENCRYPTION_KEY encrypts the tokens kept in a store: set --kv"],
        [["--region", "nowhere"], {
          GENESYS_CLOUD_CLIENT_ID: "a",
          GENESYS_CLOUD_CLIENT_SECRET: "b",
        }, "--region"],
      ];
      const outcomes: string[] = [];
      let ok = true;
      for (const [args, env, want] of cases) {
        const run = await runCli(ALL_PERMISSIONS, ["status", ...args], env);
        const right = run.code === 2 && run.stderr.includes(want) &&
          !/tokenUrl|clientSecret|clientId|encryptionKey|domain:|the kv option/.test(run.stderr);
        ok &&= right;
        outcomes.push(`exit ${run.code}: ${said(run.stderr).replace(/^freshtoken: config: /, "")}`);
      }
      return { ok, outcome: outcomes.join("; ") };
    },
  },
  {
    group: "round 4 messages cli",
    name: "exec without --, a misspelt command, a command that is not there",
    run: async () => {
      const env = {
        FRESHTOKEN_TOKEN_URL: "https://auth.example.com/t",
        FRESHTOKEN_CLIENT_ID: "id",
        FRESHTOKEN_CLIENT_SECRET: "s",
      };
      const noDash = await runCli(ALL_PERMISSIONS, ["exec", "./job.sh"], env);
      const dash = await runCli(ALL_PERMISSIONS, ["exec"], env);
      const hint = "exec needs a command after --";
      const typo = await runCli(ALL_PERMISSIONS, ["tokn"], env);
      const secret = "r4-canary-secret-missing";
      const missing = await cliAgainst(secret, ["exec", "--", "./no-such-job.sh"], {});
      const ok = noDash.code === 2 && noDash.stderr.includes(hint) && dash.stderr.includes(hint) &&
        !noDash.stderr.includes("job.sh") && typo.code === 2 &&
        typo.stderr.includes("did you mean token?") && !typo.stderr.includes("tokn") &&
        missing.run.code === 127 && missing.run.stderr.includes("./no-such-job.sh");
      return {
        ok,
        outcome: [noDash, typo, missing.run].map((r) => `exit ${r.code}: ${said(r.stderr)}`)
          .join("; "),
      };
    },
  },
  {
    group: "round 4 messages cli",
    name: "token --json and status --json give expiresIn; status says which client at which " +
      "endpoint; JSON.stringify(client.status()) keeps the error's message",
    run: async () => {
      const secret = "r4-canary-secret-status";
      const dir = await Deno.makeTempDir();
      const server = startGenesysLike({ clients: { cli: secret }, lifetimeSeconds: 3600 });
      try {
        const env = {
          FRESHTOKEN_TOKEN_URL: server.tokenUrl,
          FRESHTOKEN_CLIENT_ID: "cli",
          FRESHTOKEN_CLIENT_SECRET: secret,
          FRESHTOKEN_KV: `${dir}/t.kv`,
        };
        const token = await runCli(ALL_PERMISSIONS, ["token", "--json"], env, [secret]);
        const json = await runCli(ALL_PERMISSIONS, ["status", "--json"], env, [secret]);
        const human = await runCli(ALL_PERMISSIONS, ["status"], env, [secret]);
        const tokenIn = JSON.parse(token.stdout).expiresIn;
        const statusIn = JSON.parse(json.stdout).expiresIn;
        const origin = new URL(server.tokenUrl).origin;
        const where = human.stdout.includes(`client cli at ${origin}`);
        const failing = await serve(
          () => Response.json({ error: "invalid_client" }, { status: 401 }),
          async (at) => {
            const client = createTokenClient({
              tokenUrl: `${at}/t`,
              clientId: "id",
              clientSecret: secret,
            });
            await client.getToken().catch(() => {});
            return JSON.parse(JSON.stringify(client.status())).lastError;
          },
        );
        const ok = token.code === 0 && tokenIn > 3500 && tokenIn <= 3600 && json.code === 0 &&
          statusIn > 3500 && statusIn <= 3600 && where &&
          typeof failing?.message === "string" && failing.message.includes("invalid_client") &&
          !failing.message.includes(secret);
        return {
          ok,
          outcome: `token --json expiresIn ${tokenIn}; status --json expiresIn ${statusIn}; ` +
            `status: ${
              human.stdout.trim().replace(/\d{4}-\S+/g, "…").replace(/:\d+:/, ":<port>:")
            }; ` +
            `lastError in JSON: ${
              JSON.stringify(failing?.message ?? failing).replace(/:\d+ /, ":<port> ")
            }`,
        };
      } finally {
        await server.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  {
    group: "round 4 messages cli",
    name: "the README's install and import lines work from a clone (not on JSR yet)",
    run: async () => {
      const root = new URL("..", import.meta.url).pathname;
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", "--allow-run", "scripts/check_readme.ts"],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(output.stdout).trim();
      const clone = said.match(/clone form: (\d+) of (\d+)/);
      const ok = output.success && clone !== null && clone[1] === clone[2] && clone[2] !== "0";
      return { ok, outcome: `exit ${output.code}: ${said}` };
    },
  },
  {
    group: "round 4 messages cli",
    name: "a script that gets a token and never closes its client exits by itself",
    run: async () => {
      const secret = "r4-canary-secret-no-close";
      const server = startGenesysLike({ clients: { cli: secret }, lifetimeSeconds: 2 });
      const mod = new URL("../deno/mod.ts", import.meta.url).href;
      // 2 s tokens: 1.2 s on, the second call is served at once and starts a background
      // refresh, which the script leaves running as it ends.
      const script = `import { createTokenClient } from "${mod}";
        const client = createTokenClient({ tokenUrl: Deno.args[0], clientId: "cli",
          clientSecret: Deno.args[1] });
        await client.getToken();
        await new Promise((resolve) => setTimeout(resolve, 1200));
        await client.getToken();`;
      try {
        const started = performance.now();
        const child = new Deno.Command(Deno.execPath(), {
          args: ["eval", "--ext=ts", script, server.tokenUrl, secret],
          env: { NO_COLOR: "1" },
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const timeout = setTimeout(() => child.kill("SIGKILL"), 10_000);
        const status = await child.output();
        clearTimeout(timeout);
        const ms = Math.round(performance.now() - started);
        const ok = status.code === 0 && ms < 10_000 && server.stats.tokenRequests === 2;
        return {
          ok,
          outcome: `exit ${status.code} after ${ms} ms, ${server.stats.tokenRequests} token ` +
            `requests (the second a background refresh the script left running), no close()`,
        };
      } finally {
        await server.close();
      }
    },
  },
];
