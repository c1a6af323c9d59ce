// Client options from environment variables: what the CLI, deno/cron.ts
// and clientOptionsFromEnv (deno/env.ts) read, one reading for all.

import { genesysCloud, regionDomain } from "./genesys.ts";
import { configError } from "./token_error.ts";
import { fileCredential } from "./_credential_sources.ts";
import type { TokenClientOptions } from "./types.ts";

/** Reads one variable; `Deno.env.get` by default. */
export type Env = (name: string) => string | undefined;

/**
 * The Genesys Cloud variables, in both spellings: freshtoken's own
 * (`GENESYS_CLOUD_*`) and the Terraform provider's (`GENESYSCLOUD_*`), so
 * that one set of pipeline secrets serves both. Each value comes from the
 * first spelling set; both set to different values is a `config` error
 * naming the variables, never their values.
 */
export const GENESYS_VARIABLES = [
  ["GENESYS_CLOUD_REGION", "GENESYSCLOUD_REGION"],
  ["GENESYS_CLOUD_CLIENT_ID", "GENESYSCLOUD_OAUTHCLIENT_ID"],
  ["GENESYS_CLOUD_CLIENT_SECRET", "GENESYSCLOUD_OAUTHCLIENT_SECRET"],
] as const;

/** The region, client id and secret from the Genesys variables (each maybe unset). */
export function genesysFromEnv(env: Env): (string | undefined)[] {
  return GENESYS_VARIABLES.map(([ours, terraform]) => {
    const [a, b] = [env(ours)?.trim() || undefined, env(terraform)?.trim() || undefined];
    if (a !== undefined && b !== undefined && a !== b) {
      throw configError(`${ours} and ${terraform} are both set, to different values: unset one`);
    }
    return a ?? b;
  });
}

/**
 * The token endpoint the environment names: `FRESHTOKEN_TOKEN_URL`, or
 * `FRESHTOKEN_ISSUER` (whose metadata names it); both set is a `config` error.
 */
export function endpointFromEnv(
  env: Env,
): { tokenUrl: string } | { issuer: string } | undefined {
  const tokenUrl = env("FRESHTOKEN_TOKEN_URL")?.trim() || undefined;
  const issuer = env("FRESHTOKEN_ISSUER")?.trim() || undefined;
  if (tokenUrl !== undefined && issuer !== undefined) {
    throw configError("FRESHTOKEN_TOKEN_URL and FRESHTOKEN_ISSUER are both set: unset one");
  }
  if (issuer !== undefined) return { issuer };
  return tokenUrl === undefined ? undefined : { tokenUrl };
}

/**
 * Every client the environment configures, in order of precedence:
 * - `FRESHTOKEN_TOKEN_URL` (or `FRESHTOKEN_ISSUER`), `FRESHTOKEN_CLIENT_ID`, and `FRESHTOKEN_CLIENT_SECRET`,
 *   `FRESHTOKEN_CLIENT_SECRET_FILE` (read for every token request), `FRESHTOKEN_CLIENT_ASSERTION_FILE`
 *   (a JWT, read likewise) or `FRESHTOKEN_PRIVATE_KEY` (PEM or JWK text; then `private_key_jwt`,
 *   with `FRESHTOKEN_KEY_ID` and `FRESHTOKEN_CERTIFICATE` if set);
 *   optionally `FRESHTOKEN_SCOPE` (space-separated), `FRESHTOKEN_AUDIENCE`,
 *   `FRESHTOKEN_AUTH_METHOD`;
 * - `GENESYS_CLOUD_REGION`, `GENESYS_CLOUD_CLIENT_ID`, `GENESYS_CLOUD_CLIENT_SECRET`
 *   (or the Terraform provider's `GENESYSCLOUD_REGION`, `GENESYSCLOUD_OAUTHCLIENT_ID`,
 *   `GENESYSCLOUD_OAUTHCLIENT_SECRET`).
 * Without `FRESHTOKEN_TOKEN_URL` or `FRESHTOKEN_ISSUER`, `FRESHTOKEN_CLIENT_ID`
 * and `FRESHTOKEN_CLIENT_SECRET` serve the Genesys client, ahead of its own.
 * `FRESHTOKEN_ENCRYPTION_KEY`, `FRESHTOKEN_BASE_URL` (the API base,
 * `baseUrl`) and `FRESHTOKEN_POOL_SIZE` apply to all; Genesys's
 * `GENESYSCLOUD_TOKEN_POOL_SIZE` to its client, unless
 * `FRESHTOKEN_POOL_SIZE` is set. A partly set group is a
 * `"config"` error naming what is missing.
 */
