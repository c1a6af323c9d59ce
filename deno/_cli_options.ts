// The client the CLI's flags and variables configure: flags first, then the
// variables, value by value, and the library's configuration errors said in
// the CLI's terms (the flag or variable that gave the option).

import {
  baseUrlFrom,
  endpointFromEnv,
  GENESYS_VARIABLES,
  genesysFromEnv,
  keyOptions,
} from "./_env.ts";
import { genesysCloud, regionDomain } from "./genesys.ts";
import { configError, TokenError } from "./token_error.ts";
import type { TokenClientOptions } from "./types.ts";
import { FLAG_BY_NAME, type Invocation, number } from "./_cli_flags.ts";
import { fileCredential, githubOidc } from "./_credential_sources.ts";

/**
 * Client options from flags, then the environment, value by value in the
 * README's order: flags, `FRESHTOKEN_*`, `GENESYS_CLOUD_*`, `GENESYSCLOUD_*`.
 * The Genesys variables' client id and secret go to a Genesys endpoint
 * only. `sources` learns which flag or variable gave each option, for
 * {@linkcode inCliTerms}.
 */
export function clientOptions(
  invocation: Invocation,
  env: (name: string) => string | undefined,
  sources: Map<string, string>,
): TokenClientOptions {
  const flag = (name: string) => invocation.values.get(name);
  /** The first of `names` that is set (a flag, else a variable), noted as the source of `option`. */
  const first = (option: string, names: readonly string[]): string | undefined => {
    for (const name of names) {
      const value = name.startsWith("--") ? flag(name) : env(name);
      if (value === undefined || (!name.startsWith("--") && value.trim() === "")) continue;
      sources.set(option, name);
      // The Genesys variables are read trimmed, as genesysFromEnv reads them.
      return name.startsWith("GENESYS") ? value.trim() : value;
    }
    return undefined;
  };
  /** A client option's flag, else the variable the table names for it. */
  const given = (option: string, name: string) =>
    first(option, [name, ...[FLAG_BY_NAME.get(name)?.env ?? []].flat()]);
  const [genesysRegion] = genesysFromEnv(env); // Both spellings set to different values: an error, always.
  const region = flag("--region");
  const byFlag = ["--token-url", "--issuer"].filter((name) => flag(name) !== undefined);
  if (region !== undefined && byFlag.length > 0) {
    throw configError(`choose one of --region and ${byFlag[0]}`);
  }
  if (byFlag.length > 1) throw configError("choose one of --token-url and --issuer");
  const endpoint = region !== undefined
    ? undefined
    : byFlag.length > 0
    ? { [byFlag[0] === "--token-url" ? "tokenUrl" : "issuer"]: flag(byFlag[0])! }
    : endpointFromEnv(env);
  if (endpoint === undefined && region === undefined && genesysRegion === undefined) {
    throw configError(
      "no client configured: set --token-url (or FRESHTOKEN_TOKEN_URL) or --issuer " +
        "(or FRESHTOKEN_ISSUER), or --region " +
        "(or GENESYS_CLOUD_REGION), with a client id and secret",
    );
  }
  const genesys = endpoint === undefined;
  const [regionNames, idNames, secretNames] = [
    ["--region"],
    ["--client-id", "FRESHTOKEN_CLIENT_ID"],
    ["--client-secret", "FRESHTOKEN_CLIENT_SECRET"],
  ].map((names, i) => [...names, ...(genesys ? GENESYS_VARIABLES[i] : [])]);
  const clientId = first("clientId", idNames);
  if (clientId === undefined) throw configError(`no client id: set ${oneOf(idNames)}`);
  const asked = askedCredential(invocation, env, sources);
  let options: TokenClientOptions;
  if (genesys) {
    if (flag("--private-key") !== undefined) {
      throw configError("--private-key is not for --region: Genesys Cloud takes a client secret");
    }
    if (asked?.clientAssertion !== undefined) {
      throw configError(
        `${
          sources.get("clientAssertion")
        } is not for --region: Genesys Cloud takes a client secret`,
      );
    }
    if (asked !== undefined && flag("--client-secret") === undefined) {
      const region = first("region", regionNames)!;
      const domain = regionDomain(
        region,
        sources.get("region"),
        "--token-url https://login.<domain>/oauth/token",
      );
      // A placeholder the secret file replaces: genesysCloud takes a string.
      return { ...genesysCloud({ domain, clientId, clientSecret: "file" }), ...asked };
    }
    const clientSecret = first("clientSecret", secretNames);
    if (clientSecret === undefined) {
      throw configError(`no client secret: set ${oneOf(secretNames)}`);
    }
    const region = first("region", regionNames)!;
    const domain = regionDomain(
      region,
      sources.get("region"),
      "--token-url https://login.<domain>/oauth/token",
    );
    options = genesysCloud({ domain, clientId, clientSecret });
  } else {
    const [option] = Object.keys(endpoint);
    sources.set(
      option,
      byFlag[0] ?? (option === "issuer" ? "FRESHTOKEN_ISSUER" : "FRESHTOKEN_TOKEN_URL"),
    );
    options = { ...endpoint, clientId };
    const keyFile = flag("--private-key");
    const key = keyFile === undefined
      ? env("FRESHTOKEN_PRIVATE_KEY")?.trim() || undefined
      : readText("--private-key", keyFile);
    const askedSource = asked && sources.get(Object.keys(asked)[0]);
    const askedByFlag = askedSource?.startsWith("--") ?? false;
    const secretFlag = flag("--client-secret");
    // One credential per level: a flag's goes before a variable's.
    const rival = (askedByFlag ? [keyFile && "--private-key", secretFlag && "--client-secret"] : [
      !keyFile && key && "FRESHTOKEN_PRIVATE_KEY",
      !secretFlag && env("FRESHTOKEN_CLIENT_SECRET")?.trim() && "FRESHTOKEN_CLIENT_SECRET",
    ]).find(Boolean);
    if (asked !== undefined && rival) {
      throw configError(`choose one of ${rival} and ${askedSource}`);
    }
    const secret = first("clientSecret", secretNames);
    if (asked !== undefined && (askedByFlag || (!keyFile && !secretFlag))) {
      Object.assign(options, asked);
    } else if (key === undefined) {
      if (secret === undefined) {
        throw configError(
          `no client secret: set ${oneOf(secretNames)}, --client-secret-file, ` +
            "--client-assertion-file or --github-oidc",
        );
      }
      options.clientSecret = secret;
    } else {
      sources.set("privateKey", keyFile ? "--private-key" : "FRESHTOKEN_PRIVATE_KEY");
      if (secret !== undefined) options.clientSecret = secret;
      const certFile = flag("--certificate");
      Object.assign(
        options,
        keyOptions(
          key,
          keyFile ? "--private-key" : "FRESHTOKEN_PRIVATE_KEY",
          given("keyId", "--key-id"),
          certFile === undefined
            ? env("FRESHTOKEN_CERTIFICATE")
            : readText("--certificate", certFile),
        ),
      );
    }
  }
  for (const name of ["--key-id", "--certificate"]) {
    if (flag(name) !== undefined && options.privateKey === undefined) {
      throw configError(`${name} goes with --private-key (or FRESHTOKEN_PRIVATE_KEY)`);
    }
  }
  const scope = given("scope", "--scope");
  if (scope?.trim()) options.scope = scope.trim().split(/\s+/);
  const audience = given("audience", "--audience");
  if (audience) options.audience = audience;
  const method = given("authMethod", "--auth-method");
  if (method) options.authMethod = method as TokenClientOptions["authMethod"];
  const timeout = flag("--timeout");
  if (timeout !== undefined) options.timeoutMs = number("--timeout", timeout, 1, "milliseconds");
  const key = first("encryptionKey", ["FRESHTOKEN_ENCRYPTION_KEY"]);
  if (key) options.encryptionKey = key;
  const baseUrl = given("baseUrl", "--base-url");
  if (baseUrl?.trim()) options.baseUrl = baseUrlFrom(baseUrl, sources.get("baseUrl")!);
  return options;
}

