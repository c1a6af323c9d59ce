// `agent`: sink files kept fresh until a signal, written only where they
// are the agent's own (a lock file beside each), and `agent --background`,
// the agent as a process of its own that this one waits for until its first
// token is written.

import { addMask, inGitHubActions } from "./_github.ts";
import {
  type FileId,
  fileId,
  fileProblem,
  folderOf,
  isFile,
  keepFresh,
  type TokenFiles,
  writeTokenFiles,
} from "./_token_files.ts";
import { configError, type TokenError } from "./token_error.ts";
import type { Token } from "./token.ts";
import type { TokenClient, TokenClientOptions } from "./types.ts";
import { EXIT, type Invocation } from "./_cli_flags.ts";
import { onSignals } from "./_cli_commands.ts";

/**
 * `agent`: the sink files kept fresh until SIGTERM, SIGINT or SIGHUP, then
 * removed; exit 0. The sinks must be its own to write (see
 * {@linkcode lockSink}), and stay so: each is written and removed only
 * while it is the file the agent wrote last. In GitHub Actions each
 * token's mask goes to stdout before any file gets the token: the agent
 * prints nothing else there, so the runner reads it even when the log
 * (stderr) is sent to a file. Run by {@linkcode background}, it says
 * `ready` on stdout once the first token is written; until then a closed
 * stdout (that process is gone) or a signal stops it with its files
 * removed, and a non-zero exit.
 */
export async function agent(
  client: TokenClient,
  invocation: Invocation,
  io: {
    env: (name: string) => string | undefined;
    out: (text: string) => void;
    err: (text: string) => void;
  },
): Promise<number> {
  const sinks = sinkPaths(invocation);
  const log = (line: string) => io.err(`freshtoken agent: ${line}\n`);
  /** A --background parent reads stdout until it hears ready. */
  let awaited = io.env(READY_VARIABLE) === "1";
  let heard = true;
  /** Writes to stdout; before ready, a parent that is gone throws {@linkcode ParentGone}. */
  const say = (text: string) => {
    if (!heard) return;
    try {
      io.out(text);
    } catch {
      heard = false;
      if (awaited) throw new ParentGone();
      if (inGitHubActions(io.env)) {
        log(
          "stdout is closed: the masks of the tokens this agent gets from now on reach no runner",
        );
      }
    }
  };
  /** The sinks as the agent wrote them last (or took them over): only those are its to change. */
  const own = new Map<string, FileId | "lost">();
  const files: TokenFiles = {
    ...sinks,
    names: { token: "--sink", header: "--header-sink" },
    mask: inGitHubActions(io.env) ? (token) => say(addMask(token.accessToken)) : undefined,
    own,
    lost: (flag) =>
      log(
        `${flag} now holds a file this agent did not write (moved or put there): the agent ` +
          "leaves it alone and writes that path no more",
      ),
  };
  /** The locks this agent took, with their sinks. */
  const locks: { sink: string; file: Deno.FsFile }[] = [];
  const stop = new AbortController();
  let stoppedBy: Deno.Signal | undefined;
  const listening = onSignals(["SIGTERM", "SIGINT", "SIGHUP"], (signal) => {
    stoppedBy ??= signal;
    stop.abort();
  });
  try {
    for (const [flag, path] of [["--sink", sinks.token], ["--header-sink", sinks.header]]) {
      if (path === undefined) continue;
      const { file, leftover } = await lockSink(flag!, path);
      locks.push({ sink: path, file });
      if (leftover !== undefined) own.set(path, leftover);
    }
    let token: Token;
    try {
      token = await client.getToken({ signal: stop.signal });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
      log("stopped before the first token came");
      // Run by --background, no first token is a failure: 128 + the signal's number, as a shell says.
      return awaited ? 128 + SIGNAL_NUMBERS[stoppedBy ?? "SIGTERM"] : EXIT.ok;
    }
    try {
      await writeTokenFiles(files, token);
      log(`token written; it expires ${new Date(token.expiresAt).toISOString()}`);
      if (awaited) say(`${READY}\n`);
    } catch (error) {
      if (!(error instanceof ParentGone)) throw error;
      log(
        "the agent --background process waiting for this agent is gone (its pipe is closed): " +
          "stopped without handing on a token, its files removed",
      );
      return EXIT.failure;
    }
    awaited = false;
    await keepFresh(client, files, stop.signal, { refreshed: log, failed: log });
    log("stopped: the sink files it wrote are removed");
    return EXIT.ok;
  } finally {
    listening();
    for (const lock of locks) await unlockSink(lock.sink, lock.file, own.get(lock.sink));
  }
}

