// The refresh job of deno/cron.ts and registerRefreshCron (docs/DESIGN.md,
// "The cron job"): one run refreshes every client that is due before the
// next run, logs one line per client (its client id and token endpoint's
// origin, never a secret), and throws when one failed so that Deno.cron
// retries it.

import { cronPeriodSeconds } from "./_cron_period.ts";
import { DESCRIBE } from "./_internal.ts";
import { refreshIfDue } from "./refresh_if_due.ts";
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

/** One run of a job over `clients`. */
export async function refreshRun(
  clients: readonly TokenClient[],
  ahead: number,
): Promise<void> {
  const results = await Promise.all(
    clients.map((client) => refreshIfDue(client, { aheadSeconds: ahead })),
  );
  const lines = results.map((result, i) => {
    const client = clients[i];
    const name = (client as unknown as Record<symbol, () => string>)[DESCRIBE]();
    const why = result === "failed" ? ` (${client.status().lastError?.code ?? "unknown"})` : "";
    return `freshtoken cron: ${name}: ${result}${why}`;
  });
  console.log(lines.join("\n"));
  if (results.includes("failed")) {
    throw new Error("freshtoken cron: a token refresh failed; Deno.cron retries it");
  }
}
