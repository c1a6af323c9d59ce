// freshtoken, as a benchmarked peer.
import { createTokenClient, type TokenClientOptions } from "../../deno/mod.ts";
import { CLIENT_ID, CLIENT_SECRET, type Getter } from "./common.ts";

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