/** The --background parent stopped reading before the agent said ready. */
class ParentGone extends Error {}

/** The numbers of the signals that stop the agent (POSIX). */
const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
};

/** The agent's sink paths, checked. */
export function sinkPaths(invocation: Invocation): { token?: string; header?: string } {
  const sinks = {
    token: invocation.values.get("--sink"),
    header: invocation.values.get("--header-sink"),
  };
  if (sinks.token === undefined && sinks.header === undefined) {
    throw configError("agent needs --sink PATH (and/or --header-sink PATH)");
  }
  if (sinks.token !== undefined && sinks.header !== undefined) {
    if (whereIs(sinks.token) === whereIs(sinks.header)) {
      throw configError("--sink and --header-sink must be two files");
    }
  }
  for (const [flag, path] of [["--sink", sinks.token], ["--header-sink", sinks.header]]) {
    if (path !== undefined && path.trim() === "") throw configError(`${flag} needs a file path`);
  }
  return sinks;
}

/**
 * Where `path` is: its folder's real path (without `.`, `..` or symbolic
 * links) and its name; the path as given when the folder cannot be
 * resolved (the lock then says why).
 */
function whereIs(path: string): string {
  const folder = folderOf(path);
  const name = path.slice(folder.length).replace(/^[/\\]/, "");
  try {
    return `${Deno.realPathSync(folder)}/${name}`;
  } catch {
    return path;
  }
}

/** What a lock file an agent made begins with; its process id follows. */
const LOCK_MARK = "freshtoken agent, pid ";

/**
 * Takes the lock beside a sink (`<sink>.lock`) once the sink is the agent's
 * to write: a path that does not exist yet, or the sink of an agent that
 * died (its lock file is there, an agent's, and no longer held). Anything
 * else is refused: a file that exists, a directory, FIFO, device or
 * symbolic link, a lock file no agent made, or one another running agent
 * holds. A new lock file is made exclusively (never through a symbolic
 * link); the lock is an advisory file lock, which the system lets go of
 * when its process ends, however it ends. `leftover` is the sink an agent
 * that died left, taken over.
 */
async function lockSink(
  flag: string,
  path: string,
): Promise<{ file: Deno.FsFile; leftover?: FileId }> {
  const lock = `${path}.lock`;
  const sink = await lstat(path, (error) => sinkError(flag, error));
  if (sink !== undefined && !sink.isFile) {
    throw configError(`${flag} ${kindOf(sink)}: the agent writes only files of its own`);
  }
  const existing = await lstat(lock, (error) => lockError(flag, error));
  if (existing === undefined) {
    if (sink !== undefined) {
      throw configError(
        `${flag} names a file that exists: the agent writes only files of its own ` +
          "(name a new path, or remove that file)",
      );
    }
    return { file: await newLock(flag, lock) };
  }
  const file = await leftoverLock(flag, lock, existing);
  return { file, leftover: sink === undefined ? undefined : fileId(sink) };
}

/**
 * What `path` is, or `undefined` when nothing is there; never follows a
 * symbolic link. Any other failure is thrown as `explain` words it.
 */
async function lstat(
  path: string,
  explain: (error: unknown) => TokenError,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw explain(error);
  }
}

/** A file-system error about a sink or its lock file: names it (`subject`) and says why. */
function sinkError(subject: string, error: unknown): TokenError {
  if (error instanceof Deno.errors.NotCapable) {
    return configError("agent writes its sink files: run with --allow-read and --allow-write");
  }
  return configError(`${subject} cannot be used: ${fileProblem(error)}`);
}

/**
 * A file-system error about a sink's lock file: a missing folder is the
 * sink's; a name too long is the sink's name with `.lock` added.
 */
function lockError(flag: string, error: unknown): TokenError {
  const code = (error as { code?: unknown })?.code;
  if (error instanceof Deno.errors.NotFound || code === "ENOTDIR") return sinkError(flag, error);
  if (code === "ENAMETOOLONG") {
    return configError(
      `${flag} cannot be used: its lock file's name, with .lock added, is too long for the ` +
        "file system",
    );
  }
  return sinkError(`${flag}'s lock file`, error);
}

