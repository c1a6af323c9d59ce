/**
 * Client options from environment variables: exactly what the CLI and
 * `freshtoken/cron` read, so that a handler configured from the environment
 * has the cron job's configuration (and, with `freshtoken/cron`'s `kv`, its
 * store and token).
 *
 * @module
 */

import { optionsFromEnv } from "./_env.ts";
import type { TokenClientOptions } from "./types.ts";

/**
 * Every client the environment configures, in order of precedence: the
 * `FRESHTOKEN_*` one (`FRESHTOKEN_TOKEN_URL` or `FRESHTOKEN_ISSUER`, `FRESHTOKEN_CLIENT_ID`,
 * `FRESHTOKEN_CLIENT_SECRET` or `FRESHTOKEN_PRIVATE_KEY`, and optionally
 * `FRESHTOKEN_SCOPE`, `FRESHTOKEN_AUDIENCE`, `FRESHTOKEN_AUTH_METHOD`,
 * `FRESHTOKEN_KEY_ID`, `FRESHTOKEN_CERTIFICATE`), then the Genesys Cloud one
 * (`GENESYS_CLOUD_REGION`, `GENESYS_CLOUD_CLIENT_ID`,
 * `GENESYS_CLOUD_CLIENT_SECRET`, or the Genesys Cloud Terraform provider's
 * `GENESYSCLOUD_REGION`, `GENESYSCLOUD_OAUTHCLIENT_ID`,
 * `GENESYSCLOUD_OAUTHCLIENT_SECRET`). `FRESHTOKEN_ENCRYPTION_KEY` applies to
 * each. Reads `Deno.env` unless given `env`. A partly set group, or both
 * Genesys spellings set to different values, throws a `TokenError` with code
 * `"config"` naming the variables, never their values.
 *
 * The options name no store: `FRESHTOKEN_KV` is read where a store is
 * opened, by the CLI and by `freshtoken/cron`. A handler that shares the
 * cron module's tokens takes that module's `clients`, or its `kv` for a
 * client of its own, rather than opening a store that may be another.
 *
 * @example Options read from given variables
 * ```ts
 * import { clientOptionsFromEnv, createTokenClient } from "./mod.ts";
 *
 * const [options] = clientOptionsFromEnv({
 *   GENESYS_CLOUD_REGION: "eu_west_1",
 *   GENESYS_CLOUD_CLIENT_ID: "id",
 *   GENESYS_CLOUD_CLIENT_SECRET: "secret",
 * });
 * const client = createTokenClient({ ...options, kv: await Deno.openKv(":memory:") });
 * ```
 */
export function clientOptionsFromEnv(
  env?: Record<string, string | undefined>,
): TokenClientOptions[] {
  return optionsFromEnv(
    env === undefined
      ? (name) => Deno.env.get(name)
      : (name) => Object.hasOwn(env, name) ? env[name] : undefined,
  );
}
