// What every benchmarked way to get a token has in common.

export const CLIENT_ID = "bench-client";
export const CLIENT_SECRET = "bench-secret";

/** One way to get a client-credentials token: `get()` returns an access token. */
export interface Getter {
  get(): Promise<string>;
}
