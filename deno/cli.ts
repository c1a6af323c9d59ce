/**
 * `freshtoken`: a client-credentials token for shell scripts and CI/CD
 * steps, e.g. `TOKEN=$(freshtoken token)`. Never prints the secret;
 * prints the token only where asked to.
 *
 * Install: `deno install -g -n freshtoken --unstable-kv --allow-net --allow-env --allow-read
 * --allow-write jsr:@freshtoken/freshtoken/cli`, or run it as `deno task freshtoken`.
 *
 * @module
 */

import { optionsFromEnv } from "./_env.ts";
import { LOAD_SHARED } from "./_internal.ts";
import { createTokenClient } from "./client.ts";
import { genesysCloud } from "./genesys.ts";
import { configError, TokenError, type TokenErrorCode } from "./token_error.ts";
import type { TokenClientOptions } from "./types.ts";

/** Exit codes, one per kind of failure a pipeline may want to tell apart. */
export const EXIT = {
  ok: 0,
  /** Something unexpected. */
  failure: 1,
  /** Bad flags or configuration: fix the invocation. */
  config: 2,
  /** The server refused the credentials or the request: fix the client setup. */
  refused: 3,
  /** A transient failure (network, timeout, 429, 5xx): try again later. */
  retryable: 4,
  /** The server's answer was not a usable token. */
  invalidResponse: 5,
} as const;

const HELP = `freshtoken — OAuth 2.0 client-credentials tokens for scripts and pipelines

Usage:
  freshtoken [token] [--header | --json] [options]   print a token
  freshtoken status [--json] [options]               what is cached and when it refreshes
  freshtoken --help

Output of "token":
  (default)   the access token alone, for TOKEN=$(freshtoken token)
  --header    Authorization: Bearer <token>
  --json      {"accessToken", "tokenType", "expiresAt", "expiresIn"}

Options (each falls back to the environment variable shown):
  --token-url URL        FRESHTOKEN_TOKEN_URL
  --client-id ID         FRESHTOKEN_CLIENT_ID
  --client-secret S      FRESHTOKEN_CLIENT_SECRET (prefer the variable: flags show in ps)
  --scope "A B"          FRESHTOKEN_SCOPE
  --audience A           FRESHTOKEN_AUDIENCE
  --auth-method M        FRESHTOKEN_AUTH_METHOD: client_secret_basic (default) or client_secret_post
  --region R             GENESYS_CLOUD_REGION, with GENESYS_CLOUD_CLIENT_ID and
                         GENESYS_CLOUD_CLIENT_SECRET: a Genesys Cloud client
  --kv PATH              share the token between steps through a Deno KV file (FRESHTOKEN_KV)
  --min-valid SECONDS    the token must stay valid this long (default 60)
  --timeout MS           per token request (default 10000)

Exit codes:
  0 ok, 2 bad flags or configuration, 3 credentials or request refused,
  4 transient failure (network, timeout, 429, 5xx): retry later,
  5 unusable answer from the server, 1 anything else.

Examples:
  export FRESHTOKEN_TOKEN_URL=https://login.example.com/oauth/token
  export FRESHTOKEN_CLIENT_ID=... FRESHTOKEN_CLIENT_SECRET=...
  curl -H "$(freshtoken token --header)" https://api.example.com/v1/things
  TOKEN=$(freshtoken token --kv .freshtoken.kv)   # later steps reuse the token
  GENESYS_CLOUD_REGION=eu_west_1 freshtoken token --json
  freshtoken status --kv .freshtoken.kv
`;

const FLAGS_WITH_VALUES = new Set([
  "--token-url",
  "--client-id",
  "--client-secret",
  "--scope",
  "--audience",
  "--auth-method",
  "--region",
  "--kv",
  "--min-valid",
  "--timeout",
]);
const SWITCHES = new Set(["--header", "--json", "--help", "-h"]);

/** Parsed command line. */
interface Invocation {
  command: "token" | "status" | "help";
  values: Map<string, string>;
  switches: Set<string>;
}

const COMMANDS = new Set(["token", "status", "help"]);

/**
 * Parses `args`; unknown flags and missing values are `"config"` errors.
 * An argument it does not understand is named by its position only: a
 * stray word may be a secret that lost its flag.
 */