/**
 * The credential asked for at each token request that a flag, else its
 * variable, names (docs/DESIGN.md, "Credentials asked for"): a secret file,
 * an assertion file, or GitHub Actions' OIDC token. Two named at the same
 * level are a `config` error.
 */
function askedCredential(
  invocation: Invocation,
  env: (name: string) => string | undefined,
  sources: Map<string, string>,
): Pick<TokenClientOptions, "clientSecret" | "clientAssertion"> | undefined {
  const kinds = [
    ["--client-secret-file", "clientSecret"],
    ["--client-assertion-file", "clientAssertion"],
    ["--github-oidc", "clientAssertion"],
  ] as const;
  const variable = (name: string) => FLAG_BY_NAME.get(name)!.env!;
  const flagged = kinds.filter(([name]) => invocation.values.has(name));
  const named = flagged.length > 0
    ? flagged.map(([name, option]) => [name, option, invocation.values.get(name)!] as const)
    : kinds.filter(([name]) => env(variable(name))?.trim()).map(([name, option]) =>
      [variable(name), option, env(variable(name))!.trim()] as const
    );
  if (named.length > 1) throw configError(`choose one of ${named[0][0]} and ${named[1][0]}`);
  if (named.length === 0) return undefined;
  const [source, option, value] = named[0];
  sources.set(option, source);
  const make = source.includes("GITHUB_OIDC") || source === "--github-oidc"
    ? githubOidc(value, env)
    : fileCredential(value, source, option === "clientAssertion");
  return { [option]: make };
}

