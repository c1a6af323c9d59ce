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

import { endpointFromEnv, GENESYS_VARIABLES, genesysFromEnv, keyOptions } from "./_env.ts";
import { addMask, inGitHubActions, variableEntry } from "./_github.ts";
import { DESCRIBE, HELD, type Held, LOAD_SHARED } from "./_internal.ts";
import {
  type FileId,
  fileId,
  fileProblem,
  folderOf,
  isFile,
  keepFresh,
  type TokenFiles,
  writeTokenFiles,
} from "./_token_files.ts";
import { createTokenClient } from "./client.ts";
import { closestName, holdsCredential } from "../pkg/freshtoken.js";
import meta from "../deno.json" with { type: "json" };
import { genesysCloud, regionDomain } from "./genesys.ts";
import { configError, TokenError, type TokenErrorCode } from "./token_error.ts";
import type { Token } from "./token.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";

/** freshtoken's version, as published (deno.json). */
const VERSION: string = meta.version;

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

type Command = "token" | "status" | "exec" | "agent";
const COMMANDS: readonly Command[] = ["token", "status", "exec", "agent"];

/**
 * One flag. The table of them drives parsing, `--help`, the environment
 * fallback, did-you-mean and which commands take which flag.
 */
interface Flag {
  name: `--${string}`;
  /** What its value is, for a flag that takes one; a switch has none. */
  value?: string;
  /** The commands that take it; absent, every command. */
  commands?: readonly Command[];
  /** The variable it falls back to. */
  env?: string;
  /** What it does, for --help (lines after the first start with a space). */
  help: string;
}

const FLAGS: readonly Flag[] = [
  { name: "--header", commands: ["token"], help: "print `Authorization: Bearer <token>`" },
  {
    name: "--json",
    commands: ["token", "status"],
    help: "print JSON: accessToken, tokenType, expiresAt, expiresAtIso, expiresIn" +
      "\n (status: hasToken, expiresAt, expiresAtIso, expiresIn, refreshAt)",
  },
  {
    name: "--github-env",
    value: "NAME",
    commands: ["token"],
    help: "append NAME=<token> to $GITHUB_ENV instead (later steps see it)",
  },
  {
    name: "--github-output",
    value: "NAME",
    commands: ["token"],
    help: "append NAME=<token> and NAME_expires_at to $GITHUB_OUTPUT instead",
  },
  {
    name: "--env",
    value: "NAME",
    commands: ["exec"],
    help: "the variable the command gets the token in (default FRESHTOKEN_ACCESS_TOKEN)",
  },
  {
    name: "--pass-env",
    value: "NAME",
    commands: ["exec"],
    help: "pass this credential variable on to the command all the same (repeatable)",
  },
  {
    name: "--sink",
    value: "PATH",
    commands: ["agent"],
    help: "the file the agent keeps the bare token in (0600, rewritten before each expiry)",
  },
  {
    name: "--header-sink",
    value: "PATH",
    commands: ["agent"],
    help: "the file the agent keeps an `Authorization: Bearer …` line in (curl -H @PATH)",
  },
  {
    name: "--background",
    commands: ["agent"],
    help: "return once the first token is written (exit 0) or with the first error's exit" +
      "\n code; the agent carries on detached (its .lock file names its pid)",
  },
  {
    name: "--min-valid",
    value: "SECONDS",
    commands: ["token", "exec"],
    help: "the token must stay valid this long; for exec, as long as the command may run." +
      "\n Without it: a minute, or half the lifetime of the server's tokens if less",
  },
  { name: "--token-url", value: "URL", env: "FRESHTOKEN_TOKEN_URL", help: "the token endpoint" },
  {
    name: "--issuer",
    value: "URL",
    env: "FRESHTOKEN_ISSUER",
    help: "instead of --token-url: the issuer whose metadata (RFC 8414) names the endpoint",
  },
  { name: "--client-id", value: "ID", env: "FRESHTOKEN_CLIENT_ID", help: "the client id" },
  {
    name: "--client-secret",
    value: "S",
    env: "FRESHTOKEN_CLIENT_SECRET",
    help: "the client secret (prefer the variable: flags show in ps)",
  },
  {
    name: "--private-key",
    value: "FILE",
    env: "FRESHTOKEN_PRIVATE_KEY",
    help: "a private key (PEM or JWK; the variable holds the text): private_key_jwt",
  },
  { name: "--key-id", value: "ID", env: "FRESHTOKEN_KEY_ID", help: "the private key's kid" },
  {
    name: "--certificate",
    value: "FILE",
    env: "FRESHTOKEN_CERTIFICATE",
    help: "its certificate (PEM): the thumbprint goes in the JWT (x5t#S256), for Entra ID",
  },
  { name: "--scope", value: '"A B"', env: "FRESHTOKEN_SCOPE", help: "the scope" },
  { name: "--audience", value: "A", env: "FRESHTOKEN_AUDIENCE", help: "the audience parameter" },
  {
    name: "--auth-method",
    value: "M",
    env: "FRESHTOKEN_AUTH_METHOD",
    help: "client_secret_basic (default), client_secret_post, client_secret_jwt or" +
      "\n private_key_jwt (the default with a private key)",
  },
  {
    name: "--region",
    value: "R",
    env: "GENESYS_CLOUD_REGION",
    help: "a Genesys Cloud client, with GENESYS_CLOUD_CLIENT_ID and _SECRET (or the" +
      "\n Terraform provider's GENESYSCLOUD_REGION, _OAUTHCLIENT_ID and _OAUTHCLIENT_SECRET)",
  },
  {
    name: "--kv",
    value: "PATH",
    env: "FRESHTOKEN_KV",
    help: "share the token between steps through a Deno KV file or URL",
  },
  { name: "--timeout", value: "MS", help: "per token request (default 10000)" },
  { name: "--help", help: "this text" },
  { name: "--version", help: "freshtoken's version" },
];

const FLAG_BY_NAME = new Map<string, Flag>(FLAGS.map((f) => [f.name, f]));

