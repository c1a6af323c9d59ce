/**
 * The one error type of freshtoken.
 *
 * @module
 */

import { errorCodes } from "../pkg/freshtoken.js";
import { observe } from "./_observe.ts";

/** Every code a {@linkcode TokenError} can carry. */
export type TokenErrorCode =
  | "invalid_client"
  | "invalid_scope"
  | "invalid_request"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "access_denied"
  | "rate_limited"
  | "server_error"
  | "network"
  | "timeout"
  | "invalid_response"
  | "config"
  | "aborted"
  | "internal";

/** Optional details of a {@linkcode TokenError}. */
export interface TokenErrorInit {
  /** HTTP status of the token endpoint's answer, when there was one. */
  status?: number;
  /** Whether trying again later can help. Defaults by code. */
  retryable?: boolean;
  /** The server's `error_description` (or Genesys Cloud's `description`). */
  description?: string;
  /** How long the server asked callers to wait, in seconds. */
  retryAfterSeconds?: number;
}

/** The codes retryable by default, as the core defines them; read on first use, off the cold path. */
let retryable: ReadonlySet<string> | undefined;

/**
 * A failed token request, a bad option or an aborted wait. Its message
 * and fields never contain the client secret or a token.
 *
 * @example Telling bad credentials from an outage
 * ```ts
 * import { createTokenClient, TokenError } from "./mod.ts";
 *
 * const client = createTokenClient({
 *   tokenUrl: "http://127.0.0.1:9/oauth/token",
 *   clientId: "id",
 *   clientSecret: "secret",
 *   retry: { maxAttempts: 1 },
 * });
 * try {
 *   await client.getToken();
 * } catch (e) {
 *   if (e instanceof TokenError && e.retryable) console.log("try later:", e.code);
 * }
 * ```
 */
export class TokenError extends Error {
  /** What went wrong. */
  readonly code: TokenErrorCode;
  /** HTTP status of the token endpoint's answer, when there was one. */
  declare readonly status?: number;
  /** Whether trying again later can help. */
  readonly retryable: boolean;
  /** The server's explanation, when it gave one. */
  declare readonly description?: string;
  /** How long the server asked callers to wait, in seconds. */
  declare readonly retryAfterSeconds?: number;

  /** Creates an error; `retryable` defaults from the code. */
  constructor(code: TokenErrorCode, message: string, init: TokenErrorInit = {}) {
    super(message);
    this.name = "TokenError";
    this.code = code;
    this.retryable = init.retryable ??
      (retryable ??= new Set(errorCodes().filter((c) => c.retryable).map((c) => c.code)))
        .has(code);
    if (init.status !== undefined) this.status = init.status;
    if (init.description !== undefined) this.description = init.description;
    if (init.retryAfterSeconds !== undefined) {
      this.retryAfterSeconds = init.retryAfterSeconds;
    }
    observe("error", { ...this, message: this.message, stack: this.stack });
  }

  /**
   * What `JSON.stringify` shows: the message too (an `Error`'s own message
   * is not enumerable), as in `JSON.stringify(client.status())`. Nothing
   * here holds a secret.
   */
  toJSON(): Record<string, unknown> {
    return { ...(this as object), message: this.message };
  }
}

/** A `"config"` error: the options are wrong and nothing was sent. */
export function configError(message: string): TokenError {
  return new TokenError("config", `config: ${message}`, { description: message });
}

/** Turns what the wasm core reports (a plain `CoreError` object) into a {@linkcode TokenError}. */
export function fromCore(error: unknown): TokenError {
  if (error instanceof TokenError) return error;
  const e = (error ?? {}) as Record<string, unknown>;
  if (typeof e.code !== "string") {
    // Not the core's error: the executor's own code threw, a bug in freshtoken.
    return new TokenError("internal", "token acquisition failed unexpectedly");
  }
  return new TokenError(e.code as TokenErrorCode, String(e.message), {
    status: e.status as number | undefined,
    retryable: e.retryable as boolean,
    description: e.description as string | undefined,
    retryAfterSeconds: e.retryAfterSeconds as number | undefined,
  });
}