function parseArgs(args: string[]): Invocation {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  let command: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const at = `(argument ${i + 1})`;
    const [flag, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i], undefined];
    if (FLAGS_WITH_VALUES.has(flag)) {
      const value = inline ?? args[++i];
      if (value === undefined || (inline === undefined && isFlag(value))) {
        throw configError(`${flag} needs a value`);
      }
      values.set(flag, value);
    } else if (SWITCHES.has(flag) && inline === undefined) {
      switches.add(flag === "-h" ? "--help" : flag);
    } else if (flag.startsWith("-")) {
      throw configError(`unknown option ${at}`);
    } else if (command === undefined && COMMANDS.has(flag)) {
      command = flag;
    } else {
      throw configError(`unexpected ${command === undefined ? "command" : "argument"} ${at}`);
    }
  }
  command = switches.has("--help") ? "help" : command ?? "token";
  if (switches.has("--header") && switches.has("--json")) {
    throw configError("choose one of --header and --json");
  }
  if (command === "status" && switches.has("--header")) {
    throw configError("--header is for the token command (status prints no token)");
  }
  return { command: command as Invocation["command"], values, switches };
}

function isFlag(arg: string): boolean {
  const name = arg.split("=")[0];
  return FLAGS_WITH_VALUES.has(name) || SWITCHES.has(name);
}

/** Client options from flags, then the environment. */
function clientOptions(
  invocation: Invocation,
  env: (name: string) => string | undefined,
): TokenClientOptions {
  const flag = (name: string) => invocation.values.get(name);
  let options: TokenClientOptions;
  const region = flag("--region");
  if (region !== undefined && flag("--token-url") !== undefined) {
    throw configError("choose one of --region and --token-url");
  }
  if (
    region === undefined && flag("--token-url") === undefined &&
    env("GENESYS_CLOUD_REGION") && env("FRESHTOKEN_TOKEN_URL")
  ) {
    throw configError(
      "both GENESYS_CLOUD_REGION and FRESHTOKEN_TOKEN_URL are set: pass --region or --token-url to choose",
    );
  }
  if (region !== undefined) {
    options = genesysCloud({
      region,
      clientId: flag("--client-id") ?? env("GENESYS_CLOUD_CLIENT_ID") ?? "",
      clientSecret: flag("--client-secret") ?? env("GENESYS_CLOUD_CLIENT_SECRET") ?? "",
    });
  } else {
    const generic = flag("--token-url") ?? env("FRESHTOKEN_TOKEN_URL");
    if (generic !== undefined) {
      options = {
        tokenUrl: generic,
        clientId: flag("--client-id") ?? env("FRESHTOKEN_CLIENT_ID") ?? "",
        clientSecret: flag("--client-secret") ?? env("FRESHTOKEN_CLIENT_SECRET") ?? "",
      };
    } else {
      const fromEnv = optionsFromEnv(env);
      if (fromEnv.length === 0) {
        throw configError(
          "no client configured: set --token-url (or FRESHTOKEN_TOKEN_URL), or --region " +
            "(or GENESYS_CLOUD_REGION), with a client id and secret",
        );
      }
      options = fromEnv[0];
    }
  }
  const scope = flag("--scope") ?? env("FRESHTOKEN_SCOPE");
  if (scope?.trim()) options.scope = scope.trim().split(/\s+/);
  const audience = flag("--audience") ?? env("FRESHTOKEN_AUDIENCE");
  if (audience) options.audience = audience;
  const method = flag("--auth-method") ?? env("FRESHTOKEN_AUTH_METHOD");
  if (method) options.authMethod = method as TokenClientOptions["authMethod"];
  const timeout = flag("--timeout");
  if (timeout !== undefined) options.timeoutMs = number("--timeout", timeout, 1, "milliseconds");
  const key = env("FRESHTOKEN_ENCRYPTION_KEY");
  if (key) options.encryptionKey = key;
  return options;
}

/** A flag's number, at least `min`; the message never repeats what was given. */
function number(flag: string, text: string, min: number, unit: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min) {
    throw configError(`${flag} must be a number of ${unit}, at least ${min}`);
  }
  return n;
}