export function optionsFromEnv(env: Env): TokenClientOptions[] {
  const found: TokenClientOptions[] = [];
  const group = (names: string[], values: (string | undefined)[]) => {
    if (values.every((v) => v === undefined)) return undefined;
    const missing = names.filter((_, i) => values[i] === undefined);
    if (missing.length > 0) throw configError(`set ${missing.join(", ")} too`);
    return values as string[];
  };
  const key = env("FRESHTOKEN_PRIVATE_KEY")?.trim() || undefined;
  const asked = askedFromEnv(env);
  const endpoint = endpointFromEnv(env);
  const [region, genesysId, genesysSecret] = genesysFromEnv(env);
  // Without an endpoint of their own, FRESHTOKEN_CLIENT_ID and _SECRET are the
  // Genesys client's, ahead of its own variables: precedence holds per value.
  const ours = endpoint === undefined && region !== undefined
    ? ["FRESHTOKEN_CLIENT_ID", "FRESHTOKEN_CLIENT_SECRET"].map((n) => env(n)?.trim() || undefined)
    : [];
  const genericNames = [
    "FRESHTOKEN_TOKEN_URL (or FRESHTOKEN_ISSUER)",
    "FRESHTOKEN_CLIENT_ID",
    ...(key === undefined && asked === undefined ? ["FRESHTOKEN_CLIENT_SECRET"] : []),
  ];
  const generic = ours.length > 0 ? undefined : group(genericNames, [
    endpoint && "set",
    ...genericNames.slice(1).map((n) => env(n)?.trim() || undefined),
  ]);
  if (generic && endpoint) {
    const options: TokenClientOptions = { ...endpoint, clientId: generic[1] };
    const secret = env("FRESHTOKEN_CLIENT_SECRET")?.trim();
    if (secret) options.clientSecret = secret;
    if (asked !== undefined) {
      const rival = secret ? "FRESHTOKEN_CLIENT_SECRET" : key && "FRESHTOKEN_PRIVATE_KEY";
      if (rival) throw configError(`set one of ${rival} and ${asked.source}`);
      Object.assign(options, asked.options);
    }
    if (key !== undefined) {
      Object.assign(
        options,
        keyOptions(
          key,
          "FRESHTOKEN_PRIVATE_KEY",
          env("FRESHTOKEN_KEY_ID"),
          env("FRESHTOKEN_CERTIFICATE"),
        ),
      );
    }
    const scope = env("FRESHTOKEN_SCOPE")?.trim();
    if (scope) options.scope = scope.split(/\s+/);
    const audience = env("FRESHTOKEN_AUDIENCE")?.trim();
    if (audience) options.audience = audience;
    const method = env("FRESHTOKEN_AUTH_METHOD")?.trim();
    if (method) options.authMethod = method as TokenClientOptions["authMethod"];
    found.push(options);
  }
  const genesys = group(
    GENESYS_VARIABLES.map(([ours, terraform]) => `${ours} (or ${terraform})`),
    [region, ours[0] ?? genesysId, ours[1] ?? genesysSecret],
  );
  if (genesys) {
    const [region, clientId, clientSecret] = genesys;
    // An unknown region names the variable that holds it, never its value.
    const variable = GENESYS_VARIABLES[0].find((name) => env(name)?.trim()) ?? "region";
    const domain = regionDomain(
      region,
      variable,
      "FRESHTOKEN_TOKEN_URL=https://login.<domain>/oauth/token",
    );
    const poolSize = poolSizeFrom(env, "GENESYSCLOUD_TOKEN_POOL_SIZE");
    const preset = genesysCloud({ domain, clientId, clientSecret });
    found.push(poolSize === undefined ? preset : Object.assign(preset, { poolSize }));
  }
  const encryptionKey = env("FRESHTOKEN_ENCRYPTION_KEY")?.trim();
  // The API base for client.fetch and notifications (a Genesys client's own comes from its region);
  // set in place, so that a preset keeps printing without its secret.
  const baseUrl = baseUrlFrom(env("FRESHTOKEN_BASE_URL"), "FRESHTOKEN_BASE_URL");
  const poolSize = poolSizeFrom(env, "FRESHTOKEN_POOL_SIZE");
  const withKey = encryptionKey ? found.map((o) => ({ ...o, encryptionKey })) : found;
  return withKey.map((o) =>
    Object.assign(o, baseUrl ? { baseUrl } : {}, poolSize === undefined ? {} : { poolSize })
  );
}