const HELP = `freshtoken — OAuth 2.0 client-credentials tokens for scripts and pipelines

Usage:
  freshtoken token [--header | --json] [options]       print a token
  freshtoken token --github-env NAME [options]         export it to later GitHub Actions steps
  freshtoken exec [--env NAME] [options] -- CMD [ARG…]  run CMD with a token in its environment
  freshtoken status [--json] [options]                 which client, what is cached; exits 1 without a token
  freshtoken agent --sink PATH [--header-sink PATH] [--background] [options]
                                                       keep token files fresh until SIGTERM
  freshtoken --help | --version

In GitHub Actions (GITHUB_ACTIONS=true) every token printed, exported or written to a token file
is first masked in the log (::add-mask:: on stderr; the agent's on stdout), in each form printed.
Outside it nothing extra is printed.

"exec" runs CMD with the token in one variable, never on a command line, and in two files kept
fresh while CMD runs: $FRESHTOKEN_TOKEN_FILE (the token) and $FRESHTOKEN_HEADER_FILE (a header
line, for curl -H @"$FRESHTOKEN_HEADER_FILE"). CMD gets none of the
credentials freshtoken used (client secret, private key, KV encryption key, the remote KV's
access token), nor any variable holding one inside its value (a URL, a Basic pair; those are
named on stderr), unless --pass-env names it. Its exit code is CMD's; SIGINT, SIGTERM, SIGHUP and
SIGQUIT are passed on to CMD. Needs --allow-run, --allow-read and --allow-write.

"agent" keeps the sink files holding a usable token (rewritten in each token's refresh window,
emptied if none can be had) until SIGTERM, SIGINT or SIGHUP, then removes them and exits 0; it
logs on stderr and prints nothing (in GitHub Actions, each token's ::add-mask:: on stdout). It
writes only files of its own: a sink path that exists is refused, unless an agent that died left
it, and one found holding another file later is left alone. With --background (needs
--allow-run) it returns 0 once the first token is written, else non-zero: the first error's exit
code, or 128 + the signal's number if the agent is stopped first. With --kv it shares the token
with every process on that store.

${flagHelp()}

Exit codes:
  0 ok (status: a usable token is cached), 1 anything else (status: none is),
  2 bad flags or configuration, 3 credentials or request refused,
  4 transient failure (network, timeout, 429, 5xx): retry later, 5 unusable answer from the
  server, 127 exec's command not found.

Examples:
  export FRESHTOKEN_TOKEN_URL=https://login.example.com/oauth/token
  export FRESHTOKEN_CLIENT_ID=... FRESHTOKEN_CLIENT_SECRET=...
  freshtoken exec -- ./call-api.sh                  # the script reads $FRESHTOKEN_ACCESS_TOKEN
  TOKEN=$(freshtoken token --kv .freshtoken.kv)   # later steps reuse the token
  GENESYS_CLOUD_REGION=eu_west_1 freshtoken token --json
  freshtoken exec --min-valid 1800 -- ./deploy.sh   # a token valid 30 min, in $FRESHTOKEN_ACCESS_TOKEN
  freshtoken token --github-env API_TOKEN           # later steps: $API_TOKEN, masked in the log
  freshtoken status --kv .freshtoken.kv
`;

/** The options part of --help, from the table. */
function flagHelp(): string {
  const groups: [string, (f: Flag) => boolean][] = [
    ["Command options (the commands that take each in brackets)", (f) => f.commands !== undefined],
    [
      "Client options (each falls back to the variable shown)",
      (f) => f.commands === undefined && !["--help", "--version"].includes(f.name),
    ],
  ];
  return groups.map(([title, take]) =>
    `${title}:\n` + FLAGS.filter(take).map((f) => {
      const head = `  ${f.name}${f.value ? ` ${f.value}` : ""}`;
      const only = f.commands ? ` [${f.commands.join(", ")}]` : "";
      const env = f.env ? ` (${f.env})` : "";
      const [first, ...rest] = `${f.help}${env}${only}`.split("\n");
      return [`${head.padEnd(24)} ${first}`, ...rest.map((r) => `${"".padEnd(24)}${r}`)]
        .join("\n");
    }).join("\n")
  ).join("\n\n");
}

/** Parsed command line. */
interface Invocation {
  command: Command | "help" | "version";
  values: Map<string, string>;
  /** `--pass-env`, which may repeat. */
  passEnv: string[];
  switches: Set<string>;
  /** What follows `--`: exec's command and its arguments. */
  run: string[];
}

/** What `exec` without its command after `--` is told. */
const EXEC_NEEDS_DASHES = "exec needs a command after --, e.g. freshtoken exec -- ./deploy.sh";

/** The command line lacks a command: the usage goes to stderr, exit 2. */
class NoCommand extends Error {}

/**
 * Parses `args`; unknown flags and missing values are `"config"` errors.
 * An argument it does not understand is named by its position only: a
 * stray word may be a secret that lost its flag. An unknown flag gets the
 * closest known one, which is freshtoken's own word, never what was given.
 */
