/**
 * `freshtoken`: a client-credentials token for shell scripts and CI/CD
 * steps, e.g. `TOKEN=$(freshtoken token)`, `freshtoken exec -- ./deploy.sh`.
 * Never prints the secret; prints or exports the token only where asked to,
 * and in GitHub Actions masks it first.
 *
 * Install: `deno install -g -n freshtoken --unstable-kv --allow-net --allow-env --allow-read
 * --allow-write --allow-run jsr:@freshtoken/freshtoken/cli`, or run it as `deno task freshtoken`.
 *
 * @module
 */

import { keyOptions, optionsFromEnv } from "./_env.ts";
import { addMask, inGitHubActions, variableEntry } from "./_github.ts";
import { LIFETIME, LOAD_SHARED } from "./_internal.ts";
import { createTokenClient } from "./client.ts";
import { genesysCloud } from "./genesys.ts";
import { configError, TokenError, type TokenErrorCode } from "./token_error.ts";
import type { Token } from "./token.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";

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
  freshtoken [token] [--header | --json] [options]     print a token
  freshtoken token --github-env NAME [options]         export it to later GitHub Actions steps
  freshtoken exec [--env NAME] [options] -- CMD [ARG…]  run CMD with a token in its environment
  freshtoken status [--json] [options]                 what is cached and when it refreshes
  freshtoken --help

Output of "token":
  (default)   the access token alone, for TOKEN=$(freshtoken token)
  --header    Authorization: Bearer <token>
  --json      {"accessToken", "tokenType", "expiresAt", "expiresIn"}
  --github-env NAME     append NAME=<token> to $GITHUB_ENV instead (later steps see it)
  --github-output NAME  append NAME=<token> to $GITHUB_OUTPUT instead (a step output)
In GitHub Actions (GITHUB_ACTIONS=true) every token printed or exported is first masked in the
log (::add-mask:: on stderr). Outside it nothing extra is printed.

