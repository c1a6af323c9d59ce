// A real OAuth 2.0 authorization server for the end-to-end tests: the
// OpenID-certified `oidc-provider` package, on 127.0.0.1, with the
// client-credentials grant, introspection (RFC 7662) and revocation (RFC 7009).
//
// Clients come from OIDC_CLIENTS, a JSON array of oidc-provider client
// metadata, each with an optional `ttl` (token lifetime in seconds).
// With OIDC_TLS (`{"cert": PEM, "key": PEM}`) the same endpoints are also
// served over HTTPS, asking for a client certificate: mutual TLS (RFC 8705)
// with self-signed client certificates registered in the client's `jwks`.
// Prints `{"issuer": ..., "port": ..., "tlsPort": ...}` on one line once it listens.
// GET /__stats answers the number of token requests received, tokens issued
// and metadata (/.well-known/…) requests received.

import { X509Certificate } from "node:crypto";
import http from "node:http";
import https from "node:https";
import Provider from "oidc-provider";

const clients = JSON.parse(process.env.OIDC_CLIENTS ?? "[]");
const lifetimes = new Map(clients.map((c) => [c.client_id, c.ttl ?? 600]));

const tls = process.env.OIDC_TLS ? JSON.parse(process.env.OIDC_TLS) : undefined;
const listen = async (server) => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server.address().port;
};
const server = http.createServer();
const port = await listen(server);
const issuer = `http://127.0.0.1:${port}`;
// Any certificate is asked for and accepted by TLS; the provider then
// matches it against the client's registered ones.
const tlsServer = tls &&
  https.createServer({
    cert: tls.cert,
    key: tls.key,
    requestCert: true,
    rejectUnauthorized: false,
  });
const tlsPort = tlsServer && await listen(tlsServer);

const provider = new Provider(issuer, {
  clients: clients.map(({ ttl: _ttl, ...metadata }) => ({
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    ...metadata,
  })),
  scopes: ["api:read", "api:write"],
  clientAuthMethods: [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    ...(tls ? ["self_signed_tls_client_auth"] : []),
  ],
  cookies: { keys: ["freshtoken-test-only"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: tls !== undefined,
      selfSignedTlsClientAuth: true,
      getCertificate(ctx) {
        const peer = ctx.socket.getPeerCertificate?.();
        return peer?.raw ? new X509Certificate(peer.raw) : undefined;
      },
    },
    introspection: { enabled: true, allowedPolicy: () => true },
    revocation: {
      enabled: true,
      allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
    },
  },
  ttl: { ClientCredentials: (_ctx, _token, client) => lifetimes.get(client.clientId) ?? 600 },
});

const stats = { tokenRequests: 0, issued: 0, metadataRequests: 0 };
provider.on("client_credentials.saved", () => stats.issued++);

const handle = provider.callback();
const onRequest = (req, res) => {
  if (req.url === "/__stats") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === "POST" && req.url === "/token") stats.tokenRequests++;
  if (req.url.startsWith("/.well-known/")) stats.metadataRequests++;
  handle(req, res);
};
server.on("request", onRequest);
tlsServer?.on("request", onRequest);

process.stdout.write(`${JSON.stringify({ issuer, port, tlsPort })}\n`);