/** `a`, `a or b`, `a, b or c`. */
function oneOf(names: string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/**
 * A configuration error in the CLI's terms: the option it begins with
 * (`tokenUrl must use https:`, `clientSecret has leading or trailing
 * whitespace`) becomes the flag or variable that gave it. Only errors about
 * the options as given go through here, never a server's text.
 */
export function inCliTerms(error: unknown, sources: Map<string, string>): unknown {
  if (!(error instanceof TokenError) || error.code !== "config") return error;
  const text = error.description ?? "";
  const option = text.match(/^[A-Za-z.]+/)?.[0];
  const source = option === undefined ? undefined : sources.get(option);
  return source === undefined ? error : configError(`${source}${text.slice(option!.length)}`);
}

/**
 * A file a flag names, as text. What stops the reading is a `config` error
 * that never shows what was given: key text in place of a file name is an
 * easy mistake, as the variables take the text.
 */
function readText(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError(`${flag} names a file to read: run with --allow-read`);
    }
    const variable = FLAG_BY_NAME.get(flag)?.env; // The variable takes the text itself.
    const keyText = /-----BEGIN |^\s*\{/.test(path);
    throw configError(
      `${flag} takes the name of a readable file, and this is not one (${(error as Error).name})${
        keyText && variable ? `; the key's text itself belongs in ${variable}` : ""
      }`,
    );
  }
}

/** Opens the `--kv` store, saying which flag or path to fix when it cannot. */
export async function openKv(path: string): Promise<Deno.Kv> {
  if (typeof Deno.openKv !== "function") {
    throw configError("--kv needs Deno KV: run with --unstable-kv");
  }
  try {
    return await Deno.openKv(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError(`--kv needs --allow-read and --allow-write`);
    }
    const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    const missing = !/^https?:/i.test(path) &&
      (() => {
        try {
          return !Deno.statSync(folder).isDirectory;
        } catch {
          return true;
        }
      })();
    const why = missing ? "its folder does not exist" : (error as Error).name;
    throw configError(`cannot open the --kv store: ${why}`);
  }
}
