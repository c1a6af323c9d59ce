// Token files kept fresh, for jobs longer than a token (docs/DESIGN.md,
// "Pipelines"): `exec` gives its command a token file and a header file,
// `agent` keeps sink files for the steps of a pipeline. Each file is
// rewritten atomically (a file beside it, then a rename) in the token's
// refresh window, before the token it holds stops being usable, and is
// emptied when no usable token can be had: a reader never finds an expired
// token.

import { filesNext } from "../pkg/freshtoken.js";
import { HELD, type Held, sleep } from "./_internal.ts";
import type { Token } from "./token.ts";
import { TokenError } from "./token_error.ts";
import type { TokenClient } from "./types.ts";

/** Where the token goes: the bare token, and/or one `Authorization: …` line. */
export interface TokenFiles {
  token?: string;
  header?: string;
}

/** What the refresher reports; never the token. */
export type Log = (line: string) => void;

/** Writes `token` (or nothing) to every file, each atomically and readable by its owner alone. */
export async function writeTokenFiles(files: TokenFiles, token: Token | undefined): Promise<void> {
  if (files.token !== undefined) await writeAtomically(files.token, token?.accessToken ?? "");
  if (files.header !== undefined) {
    const line = token === undefined
      ? ""
      : `Authorization: ${token.tokenType} ${token.accessToken}\n`;
    await writeAtomically(files.header, line);
  }
}

/** `text` in `path`, by a file of its own beside it renamed over it: never half written. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temporary, text, { mode: 0o600 });
  try {
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Keeps `files`, which hold the token `client` holds (see
 * {@linkcode writeTokenFiles}), holding each token it refreshes, until
 * `signal` aborts: each refresh happens in the token's refresh window; a
 * failed one is tried again (1 s doubling to a minute, or the server's
 * `Retry-After`), and once the token in the files stops being usable they
 * are emptied until a new one comes. `log` hears of refreshes
 * (`refreshed`) and failures.
 */
export async function keepFresh(
  client: TokenClient,
  files: TokenFiles,
  signal: AbortSignal,
  log: { refreshed?: Log; failed: Log },
): Promise<void> {
  let inFiles: Held | undefined = held(client);
  let failures = 0;
  let emptied = false;
  while (!signal.aborted) {
    // Wake for the refresh, or for the moment the token in the files stops being usable.
    const [sleepMs, refreshAt] = filesNext(
      Date.now(),
      failures,
      inFiles?.refreshAt,
      emptied ? undefined : inFiles?.usableUntil,
    );
    await sleep(sleepMs, signal);
    if (signal.aborted) break;
    if (!emptied && inFiles !== undefined && Date.now() >= inFiles.usableUntil) {
      await writeTokenFiles(files, undefined);
      emptied = true;
      log.failed(
        "the token in the files stopped being usable: they are empty until a new one comes",
      );
    }
    if (Date.now() < refreshAt) continue;
    try {
      const fresh = await client.refresh();
      await writeTokenFiles(files, fresh);
      inFiles = held(client);
      failures = 0;
      emptied = false;
      log.refreshed?.(`token refreshed; it expires ${new Date(fresh.expiresAt).toISOString()}`);
    } catch (error) {
      failures++;
      const message = error instanceof TokenError ? error.message : "unexpected failure";
      const keeps = emptied || inFiles === undefined
        ? "the files are empty"
        : `the files keep the current token until ${new Date(inFiles.usableUntil).toISOString()}`;
      log.failed(`refresh failed: ${message}; ${keeps}`);
    }
  }
}

function held(client: TokenClient): Held | undefined {
  return (client as unknown as Record<symbol, () => Held | undefined>)[HELD]();
}
