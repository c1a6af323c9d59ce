/**
 * An entry module that keeps tokens fresh in Deno KV from a `Deno.cron`
 * job, so request handlers never wait on the token endpoint (docs/DESIGN.md, "The cron job").
 * Import it from your Deno Deploy entry point (it is not part of `mod.ts`);
 * it registers one job at top level, as Deno Deploy requires.
 *
 * Configuration, from the environment:
 * - `GENESYS_CLOUD_REGION`, `GENESYS_CLOUD_CLIENT_ID`, `GENESYS_CLOUD_CLIENT_SECRET`, and/or
 * - `FRESHTOKEN_TOKEN_URL` (or `FRESHTOKEN_ISSUER`), `FRESHTOKEN_CLIENT_ID`, `FRESHTOKEN_CLIENT_SECRET`
 *   (optional `FRESHTOKEN_SCOPE`, `FRESHTOKEN_AUDIENCE`, `FRESHTOKEN_AUTH_METHOD`), or
 *   `FRESHTOKEN_PRIVATE_KEY` (PEM or JWK text) instead of the secret, with
 *   optional `FRESHTOKEN_KEY_ID` and `FRESHTOKEN_CERTIFICATE`;
 * - `FRESHTOKEN_ENCRYPTION_KEY`: the same key your handlers use, if any;
 * - `FRESHTOKEN_KV`: a path or URL for `Deno.openKv` (default: the
 *   deployment's own KV);
 * - `FRESHTOKEN_CRON_SCHEDULE`: default every 5 minutes.
 *
 * The module exports the job's {@linkcode clients} and the {@linkcode kv}
 * they use: a handler that imports them shares the job's configuration,
 * store and token by construction, whatever `FRESHTOKEN_KV` says, and
 * `registerRefreshCron` for one of them returns this job. Anything
 * `createTokenClient` would refuse fails the import at once with its
 * `config` error, and so do a private key WebCrypto cannot import (imported
 * here), a schedule `Deno.cron` refuses, a runtime without Deno KV and a
 * configuration that names no client, naming the variables; for a client
 * made in code, call `registerRefreshCron(client)` instead. Each run logs one line per client,
 * with its client id and token endpoint's origin.
 *
 * @example Deno Deploy entry point
 * ```ts ignore
 * import { clients } from "jsr:@freshtoken/freshtoken/cron"; // registers the job
 *
 * const [client] = clients; // the job's own client: its options, its KV, its token
 * Deno.serve(() => client.fetch("/api/v2/organizations/me"));
 * ```
 *
 * @module
 */

import {
  aheadSeconds,
  BACKOFF_SCHEDULE,
  DEFAULT_SCHEDULE,
  placeOf,
  startJob,
} from "./_cron_job.ts";
import { optionsFromEnv } from "./_env.ts";
import { createTokenClient } from "./client.ts";
import { PREPARE_KEY } from "./_internal.ts";
import { configError, TokenError } from "./token_error.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";

/** The job's name, as Deno Deploy lists it. */
export const CRON_NAME = "freshtoken refresh tokens";
/** Every 5 minutes unless `FRESHTOKEN_CRON_SCHEDULE` says otherwise. */
export const CRON_SCHEDULE: string = Deno.env.get("FRESHTOKEN_CRON_SCHEDULE") ?? DEFAULT_SCHEDULE;
/** Retries of a failed run: 1 s, 5 s, 15 s, 60 s. */
export const CRON_BACKOFF_SCHEDULE: number[] = BACKOFF_SCHEDULE;
/**
 * The longest time to the next run: each run refreshes every token that
 * would fall due before then, so handlers never wait whatever the token's
 * lifetime (a schedule it cannot bound refreshes on every run).
 */
export const CRON_AHEAD_SECONDS: number = aheadSeconds(CRON_SCHEDULE);