function parseArgs(args: string[]): Invocation {
  const values = new Map<string, string>();
  const passEnv: string[] = [];
  const switches = new Set<string>();
  let command: Command | undefined;
  const end = args.indexOf("--");
  const run = end < 0 ? [] : args.slice(end + 1);
  if (end >= 0) args = args.slice(0, end);
  for (let i = 0; i < args.length; i++) {
    const at = `(argument ${i + 1})`;
    const [name, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i] === "-h" ? "--help" : args[i], undefined];
    const flag = FLAG_BY_NAME.get(name);
    if (flag?.value !== undefined) {
      const value = inline ?? args[++i];
      if (value === undefined || (inline === undefined && FLAG_BY_NAME.has(value.split("=")[0]))) {
        throw configError(`${name} needs a value`);
      }
      values.set(name, value);
      if (name === "--pass-env") passEnv.push(variableName(name, value));
    } else if (flag !== undefined && inline === undefined) {
      switches.add(name);
    } else if (name.startsWith("-")) {
      const suggestion = closestName(name, FLAGS.map((f) => f.name));
      throw configError(`unknown flag ${at}; did you mean ${suggestion}?`);
    } else if (command === undefined && (COMMANDS as readonly string[]).includes(name)) {
      command = name as Command;
    } else if (command === undefined && name === "help") {
      switches.add("--help");
    } else if (command === "exec") {
      throw configError(`${EXEC_NEEDS_DASHES} ${at}`);
    } else if (command === undefined) {
      throw configError(
        `unexpected command ${at}; did you mean ${closestName(name, [...COMMANDS])}?`,
      );
    } else {
      throw configError(`unexpected argument ${at}`);
    }
  }
  if (switches.has("--help")) return { command: "help", values, passEnv, switches, run };
  if (switches.has("--version")) return { command: "version", values, passEnv, switches, run };
  if (command === undefined) throw new NoCommand();
  if (switches.has("--header") && switches.has("--json")) {
    throw configError("choose one of --header and --json");
  }
  for (const flag of FLAGS) {
    const given = values.has(flag.name) || switches.has(flag.name);
    if (given && flag.commands !== undefined && !flag.commands.includes(command)) {
      const only = flag.commands;
      throw configError(
        flag.name === "--header" && command === "status"
          ? "--header is for the token command (status prints no token)"
          : `${flag.name} is for the ${only.join(" and ")} command${only.length > 1 ? "s" : ""}`,
      );
    }
  }
  if (command === "exec" && run.length === 0) throw configError(EXEC_NEEDS_DASHES);
  if (command !== "exec" && end >= 0) throw configError("-- is for the exec command");
  return { command, values, passEnv, switches, run };
}

/**
 * A flag's value, else that of the variable the table names for it. (A
 * flag that takes a file falls back to a variable that holds the text: the
 * caller reads those two itself.)
 */
function setting(
  invocation: Invocation,
  env: (name: string) => string | undefined,
  name: string,
): string | undefined {
  const variable = FLAG_BY_NAME.get(name)?.env;
  return invocation.values.get(name) ?? (variable === undefined ? undefined : env(variable));
}

/**
 * Client options from flags, then the environment, value by value in the
 * README's order: flags, `FRESHTOKEN_*`, `GENESYS_CLOUD_*`, `GENESYSCLOUD_*`.
 * The Genesys variables' client id and secret go to a Genesys endpoint
 * only. `sources` learns which flag or variable gave each option, for
 * {@linkcode inCliTerms}.
 */
function clientOptions(
  invocation: Invocation,
  env: (name: string) => string | undefined,
  sources: Map<string, string>,
): TokenClientOptions {
  const flag = (name: string) => invocation.values.get(name);
  /** The first of `names` that is set (a flag, else a variable), noted as the source of `option`. */
  const first = (option: string, names: readonly string[]): string | undefined => {
    for (const name of names) {
      const value = name.startsWith("--") ? flag(name) : env(name);
      if (value === undefined || (!name.startsWith("--") && value.trim() === "")) continue;
      sources.set(option, name);
      // The Genesys variables are read trimmed, as genesysFromEnv reads them.
      return name.startsWith("GENESYS") ? value.trim() : value;
    }
    return undefined;
  };
  /** A client option's flag, else the variable the table names for it. */
  const given = (option: string, name: string) =>
    first(option, [name, ...[FLAG_BY_NAME.get(name)?.env ?? []].flat()]);
  const [genesysRegion] = genesysFromEnv(env); // Both spellings set to different values: an error, always.
  const region = flag("--region");
  const byFlag = ["--token-url", "--issuer"].filter((name) => flag(name) !== undefined);
  if (region !== undefined && byFlag.length > 0) {
    throw configError(`choose one of --region and ${byFlag[0]}`);
  }
  if (byFlag.length > 1) throw configError("choose one of --token-url and --issuer");
  const endpoint = region !== undefined
    ? undefined
    : byFlag.length > 0
    ? { [byFlag[0] === "--token-url" ? "tokenUrl" : "issuer"]: flag(byFlag[0])! }
    : endpointFromEnv(env);
  if (endpoint === undefined && region === undefined && genesysRegion === undefined) {
    throw configError(
      "no client configured: set --token-url (or FRESHTOKEN_TOKEN_URL) or --issuer " +
        "(or FRESHTOKEN_ISSUER), or --region " +
        "(or GENESYS_CLOUD_REGION), with a client id and secret",
    );
  }
  const genesys = endpoint === undefined;
  const [regionNames, idNames, secretNames] = [
    ["--region"],
    ["--client-id", "FRESHTOKEN_CLIENT_ID"],
    ["--client-secret", "FRESHTOKEN_CLIENT_SECRET"],
  ].map((names, i) => [...names, ...(genesys ? GENESYS_VARIABLES[i] : [])]);
  const clientId = first("clientId", idNames);
  if (clientId === undefined) throw configError(`no client id: set ${oneOf(idNames)}`);
  let options: TokenClientOptions;
  if (genesys) {
    if (flag("--private-key") !== undefined) {
      throw configError("--private-key is not for --region: Genesys Cloud takes a client secret");
    }
    const clientSecret = first("clientSecret", secretNames);
    if (clientSecret === undefined) {
      throw configError(`no client secret: set ${oneOf(secretNames)}`);
    }
    const region = first("region", regionNames)!;
    const domain = regionDomain(
      region,
      sources.get("region"),
      "--token-url https://login.<domain>/oauth/token",
    );
    options = genesysCloud({ domain, clientId, clientSecret });
  } else {
    const [option] = Object.keys(endpoint);
    sources.set(
      option,
      byFlag[0] ?? (option === "issuer" ? "FRESHTOKEN_ISSUER" : "FRESHTOKEN_TOKEN_URL"),
    );
    options = { ...endpoint, clientId };
    const keyFile = flag("--private-key");
    const key = keyFile === undefined
      ? env("FRESHTOKEN_PRIVATE_KEY")?.trim() || undefined
      : readText("--private-key", keyFile);
    const secret = first("clientSecret", secretNames);
    if (key === undefined) {
      if (secret === undefined) throw configError(`no client secret: set ${oneOf(secretNames)}`);
      options.clientSecret = secret;
    } else {
      sources.set("privateKey", keyFile ? "--private-key" : "FRESHTOKEN_PRIVATE_KEY");
      if (secret !== undefined) options.clientSecret = secret;
      const certFile = flag("--certificate");
      Object.assign(
        options,
        keyOptions(
          key,
          keyFile ? "--private-key" : "FRESHTOKEN_PRIVATE_KEY",
          given("keyId", "--key-id"),
          certFile === undefined
            ? env("FRESHTOKEN_CERTIFICATE")
            : readText("--certificate", certFile),
        ),
      );
    }
  }
  for (const name of ["--key-id", "--certificate"]) {
    if (flag(name) !== undefined && options.privateKey === undefined) {
      throw configError(`${name} goes with --private-key (or FRESHTOKEN_PRIVATE_KEY)`);
    }
  }
  const scope = given("scope", "--scope");
  if (scope?.trim()) options.scope = scope.trim().split(/\s+/);
  const audience = given("audience", "--audience");
  if (audience) options.audience = audience;
  const method = given("authMethod", "--auth-method");
  if (method) options.authMethod = method as TokenClientOptions["authMethod"];
  const timeout = flag("--timeout");
  if (timeout !== undefined) options.timeoutMs = number("--timeout", timeout, 1, "milliseconds");
  const key = first("encryptionKey", ["FRESHTOKEN_ENCRYPTION_KEY"]);
  if (key) options.encryptionKey = key;
  return options;
}

