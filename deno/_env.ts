// Client options from environment variables, for deno/cron.ts (and any
// entry point configured the same way).

import { genesysCloud } from "./genesys.ts";
import { configError } from "./token_error.ts";
import type { TokenClientOptions } from "./types.ts";

/** Reads one variable; `Deno.env.get` by default. */
export type Env = (name: string) => string | undefined;

/**
 * One set of options per configured client:
 * - `GENESYS_CLOUD_REGION`, `GENESYS_CLOUD_CLIENT_ID`, `GENESYS_CLOUD_CLIENT_SECRET`;
 * - `FRESHTOKEN_TOKEN_URL`, `FRESHTOKEN_CLIENT_ID`, `FRESHTOKEN_CLIENT_SECRET`,
 *   optionally `FRESHTOKEN_SCOPE` (space-separated), `FRESHTOKEN_AUDIENCE`,
 *   `FRESHTOKEN_AUTH_METHOD`.
 * `FRESHTOKEN_ENCRYPTION_KEY` applies to all. A partly set group is a
 * `"config"` error naming what is missing.
 */
export function optionsFromEnv(env: Env): TokenClientOptions[] {
  const found: TokenClientOptions[] = [];
  const group = (names: string[]) => {
    const values = names.map((n) => env(n)?.trim() || undefined);
    if (values.every((v) => v === undefined)) return undefined;
    const missing = names.filter((_, i) => values[i] === undefined);
    if (missing.length > 0) throw configError(`set ${missing.join(", ")} too`);
    return values as string[];
  };
  const genesys = group([
    "GENESYS_CLOUD_REGION",
    "GENESYS_CLOUD_CLIENT_ID",
    "GENESYS_CLOUD_CLIENT_SECRET",
  ]);
  if (genesys) {
    const [region, clientId, clientSecret] = genesys;
    found.push(genesysCloud({ region, clientId, clientSecret }));
  }
  const generic = group([
    "FRESHTOKEN_TOKEN_URL",
    "FRESHTOKEN_CLIENT_ID",
    "FRESHTOKEN_CLIENT_SECRET",
  ]);
  if (generic) {
    const [tokenUrl, clientId, clientSecret] = generic;
    const options: TokenClientOptions = { tokenUrl, clientId, clientSecret };
    const scope = env("FRESHTOKEN_SCOPE")?.trim();
    if (scope) options.scope = scope.split(/\s+/);
    const audience = env("FRESHTOKEN_AUDIENCE")?.trim();
    if (audience) options.audience = audience;
    const method = env("FRESHTOKEN_AUTH_METHOD")?.trim();
    if (method) options.authMethod = method as TokenClientOptions["authMethod"];
    found.push(options);
  }
  const encryptionKey = env("FRESHTOKEN_ENCRYPTION_KEY")?.trim();
  return encryptionKey ? found.map((o) => ({ ...o, encryptionKey })) : found;
}
