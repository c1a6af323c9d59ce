// Where the CLI and the environment's clients get a credential that changes
// (docs/DESIGN.md, "Credentials asked for"): a file read again for every
// token request (a Vault Agent sink, a Kubernetes secret volume or projected
// service account token, AWS_WEB_IDENTITY_TOKEN_FILE), and GitHub Actions'
// OIDC token. Each is a function the core asks at each request; what fails
// is said on stderr by name and cause, never with what was read.

import { configError } from "./token_error.ts";

/** How long GitHub's ID token request may take, ms. */
const OIDC_TIMEOUT_MS = 10_000;
/** The largest answer taken from it: an ID token is a few KB. */
const OIDC_MAX_BYTES = 64 * 1024;

/**
 * A function that reads `path` afresh at each call: a secret without the
 * one line end a secrets file ends with, or (`trim`) an assertion without
 * surrounding white space. It is read once now, so that a file that cannot
 * be read is a `config` error naming `source` before anything is sent.
 */
export function fileCredential(
  path: string,
  source: string,
  trim: boolean,
): () => Promise<string> {
  try {
    Deno.statSync(path);
    Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError(`${source} names a file to read: run with --allow-read`);
    }
    throw configError(
      `${source} takes the name of a readable file, and this is not one (${(error as Error).name})`,
    );
  }
  return async () => {
    try {
      const text = await Deno.readTextFile(path);
      return trim ? text.trim() : text.replace(/\r?\n$/, "");
    } catch (error) {
      console.error(`freshtoken: cannot read ${source} (${(error as Error).name})`);
      throw new Error("unreadable");
    }
  };
}

/**
 * A function that gets a GitHub Actions OIDC token for `audience` at each
 * call, from `ACTIONS_ID_TOKEN_REQUEST_URL` with the bearer
 * `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (the job needs `permissions: id-token:
 * write`): within 10 s, an answer of 64 KiB at most, its `value` taken.
 */
export function githubOidc(
  audience: string,
  env: (name: string) => string | undefined,
  fetcher: typeof fetch = fetch,
): () => Promise<string> {
  const url = env("ACTIONS_ID_TOKEN_REQUEST_URL")?.trim();
  const bearer = env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?.trim();
  if (!url || !bearer) {
    throw configError(
      "--github-oidc needs ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN: " +
        "give the job `permissions: id-token: write`",
    );
  }
  if (audience.trim() === "") throw configError("--github-oidc needs an audience");
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw configError("ACTIONS_ID_TOKEN_REQUEST_URL is not a valid absolute URL");
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(target.hostname);
  if (target.protocol !== "https:" && !(target.protocol === "http:" && loopback)) {
    throw configError("ACTIONS_ID_TOKEN_REQUEST_URL must use https:");
  }
  target.searchParams.set("audience", audience.trim());
  const fail = (why: string): never => {
    console.error(`freshtoken: --github-oidc: ${why}`);
    throw new Error("no ID token");
  };
  return async () => {
    let response: Response;
    try {
      response = await fetcher(target, {
        headers: { Authorization: `Bearer ${bearer}`, Accept: "application/json" },
        redirect: "manual",
        signal: AbortSignal.timeout(OIDC_TIMEOUT_MS),
      });
    } catch (error) {
      return fail(`the ID token request failed (${(error as Error).name})`);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      return fail(`the ID token request answered ${response.status}`);
    }
    const text = await bounded(response);
    if (text === undefined) return fail(`the ID token answer is over ${OIDC_MAX_BYTES} bytes`);
    let value: unknown;
    try {
      value = (JSON.parse(text) as { value?: unknown })?.value;
    } catch {
      // Said below.
    }
    return typeof value === "string" && value !== ""
      ? value
      : fail("the ID token answer holds no value");
  };
}

/** The body as text, or `undefined` past the cap (the rest is not read). */
async function bounded(response: Response): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > OIDC_MAX_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}