/** `a`, `a or b`, `a, b or c`. */
function oneOf(names: string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/**
 * A configuration error in the CLI's terms: the option it begins with
 * (`tokenUrl must use https:`, `clientSecret has leading or trailing
 * whitespace`) becomes the flag or variable that gave it. Only errors about
 * the options as given go through here, never a server's text.
 */
function inCliTerms(error: unknown, sources: Map<string, string>): unknown {
  if (!(error instanceof TokenError) || error.code !== "config") return error;
  const text = error.description ?? "";
  const option = text.match(/^[A-Za-z.]+/)?.[0];
  const source = option === undefined ? undefined : sources.get(option);
  return source === undefined ? error : configError(`${source}${text.slice(option!.length)}`);
}

/**
 * A message in the CLI's words: a token request that timed out names
 * --timeout, where the library's message names its option (timeoutMs).
 * `timeout` is the --timeout given, if any.
 */
function inCliWords(text: string, timeout: string | undefined): string {
  return text.replace(
    "within timeoutMs",
    timeout === undefined
      ? `within ${DEFAULT_TIMEOUT_MS} ms (the default of --timeout)`
      : `within ${Number(timeout)} ms (--timeout)`,
  );
}

/** The library's timeoutMs when none is given, as --help states it. */
const DEFAULT_TIMEOUT_MS = 10_000;

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
    const variable = FLAG_BY_NAME.get(flag)?.env; // The variable takes the text itself.
    const keyText = /-----BEGIN |^\s*\{/.test(path);
    throw configError(
      `${flag} takes the name of a readable file, and this is not one (${(error as Error).name})${
        keyText && variable ? `; the key's text itself belongs in ${variable}` : ""
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
  return code === "aborted" || code === "internal" ? EXIT.failure : EXIT.refused;
}

/** Variables that hold credentials freshtoken reads: never passed on to `exec`'s command. */
const CREDENTIAL_VARIABLES = [
  "FRESHTOKEN_CLIENT_SECRET",
  "FRESHTOKEN_PRIVATE_KEY",
  "FRESHTOKEN_ENCRYPTION_KEY",
  "GENESYS_CLOUD_CLIENT_SECRET",
  "GENESYSCLOUD_OAUTHCLIENT_SECRET",
];

/** KV Connect's credential, read by `Deno.openKv` for a remote store. */
const KV_ACCESS_TOKEN = "DENO_KV_ACCESS_TOKEN";

/**
 * The environment of `exec`'s command: this one, less every credential
 * freshtoken used (by name, and any variable that holds one: raw or in any
 * encoding redaction knows, inside other text too, as a connection URL or
 * the Basic pair does), plus the token in `name`; `keep` names variables
 * passed on all the same. `withheld` names those held back for what they
 * hold (the credential variables themselves go without saying).
 */
function childEnv(
  env: Record<string, string>,
  used: { options: TokenClientOptions; remoteKv: boolean },
  name: string,
  token: string,
  keep: string[],
): { child: Record<string, string>; withheld: string[] } {
  const { clientId, clientSecret, privateKey, encryptionKey } = used.options;
  const names = [...CREDENTIAL_VARIABLES, ...(used.remoteKv ? [KV_ACCESS_TOKEN] : [])];
  // The credentials as given (a variable's own text, a flag's value) and as used:
  // a PEM key's text (the core also finds its body however wrapped), a JWK's
  // private members (RFC 7518 §6.2.2, §6.3.2).
  const jwk = typeof privateKey === "object" ? privateKey as Record<string, unknown> : {};
  const others = [
    ...names.map((variable) => env[variable]),
    typeof privateKey === "string" ? privateKey : undefined,
    ...["d", "p", "q", "dp", "dq", "qi"].map((member) => jwk[member]),
    encryptionKey,
  ].filter((v): v is string => typeof v === "string" && v.trim() !== "").map((v) => v.trim());
  const child: Record<string, string> = {};
  const withheld: string[] = [];
  for (const [variable, value] of Object.entries(env)) {
    if (keep.includes(variable)) {
      child[variable] = value;
    } else if (names.includes(variable)) {
      continue;
    } else if (holdsCredential(value, clientId, clientSecret, others)) {
      withheld.push(variable);
    } else {
      child[variable] = value;
    }
  }
  child[name] = token;
  return { child, withheld };
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
): { flag: string; name: string; path: string }[] {
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
    targets.push({ flag, name, path });
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
    if (error instanceof Deno.errors.NotFound) throw new CommandNotFound(command[0]);
    throw error;
  }
  const forwarding = onSignals(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"], (signal) => {
    try {
      child.kill(signal);
    } catch {
      // It has ended already.
    }
  });
  try {
    return (await child.status).code;
  } finally {
    forwarding();
  }
}

