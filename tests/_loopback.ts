// Loopback fixtures the tests share: a server and a KV, each for the
// length of one function, and a client's KV id.

import { KV_ID } from "../deno/_internal.ts";
import { TokenError } from "../deno/token_error.ts";

/** What answers a request. */
export type Handler = (request: Request) => Response | Promise<Response>;

/** A loopback HTTP server for the length of `fn`, which gets its origin. */
export async function serve<T>(
  handler: Handler,
  fn: (origin: string) => Promise<T>,
): Promise<T> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    return await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/** An in-memory Deno KV for the length of `fn`. */
export async function withKv<T>(fn: (kv: Deno.Kv) => Promise<T>): Promise<T> {
  const kv = await Deno.openKv(":memory:");
  try {
    return await fn(kv);
  } finally {
    kv.close();
  }
}

/** The KV id of `client`'s token (a `TokenClient` with `kv`). */
export function kvIdOf(client: unknown): Promise<string> {
  return (client as Record<symbol, () => Promise<string>>)[KV_ID]();
}

/** The `TokenError` `promise` rejects with; anything else, or no rejection, fails the test. */
export async function failure(promise: Promise<unknown>): Promise<TokenError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TokenError) return error;
    throw error;
  }
  throw new Error("expected a TokenError");
}
