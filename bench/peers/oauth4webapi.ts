// oauth4webapi with the memoised promise a developer would write around it.
import * as oauth from "oauth4webapi";
import { CLIENT_ID, CLIENT_SECRET, type Getter } from "./common.ts";

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
