// Behind a proxy (README "Proxies"): every request freshtoken makes goes
// through HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names its host — the
// token request, discovery, the token request of mutual TLS (its own
// Deno.HttpClient) and client.fetch — with the servers' private CA
// trusted through DENO_CERT, by the mutual-TLS client too. A loopback forward proxy records each request
// line; a process of its own makes the requests, with the variables set.

import assert from "node:assert/strict";
import { Openssl } from "./_keys.ts";
import { startForwardProxy } from "./servers/forward_proxy.ts";

const WORKER = new URL("./proxy_worker.ts", import.meta.url).pathname;

Deno.test("token, discovery, mutual TLS and client.fetch requests go through the proxy; NO_PROXY hosts do not", async () => {
  const openssl = new Openssl();
  const tls = await openssl.server();
  const client = await openssl.selfSigned("proxy-mtls-client", "ec");
  const servers: Deno.HttpServer[] = [];
  const serveOn = (secure: boolean, handler: (r: Request, origin: string) => Response) => {
    const options = { hostname: "127.0.0.1", port: 0, onListen: () => {} };
    let origin = "";
    const handle = (r: Request): Response => handler(r, origin);
    const server: Deno.HttpServer<Deno.NetAddr> = secure
      ? Deno.serve({ ...options, cert: tls.server.cert, key: tls.server.key }, handle)
      : Deno.serve(options, handle);
    origin = `${secure ? "https" : "http"}://127.0.0.1:${server.addr.port}`;
    servers.push(server);
    return { origin, port: server.addr.port };
  };
  const token = () =>
    Response.json({ access_token: "canary-token-9a", token_type: "Bearer", expires_in: 3600 });
  const endpoint = (r: Request, origin: string) => {
    const path = new URL(r.url).pathname;
    if (path === "/.well-known/openid-configuration") {
      return Response.json({ issuer: origin, token_endpoint: `${origin}/token` });
    }
    return path === "/token" ? token() : new Response("no", { status: 404 });
  };
  const api = (r: Request) =>
    new Response(null, {
      status: r.headers.get("authorization") === "Bearer canary-token-9a" ? 204 : 401,
    });
  const plain = serveOn(true, endpoint);
  const issuer = serveOn(true, endpoint);
  const mtls = serveOn(true, endpoint);
  const apiServer = serveOn(false, api);
  const direct = serveOn(false, api);
  const proxy = startForwardProxy();
  try {
    const caFile = `${openssl.dir}/ca.pem`;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env", "--allow-read", WORKER],
      env: {
        HTTPS_PROXY: proxy.url,
        HTTP_PROXY: proxy.url,
        NO_PROXY: "localhost",
        DENO_CERT: caFile,
        PROXY_WORKER: JSON.stringify({
          tokenUrl: `${plain.origin}/token`,
          issuer: issuer.origin,
          mtlsTokenUrl: `${mtls.origin}/token`,
          api: `${apiServer.origin}/api`,
          direct: `http://localhost:${direct.port}/api`,
          cert: client.cert,
          key: client.key,
        }),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    assert.equal(output.code, 0, decode(output.stderr));
    const results = JSON.parse(decode(output.stdout));
    assert.deepEqual(results, {
      token: "Bearer",
      discovery: "Bearer",
      mtls: "Bearer",
      fetch: "204",
      direct: "204",
    });
    const seen = proxy.seen;
    for (const port of [plain.port, issuer.port, mtls.port]) {
      assert.ok(seen.includes(`CONNECT 127.0.0.1:${port} HTTP/1.1`), `${port}: ${seen}`);
    }
    assert.ok(seen.includes(`GET ${apiServer.origin}/api HTTP/1.1`), `${seen}`);
    assert.ok(!seen.some((line) => line.includes(`:${direct.port}`)), "NO_PROXY is honoured");
  } finally {
    proxy.close();
    for (const server of servers) await server.shutdown();
    openssl.remove();
  }
});