/**
 * Calls `handle` with each of `signals` this process gets, until the
 * returned function is called. A signal the system lacks (Windows has no
 * SIGHUP or SIGQUIT) is left out.
 */
function onSignals(signals: Deno.Signal[], handle: (signal: Deno.Signal) => void): () => void {
  const removers = signals.map((signal) => {
    const listener = () => handle(signal);
    try {
      Deno.addSignalListener(signal, listener);
    } catch {
      return () => {};
    }
    return () => Deno.removeSignalListener(signal, listener);
  });
  return () => removers.forEach((remove) => remove());
}

/**
 * `agent`: the sink files kept fresh until SIGTERM, SIGINT or SIGHUP, then
 * removed; exit 0. The sinks must be its own to write (see
 * {@linkcode lockSink}), and stay so: each is written and removed only
 * while it is the file the agent wrote last. In GitHub Actions each
 * token's mask goes to stdout before any file gets the token: the agent
 * prints nothing else there, so the runner reads it even when the log
 * (stderr) is sent to a file. Run by {@linkcode background}, it says
 * `ready` on stdout once the first token is written; until then a closed
 * stdout (that process is gone) or a signal stops it with its files
 * removed, and a non-zero exit.
 */
async function agent(
  client: TokenClient,
  invocation: Invocation,
  io: {
    env: (name: string) => string | undefined;
    out: (text: string) => void;
    err: (text: string) => void;
  },
): Promise<number> {
  const sinks = sinkPaths(invocation);
  const timeout = invocation.values.get("--timeout");
  const log = (line: string) => io.err(`freshtoken agent: ${inCliWords(line, timeout)}\n`);
  /** A --background parent reads stdout until it hears ready. */
  let awaited = io.env(READY_VARIABLE) === "1";
  let heard = true;
  /** Writes to stdout; before ready, a parent that is gone throws {@linkcode ParentGone}. */
  const say = (text: string) => {
    if (!heard) return;
    try {
      io.out(text);
    } catch {
      heard = false;
      if (awaited) throw new ParentGone();
      if (inGitHubActions(io.env)) {
        log(
          "stdout is closed: the masks of the tokens this agent gets from now on reach no runner",
        );
      }
    }
  };
  /** The sinks as the agent wrote them last (or took them over): only those are its to change. */
  const own = new Map<string, FileId | "lost">();
  const files: TokenFiles = {
    ...sinks,
    names: { token: "--sink", header: "--header-sink" },
    mask: inGitHubActions(io.env) ? (token) => say(addMask(token.accessToken)) : undefined,
    own,
    lost: (flag) =>
      log(
        `${flag} now holds a file this agent did not write (moved or put there): the agent ` +
          "leaves it alone and writes that path no more",
      ),
  };
  /** The locks this agent took, with their sinks. */
  const locks: { sink: string; file: Deno.FsFile }[] = [];
  const stop = new AbortController();
  let stoppedBy: Deno.Signal | undefined;
  const listening = onSignals(["SIGTERM", "SIGINT", "SIGHUP"], (signal) => {
    stoppedBy ??= signal;
    stop.abort();
  });
  try {
    for (const [flag, path] of [["--sink", sinks.token], ["--header-sink", sinks.header]]) {
      if (path === undefined) continue;
      const { file, leftover } = await lockSink(flag!, path);
      locks.push({ sink: path, file });
      if (leftover !== undefined) own.set(path, leftover);
    }
    let token: Token;
    try {
      token = await client.getToken({ signal: stop.signal });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
      log("stopped before the first token came");
      // Run by --background, no first token is a failure: 128 + the signal's number, as a shell says.
      return awaited ? 128 + SIGNAL_NUMBERS[stoppedBy ?? "SIGTERM"] : EXIT.ok;
    }
    try {
      await writeTokenFiles(files, token);
      log(`token written; it expires ${new Date(token.expiresAt).toISOString()}`);
      if (awaited) say(`${READY}\n`);
    } catch (error) {
      if (!(error instanceof ParentGone)) throw error;
      log(
        "the agent --background process waiting for this agent is gone (its pipe is closed): " +
          "stopped without handing on a token, its files removed",
      );
      return EXIT.failure;
    }
    awaited = false;
    await keepFresh(client, files, stop.signal, { refreshed: log, failed: log });
    log("stopped: the sink files it wrote are removed");
    return EXIT.ok;
  } finally {
    listening();
    for (const lock of locks) await unlockSink(lock.sink, lock.file, own.get(lock.sink));
  }
}

/** The --background parent stopped reading before the agent said ready. */
class ParentGone extends Error {}

/** The numbers of the signals that stop the agent (POSIX). */
const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
};

/** The agent's sink paths, checked. */
function sinkPaths(invocation: Invocation): { token?: string; header?: string } {
  const sinks = {
    token: invocation.values.get("--sink"),
    header: invocation.values.get("--header-sink"),
  };
  if (sinks.token === undefined && sinks.header === undefined) {
    throw configError("agent needs --sink PATH (and/or --header-sink PATH)");
  }
  if (sinks.token !== undefined && sinks.header !== undefined) {
    if (whereIs(sinks.token) === whereIs(sinks.header)) {
      throw configError("--sink and --header-sink must be two files");
    }
  }
  for (const [flag, path] of [["--sink", sinks.token], ["--header-sink", sinks.header]]) {
    if (path !== undefined && path.trim() === "") throw configError(`${flag} needs a file path`);
  }
  return sinks;
}

/**
 * Where `path` is: its folder's real path (without `.`, `..` or symbolic
 * links) and its name; the path as given when the folder cannot be
 * resolved (the lock then says why).
 */
function whereIs(path: string): string {
  const folder = folderOf(path);
  const name = path.slice(folder.length).replace(/^[/\\]/, "");
  try {
    return `${Deno.realPathSync(folder)}/${name}`;
  } catch {
    return path;
  }
}

