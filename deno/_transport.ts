// The HTTP mechanics of one token request (SPEC §4), done where the host
// does them natively: the wasm core builds the request, calls `send` and
// reads the answer; `send` does the I/O with the host's `fetch`.

/** An HTTP answer, read in full. `body` is `null` when it is not UTF-8 text. */
export interface Answer {
  status: number;
  retryAfter: string | null;
  body: string | null;
}

/** Why a request got no usable answer; `send` rejects with one of these. */
export type Failure = "timeout" | "network" | "too_large" | "not_a_response";

/** Sends one token request; the core calls it once per attempt. */
export type Send = (
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
) => Promise<Answer>;

/** Token response bodies larger than this are refused unread. */
const MAX_BODY_BYTES = 1 << 20;
/** Timers longer than this fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A {@linkcode Send} over `fetch`: `POST`, redirects never followed (a 3xx
 * is the answer), the whole exchange up to the last body byte within
 * `timeoutMs` (the request is then aborted), and bodies over 1 MiB refused
 * without being buffered.
 */
export function transport(fetch: typeof globalThis.fetch): Send {
  return async (url, headers, body, timeoutMs) => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject("timeout" satisfies Failure);
      }, Math.min(timeoutMs, MAX_TIMER_MS));
    });
    const exchange = async (): Promise<Answer> => {
      let response: unknown;
      try {
        response = await fetch(url, {
          method: "POST",
          headers,
          body,
          redirect: "manual",
          signal: controller.signal,
        });
      } catch {
        throw "network" satisfies Failure;
      }
      if (!(response instanceof Response)) throw "not_a_response" satisfies Failure;
      // Status 0 is an opaque redirect, a browser's answer to `redirect: "manual"`.
      const status = response.status === 0 || response.redirected ? 302 : response.status;
      return {
        status,
        retryAfter: response.headers.get("retry-after"),
        body: await text(response),
      };
    };
    try {
      return await Promise.race([exchange(), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** The body as UTF-8 text (`null` if it is not), at most 1 MiB of it. */
async function text(response: Response): Promise<string | null> {
  const declared = response.headers.get("content-length");
  if (Number(declared) > MAX_BODY_BYTES) {
    await response.body?.cancel().catch(() => {});
    throw "too_large" satisfies Failure;
  }
  let bytes: Uint8Array;
  try {
    // A declared length is enforced by the host's HTTP client: read at once.
    bytes = declared === null ? await capped(response) : await response.bytes();
  } catch (error) {
    throw error === "too_large" ? error : "network" satisfies Failure;
  }
  if (bytes.length > MAX_BODY_BYTES) throw "too_large" satisfies Failure;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** A body of unknown length, chunk by chunk, refused past 1 MiB without buffering the rest. */
async function capped(response: Response): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream.
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw "too_large" satisfies Failure;
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