/** What a path that is not a regular file is, in words. */
function kindOf(info: Deno.FileInfo): string {
  if (info.isSymlink) return "is a symbolic link";
  if (info.isDirectory) return "is a directory";
  if (info.isFifo) return "is a FIFO, not a regular file";
  if (info.isCharDevice || info.isBlockDevice) return "is a device, not a regular file";
  if (info.isSocket) return "is a socket, not a regular file";
  return "is not a regular file";
}

/** A new lock file, made exclusively, locked, then marked as an agent's. */
async function newLock(flag: string, lock: string): Promise<Deno.FsFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lock, { read: true, write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw configError(`${flag}'s lock file appeared while this agent started: another holds it`);
    }
    throw lockError(flag, error);
  }
  if (!await locked(file)) {
    file.close();
    throw configError(`${flag} is held by another running agent (see its .lock file)`);
  }
  await mark(file);
  return file;
}

/**
 * The lock file that is there already: taken over when it is an agent's
 * that died. The file opened must be the one looked at, so a symbolic link
 * swapped in meanwhile is refused.
 */
async function leftoverLock(flag: string, lock: string, seen: Deno.FileInfo): Promise<Deno.FsFile> {
  if (!seen.isFile) {
    throw configError(
      `${flag}'s lock file ${kindOf(seen)}: the agent writes only files of its own`,
    );
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lock, { read: true, write: true });
  } catch (error) {
    throw lockError(flag, error);
  }
  try {
    const opened = await file.stat();
    if (opened.ino !== seen.ino || opened.dev !== seen.dev) {
      throw configError(`${flag}'s lock file changed while this agent started`);
    }
    if (!await locked(file)) {
      throw configError(`${flag} is held by another running agent (see its .lock file)`);
    }
    const head = new Uint8Array(LOCK_MARK.length);
    const read = await file.read(head);
    if (read !== LOCK_MARK.length || new TextDecoder().decode(head) !== LOCK_MARK) {
      throw configError(
        `${flag}'s lock file (the path with .lock added) exists and no agent made it: ` +
          "the agent writes only files of its own (name a new path, or remove that file)",
      );
    }
    await mark(file); // An agent that died left it: taken over.
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/** Whether the lock on `file` is granted: Deno has no try-lock, so one not granted at once is another agent's. */
async function locked(file: Deno.FsFile): Promise<boolean> {
  return await Promise.race([
    file.lock(true).then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), LOCK_WAIT_MS)),
  ]);
}

/** Writes the agent's mark and process id into its lock file. */
async function mark(file: Deno.FsFile): Promise<void> {
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  await file.write(new TextEncoder().encode(`${LOCK_MARK}${Deno.pid}\n`));
}

/**
 * At the end: removes the sink when it is still the file the agent wrote
 * last, or took over (`own`), and the lock file when it is still the one
 * this agent holds. A file moved there between the look and the removal
 * would go: POSIX has no unlink that checks what it removes.
 */
async function unlockSink(
  sink: string,
  lock: Deno.FsFile,
  own: FileId | "lost" | undefined,
): Promise<void> {
  if (own !== undefined && own !== "lost") {
    if (isFile(await Deno.lstat(sink).catch(() => undefined), own)) {
      await Deno.remove(sink).catch(() => {});
    }
  }
  const path = `${sink}.lock`;
  const [held, there] = await Promise.all([
    lock.stat().catch(() => undefined),
    Deno.lstat(path).catch(() => undefined),
  ]);
  if (held && there?.isFile && held.ino === there.ino && held.dev === there.dev) {
    await Deno.remove(path).catch(() => {});
  }
  lock.close();
}

/** How long a sink's lock may take to be granted before it counts as held. */
const LOCK_WAIT_MS = 250;

/** Set for the agent that {@linkcode background} starts: it says {@linkcode READY} on stdout. */
const READY_VARIABLE = "FRESHTOKEN_AGENT_READY";
const READY = "ready";

/**
 * `agent --background`: the agent as a process of its own, with stdin
 * closed and its own session where the system allows, carrying on once
 * this one returns. This one waits for it on a pipe (its stdout): 0 once
 * it says the first token is written, else its exit code, never 0 (its
 * error is on the stderr they share; a stop by a signal is told here).
 * The masks it registers until then come through to this process's
 * stdout, which the runner of the step reads. A --client-secret goes to
 * it in its environment, not on its command line, which ps shows to all.
 */