/** What a lock file an agent made begins with; its process id follows. */
const LOCK_MARK = "freshtoken agent, pid ";

/**
 * Takes the lock beside a sink (`<sink>.lock`) once the sink is the agent's
 * to write: a path that does not exist yet, or the sink of an agent that
 * died (its lock file is there, an agent's, and no longer held). Anything
 * else is refused: a file that exists, a directory, FIFO, device or
 * symbolic link, a lock file no agent made, or one another running agent
 * holds. A new lock file is made exclusively (never through a symbolic
 * link); the lock is an advisory file lock, which the system lets go of
 * when its process ends, however it ends. `leftover` is the sink an agent
 * that died left, taken over.
 */
async function lockSink(
  flag: string,
  path: string,
): Promise<{ file: Deno.FsFile; leftover?: FileId }> {
  const lock = `${path}.lock`;
  const sink = await lstat(path, (error) => sinkError(flag, error));
  if (sink !== undefined && !sink.isFile) {
    throw configError(`${flag} ${kindOf(sink)}: the agent writes only files of its own`);
  }
  const existing = await lstat(lock, (error) => lockError(flag, error));
  if (existing === undefined) {
    if (sink !== undefined) {
      throw configError(
        `${flag} names a file that exists: the agent writes only files of its own ` +
          "(name a new path, or remove that file)",
      );
    }
    return { file: await newLock(flag, lock) };
  }
  const file = await leftoverLock(flag, lock, existing);
  return { file, leftover: sink === undefined ? undefined : fileId(sink) };
}

/**
 * What `path` is, or `undefined` when nothing is there; never follows a
 * symbolic link. Any other failure is thrown as `explain` words it.
 */
async function lstat(
  path: string,
  explain: (error: unknown) => TokenError,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw explain(error);
  }
}

/** A file-system error about a sink or its lock file: names it (`subject`) and says why. */
function sinkError(subject: string, error: unknown): TokenError {
  if (error instanceof Deno.errors.NotCapable) {
    return configError("agent writes its sink files: run with --allow-read and --allow-write");
  }
  return configError(`${subject} cannot be used: ${fileProblem(error)}`);
}

/**
 * A file-system error about a sink's lock file: a missing folder is the
 * sink's; a name too long is the sink's name with `.lock` added.
 */
function lockError(flag: string, error: unknown): TokenError {
  const code = (error as { code?: unknown })?.code;
  if (error instanceof Deno.errors.NotFound || code === "ENOTDIR") return sinkError(flag, error);
  if (code === "ENAMETOOLONG") {
    return configError(
      `${flag} cannot be used: its lock file's name, with .lock added, is too long for the ` +
        "file system",
    );
  }
  return sinkError(`${flag}'s lock file`, error);
}

/** What a path that is not a regular file is, in words. */
function kindOf(info: Deno.FileInfo): string {
  if (info.isSymlink) return "is a symbolic link";
  if (info.isDirectory) return "is a directory";
  if (info.isFifo) return "is a FIFO, not a regular file";
  if (info.isCharDevice || info.isBlockDevice) return "is a device, not a regular file";
  if (info.isSocket) return "is a socket, not a regular file";
  return "is not a regular file";
}

/** A new lock file, made exclusively, locked, then marked as an agent's. */
async function newLock(flag: string, lock: string): Promise<Deno.FsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lock, { read: true, write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw configError(`${flag}'s lock file appeared while this agent started: another holds it`);
    }
    throw lockError(flag, error);
  }
  if (!await locked(file)) {
    file.close();
    throw configError(`${flag} is held by another running agent (see its .lock file)`);
  }
  await mark(file);
  return file;
}

/**
 * The lock file that is there already: taken over when it is an agent's
 * that died. The file opened must be the one looked at, so a symbolic link
 * swapped in meanwhile is refused.
 */
async function leftoverLock(flag: string, lock: string, seen: Deno.FileInfo): Promise<Deno.FsFile> {
  if (!seen.isFile) {
    throw configError(
      `${flag}'s lock file ${kindOf(seen)}: the agent writes only files of its own`,
    );
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lock, { read: true, write: true });
  } catch (error) {
    throw lockError(flag, error);
  }
  try {
    const opened = await file.stat();
    if (opened.ino !== seen.ino || opened.dev !== seen.dev) {
      throw configError(`${flag}'s lock file changed while this agent started`);
    }
    if (!await locked(file)) {
      throw configError(`${flag} is held by another running agent (see its .lock file)`);
    }
    const head = new Uint8Array(LOCK_MARK.length);
    const read = await file.read(head);
    if (read !== LOCK_MARK.length || new TextDecoder().decode(head) !== LOCK_MARK) {
      throw configError(
        `${flag}'s lock file (the path with .lock added) exists and no agent made it: ` +
          "the agent writes only files of its own (name a new path, or remove that file)",
      );
    }
    await mark(file); // An agent that died left it: taken over.
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/** Whether the lock on `file` is granted: Deno has no try-lock, so one not granted at once is another agent's. */
async function locked(file: Deno.FsFile): Promise<boolean> {
  return await Promise.race([
    file.lock(true).then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), LOCK_WAIT_MS)),
  ]);
}

/** Writes the agent's mark and process id into its lock file. */
async function mark(file: Deno.FsFile): Promise<void> {
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  await file.write(new TextEncoder().encode(`${LOCK_MARK}${Deno.pid}\n`));
}

/**
 * At the end: removes the sink when it is still the file the agent wrote
 * last, or took over (`own`), and the lock file when it is still the one
 * this agent holds. A file moved there between the look and the removal
 * would go: POSIX has no unlink that checks what it removes.
 */
async function unlockSink(
  sink: string,
  lock: Deno.FsFile,
  own: FileId | "lost" | undefined,
): Promise<void> {
  if (own !== undefined && own !== "lost") {
    if (isFile(await Deno.lstat(sink).catch(() => undefined), own)) {
      await Deno.remove(sink).catch(() => {});
    }
  }
  const path = `${sink}.lock`;
  const [held, there] = await Promise.all([
    lock.stat().catch(() => undefined),
    Deno.lstat(path).catch(() => undefined),
  ]);
  if (held && there?.isFile && held.ino === there.ino && held.dev === there.dev) {
    await Deno.remove(path).catch(() => {});
  }
  lock.close();
}

