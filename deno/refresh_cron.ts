/**
 * A `Deno.cron` job for a client made in code (docs/DESIGN.md, "The cron job").
 *
 * @module
 */

import { DEFAULT_SCHEDULE, joinPlace, placeOf, startJob } from "./_cron_job.ts";
import { KV_PLACE, REFRESH_IF_DUE } from "./_internal.ts";
import { configError } from "./token_error.ts";
import type { RefreshCronOptions, TokenClient } from "./types.ts";

/** The registration of each client, so that a second call for it registers nothing more. */
const byClient = new WeakMap<TokenClient, Promise<void>>();
/** How generated job names start; a name given in the options may not. */
const OWN_NAMES = "freshtoken refresh";
/** Deno.cron's rule for a job's name: ASCII letters, digits, whitespace, `-` and `_`. */
const NAME_CHARACTERS = /^[A-Za-z0-9 \t\n\f\r_-]*$/;
/** How many jobs for clients without KV have a generated name. */
let inMemory = 0;

/**
 * Registers one `Deno.cron` job that keeps `client`'s token fresh: each run
 * refreshes it when it would fall due before the next run (see
 * {@linkcode refreshIfDue}), and a failed run is retried after 1, 5, 15 and
 * 60 s. The handler and the job then share one configuration, in code. With
 * KV, the job refreshes the token every isolate reads. There is one job for
 * each place a token lives (key prefix and KV identity): calling it again
 * for the same client, or for another client of the same place, registers
 * nothing more. A client of that place on another `Deno.Kv` has its store
 * refreshed by the same job from then on, as long as the client is alive
 * and its store open (the job holds it weakly, so a store opened per
 * request is not kept). Each client without KV gets a job of its own. The
 * job's name, unless `name` gives one, is `freshtoken refresh` and a short
 * digest of the place (the same on every start). Call it at the top level
 * of your entry module, as Deno Deploy registers cron jobs when it loads
 * the module; outside Deploy it needs `--unstable-cron`.
 *
 * @example A Deno Deploy entry point
 * ```ts ignore
 * import { createTokenClient, genesysCloud, registerRefreshCron } from "jsr:@freshtoken/freshtoken";
 *
 * const client = createTokenClient({
 *   ...genesysCloud({ region: "eu_west_1", clientId: "id", clientSecret: "secret" }),
 *   scope: "read",
 *   kv: await Deno.openKv(),
 * });
 * await registerRefreshCron(client); // every 5 minutes; { schedule, name } to change
 * Deno.serve(() => client.fetch("/api/v2/organizations/me"));
 * ```
 */
export function registerRefreshCron(
  client: TokenClient,
  options: RefreshCronOptions = {},
): Promise<void> {
  if (typeof (client as unknown as Record<symbol, unknown>)?.[REFRESH_IF_DUE] !== "function") {
    return Promise.reject(
      configError("registerRefreshCron needs a client made by createTokenClient"),
    );
  }
  const { name, schedule = DEFAULT_SCHEDULE } = options ?? {};
  const nameFault = name === undefined ? undefined : faultOfName(name);
  if (nameFault !== undefined) return Promise.reject(configError(nameFault));
  if (typeof schedule !== "string" || schedule.trim() === "") {
    return Promise.reject(configError('schedule must be a cron schedule such as "*/5 * * * *"'));
  }
  if (typeof Deno.cron !== "function") {
    return Promise.reject(
      configError("registerRefreshCron needs Deno.cron (Deno Deploy, or --unstable-cron)"),
    );
  }
  const known = byClient.get(client);
  if (known !== undefined) return known;
  const withKv = (client as unknown as Record<symbol, () => unknown>)[KV_PLACE]() !== undefined;
  // Numbered in call order, before any await, so that names stay the same from one start to the next.
  const registration = withKv
    ? registerAtPlace(client, name, schedule)
    : registerAlone(client, name ?? inMemoryName(), schedule);
  byClient.set(client, registration);
  registration.catch(() => byClient.delete(client));
  return registration;
}

/** A client without KV: a job of its own. */
function registerAlone(client: TokenClient, name: string, schedule: string): Promise<void> {
  try {
    startJob(name, schedule, [client], [undefined]);
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A client with KV: its place's job, which is registered if there is none yet. */
async function registerAtPlace(
  client: TokenClient,
  name: string | undefined,
  schedule: string,
): Promise<void> {
  const place = (await placeOf(client))!;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(place));
  const stem = [...new Uint8Array(digest, 0, 8)].map((b) => b.toString(16).padStart(2, "0"));
  // No await from here on: a place is looked up and taken at once.
  if (joinPlace(place, client)) return;
  startJob(name ?? `${OWN_NAMES} ${stem.join("")}`, schedule, [client], [place]);
}

/** The next generated name of a job without KV, in the order registered. */
function inMemoryName(): string {
  inMemory++;
  return `${OWN_NAMES} in memory${inMemory === 1 ? "" : ` ${inMemory}`}`;
}

/** What is wrong with a job name given in the options, if anything. */
function faultOfName(name: unknown): string | undefined {
  if (typeof name !== "string" || name.trim() === "") return "name must be a non-empty string";
  if (name.length > 64) return "name must be at most 64 characters long (Deno.cron's rule)";
  if (!NAME_CHARACTERS.test(name)) {
    return "name may hold only ASCII letters, digits, whitespace, - and _ (Deno.cron's rule)";
  }
  if (name.startsWith(OWN_NAMES)) {
    return `names that start with "${OWN_NAMES}" are freshtoken's own: choose another`;
  }
  return undefined;
}
