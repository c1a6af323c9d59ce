// The CLI's flags (docs/DESIGN.md, "Pipelines"): one table that parsing,
// `--help`, the environment fallback, did-you-mean and which commands take
// which flag all read, and the exit codes --help lists.

import { closestName } from "../pkg/freshtoken.js";
import { configError } from "./token_error.ts";

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

export type Command = "token" | "status" | "exec" | "agent" | "notifications";
export const COMMANDS: readonly Command[] = ["token", "status", "exec", "agent", "notifications"];

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

export const FLAGS: readonly Flag[] = [
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
    name: "--topic",
    value: "TOPIC",
    commands: ["notifications"],
    help: "a Genesys Cloud notification topic, e.g. v2.users.{id}.presence (repeatable)",
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
    name: "--client-secret-file",
    value: "PATH",
    env: "FRESHTOKEN_CLIENT_SECRET_FILE",
    help: "a file holding the client secret, read again for every token request (a" +
      "\n secret that rotates: a Vault Agent sink, a Kubernetes secret volume); after" +
      "\n invalid_client it is read once more and, if it changed, the request sent again",
  },
  {
    name: "--client-assertion-file",
    value: "PATH",
    env: "FRESHTOKEN_CLIENT_ASSERTION_FILE",
    help: "no stored secret: a file holding a JWT from another identity provider (a" +
      "\n Kubernetes projected token, AWS_WEB_IDENTITY_TOKEN_FILE), read for every" +
      "\n token request and sent as the client assertion (RFC 7523 §2.2)",
  },
  {
    name: "--github-oidc",
    value: "AUDIENCE",
    env: "FRESHTOKEN_GITHUB_OIDC",
    help: "no stored secret, in GitHub Actions: the job's OIDC token for AUDIENCE" +
      "\n (e.g. api://AzureADTokenExchange) as the client assertion, asked for every" +
      "\n token request (the job needs permissions: id-token: write)",
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
    value: "PATH|URL",
    env: "FRESHTOKEN_KV",
    help: "share the token through a Deno KV file, or across machines through a" +
      "\n KV Connect URL (Deno Deploy's KV, denokv) with DENO_KV_ACCESS_TOKEN; a" +
      "\n URL that cannot be opened leaves the run on its own token, said on stderr",
  },
  {
    name: "--base-url",
    value: "URL",
    env: "FRESHTOKEN_BASE_URL",
    help: "the API's base: an https: origin (http: on loopback); with --region, its api. host",
  },
  { name: "--timeout", value: "MS", help: "per token request (default 10000)" },
  { name: "--help", help: "this text" },
  { name: "--version", help: "freshtoken's version" },
];

export const FLAG_BY_NAME = new Map<string, Flag>(FLAGS.map((f) => [f.name, f]));

export const HELP = `freshtoken — OAuth 2.0 client-credentials tokens for scripts and pipelines

Usage:
  freshtoken token [--header | --json] [options]       print a token
  freshtoken token --github-env NAME [options]         export it to later GitHub Actions steps
  freshtoken exec [--env NAME] [options] -- CMD [ARG…]  run CMD with a token in its environment
  freshtoken status [--json] [options]                 which client, what is cached; exits 1 without a token
  freshtoken agent --sink PATH [--header-sink PATH] [--background] [options]
                                                       keep token files fresh until SIGTERM
  freshtoken notifications --topic T [--topic T…] [options]
                                                       print Genesys Cloud notifications, one JSON line each
  freshtoken --help | --version

In GitHub Actions (GITHUB_ACTIONS=true) every token printed, exported or written to a token file
is first masked in the log (::add-mask:: on stderr; the agent's on stdout), in each form printed.
Outside it nothing extra is printed.

"exec" runs CMD with the token in one variable, never on a command line, and in two files kept
fresh while CMD runs: $FRESHTOKEN_TOKEN_FILE (the token) and $FRESHTOKEN_HEADER_FILE (a header
line, for curl -H @"$FRESHTOKEN_HEADER_FILE"). CMD gets none of the
credentials freshtoken used (client secret, private key, KV encryption key, the remote KV's
access token, --github-oidc's ACTIONS_ID_TOKEN_REQUEST_TOKEN), nor any variable holding one inside its value (a URL, a Basic pair; those are
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

"notifications" follows Genesys Cloud notification topics (a channel, its subscriptions and its
WebSocket, kept alive and replaced before it expires) and prints each event as one JSON line on
stdout, as Genesys sent it, until SIGINT or SIGTERM (then exit 0). The API base comes from
--region (GENESYS_CLOUD_REGION) or --base-url (FRESHTOKEN_BASE_URL). An event may come twice
around a channel's replacement: its metadata.CorrelationId tells. Nothing else is printed.

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
  freshtoken token --kv "https://api.deno.com/v2/databases/$ID/connect"  # one for all runners
  GENESYS_CLOUD_REGION=eu_west_1 freshtoken notifications --topic v2.users.$USER_ID.presence | jq .
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
export interface Invocation {
  command: Command | "help" | "version";
  values: Map<string, string>;
  /** `--pass-env`, which may repeat. */
  passEnv: string[];
  /** `--topic`, which may repeat. */
  topics: string[];
  switches: Set<string>;
  /** What follows `--`: exec's command and its arguments. */
  run: string[];
}

/** What `exec` without its command after `--` is told. */
const EXEC_NEEDS_DASHES = "exec needs a command after --, e.g. freshtoken exec -- ./deploy.sh";

/** The command line lacks a command: the usage goes to stderr, exit 2. */
export class NoCommand extends Error {}

/**
 * Parses `args`; unknown flags and missing values are `"config"` errors.
 * An argument it does not understand is named by its position only: a
 * stray word may be a secret that lost its flag. An unknown flag gets the
 * closest known one, which is freshtoken's own word, never what was given.
 */
export function parseArgs(args: string[]): Invocation {
  const values = new Map<string, string>();
  const passEnv: string[] = [];
  const topics: string[] = [];
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
      if (name === "--topic") topics.push(value);
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
  if (switches.has("--help")) return { command: "help", values, passEnv, topics, switches, run };
  if (switches.has("--version")) {
    return { command: "version", values, passEnv, topics, switches, run };
  }
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
  if (command === "notifications" && topics.length === 0) {
    throw configError("notifications needs --topic, e.g. --topic v2.users.{id}.presence");
  }
  return { command, values, passEnv, topics, switches, run };
}

/**
 * A flag's value, else that of the variable the table names for it. (A
 * flag that takes a file falls back to a variable that holds the text: the
 * caller reads those two itself.)
 */
export function setting(
  invocation: Invocation,
  env: (name: string) => string | undefined,
  name: string,
): string | undefined {
  const variable = FLAG_BY_NAME.get(name)?.env;
  return invocation.values.get(name) ?? (variable === undefined ? undefined : env(variable));
}

/** A variable name, as `$GITHUB_ENV`, `$GITHUB_OUTPUT` and a process environment take it. */
export function variableName(flag: string, name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw configError(`${flag} needs a variable name (letters, digits and _)`);
  }
  return name;
}

/** A flag's number, at least `min`; the message never repeats what was given. */
export function number(flag: string, text: string, min: number, unit: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min) {
    throw configError(`${flag} must be a number of ${unit}, at least ${min}`);
  }
  return n;
}