/** What the environment configures, read at start-up: a mistake fails the deployment, not a run. */
const configured: TokenClientOptions[] = optionsFromEnv((name) => Deno.env.get(name));
if (configured.length === 0) {
  throw new Error(
    "freshtoken cron: nothing to refresh: set FRESHTOKEN_TOKEN_URL, FRESHTOKEN_CLIENT_ID and " +
      "FRESHTOKEN_CLIENT_SECRET (or FRESHTOKEN_PRIVATE_KEY), or GENESYS_CLOUD_REGION, " +
      "GENESYS_CLOUD_CLIENT_ID and GENESYS_CLOUD_CLIENT_SECRET; for a client made in code, " +
      "call registerRefreshCron(client) instead of importing freshtoken/cron",
  );
}

/**
 * The store the job keeps the tokens in: `Deno.openKv(FRESHTOKEN_KV)`, or
 * the deployment's own KV when that is not set. A handler of your own shares
 * the job's tokens on this store (or simply uses {@linkcode clients}).
 */
export const kv: Deno.Kv = await openStore(Deno.env.get("FRESHTOKEN_KV") || undefined);

/**
 * The job's clients on {@linkcode kv}, one for each client the environment
 * configures, in the order `clientOptionsFromEnv()` returns them. A handler
 * that uses them shares the job's configuration, store and token by
 * construction. They are made at import: a configuration `createTokenClient`
 * refuses fails the import with its `config` error, not every run.
 */
export const clients: readonly TokenClient[] = Object.freeze(await clientsOn(kv));

/** One run of the job; registered here, at top level, as Deno Deploy requires. */
const run = await startModuleJob();

/** The store at `path` (the deployment's own without one), or a `config` error naming it. */
async function openStore(path: string | undefined): Promise<Deno.Kv> {
  if (typeof Deno.openKv !== "function") {
    throw configError("freshtoken/cron needs Deno KV (Deno Deploy, or --unstable-kv)");
  }
  try {
    return await Deno.openKv(path);
  } catch (error) {
    // Deno's message is left out: it quotes the path or URL, which may carry a credential.
    throw configError(
      `${path === undefined ? "the deployment's KV" : "the FRESHTOKEN_KV store"} could not be ` +
        `opened (${(error as Error).name}): check the path or URL, and that its folder exists`,
    );
  }
}

/**
 * The configured clients on `store`, their signing keys imported (a key
 * WebCrypto refuses fails here, not at every run); a `config` error closes
 * the store first.
 */
async function clientsOn(store: Deno.Kv): Promise<TokenClient[]> {
  try {
    const made = configured.map((options) => createTokenClient({ ...options, kv: store }));
    await Promise.all(
      made.map((client) =>
        (client as unknown as Record<symbol, () => Promise<void>>)[PREPARE_KEY]()
      ),
    );
    return made;
  } catch (error) {
    store.close();
    throw error;
  }
}

/**
 * Registers the job for {@linkcode clients}, as the job of their places:
 * `registerRefreshCron` for one of them, or for another client of the same
 * place, registers nothing more. A refusal closes {@linkcode kv} first.
 */
async function startModuleJob(): Promise<() => Promise<void>> {
  try {
    if (typeof Deno.cron !== "function") {
      throw configError("freshtoken/cron needs Deno.cron (Deno Deploy, or --unstable-cron)");
    }
    const places = await Promise.all(clients.map(placeOf));
    return startJob(CRON_NAME, CRON_SCHEDULE, clients, places);
  } catch (error) {
    kv.close();
    const scheduled = Deno.env.get("FRESHTOKEN_CRON_SCHEDULE") !== undefined;
    if (!scheduled || !(error instanceof TokenError) || error.code !== "config") throw error;
    // The schedule is not echoed: a value set in the wrong variable may be a secret.
    throw configError(
      `${error.description} (FRESHTOKEN_CRON_SCHEDULE sets the schedule: five fields, such as "*/5 * * * *")`,
    );
  }
}

/** One run of the job: refresh every configured client that is due. */
export async function refreshAll(): Promise<void> {
  await run();
}