/** How long a sink's lock may take to be granted before it counts as held. */
const LOCK_WAIT_MS = 250;

/** Set for the agent that {@linkcode background} starts: it says {@linkcode READY} on stdout. */
const READY_VARIABLE = "FRESHTOKEN_AGENT_READY";
const READY = "ready";

/**
 * `agent --background`: the agent as a process of its own, with stdin
 * closed and its own session where the system allows, carrying on once
 * this one returns. This one waits for it on a pipe (its stdout): 0 once
 * it says the first token is written, else its exit code, never 0 (its
 * error is on the stderr they share; a stop by a signal is told here).
 * The masks it registers until then come through to this process's
 * stdout, which the runner of the step reads. A --client-secret goes to
 * it in its environment, not on its command line, which ps shows to all.
 */
async function background(
  args: string[],
  needs: { hosts: string[]; paths: string[] },
  io: { out: (text: string) => void; err: (text: string) => void },
): Promise<number> {
  const { rest, secret } = withoutSecret(args.filter((arg) => arg !== "--background"));
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(Deno.execPath(), {
      args: [...runtimeArgs(args, needs), ...rest],
      // The flag's value as the variable: the flag would win over it, so the variable now does.
      env: {
        [READY_VARIABLE]: "1",
        ...(secret === undefined ? {} : { [SECRET_VARIABLE]: secret }),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      detached: true,
    } as Deno.CommandOptions).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError("agent --background starts the agent as a process: run with --allow-run");
    }
    throw error;
  }
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  for await (const line of lines) {
    if (line === READY) return EXIT.ok;
    io.out(`${line}\n`);
  }
  const status = await child.status;
  const signal = status.signal ?? signalOf(status.code);
  if (signal !== undefined) {
    io.err(`freshtoken: the agent was stopped (${signal}) before its first token was written\n`);
    return status.code === 0 ? EXIT.failure : status.code;
  }
  if (status.code === 0) {
    io.err("freshtoken: the agent ended before its first token was written\n");
    return EXIT.failure;
  }
  return status.code;
}

/** The variable the agent that {@linkcode background} starts gets --client-secret's value in. */
const SECRET_VARIABLE = "FRESHTOKEN_CLIENT_SECRET";

/** `args` less --client-secret (`--client-secret S` and `--client-secret=S`), and its value. */
function withoutSecret(args: string[]): { rest: string[]; secret?: string } {
  const rest: string[] = [];
  let secret: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--client-secret" && i + 1 < args.length) {
      secret = args[++i];
    } else if (args[i].startsWith("--client-secret=")) {
      secret = args[i].slice("--client-secret=".length);
    } else {
      rest.push(args[i]);
    }
  }
  // A blank value hides nothing, and as a variable it would count as unset.
  return secret?.trim() ? { rest, secret } : { rest: args };
}

/** The signal an exit code of 128 + its number stands for, among those that stop the agent. */
function signalOf(code: number): string | undefined {
  return Object.entries(SIGNAL_NUMBERS).find(([, n]) => 128 + n === code)?.[0];
}

/** Splits text into lines. */
function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest);
    },
  });
}

/**
 * The runtime's arguments that start this program again as it was started:
 * its command line less `args`, where the system shows it (Linux, with
 * --allow-all); none for a `deno compile`d program, whose permissions are
 * built in; else `run` with each permission granted in full, and for net,
 * read and write granted in part, the hosts and paths the agent uses that
 * are granted.
 */