/** Opens the `--kv` store, saying which flag or path to fix when it cannot. */
async function openKv(path: string): Promise<Deno.Kv> {
  if (typeof Deno.openKv !== "function") {
    throw configError("--kv needs Deno KV: run with --unstable-kv");
  }
  try {
    return await Deno.openKv(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError(`--kv ${path} needs --allow-read and --allow-write`);
    }
    throw configError(`cannot open --kv ${path}: ${(error as Error).message}`);
  }
}

/** The exit code for an error. */
function exitCode(error: unknown): number {
  if (!(error instanceof TokenError)) return EXIT.failure;
  const code: TokenErrorCode = error.code;
  if (code === "config") return EXIT.config;
  if (code === "invalid_response") return EXIT.invalidResponse;
  if (error.retryable) return EXIT.retryable;
  return code === "aborted" ? EXIT.failure : EXIT.refused;
}

/** Runs the CLI; returns the exit code. Writes only to the given streams. */
export async function main(
  args: string[],
  io: {
    env: (name: string) => string | undefined;
    out: (text: string) => void;
    err: (text: string) => void;
  },
): Promise<number> {
  let kv: Deno.Kv | undefined;
  try {
    const invocation = parseArgs(args);
    if (invocation.command === "help") {
      io.out(HELP);
      return EXIT.ok;
    }
    const options = clientOptions(invocation, io.env);
    const kvPath = invocation.values.get("--kv") ?? io.env("FRESHTOKEN_KV");
    if (kvPath) kv = await openKv(kvPath);
    const client = createTokenClient({ ...options, kv });
    const json = invocation.switches.has("--json");
    if (invocation.command === "status") {
      await (client as unknown as Record<symbol, () => Promise<void>>)[LOAD_SHARED]();
      const { hasToken, expiresAt, refreshAt } = client.status();
      const now = Date.now();
      if (json) {
        io.out(`${JSON.stringify({ hasToken, expiresAt, refreshAt })}\n`);
      } else if (!hasToken || expiresAt === undefined || refreshAt === undefined) {
        io.out(
          kv ? "no usable token cached\n" : "no token cached (use --kv to keep one between runs)\n",
        );
      } else {
        io.out(
          `token cached: expires ${iso(expiresAt)} (in ${span(expiresAt - now)}), ` +
            `refreshes from ${iso(refreshAt)} (${
              refreshAt > now ? `in ${span(refreshAt - now)}` : "due now"
            })\n`,
        );
      }
      return EXIT.ok;
    }
    const minValid = number(
      "--min-valid",
      invocation.values.get("--min-valid") ?? "60",
      0,
      "seconds",
    );
    const token = await client.getToken({ minValidSeconds: minValid });
    if (invocation.switches.has("--header")) {
      io.out(`Authorization: ${token.tokenType} ${token.accessToken}\n`);
    } else if (json) {
      io.out(
        `${
          JSON.stringify({
            accessToken: token.accessToken,
            tokenType: token.tokenType,
            expiresAt: token.expiresAt,
            expiresIn: Math.floor((token.expiresAt - Date.now()) / 1000),
          })
        }\n`,
      );
    } else {
      io.out(`${token.accessToken}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    const code = exitCode(error);
    const message = error instanceof TokenError
      ? error.message
      : `unexpected failure (${error instanceof Error ? error.name : typeof error})`;
    const hint = code === EXIT.retryable
      ? " (transient: retry later)"
      : code === EXIT.config
      ? " (see --help)"
      : "";
    io.err(`freshtoken: ${message}${hint}\n`);
    return code;
  } finally {
    kv?.close();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

/** Reads a variable; without --allow-env that is a `config` error saying so. */
function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError("freshtoken reads its settings from the environment: run with --allow-env");
    }
    throw error;
  }
}

if (import.meta.main) {
  const encoder = new TextEncoder();
  const code = await main(Deno.args, {
    env: readEnv,
    out: (text) => Deno.stdout.writeSync(encoder.encode(text)),
    err: (text) => Deno.stderr.writeSync(encoder.encode(text)),
  });
  Deno.exit(code);
}
