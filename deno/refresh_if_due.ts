/**
 * The refresh step for a scheduled job (SPEC §6).
 *
 * @module
 */

import { REFRESH_IF_DUE } from "./_internal.ts";
import { configError } from "./token_error.ts";
import type { RefreshResult, TokenClient } from "./types.ts";

/**
 * Refreshes `client`'s token if it is inside its refresh window (or
 * missing), so request handlers never wait on the token endpoint. With KV,
 * the newest stored token counts, and the refreshed token is written back
 * for every isolate. Resolves to `"fresh"` (nothing to do), `"refreshed"`
 * or `"failed"`; it never rejects for a failed token request.
 *
 * @example Your own `Deno.cron` job
 * ```ts
 * import { createTokenClient, genesysCloud, refreshIfDue } from "./mod.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const client = createTokenClient({
 *   ...genesysCloud({ region: "eu_west_1", clientId: "id", clientSecret: "secret" }),
 *   kv,
 * });
 * const job = async () => {
 *   if (await refreshIfDue(client) === "failed") throw new Error("token refresh failed");
 * };
 * // Deno.cron("refresh tokens", "*\/5 * * * *", { backoffSchedule: [1000, 5000] }, job);
 * kv.close();
 * ```
 */
export function refreshIfDue(client: TokenClient): Promise<RefreshResult> {
  const refresh = (client as unknown as Record<symbol, unknown>)?.[REFRESH_IF_DUE];
  if (typeof refresh !== "function") {
    return Promise.reject(configError("refreshIfDue needs a client made by createTokenClient"));
  }
  return refresh.call(client);
}
