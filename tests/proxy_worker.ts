// Run by tests/proxy_test.ts in a process of its own, with HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY and DENO_CERT set as a corporate network sets them:
// makes every kind of request freshtoken makes, and prints what each got.

import { createTokenClient } from "../deno/mod.ts";

const config = JSON.parse(Deno.env.get("PROXY_WORKER") ?? "{}") as {
  tokenUrl: string;
  issuer: string;
  mtlsTokenUrl: string;
  api: string;
  direct: string;
  cert: string;
  key: string;
};
const results: Record<string, string> = {};
const attempt = async (name: string, run: () => Promise<unknown>) => {
  try {
    results[name] = String(await run());
  } catch (error) {
    results[name] = `${(error as Error).name}: ${(error as Error).message}`;
  }
};
const secret = { clientId: "app", clientSecret: "proxy-canary-secret-1" };

const client = createTokenClient({ tokenUrl: config.tokenUrl, ...secret });
await attempt("token", async () => (await client.getToken()).tokenType);
await attempt("discovery", async () => {
  const discovered = createTokenClient({ issuer: config.issuer, ...secret });
  return (await discovered.getToken()).tokenType;
});
await attempt("mtls", async () => {
  const mtls = createTokenClient({
    tokenUrl: config.mtlsTokenUrl,
    clientId: "app",
    authMethod: "tls_client_auth",
    // No caCerts: the server's CA comes from DENO_CERT, as for the other requests.
    clientCertificate: { cert: config.cert, key: config.key },
  });
  return (await mtls.getToken()).tokenType;
});
await attempt("fetch", async () => (await client.fetch(config.api)).status);
await attempt("direct", async () => (await client.fetch(config.direct)).status);
console.log(JSON.stringify(results));
