// Token files kept fresh, for jobs longer than a token (docs/DESIGN.md,
// "Pipelines"): `exec` gives its command a token file and a header file,
// `agent` keeps sink files for the steps of a pipeline. Each file is
// rewritten atomically (a file beside it, then a rename) in the token's
// refresh window, before the token it holds stops being usable, and is
// emptied when no usable token can be had: a reader never finds an expired
// token. The temporary file is made new (never one that exists, never
// through a symbolic link), with a short name of its own, so a long file
// name still fits the file system's limit. The agent's sinks are kept as
// files of its own (see `writeOwn`): the first made only where nothing is,
// each later one only over the file the agent wrote last.

import { FilesKeeper, FilesStep } from "../pkg/freshtoken.js";
import { HELD, type Held, sleep } from "./_internal.ts";
import type { Token } from "./token.ts";
import { configError, TokenError } from "./token_error.ts";
import type { TokenClient } from "./types.ts";

/** Where the token goes: the bare token, and/or one `Authorization: …` line. */
export interface TokenFiles {
  token?: string;
  header?: string;
  /** What errors call each file (a flag); by default "the token file", "the header file". */
  names?: { token?: string; header?: string };
  /**
   * Told of each token before any file gets it, first or refreshed: in
   * GitHub Actions it registers the token's mask (docs/DESIGN.md, "Pipelines").
   */
  mask?: (token: Token) => void;
  /**
   * When given (the agent's sinks): each path is the writer's own file, by
   * path, the one it wrote last, or `lost` once the path held another; see
   * {@linkcode writeOwn}.
   */
  own?: Map<string, FileId | "lost">;
  /** Told, by the file's name (a flag), when a path of `own` is found holding another file. */
  lost?: (name: string) => void;
}

/** A file by its device and inode: the same file, whatever renames it. */
export interface FileId {
  dev: number;
  ino: number;
}

/** The file `info` describes. */
export function fileId(info: Deno.FileInfo): FileId {
  return { dev: info.dev, ino: info.ino ?? -1 };
}

/** Whether `info` (what is at a path now) is the file `id`. */
export function isFile(info: Deno.FileInfo | undefined, id: FileId): boolean {
  return info !== undefined && info.isFile && info.dev === id.dev && info.ino === id.ino;
}

/** What the refresher reports; never the token. */
export type Log = (line: string) => void;

/**
 * Writes `token` (or nothing) to every file, each atomically and readable
 * by its owner alone, after telling `files.mask` of it. A file that cannot
 * be written is a `config` error naming it and saying why.
 */
export async function writeTokenFiles(files: TokenFiles, token: Token | undefined): Promise<void> {
  if (token !== undefined) files.mask?.(token);
  const write = (path: string, text: string, name: string) =>
    files.own === undefined
      ? writeAtomically(path, text, name)
      : writeOwn(files.own, path, text, name, files.lost);
  if (files.token !== undefined) {
    await write(files.token, token?.accessToken ?? "", files.names?.token ?? "the token file");
  }
  if (files.header !== undefined) {
    const line = token === undefined
      ? ""
      : `Authorization: ${token.tokenType} ${token.accessToken}\n`;
    await write(files.header, line, files.names?.header ?? "the header file");
  }
}

/**
 * `text` in `path`, a file of the writer's own, never another's: the first
 * time (no entry in `own`), linked in from a file beside it, which fails
 * when anything is at the path by then; later, renamed over it only while
 * the path still holds the file written last (`own` records each). A path
 * found holding another file is `lost`: left alone, never written again,
 * and `lost` is told. Between that look and the rename another file could
 * still be moved in: POSIX has no rename that checks what it replaces.
 */
async function writeOwn(
  own: Map<string, FileId | "lost">,
  path: string,
  text: string,
  name: string,
  lost?: (name: string) => void,
): Promise<void> {
  const last = own.get(path);
  if (last === "lost") return;
  if (last !== undefined && !isFile(await Deno.lstat(path).catch(() => undefined), last)) {
    own.set(path, "lost");
    lost?.(name);
    return;
  }
  let temporary: string | undefined;
  try {
    temporary = await writeTemporary(folderOf(path), text);
    const id = fileId(await Deno.lstat(temporary));
    if (last === undefined) {
      await Deno.link(temporary, path); // Never over a file that exists.
      await Deno.remove(temporary).catch(() => {});
    } else {
      await Deno.rename(temporary, path);
    }
    temporary = undefined;
    own.set(path, id);
  } catch (error) {
    if (temporary !== undefined) await Deno.remove(temporary).catch(() => {});
    if (error instanceof Deno.errors.AlreadyExists) {
      throw configError(
        `${name} cannot be written: a file appeared at its path after the agent started, ` +
          "and the agent writes only files of its own",
      );
    }
    throw fileError(name, error);
  }
}

