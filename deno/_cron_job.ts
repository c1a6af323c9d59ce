// The refresh jobs of deno/cron.ts and registerRefreshCron (docs/DESIGN.md,
// "The cron job"): one job for each place a token lives (key prefix and KV
// id), whatever `Deno.Kv` object a client reaches it through. A run
// refreshes every client that is due before the next run, and the same
// place in each further store registered for it; it logs one line per
// client (its client id and token endpoint's origin, never a secret), and
// throws when one failed so that Deno.cron retries it.

import { cronPeriodSeconds } from "./_cron_period.ts";
import { DESCRIBE, KV_PLACE, type KvPlace } from "./_internal.ts";
import { refreshIfDue } from "./refresh_if_due.ts";
import { configError } from "./token_error.ts";
import type { TokenClient } from "./types.ts";

/** Every 5 minutes. */
export const DEFAULT_SCHEDULE = "*/5 * * * *";
/** Retries of a failed run: 1 s, 5 s, 15 s, 60 s. */
export const BACKOFF_SCHEDULE: number[] = [1_000, 5_000, 15_000, 60_000];

/**
 * How far ahead a job on `schedule` refreshes: the longest time to its next
 * run, so that no token falls due between two runs (a schedule it cannot
 * bound refreshes on every run).
 */
export function aheadSeconds(schedule: string): number {
  const period = cronPeriodSeconds(schedule);
  return Number.isFinite(period) ? period : 366 * 86_400;
}

/** A registered job: the clients each run refreshes. */
interface Job {
  /** Held for good: the clients the job was made for (a caller may keep no other reference). */
  readonly clients: readonly TokenClient[];
  /**
   * The same places on further `Deno.Kv` objects. A store is held weakly
   * (one opened per request must not be kept alive); its client lives as
   * long as the store does, through its place's `stores`.
   */
  readonly more: Set<Further>;
}

/** A further store of a place. */
interface Further {
  readonly kv: WeakRef<Deno.Kv>;
  readonly place: Place;
}

/**
 * A place a token lives: its job, and the client registered for it on each
 * `Deno.Kv`, kept while that `Deno.Kv` is reachable (a weak map's value
 * lives as long as its key, whatever the value refers to).
 */
interface Place {
  readonly job: Job;
  readonly stores: WeakMap<Deno.Kv, TokenClient>;
}

/** Each place with a job, by {@linkcode placeOf}. */
const places = new Map<string, Place>();
/** Drops a further store's entry once its `Deno.Kv` is collected. */
const collected = new FinalizationRegistry<{ job: Job; entry: Further }>(
  ({ job, entry }) => job.more.delete(entry),
);

/**
 * Registers the `Deno.cron` job `name` on `schedule` for `clients`, each
 * with its KV place (`undefined` without KV; places already served keep
 * their job, see {@linkcode joinPlace}). Deno's refusal (a name taken, too
 * many jobs) is a `config` error with Deno's own reason, which holds no
 * secret; then nothing is recorded. Returns the job's run.
 */
export function startJob(
  name: string,
  schedule: string,
  clients: readonly TokenClient[],
  keys: readonly (string | undefined)[],
): () => Promise<void> {
  const job: Job = { clients, more: new Set() };
  const ahead = aheadSeconds(schedule);
  const run = () => runJob(job, ahead);
  try {
    // The returned promise settles when the job is closed, never for a running app.
    Deno.cron(name, schedule, { backoffSchedule: BACKOFF_SCHEDULE }, run).catch(() => {});
  } catch (error) {
    throw configError(
      `Deno.cron refused the job ${JSON.stringify(name)}: ${(error as Error).message}`,
    );
  }
  clients.forEach((client, i) => {
    const key = keys[i];
    if (key === undefined || places.has(key)) return;
    const stores = new WeakMap<Deno.Kv, TokenClient>();
    stores.set(kvOf(client), client);
    places.set(key, { job, stores });
  });
  return run;
}

