// What `token` and `exec` do beyond printing: `exec` runs its command with
// the token in its environment, none of freshtoken's credentials, and its
// signals passed on; `token --github-env/--github-output` appends to the
// runner's files.

import { askCredential } from "./_credential.ts";
import { holdsCredential } from "../pkg/freshtoken.js";
import { configError } from "./token_error.ts";
import type { Token } from "./token.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";
import { keepFresh, writeTokenFiles } from "./_token_files.ts";
import { type Invocation, variableName } from "./_cli_flags.ts";

/** Variables that hold credentials freshtoken reads: never passed on to `exec`'s command. */
const CREDENTIAL_VARIABLES = [
  "FRESHTOKEN_CLIENT_SECRET",
  "FRESHTOKEN_PRIVATE_KEY",
  "FRESHTOKEN_ENCRYPTION_KEY",
  "GENESYS_CLOUD_CLIENT_SECRET",
  "GENESYSCLOUD_OAUTHCLIENT_SECRET",
];

/** What asks GitHub for the job's ID tokens (`--github-oidc`): any audience, while the job runs. */
const ID_TOKEN_REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

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
  used: { options: TokenClientOptions; remoteKv: boolean; githubOidc?: boolean },
  name: string,
  token: string,
  keep: string[],
): { child: Record<string, string>; withheld: string[] } {
  const { clientId, clientSecret, privateKey, encryptionKey } = used.options;
  const secretText = typeof clientSecret === "string" ? clientSecret : undefined;
  const names = [
    ...CREDENTIAL_VARIABLES,
    ...(used.remoteKv ? [KV_ACCESS_TOKEN] : []),
    ...(used.githubOidc ? [ID_TOKEN_REQUEST_TOKEN] : []),
  ];
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
    } else if (holdsCredential(value, clientId, secretText, others)) {
      withheld.push(variable);
    } else {
      child[variable] = value;
    }
  }
  child[name] = token;
  return { child, withheld };
}

/** Where `token --github-env/--github-output` writes: checked before any token is fetched. */
export function exportTargets(
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
export function append(path: string, text: string): void {
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
export function onSignals(
  signals: Deno.Signal[],
  handle: (signal: Deno.Signal) => void,
): () => void {
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

/** A token file that cannot be made for want of a permission: a `config` error saying which. */
function filePermission(error: unknown): never {
  throw error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
    ? configError("exec keeps token files for its command: run with --allow-read and --allow-write")
    : error;
}

/** `exec`'s command could not be found: exit 127, as a shell does; the message is the command. */
export class CommandNotFound extends Error {}

/**
 * `exec`: runs `command` with the token in `variable` and in two files kept
 * fresh while it runs (in a folder of this run's own, removed after), and
 * none of the credentials `used`; resolves to its exit code. `mask` is told
 * of each token before a file gets it; `err` hears of withheld variables
 * and of failed refreshes.
 */
export async function execWithToken(
  client: TokenClient,
  token: Token,
  how: {
    command: string[];
    variable: string;
    passEnv: string[];
    used: { options: TokenClientOptions; remoteKv: boolean; githubOidc?: boolean };
    mask: (value: string) => void;
    err: (text: string) => void;
  },
): Promise<number> {
  // A secret read at each request (--client-secret-file) is withheld as it reads now.
  const { clientSecret } = how.used.options;
  const used = typeof clientSecret !== "function" ? how.used : {
    ...how.used,
    options: { ...how.used.options, clientSecret: await askCredential(clientSecret, 10_000) },
  };
  const { child: env, withheld } = childEnv(
    Deno.env.toObject(),
    used,
    how.variable,
    token.accessToken,
    how.passEnv,
  );
  if (withheld.length > 0) {
    how.err(
      `freshtoken: exec: withheld from the command, as they hold a credential: ${
        withheld.join(", ")
      } (--pass-env NAME passes one on)\n`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "freshtoken-" }).catch(filePermission);
  const files = {
    token: `${dir}/token`,
    header: `${dir}/header`,
    mask: (fresh: Token) => how.mask(fresh.accessToken),
  };
  const stop = new AbortController();
  try {
    await writeTokenFiles(files, token).catch(filePermission);
    env.FRESHTOKEN_TOKEN_FILE = files.token;
    env.FRESHTOKEN_HEADER_FILE = files.header;
    const fresh = keepFresh(client, files, stop.signal, {
      failed: (line) => how.err(`freshtoken: ${line}\n`),
    });
    try {
      return await exec(how.command, env);
    } finally {
      stop.abort();
      await fresh;
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
