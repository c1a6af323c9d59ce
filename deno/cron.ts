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
 * Handlers share the job's tokens when they create their client with the
 * same options and KV (and key prefix and encryption key): read them with
 * `clientOptionsFromEnv()`, which reads exactly these variables. With nothing
 * configured, importing this module fails at once, naming the variables; for
 * a client made in code, call `registerRefreshCron(client)` instead. Each run
 * logs one line per client, with its client id and token endpoint's origin.
 *
 * @example Deno Deploy entry point
 * ```ts ignore
 * import "jsr:@freshtoken/freshtoken/cron";
 * import { clientOptionsFromEnv, createTokenClient } from "jsr:@freshtoken/freshtoken";
 *
 * const kv = await Deno.openKv();
 * const [options] = clientOptionsFromEnv(); // what the job reads
 * const client = createTokenClient({ ...options, kv });
 * Deno.serve(() => client.fetch("/api/v2/organizations/me"));
 * ```
 *
 * @module
 */

import { aheadSeconds, BACKOFF_SCHEDULE, DEFAULT_SCHEDULE, refreshRun } from "./_cron_job.ts";
import { optionsFromEnv } from "./_env.ts";
import { createTokenClient } from "./client.ts";
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

let clients: Promise<TokenClient[]> | undefined;

async function openClients(): Promise<TokenClient[]> {
  const kv = await Deno.openKv(Deno.env.get("FRESHTOKEN_KV") || undefined);
  return configured.map((options) => createTokenClient({ ...options, kv }));
}

/** One run of the job: refresh every configured client that is due. */
export async function refreshAll(): Promise<void> {
  clients ??= openClients();
  let ready: TokenClient[];
  try {
    ready = await clients;
  } catch (error) {
    clients = undefined;
    throw error;
  }
  await refreshRun(ready, CRON_AHEAD_SECONDS);
}

Deno.cron(CRON_NAME, CRON_SCHEDULE, { backoffSchedule: CRON_BACKOFF_SCHEDULE }, refreshAll);
