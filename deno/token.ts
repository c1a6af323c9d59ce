/**
 * The token value handed to callers, which never shows its secret part
 * when logged.
 *
 * @module
 */

const REDACTED = "[redacted]";

/**
 * An access token. `accessToken` is readable, but `console.log`,
 * `Deno.inspect` and `JSON.stringify` show `[redacted]` in its place.
 *
 * @example
 * ```ts
 * import { Token } from "./token.ts";
 *
 * const token = new Token("abc", "Bearer", Date.now() + 60_000);
 * console.log(token); // Token { accessToken: [redacted], tokenType: "Bearer", ... }
 * const header = `${token.tokenType} ${token.accessToken}`;
 * ```
 */
export class Token {
  readonly #accessToken: string;
  /** Always `"Bearer"`. */
  readonly tokenType: string;
  /** When the server says the token expires, epoch milliseconds. */
  readonly expiresAt: number;
  /** The scope the server granted, when it said. */
  readonly scope?: string;

  /** Wraps a token. */
  constructor(accessToken: string, tokenType: string, expiresAt: number, scope?: string) {
    this.#accessToken = accessToken;
    this.tokenType = tokenType;
    this.expiresAt = expiresAt;
    if (scope !== undefined) this.scope = scope;
  }

  /** The access token itself, for an `Authorization` header. */
  get accessToken(): string {
    return this.#accessToken;
  }

  /** The redacted form that `JSON.stringify` uses. */
  toJSON(): Record<string, unknown> {
    return {
      accessToken: REDACTED,
      tokenType: this.tokenType,
      expiresAt: this.expiresAt,
      scope: this.scope,
    };
  }

  /** The redacted form that `console.log` and `Deno.inspect` print; never throws. */
  [Symbol.for("Deno.customInspect")](): string {
    const scope = this.scope === undefined ? "" : `, scope: ${JSON.stringify(this.scope)}`;
    const date = new Date(this.expiresAt);
    const expires = Number.isNaN(date.getTime()) ? String(this.expiresAt) : date.toISOString();
    return `Token { accessToken: ${REDACTED}, tokenType: "${this.tokenType}", expiresAt: ${expires}${scope} }`;
  }
}