/**
 * The API base a variable or flag (`source`) gives: an `https:` origin, or
 * `http:` on a loopback host; the error names `source`, never the value.
 */
export function baseUrlFrom(value: string | undefined, source: string): string | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(`${source} must be a URL such as https://api.mypurecloud.ie`);
  }
  const loopback = ["localhost", "[::1]"].includes(url.hostname) ||
    /^127(\.\d{1,3}){3}$/.test(url.hostname);
  const scheme = url.protocol === "https:" || (url.protocol === "http:" && loopback);
  const origin = url.pathname === "/" && url.search === "" && url.hash === "" &&
    url.username === "" && url.password === "";
  if (!scheme || !origin) {
    throw configError(
      `${source} must be an https: origin such as https://api.mypurecloud.ie (http: only on loopback; no path)`,
    );
  }
  return url.origin;
}

/**
 * A credential read from a file at every token request:
 * `FRESHTOKEN_CLIENT_SECRET_FILE` (a secret that rotates) or
 * `FRESHTOKEN_CLIENT_ASSERTION_FILE` (another identity provider's JWT).
 */
function askedFromEnv(
  env: Env,
): { source: string; options: Partial<TokenClientOptions> } | undefined {
  const secretFile = env("FRESHTOKEN_CLIENT_SECRET_FILE")?.trim() || undefined;
  const assertionFile = env("FRESHTOKEN_CLIENT_ASSERTION_FILE")?.trim() || undefined;
  if (secretFile !== undefined && assertionFile !== undefined) {
    throw configError(
      "set one of FRESHTOKEN_CLIENT_SECRET_FILE and FRESHTOKEN_CLIENT_ASSERTION_FILE",
    );
  }
  if (secretFile !== undefined) {
    const source = "FRESHTOKEN_CLIENT_SECRET_FILE";
    return { source, options: { clientSecret: fileCredential(secretFile, source, false) } };
  }
  if (assertionFile !== undefined) {
    const source = "FRESHTOKEN_CLIENT_ASSERTION_FILE";
    return { source, options: { clientAssertion: fileCredential(assertionFile, source, true) } };
  }
  return undefined;
}

/**
 * `poolSize` from the variable `name`, if set: a whole number from 1 to 50
 * (the core checks the range when the client is made and names `poolSize`);
 * anything else that is not a number is a `config` error naming the variable.
 */
function poolSizeFrom(env: Env, name: string): number | undefined {
  const text = env(name)?.trim();
  if (!text) return undefined;
  if (!/^[0-9]+$/.test(text)) throw configError(`${name} must be a whole number from 1 to 50`);
  return Number(text);
}

/**
 * The options of `private_key_jwt` from the key's text (`source` names
 * where it came from) and, when set, its key id and certificate (PEM).
 */
export function keyOptions(
  key: string,
  source: string,
  keyId: string | undefined,
  certificate: string | undefined,
): Pick<TokenClientOptions, "authMethod" | "privateKey" | "keyId" | "certificate"> {
  return {
    authMethod: "private_key_jwt",
    privateKey: privateKeyFromText(key, source),
    ...(keyId?.trim() ? { keyId: keyId.trim() } : {}),
    ...(certificate?.trim() ? { certificate: unescapeNewlines(certificate.trim()) } : {}),
  };
}

/**
 * A `privateKey` from text: a JWK when it is JSON, else PEM. `source`
 * names where it came from in the error; the text itself is never quoted.
 */
function privateKeyFromText(text: string, source: string): JsonWebKey | string {
  text = text.trim();
  if (!text.startsWith("{")) return unescapeNewlines(text);
  try {
    return JSON.parse(text) as JsonWebKey;
  } catch {
    throw configError(`${source} is neither a PEM key nor a JWK (its JSON does not parse)`);
  }
}

/** PEM kept on one line in a CI variable, with `\n` for each line break. */
function unescapeNewlines(pem: string): string {
  return pem.includes("\\n") && !pem.includes("\n") ? pem.replaceAll("\\n", "\n") : pem;
}
