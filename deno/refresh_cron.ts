/**
 * A `Deno.cron` job for a client made in code (docs/DESIGN.md, "The cron job").
 *
 * @module
 */

import { aheadSeconds, BACKOFF_SCHEDULE, DEFAULT_SCHEDULE, refreshRun } from "./_cron_job.ts";
import { KV_PLACE, type KvPlace, REFRESH_IF_DUE } from "./_internal.ts";
import { configError } from "./token_error.ts";
import type { RefreshCronOptions, TokenClient } from "./types.ts";

/**
 * The job registered for each client, and for each place a token lives:
 * by store (the `Deno.Kv` object, as Deno gives a store no other identity),
 * then by key prefix and KV id.
 */
const byClient = new WeakMap<TokenClient, Promise<void>>();
const byStore = new WeakMap<Deno.Kv, Map<string, Promise<void>>>();
/** How many jobs each generated name stands for, so that every name is new. */
const named = new Map<string, number>();

/**
 * Registers one `Deno.cron` job that keeps `client`'s token fresh: each run
 * refreshes it when it would fall due before the next run (see
 * {@linkcode refreshIfDue}), and a failed run is retried after 1, 5, 15 and
 * 60 s. The handler and the job then share one configuration, in code. With
 * KV, the job refreshes the token every isolate reads. There is one job for
 * each place a token lives: calling it again for the same client, or for
 * another client with the same KV identity on the same `Deno.Kv` under the
 * same `kvPrefix`, registers nothing more, while the same credentials on
 * another store or under another prefix get a job of their own (as does
 * each client without KV). Call it at the top level of your entry module, as
 * Deno Deploy registers cron jobs when it loads the module; outside Deploy
 * it needs `--unstable-cron`.
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
  if (name !== undefined && (typeof name !== "string" || name.trim() === "")) {
    return Promise.reject(configError("name must be a non-empty string"));
  }
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
  const registration = (async () => {
    const place = await (client as unknown as Record<symbol, () => Promise<KvPlace | undefined>>)
      [KV_PLACE]();
    if (place === undefined) {
      return await register(client, name ?? jobName("in memory"), schedule);
    }
    let jobs = byStore.get(place.kv);
    if (jobs === undefined) byStore.set(place.kv, jobs = new Map());
    const key = placeKey(place);
    const shared = jobs.get(key);
    if (shared !== undefined) return await shared;
    const job = register(client, name ?? jobName(place.id.slice(0, 16)), schedule);
    jobs.set(key, job);
    return await job;
  })();
  byClient.set(client, registration);
  return registration;
}

async function register(client: TokenClient, name: string, schedule: string): Promise<void> {
  const ahead = aheadSeconds(schedule);
  try {
    // The returned promise settles when the job is closed, never for a running app.
    Deno.cron(
      name,
      schedule,
      { backoffSchedule: BACKOFF_SCHEDULE },
      () => refreshRun([client], ahead),
    )
      .catch(() => {});
  } catch (error) {
    throw configError(
      `Deno.cron refused the job ${JSON.stringify(name)} (${(error as Error).name}): ` +
        "check the schedule, and that the name is not taken",
    );
  }
  await Promise.resolve();
}

/**
 * A job name from `stem` (within Deno.cron's 64 characters of letters,
 * digits, spaces, `-` and `_`): the first job of a stem takes it as it is,
 * the next ones are numbered in the order they are registered, so that
 * names stay the same from one start to the next.
 */
function jobName(stem: string): string {
  const count = (named.get(stem) ?? 0) + 1;
  named.set(stem, count);
  return `freshtoken refresh ${stem}${count === 1 ? "" : ` ${count}`}`;
}

/** The key prefix and KV id of `place` as one string, each key part with its type. */
function placeKey({ prefix, id }: KvPlace): string {
  const parts = prefix.map((part) =>
    part instanceof Uint8Array ? ["bytes", part.join(",")] : [typeof part, String(part)]
  );
  return JSON.stringify([parts, id]);
}