function runtimeArgs(args: string[], needs: { hosts: string[]; paths: string[] }): string[] {
  try {
    const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
    const head = argv.length - args.length;
    if (head >= 1 && args.every((arg, i) => argv[head + i] === arg)) return argv.slice(1, head);
  } catch {
    // Not Linux, or not allowed to read it.
  }
  if (Deno.mainModule.includes("/deno-compile-")) return []; // Where `deno compile` unpacks it.
  const granted = (descriptor: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(descriptor).state === "granted";
  const flags = ["run", "--no-prompt"];
  if (typeof Deno.openKv === "function") flags.push("--unstable-kv");
  for (const name of ["env", "sys", "net", "read", "write"] as const) {
    if (granted({ name })) {
      flags.push(`--allow-${name}`);
      continue;
    }
    const some = name === "net"
      ? needs.hosts.filter((host) => granted({ name, host }))
      : name === "read" || name === "write"
      ? needs.paths.filter((path) => !path.includes(",") && granted({ name, path }))
      : [];
    if (some.length > 0) flags.push(`--allow-${name}=${some.join(",")}`);
  }
  return [...flags, Deno.mainModule];
}

/** The hosts and paths the agent uses: what {@linkcode runtimeArgs} asks for when granted in part. */
function agentNeeds(
  invocation: Invocation,
  options: TokenClientOptions,
  kvPath: string | undefined,
): { hosts: string[]; paths: string[] } {
  const urls = [options.tokenUrl, options.issuer, kvPath].filter((u): u is string =>
    typeof u === "string" && /^https?:/i.test(u)
  );
  const hosts = urls.map((url) => new URL(url).host);
  const sinks = [invocation.values.get("--sink"), invocation.values.get("--header-sink")];
  const paths = sinks.filter((p): p is string => p !== undefined).map(folderOf);
  if (kvPath && !/^https?:/i.test(kvPath) && kvPath !== ":memory:") paths.push(folderOf(kvPath));
  return { hosts: [...new Set(hosts)], paths: [...new Set(paths)] };
}

/** A token file that cannot be made for want of a permission: a `config` error saying which. */
function filePermission(error: unknown): never {
  throw error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
    ? configError("exec keeps token files for its command: run with --allow-read and --allow-write")
    : error;
}

/** `exec`'s command could not be found: exit 127, as a shell does; the message is the command. */
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
  let timeout: string | undefined;
  try {
    const invocation = parseArgs(args);
    timeout = invocation.values.get("--timeout");
    if (invocation.command === "help") {
      io.out(HELP);
      return EXIT.ok;
    }
    if (invocation.command === "version") {
      io.out(`freshtoken ${VERSION}\n`);
      return EXIT.ok;
    }
    const sources = new Map<string, string>();
    let options: TokenClientOptions;
    let client: TokenClient;
    const kvPath = setting(invocation, io.env, "--kv");
    try {
      options = clientOptions(invocation, io.env, sources);
      if (options.encryptionKey !== undefined && !kvPath) {
        throw configError(
          "FRESHTOKEN_ENCRYPTION_KEY encrypts the tokens kept in a store: set --kv (or FRESHTOKEN_KV)",
        );
      }
      if (invocation.command === "agent" && invocation.switches.has("--background")) {
        sinkPaths(invocation);
        return await background(args, agentNeeds(invocation, options, kvPath), io);
      }
      if (kvPath) kv = await openKv(kvPath);
      client = createTokenClient({ ...options, kv });
    } catch (error) {
      throw inCliTerms(error, sources);
    }
    if (invocation.command === "agent") return await agent(client, invocation, io);
    if (invocation.command === "status") {
      const json = invocation.switches.has("--json");
      await (client as unknown as Record<symbol, () => Promise<void>>)[LOAD_SHARED]();
      const { hasToken, expiresAt, refreshAt } = client.status();
      const now = Date.now();
      // Which client at which endpoint: its client id and the token endpoint's origin, both public.
      const which = `for client ${describe(client)}`;
      if (json) {
        const expiresAtIso = expiresAt === undefined ? undefined : iso(expiresAt);
        const expiresIn = expiresAt === undefined ? undefined : seconds(expiresAt - now);
        io.out(
          `${JSON.stringify({ hasToken, expiresAt, expiresAtIso, expiresIn, refreshAt })}\n`,
        );
      } else if (!hasToken || expiresAt === undefined || refreshAt === undefined) {
        io.out(
          kv
            ? `no usable token cached ${which}\n`
            : `no token cached ${which} (use --kv to keep one between runs)\n`,
        );
      } else {
        io.out(
          `token cached ${which}: expires ${iso(expiresAt)} (in ${span(expiresAt - now)}), ` +
            `refreshes from ${iso(refreshAt)} (${
              refreshAt > now ? `in ${span(refreshAt - now)}` : "due now"
            })\n`,
        );
      }
      // As `gh auth status` does: a script can test for a usable token.
      return hasToken ? EXIT.ok : EXIT.failure;
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
    // Masked before it is printed, exported or handed to a command, in each form printed;
    // exec's token files mask each token they are given before it is written.
    const masked = new Set<string>();
    const mask = (value: string) => {
      if (!inGitHubActions(io.env) || masked.has(value)) return;
      masked.add(value);
      io.err(addMask(value));
    };
    mask(token.accessToken);
    if (invocation.switches.has("--json")) mask(json);
    if (invocation.command === "exec") {
      const used = { options, remoteKv: /^https?:/i.test(kvPath ?? "") };
      const { child: env, withheld } = childEnv(
        Deno.env.toObject(),
        used,
        variable,
        token.accessToken,
        invocation.passEnv,
      );
      if (withheld.length > 0) {
        io.err(
          `freshtoken: exec: withheld from the command, as they hold a credential: ${
            withheld.join(", ")
          } (--pass-env NAME passes one on)\n`,
        );
      }
      // Token files kept fresh for as long as the command runs, in a folder of this run's own.
      const dir = await Deno.makeTempDir({ prefix: "freshtoken-" }).catch(filePermission);
      const files = {
        token: `${dir}/token`,
        header: `${dir}/header`,
        mask: (fresh: Token) => mask(fresh.accessToken),
      };
      const stop = new AbortController();
      try {
        await writeTokenFiles(files, token).catch(filePermission);
        env.FRESHTOKEN_TOKEN_FILE = files.token;
        env.FRESHTOKEN_HEADER_FILE = files.header;
        const fresh = keepFresh(client, files, stop.signal, {
          failed: (line) => io.err(`freshtoken: ${inCliWords(line, timeout)}\n`),
        });
        try {
          return await exec(invocation.run, env);
        } finally {
          stop.abort();
          await fresh;
        }
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
    if (targets.length > 0) {
      for (const { flag, name, path } of targets) {
        append(path, variableEntry(name, token.accessToken));
        if (flag === "--github-output") {
          append(path, variableEntry(`${name}_expires_at`, iso(token.expiresAt)));
        }
      }
    } else if (invocation.switches.has("--header")) {
      io.out(`Authorization: ${token.tokenType} ${token.accessToken}\n`);
    } else if (invocation.switches.has("--json")) {
      io.out(
        `${
          JSON.stringify({
            accessToken: token.accessToken,
            tokenType: token.tokenType,
            expiresAt: token.expiresAt,
            expiresAtIso: iso(token.expiresAt),
            expiresIn: seconds(token.expiresAt - Date.now()),
          })
        }\n`,
      );
    } else {
      io.out(`${token.accessToken}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof NoCommand) {
      io.err(HELP);
      return EXIT.config;
    }
    if (error instanceof CommandNotFound) {
      io.err(`freshtoken: exec: command not found: ${error.message}\n`);
      return 127;
    }
    const code = exitCode(error);
    const message = error instanceof TokenError
      ? inCliWords(error.message, timeout)
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
  const lifetime = held(client)?.lifetimeSeconds ?? 0;
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

/** The schedule of the token `client` holds. */
function held(client: TokenClient): Held | undefined {
  return (client as unknown as Record<symbol, () => Held | undefined>)[HELD]();
}

/** The client in a line: its client id and token endpoint's origin, nothing secret. */
function describe(client: TokenClient): string {
  return (client as unknown as Record<symbol, () => string>)[DESCRIBE]();
}

/** Whole seconds in `ms`, as `expiresIn` gives them. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
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