export async function background(
  args: string[],
  needs: { hosts: string[]; paths: string[] },
  io: { out: (text: string) => void; err: (text: string) => void },
): Promise<number> {
  const { rest, secret } = withoutSecret(args.filter((arg) => arg !== "--background"));
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(Deno.execPath(), {
      args: [...runtimeArgs(args, needs), ...rest],
      // The flag's value as the variable: the flag would win over it, so the variable now does.
      env: {
        [READY_VARIABLE]: "1",
        ...(secret === undefined ? {} : { [SECRET_VARIABLE]: secret }),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      detached: true,
    } as Deno.CommandOptions).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw configError("agent --background starts the agent as a process: run with --allow-run");
    }
    throw error;
  }
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
  for await (const line of lines) {
    if (line === READY) return EXIT.ok;
    io.out(`${line}\n`);
  }
  const status = await child.status;
  const signal = status.signal ?? signalOf(status.code);
  if (signal !== undefined) {
    io.err(`freshtoken: the agent was stopped (${signal}) before its first token was written\n`);
    return status.code === 0 ? EXIT.failure : status.code;
  }
  if (status.code === 0) {
    io.err("freshtoken: the agent ended before its first token was written\n");
    return EXIT.failure;
  }
  return status.code;
}

/** The variable the agent that {@linkcode background} starts gets --client-secret's value in. */
const SECRET_VARIABLE = "FRESHTOKEN_CLIENT_SECRET";

/** `args` less --client-secret (`--client-secret S` and `--client-secret=S`), and its value. */
function withoutSecret(args: string[]): { rest: string[]; secret?: string } {
  const rest: string[] = [];
  let secret: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--client-secret" && i + 1 < args.length) {
      secret = args[++i];
    } else if (args[i].startsWith("--client-secret=")) {
      secret = args[i].slice("--client-secret=".length);
    } else {
      rest.push(args[i]);
    }
  }
  // A blank value hides nothing, and as a variable it would count as unset.
  return secret?.trim() ? { rest, secret } : { rest: args };
}

/** The signal an exit code of 128 + its number stands for, among those that stop the agent. */
function signalOf(code: number): string | undefined {
  return Object.entries(SIGNAL_NUMBERS).find(([, n]) => 128 + n === code)?.[0];
}

/** Splits text into lines. */
function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest);
    },
  });
}

/**
 * The runtime's arguments that start this program again as it was started:
 * its command line less `args`, where the system shows it (Linux, with
 * --allow-all); none for a `deno compile`d program, whose permissions are
 * built in; else `run` with each permission granted in full, and for net,
 * read and write granted in part, the hosts and paths the agent uses that
 * are granted.
 */
function runtimeArgs(args: string[], needs: { hosts: string[]; paths: string[] }): string[] {
  try {
    const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
    const head = argv.length - args.length;
    if (head >= 1 && args.every((arg, i) => argv[head + i] === arg)) return argv.slice(1, head);
  } catch {
    // Not Linux, or not allowed to read it.
  }
  if (Deno.mainModule.includes("/deno-compile-")) return []; // Where `deno compile` unpacks it.
  const granted = (descriptor: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(descriptor).state === "granted";
  const flags = ["run", "--no-prompt"];
  if (typeof Deno.openKv === "function") flags.push("--unstable-kv");
  for (const name of ["env", "sys", "net", "read", "write"] as const) {
    if (granted({ name })) {
      flags.push(`--allow-${name}`);
      continue;
    }
    const some = name === "net"
      ? needs.hosts.filter((host) => granted({ name, host }))
      : name === "read" || name === "write"
      ? needs.paths.filter((path) => !path.includes(",") && granted({ name, path }))
      : [];
    if (some.length > 0) flags.push(`--allow-${name}=${some.join(",")}`);
  }
  return [...flags, Deno.mainModule];
}

/** The hosts and paths the agent uses: what {@linkcode runtimeArgs} asks for when granted in part. */
export function agentNeeds(
  invocation: Invocation,
  options: TokenClientOptions,
  kvPath: string | undefined,
): { hosts: string[]; paths: string[] } {
  const urls = [options.tokenUrl, options.issuer, kvPath].filter((u): u is string =>
    typeof u === "string" && /^https?:/i.test(u)
  );
  const hosts = urls.map((url) => new URL(url).host);
  const sinks = [invocation.values.get("--sink"), invocation.values.get("--header-sink")];
  const paths = sinks.filter((p): p is string => p !== undefined).map(folderOf);
  if (kvPath && !/^https?:/i.test(kvPath) && kvPath !== ":memory:") paths.push(folderOf(kvPath));
  return { hosts: [...new Set(hosts)], paths: [...new Set(paths)] };
}
