/**
 * Genesys Cloud region presets.
 *
 * @module
 */

import { configError } from "./token_error.ts";
import type { TokenClientOptions } from "./types.ts";

/** Genesys Cloud regions and their domains. */
export const GENESYS_CLOUD_REGIONS: Readonly<Record<string, string>> = Object.freeze({
  us_east_1: "mypurecloud.com",
  eu_west_1: "mypurecloud.ie",
  ap_southeast_2: "mypurecloud.com.au",
  ap_northeast_1: "mypurecloud.jp",
  eu_central_1: "mypurecloud.de",
  us_west_2: "usw2.pure.cloud",
  ca_central_1: "cac1.pure.cloud",
  ap_northeast_2: "apne2.pure.cloud",
  eu_west_2: "euw2.pure.cloud",
  ap_south_1: "aps1.pure.cloud",
  us_east_2: "use2.us-gov-pure.cloud",
  sa_east_1: "sae1.pure.cloud",
  me_central_1: "mec1.pure.cloud",
  ap_northeast_3: "apne3.pure.cloud",
  eu_central_2: "euc2.pure.cloud",
  mx_central_1: "mxc1.pure.cloud",
  ap_southeast_1: "apse1.pure.cloud",
});

const DOMAINS = new Set(Object.values(GENESYS_CLOUD_REGIONS));

/** Options of {@linkcode genesysCloud}. */
export interface GenesysCloudOptions {
  /** A region name (`"eu_west_1"` or `"eu-west-1"`) or its domain (`"mypurecloud.ie"`). */
  region: string;
  /** OAuth client id (a client-credentials grant client). */
  clientId: string;
  /** OAuth client secret. */
  clientSecret: string;
}

/**
 * Client options for a Genesys Cloud region: `tokenUrl` is
 * `https://login.<domain>/oauth/token` and `baseUrl` is
 * `https://api.<domain>`. Spread the result and add what you need. It
 * prints (`console.log`, `Deno.inspect`, `JSON.stringify`) without the
 * secret. An unknown region throws a {@linkcode TokenError} with code
 * `"config"`.
 *
 * @example
 * ```ts
 * import { createTokenClient, genesysCloud } from "./mod.ts";
 *
 * const client = createTokenClient({
 *   ...genesysCloud({ region: "eu-west-1", clientId: "id", clientSecret: "secret" }),
 *   timeoutMs: 5000,
 * });
 * ```
 */
export function genesysCloud(options: GenesysCloudOptions): TokenClientOptions {
  const { region, clientId, clientSecret } = options ?? {};
  if (typeof region !== "string") throw configError("region must be a string");
  const name = region.trim().toLowerCase();
  const regionName = name.replaceAll("-", "_");
  const domain = Object.hasOwn(GENESYS_CLOUD_REGIONS, regionName)
    ? GENESYS_CLOUD_REGIONS[regionName]
    : DOMAINS.has(name)
    ? name
    : undefined;
  if (domain === undefined) {
    throw configError(
      `unknown Genesys Cloud region ${JSON.stringify(region)}; use a region name such as ` +
        `"eu_west_1" or a domain such as "mypurecloud.ie"`,
    );
  }
  return withoutSecretWhenPrinted({
    tokenUrl: `https://login.${domain}/oauth/token`,
    baseUrl: `https://api.${domain}`,
    clientId,
    clientSecret,
  });
}

/**
 * Makes `options` print with `clientSecret: "[redacted]"`. The printing
 * hooks are not enumerable, so a spread still copies every option and
 * nothing else.
 */
function withoutSecretWhenPrinted(options: TokenClientOptions): TokenClientOptions {
  const shown = () => ({ ...options, clientSecret: "[redacted]" });
  return Object.defineProperties(options, {
    toJSON: { value: shown },
    [Symbol.for("Deno.customInspect")]: {
      value: (inspect: typeof Deno.inspect, opts: Deno.InspectOptions) => inspect(shown(), opts),
    },
  });
}
