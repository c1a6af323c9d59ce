// Genesys Cloud's own JavaScript SDK.
import platformClient from "purecloud-platform-client-v2";
import { CLIENT_ID, CLIENT_SECRET, type Getter } from "./common.ts";

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