/**
 * Adds `client` to the job of the place `key` if it has one: a client on a
 * `Deno.Kv` the job does not reach yet is refreshed by it from now on (the
 * same store opened twice looks like two, as Deno gives a store no
 * identity). Whether the place had a job.
 */
export function joinPlace(key: string, client: TokenClient): boolean {
  const place = places.get(key);
  if (place === undefined) return false;
  const kv = kvOf(client);
  if (place.stores.has(kv)) return true;
  place.stores.set(kv, client);
  const entry: Further = { kv: new WeakRef(kv), place };
  place.job.more.add(entry);
  collected.register(kv, { job: place.job, entry });
  return true;
}

/**
 * The place `client`'s token lives as one string (its key prefix, each part
 * with its type, and its KV id), or `undefined` without KV.
 */
export async function placeOf(client: TokenClient): Promise<string | undefined> {
  const place = (client as unknown as Record<symbol, () => KvPlace | undefined>)[KV_PLACE]();
  if (place === undefined) return undefined;
  const parts = place.prefix.map((part) =>
    part instanceof Uint8Array ? ["bytes", part.join(",")] : [typeof part, String(part)]
  );
  return JSON.stringify([parts, await place.id]);
}

/** The `Deno.Kv` of a client with KV. */
function kvOf(client: TokenClient): Deno.Kv {
  return (client as unknown as Record<symbol, () => KvPlace>)[KV_PLACE]().kv;
}

/** One run of `job`: its own clients first, then the further stores that are still open. */
async function runJob(job: Job, ahead: number): Promise<void> {
  await refreshRun(job.clients, ahead, await openOnes(job));
}

/**
 * The further clients of `job` whose store is alive and still open; the
 * others are dropped (a closed store would have its client fetch a token
 * of its own on every run).
 */
async function openOnes(job: Job): Promise<TokenClient[]> {
  const entries = [...job.more];
  const clients = entries.map(({ kv, place }) => {
    const store = kv.deref();
    return store && place.stores.get(store);
  });
  const open = await Promise.all(clients.map((c) => c !== undefined && isOpen(kvOf(c))));
  entries.forEach((entry, i) => open[i] || job.more.delete(entry));
  return clients.filter((_, i) => open[i]) as TokenClient[];
}

/** Whether `kv` still answers: a closed one refuses every call as a bad resource. */
async function isOpen(kv: Deno.Kv): Promise<boolean> {
  try {
    await kv.get(["freshtoken"], { consistency: "eventual" });
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.BadResource);
  }
}

/**
 * One run over `clients`, then over `more` (the same places in further
 * stores: their lines say so, and identical ones are counted, not repeated).
 */
export async function refreshRun(
  clients: readonly TokenClient[],
  ahead: number,
  more: readonly TokenClient[] = [],
): Promise<void> {
  const own = await refreshEach(clients, ahead);
  const further = await refreshEach(more, ahead);
  const counts = new Map<string, number>();
  for (const { line } of further) counts.set(line, (counts.get(line) ?? 0) + 1);
  const lines = [
    ...own.map(({ line }) => line),
    ...[...counts].map(([line, n]) =>
      `${line} (${n === 1 ? "another store" : `${n} other stores`})`
    ),
  ];
  console.log(lines.join("\n"));
  if ([...own, ...further].some(({ failed }) => failed)) {
    throw new Error("freshtoken cron: a token refresh failed; Deno.cron retries it");
  }
}

/** Refreshes `clients` at once: a log line each, and whether it failed. */
async function refreshEach(
  clients: readonly TokenClient[],
  ahead: number,
): Promise<{ line: string; failed: boolean }[]> {
  const results = await Promise.all(
    clients.map((client) => refreshIfDue(client, { aheadSeconds: ahead })),
  );
  return results.map((result, i) => {
    const client = clients[i];
    const name = (client as unknown as Record<symbol, () => string>)[DESCRIBE]();
    const failed = result === "failed";
    const why = failed ? ` (${client.status().lastError?.code ?? "unknown"})` : "";
    return { line: `freshtoken cron: ${name}: ${result}${why}`, failed };
  });
}
