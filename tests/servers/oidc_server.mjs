// A real OAuth 2.0 authorization server for the end-to-end tests: the
// OpenID-certified `oidc-provider` package, on 127.0.0.1, with the
// client-credentials grant, introspection (RFC 7662) and revocation (RFC 7009).
//
// Clients come from OIDC_CLIENTS, a JSON array of oidc-provider client
// metadata, each with an optional `ttl` (token lifetime in seconds).
// Prints `{"issuer": ..., "port": ...}` on one line once it listens.
// GET /__stats answers the number of token requests received and tokens issued.

import http from "node:http";
import Provider from "oidc-provider";

const clients = JSON.parse(process.env.OIDC_CLIENTS ?? "[]");
const lifetimes = new Map(clients.map((c) => [c.client_id, c.ttl ?? 600]));

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: clients.map(({ ttl: _ttl, ...metadata }) => ({
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    ...metadata,
  })),
  scopes: ["api:read", "api:write"],
  cookies: { keys: ["freshtoken-test-only"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: () => true },
    revocation: {
      enabled: true,
      allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
    },
  },
  ttl: { ClientCredentials: (_ctx, _token, client) => lifetimes.get(client.clientId) ?? 600 },
});

const stats = { tokenRequests: 0, issued: 0 };
provider.on("client_credentials.saved", () => stats.issued++);

const handle = provider.callback();
server.on("request", (req, res) => {
  if (req.url === "/__stats") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(stats));
    return;
  }
  if (req.method === "POST" && req.url === "/token") stats.tokenRequests++;
  handle(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
