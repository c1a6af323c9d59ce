/**
 * freshtoken: OAuth 2.0 client-credentials tokens that never expire on you.
 *
 * Tokens are fetched on first use, cached, refreshed before they expire
 * (serving the current one meanwhile) and fetched once for all concurrent
 * callers. The secret and the tokens never appear in errors, events or logs.
 *
 * @example Genesys Cloud
 * ```ts
 * import { createTokenClient, genesysCloud } from "./mod.ts";
 *
 * const client = createTokenClient(genesysCloud({
 *   region: "eu_west_1",
 *   clientId: Deno.env.get("GENESYS_CLOUD_CLIENT_ID") ?? "id",
 *   clientSecret: Deno.env.get("GENESYS_CLOUD_CLIENT_SECRET") ?? "secret",
 * }));
 * const me = () => client.fetch("/api/v2/organizations/me");
 * ```
 *
 * @module
 */

export { createTokenClient } from "./client.ts";
export { clientOptionsFromEnv } from "./env.ts";
export { refreshIfDue } from "./refresh_if_due.ts";
export { registerRefreshCron } from "./refresh_cron.ts";
export { GENESYS_CLOUD_REGIONS, genesysCloud } from "./genesys.ts";
export { genesysNotifications } from "./notifications.ts";
export type { NotificationEvent, NotificationOptions } from "./notifications.ts";
export type { GenesysCloudOptions } from "./genesys.ts";
export { TokenError } from "./token_error.ts";
export type { TokenErrorCode, TokenErrorInit } from "./token_error.ts";
export type { Token } from "./token.ts";
export type {
  ClientCertificate,
  GetTokenOptions,
  RefreshCronOptions,
  RefreshIfDueOptions,
  RefreshResult,
  RetryOptions,
  TokenClient,
  TokenClientOptions,
  TokenEvent,
  TokenEventBase,
  TokenStatus,
} from "./types.ts";
