// The ways to get a client-credentials token that the benchmarks compare:
// freshtoken, oauth4webapi with the memoised promise a developer would write
// around it, and Genesys Cloud's own JavaScript SDK. Each is a `get()` that
// returns an access token, with the clock injectable where the library allows.

import * as oauth from "oauth4webapi";
import platformClient from "purecloud-platform-client-v2";
import { createTokenClient, type TokenClientOptions } from "../deno/mod.ts";

export const CLIENT_ID = "bench-client";
export const CLIENT_SECRET = "bench-secret";

export interface Getter {
  get(): Promise<string>;
}

/** freshtoken. */
export function freshtoken(tokenUrl: string, extra: Partial<TokenClientOptions> = {}): Getter {
  const client = createTokenClient({
    tokenUrl,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...extra,
  });
  return { get: async () => (await client.getToken()).accessToken };
}

/**
 * oauth4webapi behind the obvious cache: one promise shared by concurrent
 * callers, replaced when the token has expired.
 */
export function oauth4webapiMemo(tokenUrl: string, now: () => number = Date.now): Getter {
  const as: oauth.AuthorizationServer = {
    issuer: new URL(tokenUrl).origin,
    token_endpoint: tokenUrl,
  };
  const client: oauth.Client = { client_id: CLIENT_ID };
  const auth = oauth.ClientSecretBasic(CLIENT_SECRET);
  let cached: Promise<{ token: string; expiresAt: number }> | undefined;
  const fetchToken = async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      auth,
      new URLSearchParams(),
      {
        [oauth.allowInsecureRequests]: true,
      },
    );
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    return { token: result.access_token, expiresAt: now() + (result.expires_in ?? 3600) * 1000 };
  };
  return {
    async get() {
      let entry = await (cached ??= fetchToken());
      if (now() >= entry.expiresAt) entry = await (cached = fetchToken());
      return entry.token;
    },
  };
}

/**
 * Genesys Cloud's SDK as its documentation shows it: `loginClientCredentialsGrant`
 * when there is no token (or it has expired), then the token it keeps.
 */
export function genesysSdk(baseUrl: string, now: () => number = Date.now): Getter {
  const client = platformClient.ApiClient.instance;
  const { port } = new URL(baseUrl);
  client.setGateway({ host: "127.0.0.1", protocol: "http", port: Number(port) });
  let expiresAt = 0;
  let token = "";
  return {
    async get() {
      if (token === "" || now() >= expiresAt) {
        const data = await client.loginClientCredentialsGrant(CLIENT_ID, CLIENT_SECRET);
        token = data.accessToken;
        expiresAt = now() + (data.tokenExpiryTime - Date.now());
      }
      return token;
    },
  };
}
