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

import { addMask, inGitHubActions, variableEntry } from "./_github.ts";
import { DESCRIBE, HELD, type Held, LOAD_SHARED } from "./_internal.ts";
import { createTokenClient } from "./client.ts";
import { configError, TokenError, type TokenErrorCode } from "./token_error.ts";
import type { Token } from "./token.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";
import meta from "../deno.json" with { type: "json" };
import { EXIT, HELP, NoCommand, number, parseArgs, setting, variableName } from "./_cli_flags.ts";
import { clientOptions, inCliTerms } from "./_cli_options.ts";
import { onStore, openSharedStore, storeFailureReporter } from "./_cli_store.ts";
import { append, CommandNotFound, execWithToken, exportTargets } from "./_cli_commands.ts";
import { agent, agentNeeds, background, sinkPaths } from "./_cli_agent.ts";
import { notifications } from "./_cli_notifications.ts";

export { EXIT };

/** freshtoken's version, as published (deno.json). */
const VERSION: string = meta.version;

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
      const report = storeFailureReporter(io.err);
      if (kvPath) kv = await openSharedStore(kvPath, report);
      client = createTokenClient(onStore(options, kv, report));
    } catch (error) {
      throw inCliTerms(error, sources);
    }
    if (invocation.command === "agent") return await agent(client, invocation, io);
    if (invocation.command === "notifications") return await notifications(client, invocation, io);
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
          kvPath
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
      return await execWithToken(client, token, {
        command: invocation.run,
        variable,
        passEnv: invocation.passEnv,
        used: {
          options,
          remoteKv: /^https?:/i.test(kvPath ?? ""),
          githubOidc: /GITHUB_OIDC|github-oidc/.test(sources.get("clientAssertion") ?? ""),
        },
        mask,
        err: io.err,
      });
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
      ? error.message
      : `unexpected failure (${error instanceof Error ? error.name : typeof error})`;
    // A timeout's message says how long it waited (the core's words); the flag that sets it is ours.
    const hint = error instanceof TokenError && error.code === "timeout"
      ? " (transient: retry later, or wait longer with --timeout)"
      : code === EXIT.retryable
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

/** The exit code for an error. */
function exitCode(error: unknown): number {
  if (!(error instanceof TokenError)) return EXIT.failure;
  const code: TokenErrorCode = error.code;
  if (code === "config") return EXIT.config;
  if (code === "invalid_response") return EXIT.invalidResponse;
  if (error.retryable) return EXIT.retryable;
  return code === "aborted" || code === "internal" ? EXIT.failure : EXIT.refused;
}

/** With no --min-valid, the token must stay valid this long, or half the server's lifetime if less. */
const DEFAULT_MIN_VALID_SECONDS = 60;

/**
 * The token, valid `minValid` seconds more when given: the core decides
 * whether a server's tokens can meet that demand and words the refusal
 * (`minValidSeconds`), which {@linkcode inCliTerms} says as `--min-valid`.
 * Without it, valid a minute or half the server's lifetime, whichever is
 * less: a default is not a demand.
 */
async function validToken(client: TokenClient, minValid: number | undefined): Promise<Token> {
  if (minValid !== undefined) {
    return await client.getToken({ minValidSeconds: minValid }).catch((error) => {
      throw inCliTerms(error, new Map([["minValidSeconds", "--min-valid"]]));
    });
  }
  const token = await client.getToken();
  const lifetime = held(client)?.lifetimeSeconds ?? 0;
  const want = Math.min(DEFAULT_MIN_VALID_SECONDS, lifetime / 2);
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