"exec" runs CMD with the token in the variable NAME (default FRESHTOKEN_ACCESS_TOKEN), valid at
least --min-valid seconds; never on a command line. CMD gets none of the credentials freshtoken
used (client secret, private key, KV encryption key, the remote KV's access token), unless
--pass-env NAME keeps one (repeatable). Its exit code is CMD's; SIGINT, SIGTERM, SIGHUP and
SIGQUIT are passed on to CMD. Needs --allow-run.

Options (each falls back to the environment variable shown):
  --token-url URL        FRESHTOKEN_TOKEN_URL
  --client-id ID         FRESHTOKEN_CLIENT_ID
  --client-secret S      FRESHTOKEN_CLIENT_SECRET (prefer the variable: flags show in ps)
  --private-key FILE     FRESHTOKEN_PRIVATE_KEY (the key's PEM or JWK text): authenticate
                         with a signed JWT (private_key_jwt) instead of a secret
  --key-id ID            FRESHTOKEN_KEY_ID: the kid of the private key
  --certificate FILE     FRESHTOKEN_CERTIFICATE (PEM): its thumbprint goes in the JWT
                         (x5t#S256), as Microsoft Entra ID expects
  --scope "A B"          FRESHTOKEN_SCOPE
  --audience A           FRESHTOKEN_AUDIENCE
  --auth-method M        FRESHTOKEN_AUTH_METHOD: client_secret_basic (default), client_secret_post,
                         client_secret_jwt, or private_key_jwt (the default with a private key)
  --region R             GENESYS_CLOUD_REGION, with GENESYS_CLOUD_CLIENT_ID and
                         GENESYS_CLOUD_CLIENT_SECRET: a Genesys Cloud client
  --kv PATH              share the token between steps through a Deno KV file (FRESHTOKEN_KV)
  --min-valid SECONDS    the token must stay valid this long; for exec, as long as the
                         command may run. Without it: a minute, or half the lifetime of the
                         server's tokens when they live less than two minutes
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
  freshtoken exec --min-valid 1800 -- ./deploy.sh   # a token valid 30 min, in $FRESHTOKEN_ACCESS_TOKEN
  freshtoken token --github-env API_TOKEN           # later steps: $API_TOKEN, masked in the log
  freshtoken status --kv .freshtoken.kv
`;

const FLAGS_WITH_VALUES = new Set([
  "--token-url",
  "--client-id",
  "--client-secret",
  "--private-key",
  "--key-id",
  "--certificate",
  "--scope",
  "--audience",
  "--auth-method",
  "--region",
  "--kv",
  "--min-valid",
  "--timeout",
  "--github-env",
  "--github-output",
  "--env",
  "--pass-env",
]);
const SWITCHES = new Set(["--header", "--json", "--help", "-h"]);

/** Parsed command line. */
interface Invocation {
  command: "token" | "status" | "exec" | "help";
  values: Map<string, string>;
  /** `--pass-env`, which may repeat. */
  passEnv: string[];
  switches: Set<string>;
  /** What follows `--`: exec's command and its arguments. */
  run: string[];
}

const COMMANDS = new Set(["token", "status", "exec", "help"]);

/** Which commands each flag belongs to, when it is not for all. */
const ONLY_FOR: Record<string, string[]> = {
  "--header": ["token"],
  "--json": ["token", "status"],
  "--github-env": ["token"],
  "--github-output": ["token"],
  "--env": ["exec"],
  "--pass-env": ["exec"],
  "--min-valid": ["token", "exec"],
};

/**
 * Parses `args`; unknown flags and missing values are `"config"` errors.
 * An argument it does not understand is named by its position only: a
 * stray word may be a secret that lost its flag.
 */
function parseArgs(args: string[]): Invocation {
  const values = new Map<string, string>();
  const passEnv: string[] = [];
  const switches = new Set<string>();
  let command: string | undefined;
  const end = args.indexOf("--");
  const run = end < 0 ? [] : args.slice(end + 1);
  if (end >= 0) args = args.slice(0, end);
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
      if (flag === "--pass-env") passEnv.push(variableName(flag, value));
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
  for (const [flag, only] of Object.entries(ONLY_FOR)) {
    if ((values.has(flag) || switches.has(flag)) && !only.includes(command) && command !== "help") {
      throw configError(
        flag === "--header" && command === "status"
          ? "--header is for the token command (status prints no token)"
          : `${flag} is for the ${only.join(" and ")} command${only.length > 1 ? "s" : ""}`,
      );
    }
  }
  if (command === "exec" && run.length === 0) {
    throw configError("exec needs a command after --, e.g. freshtoken exec -- ./deploy.sh");
  }
  if (command !== "exec" && end >= 0) throw configError("-- is for the exec command");
  return { command: command as Invocation["command"], values, passEnv, switches, run };
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
    if (flag("--private-key") !== undefined) {
      throw configError("--private-key is not for --region: Genesys Cloud takes a client secret");
    }
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
      };
      const keyFile = flag("--private-key");
      const key = keyFile === undefined
        ? env("FRESHTOKEN_PRIVATE_KEY")?.trim() || undefined
        : readText("--private-key", keyFile);
      const secret = flag("--client-secret") ?? env("FRESHTOKEN_CLIENT_SECRET");
      if (key === undefined) {
        options.clientSecret = secret ?? "";
      } else {
        if (secret !== undefined) options.clientSecret = secret;
        const certFile = flag("--certificate");
        Object.assign(
          options,
          keyOptions(
            key,
            keyFile ? "--private-key" : "FRESHTOKEN_PRIVATE_KEY",
            flag("--key-id") ?? env("FRESHTOKEN_KEY_ID"),
            certFile === undefined
              ? env("FRESHTOKEN_CERTIFICATE")
              : readText("--certificate", certFile),
          ),
        );
      }
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
  for (const name of ["--key-id", "--certificate"]) {
    if (flag(name) !== undefined && options.privateKey === undefined) {
      throw configError(`${name} goes with --private-key (or FRESHTOKEN_PRIVATE_KEY)`);
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

/**
 * A file a flag names, as text. What stops the reading is a `config` error
 * that never shows what was given: key text in place of a file name is an
 * easy mistake, as the variables take the text.
 */
function readText(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError(`${flag} names a file to read: run with --allow-read`);
    }
    const variable = flag === "--private-key" ? "FRESHTOKEN_PRIVATE_KEY" : "FRESHTOKEN_CERTIFICATE";
    const keyText = /-----BEGIN |^\s*\{/.test(path);
    throw configError(
      `${flag} takes the name of a readable file, and this is not one (${(error as Error).name})${
        keyText ? `; the key's text itself belongs in ${variable}` : ""
      }`,
    );
  }
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
      throw configError(`--kv needs --allow-read and --allow-write`);
    }
    const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    const missing = !/^https?:/i.test(path) &&
      (() => {
        try {
          return !Deno.statSync(folder).isDirectory;
        } catch {
          return true;
        }
      })();
    const why = missing ? "its folder does not exist" : (error as Error).name;
    throw configError(`cannot open the --kv store: ${why}`);
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

/** Variables that hold credentials freshtoken reads: never passed on to `exec`'s command. */
const CREDENTIAL_VARIABLES = [
  "FRESHTOKEN_CLIENT_SECRET",
  "FRESHTOKEN_PRIVATE_KEY",
  "FRESHTOKEN_ENCRYPTION_KEY",
  "GENESYS_CLOUD_CLIENT_SECRET",
];

/** KV Connect's credential, read by `Deno.openKv` for a remote store. */
const KV_ACCESS_TOKEN = "DENO_KV_ACCESS_TOKEN";

/**
 * The environment of `exec`'s command: this one, less every credential
 * freshtoken used (by name, and any variable holding one of their values),
 * plus the token in `name`; `keep` names variables passed on all the same.
 */
function childEnv(
  env: Record<string, string>,
  used: { options: TokenClientOptions; remoteKv: boolean },
  name: string,
  token: string,
  keep: string[],
): Record<string, string> {
  const { clientSecret, privateKey, encryptionKey } = used.options;
  const names = [...CREDENTIAL_VARIABLES, ...(used.remoteKv ? [KV_ACCESS_TOKEN] : [])];
  // The credentials as given (a variable's own text, a flag's value) and as used.
  const values = new Set(
    [
      ...names.map((variable) => env[variable]),
      clientSecret,
      typeof privateKey === "string" ? privateKey : undefined,
      encryptionKey,
    ].filter((v): v is string => typeof v === "string" && v.trim() !== "").map((v) => v.trim()),
  );
  const child: Record<string, string> = {};
  for (const [variable, value] of Object.entries(env)) {
    const credential = names.includes(variable) || values.has(value.trim());
    if (!credential || keep.includes(variable)) child[variable] = value;
  }
  child[name] = token;
  return child;
}

/** A variable name, as `$GITHUB_ENV`, `$GITHUB_OUTPUT` and a process environment take it. */
function variableName(flag: string, name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw configError(`${flag} needs a variable name (letters, digits and _)`);
  }
  return name;
}

/** Where `token --github-env/--github-output` writes: checked before any token is fetched. */
function exportTargets(
  invocation: Invocation,
  env: (name: string) => string | undefined,
): { name: string; path: string }[] {
  const targets = [];
  for (
    const [flag, file] of [["--github-env", "GITHUB_ENV"], ["--github-output", "GITHUB_OUTPUT"]]
  ) {
    const given = invocation.values.get(flag);
    if (given === undefined) continue;
    const name = variableName(flag, given);
    const path = env(file);
    if (!path) {
      throw configError(
        `${flag} appends to $${file}, which is not set (a GitHub Actions step sets it)`,
      );
    }
    targets.push({ name, path });
  }
  return targets;
}

/** Appends `text` to one of the runner's files. */
function append(path: string, text: string): void {
  try {
    Deno.writeTextFileSync(path, text, { append: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError("exporting a token writes the runner's file: run with --allow-write");
    }
    throw configError(`cannot append to ${path}: ${(error as Error).message}`);
  }
}

/**
 * Runs `command` with the environment `env`, passing SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT on; resolves to its exit code (128 + the signal's
 * number when a signal ended it).
 */
async function exec(command: string[], env: Record<string, string>): Promise<number> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command[0], {
      args: command.slice(1),
      env,
      clearEnv: true,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError("exec runs a command: run with --allow-run");
    }
    if (error instanceof Deno.errors.NotFound) throw new CommandNotFound();
    throw error;
  }
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  const forward = signals.map((signal) => {
    const pass = () => {
      try {
        child.kill(signal);
      } catch {
        // It has ended already.
      }
    };
    try {
      Deno.addSignalListener(signal, pass);
    } catch {
      return () => {}; // Windows has no SIGHUP or SIGQUIT.
    }
    return () => Deno.removeSignalListener(signal, pass);
  });
  try {
    return (await child.status).code;
  } finally {
    for (const remove of forward) remove();
  }
}

/** `exec`'s command could not be found: exit 127, as a shell does. */
class CommandNotFound extends Error {}

/**
 * Runs the CLI; returns the exit code. Writes to the given streams, to the
 * runner's files when told to export, and runs `exec`'s command.
 */
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
    if (invocation.command === "status") {
      const json = invocation.switches.has("--json");
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
    const given = invocation.values.get("--min-valid");
    const minValid = given === undefined ? undefined : number("--min-valid", given, 0, "seconds");
    const targets = exportTargets(invocation, io.env);
    const variable = variableName(
      "--env",
      invocation.values.get("--env") ?? "FRESHTOKEN_ACCESS_TOKEN",
    );
    const token = await validToken(client, minValid);
    const json = JSON.stringify(token.accessToken).slice(1, -1);
    // Masked before it is printed, exported or handed to a command, in each form printed.
    if (inGitHubActions(io.env)) {
      io.err(addMask(token.accessToken));
      if (json !== token.accessToken && invocation.switches.has("--json")) io.err(addMask(json));
    }
    if (invocation.command === "exec") {
      kv?.close();
      kv = undefined;
      const used = { options, remoteKv: /^https?:/i.test(kvPath ?? "") };
      const env = childEnv(
        Deno.env.toObject(),
        used,
        variable,
        token.accessToken,
        invocation.passEnv,
      );
      return await exec(invocation.run, env);
    }
    if (targets.length > 0) {
      for (const { name, path } of targets) append(path, variableEntry(name, token.accessToken));
    } else if (invocation.switches.has("--header")) {
      io.out(`Authorization: ${token.tokenType} ${token.accessToken}\n`);
    } else if (invocation.switches.has("--json")) {
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
    if (error instanceof CommandNotFound) {
      io.err(`freshtoken: exec: command not found\n`);
      return 127;
    }
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

/** With no --min-valid, the token must stay valid this long, or half the server's lifetime if less. */
const DEFAULT_MIN_VALID_SECONDS = 60;

/**
 * The token, valid `minValid` seconds more when given: then a server whose
 * tokens live no longer is a `config` error naming the flag. Without it,
 * valid a minute or half the server's lifetime, whichever is less: a
 * default is not a demand.
 */
async function validToken(client: TokenClient, minValid: number | undefined): Promise<Token> {
  const token = await client.getToken();
  const lifetime = (client as unknown as Record<symbol, () => number>)[LIFETIME]();
  if (minValid !== undefined && minValid >= lifetime) {
    throw configError(
      `--min-valid ${minValid} cannot be met: the token endpoint grants tokens valid for ${
        Math.floor(lifetime)
      } s`,
    );
  }
  const want = minValid ?? Math.min(DEFAULT_MIN_VALID_SECONDS, lifetime / 2);
  return want > 0 ? await client.getToken({ minValidSeconds: want }) : token;
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
