/**
 * Genesys Cloud region presets.
 *
 * @module
 */

import { nearName } from "../pkg/freshtoken.js";
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
  eusc_de_east_1: "edee1.eusc-pure.cloud",
});

const DOMAINS = new Set(Object.values(GENESYS_CLOUD_REGIONS));

/** Options of {@linkcode genesysCloud}: exactly one of `region` and `domain`. */
export interface GenesysCloudOptions {
  /**
   * A region name (`"eu_west_1"` or `"eu-west-1"`) or its domain
   * (`"mypurecloud.ie"`), from {@linkcode GENESYS_CLOUD_REGIONS}: a typo is an error.
   */
  region?: string;
  /**
   * Any Genesys Cloud domain, for a region newer than this table or a
   * private gateway: `"mypurecloud.ie"` gives `https://login.mypurecloud.ie`.
   */
  domain?: string;
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
 * secret. An unknown `region` throws a {@linkcode TokenError} with code
 * `"config"`; `domain` takes any host name instead, for new regions and
 * private gateways.
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
 *
 * @example A region newer than this table, or a private gateway
 * ```ts
 * import { genesysCloud } from "./mod.ts";
 *
 * const options = genesysCloud({ domain: "edee1.eusc-pure.cloud", clientId: "id", clientSecret: "secret" });
 * ```
 */
export function genesysCloud(options: GenesysCloudOptions): TokenClientOptions {
  const { region, domain, clientId, clientSecret } = options ?? {};
  if ((region === undefined) === (domain === undefined)) {
    throw configError("genesysCloud needs exactly one of region and domain");
  }
  const host = region !== undefined ? regionDomain(region) : customDomain(domain);
  return withoutSecretWhenPrinted({
    tokenUrl: `https://login.${host}/oauth/token`,
    baseUrl: `https://api.${host}`,
    clientId: clientId!,
    clientSecret: clientSecret!,
  });
}

/**
 * The domain of a known region, given by name or by domain. An unknown one
 * is a `config` error that never shows the value (people swap variables: it
 * may be a secret), naming a region only for a near miss. `name` is where
 * the value came from (the option, or the CLI's flag or variable);
 * `otherwise` says what to give for a region not listed.
 */
export function regionDomain(region: unknown, name = "region", otherwise = "domain:"): string {
  if (typeof region !== "string") throw configError(`${name} must be a string`);
  const given = region.trim().toLowerCase();
  const regionName = given.replaceAll("-", "_");
  const domain = Object.hasOwn(GENESYS_CLOUD_REGIONS, regionName)
    ? GENESYS_CLOUD_REGIONS[regionName]
    : DOMAINS.has(given)
    ? given
    : undefined;
  if (domain === undefined) {
    const known = [...Object.keys(GENESYS_CLOUD_REGIONS), ...DOMAINS];
    const near = nearName(given, known, NEAR_MISS_EDITS);
    throw configError(
      `${name} is not a Genesys Cloud region or domain (its value is not shown)${
        near === undefined ? "" : `; did you mean "${near}"?`
      }; use a region name such as "eu_west_1" or a domain such as "mypurecloud.ie", ` +
        `or ${otherwise} for a region not listed`,
    );
  }
  return domain;
}

/** A region given this many edits (or fewer) from a known one is a near miss. */
const NEAR_MISS_EDITS = 2;

/** A host name of two labels or more; not its login. or api. host. */
function customDomain(domain: unknown): string {
  if (typeof domain !== "string") throw configError("domain must be a string");
  const name = domain.trim().toLowerCase();
  const label = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
  if (!new RegExp(`^${label}(?:\\.${label})+$`).test(name) || name.length > 253) {
    throw configError('domain must be a host name such as "mypurecloud.ie" (no scheme or path)');
  }
  if (/^(login|api)\./.test(name)) {
    throw configError('domain is the part after "login." and "api.", e.g. "mypurecloud.ie"');
  }
  return name;
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
