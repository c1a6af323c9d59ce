/**
 * The refresh step for a scheduled job (docs/DESIGN.md, "The cron job").
 *
 * @module
 */

import { REFRESH_IF_DUE } from "./_internal.ts";
import { configError } from "./token_error.ts";
import type { RefreshIfDueOptions, RefreshResult, TokenClient } from "./types.ts";

/**
 * Refreshes `client`'s token if it is missing, inside its refresh window,
 * or would enter it within `aheadSeconds` (a job passes its own period, so
 * the token never falls due between two runs and request handlers never
 * wait on the token endpoint). With KV, the newest stored token counts,
 * and the refreshed token is written back for every isolate. Resolves to
 * `"fresh"` (nothing to do), `"refreshed"` or `"failed"`; it never rejects
 * for a failed token request.
 *
 * @example Your own `Deno.cron` job, every 5 minutes
 * ```ts
 * import { createTokenClient, genesysCloud, refreshIfDue } from "./mod.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const client = createTokenClient({
 *   ...genesysCloud({ region: "eu_west_1", clientId: "id", clientSecret: "secret" }),
 *   kv,
 * });
 * const job = async () => {
 *   const result = await refreshIfDue(client, { aheadSeconds: 300 });
 *   if (result === "failed") throw new Error("token refresh failed");
 * };
 * // Deno.cron("refresh tokens", "*\/5 * * * *", { backoffSchedule: [1000, 5000] }, job);
 * kv.close();
 * ```
 */
export function refreshIfDue(
  client: TokenClient,
  options: RefreshIfDueOptions = {},
): Promise<RefreshResult> {
  const refresh = (client as unknown as Record<symbol, unknown>)?.[REFRESH_IF_DUE];
  if (typeof refresh !== "function") {
    return Promise.reject(configError("refreshIfDue needs a client made by createTokenClient"));
  }
  const { aheadSeconds = 0 } = options ?? {};
  if (typeof aheadSeconds !== "number" || !(aheadSeconds >= 0) || !Number.isFinite(aheadSeconds)) {
    return Promise.reject(configError("aheadSeconds must be a finite number of at least 0"));
  }
  return refresh.call(client, aheadSeconds * 1000);
}