/** `text` in `path`, by a file of its own beside it renamed over it: never half written. */
async function writeAtomically(path: string, text: string, name: string): Promise<void> {
  let temporary: string | undefined;
  try {
    temporary = await writeTemporary(folderOf(path), text);
    await Deno.rename(temporary, path);
  } catch (error) {
    if (temporary !== undefined) await Deno.remove(temporary).catch(() => {});
    throw fileError(name, error);
  }
}

/**
 * `text` in a new file in `folder`, readable by its owner alone, with a
 * short random name: made exclusively, so never a file that exists and
 * never through a symbolic link planted under that name.
 */
async function writeTemporary(folder: string, text: string): Promise<string> {
  for (let attempt = 1;; attempt++) {
    const name = Array.from(
      crypto.getRandomValues(new Uint8Array(6)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    const path = `${folder}/.freshtoken-${name}.tmp`;
    try {
      await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
      return path;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        if (attempt < 5) continue;
        throw error;
      }
      await Deno.remove(path).catch(() => {}); // Made, then not written in full.
      throw error;
    }
  }
}

/** The folder a path is in. */
export function folderOf(path: string): string {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return cut < 0 ? "." : cut === 0 ? path.slice(0, 1) : path.slice(0, cut);
}

/** A file-system error as a `config` error naming the file (a flag) and saying why. */
export function fileError(name: string, error: unknown): TokenError {
  if (error instanceof TokenError) return error;
  if (error instanceof Deno.errors.NotCapable) {
    return configError(`${name} cannot be written: run with --allow-read and --allow-write`);
  }
  return configError(`${name} cannot be written: ${fileProblem(error)}`);
}

/** Why the file system refused, in words. */
export function fileProblem(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const reasons: Record<string, string> = {
    ENOENT: "its folder does not exist",
    ENOTDIR: "a part of its path is not a folder",
    EACCES: "the system denies access to it or its folder",
    EPERM: "the system denies access to it or its folder",
    ENAMETOOLONG: "its name is too long for the file system",
    ELOOP: "its path loops through symbolic links",
    EISDIR: "it is a directory",
    EROFS: "its file system is read-only",
    ENOSPC: "its file system is full",
    EDQUOT: "the disk quota is used up",
    EXDEV: "its folder is on another file system",
  };
  if (typeof code === "string" && reasons[code]) return reasons[code];
  if (error instanceof Deno.errors.NotFound) return reasons.ENOENT;
  if (error instanceof Deno.errors.PermissionDenied) return reasons.EACCES;
  if (error instanceof Deno.errors.IsADirectory) return reasons.EISDIR;
  if (error instanceof Deno.errors.NotADirectory) return reasons.ENOTDIR;
  return `the file system refused it${typeof code === "string" ? ` (${code})` : ""}`;
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
  // The core's keeper decides when (src/token_files.rs); this loop writes and sleeps.
  const keeper = new FilesKeeper(Date.now(), ...schedule(client));
  try {
    while (!signal.aborted) {
      const now = Date.now();
      const step = keeper.poll(now);
      if (step === FilesStep.Sleep) {
        await sleep(keeper.waitMs(now), signal);
      } else if (step === FilesStep.Empty) {
        await writeTokenFiles(files, undefined);
        keeper.emptied();
        log.failed(
          "the token in the files stopped being usable: they are empty until a new one comes",
        );
      } else {
        await refreshFiles(client, files, keeper, log);
      }
    }
  } finally {
    keeper.free();
  }
}

/** One refresh of the token in `files`, told to `keeper` and to `log`. */
async function refreshFiles(
  client: TokenClient,
  files: TokenFiles,
  keeper: FilesKeeper,
  log: { refreshed?: Log; failed: Log },
): Promise<void> {
  try {
    const fresh = await client.refresh();
    await writeTokenFiles(files, fresh);
    keeper.refreshed(Date.now(), ...schedule(client));
    log.refreshed?.(`token refreshed; it expires ${new Date(fresh.expiresAt).toISOString()}`);
  } catch (error) {
    keeper.failed(Date.now());
    const message = error instanceof TokenError ? error.message : "unexpected failure";
    const until = keeper.holdsUntil();
    const keeps = until === undefined
      ? "the files are empty"
      : `the files keep the current token until ${new Date(until).toISOString()}`;
    log.failed(`refresh failed: ${message}; ${keeps}`);
  }
}

/** When the token `client` holds is refreshed and until when it is usable, if it holds one. */
function schedule(client: TokenClient): [number | undefined, number | undefined] {
  const held = (client as unknown as Record<symbol, () => Held | undefined>)[HELD]();
  return [held?.refreshAt, held?.usableUntil];
}
