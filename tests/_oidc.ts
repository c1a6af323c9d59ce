// Starts tests/servers/oidc_server.mjs (the `oidc-provider` package under
// Node.js) on 127.0.0.1 and talks to its introspection, revocation and
// statistics endpoints.

/** A client registered with the server. */
export interface OidcClient {
  client_id: string;
  client_secret?: string;
  token_endpoint_auth_method?:
    | "client_secret_basic"
    | "client_secret_post"
    | "client_secret_jwt"
    | "private_key_jwt"
    | "self_signed_tls_client_auth";
  /** Public keys of `private_key_jwt`; certificates (`x5c`) of `self_signed_tls_client_auth`. */
  jwks?: { keys: JsonWebKey[] };
  scope?: string;
  /** Token lifetime, seconds. */
  ttl?: number;
}

/** A client authenticating with its secret. */
export type SecretClient = OidcClient & { client_secret: string };

export interface OidcServer {
  issuer: string;
  tokenUrl: string;
  /** With `tls`: the token endpoint over HTTPS, where clients present certificates. */
  tlsTokenUrl?: string;
  /** Token requests received so far (every POST /token, failed ones too). */
  tokenRequests(): Promise<number>;
  /** Metadata requests (`/.well-known/…`) received so far. */
  metadataRequests(): Promise<number>;
  /** RFC 7662 introspection, authenticated as `as`. */
  introspect(token: string, as: OidcClient): Promise<Record<string, unknown>>;
  /** RFC 7009 revocation, authenticated as the token's own client. */
  revoke(token: string, as: OidcClient): Promise<void>;
  close(): Promise<void>;
}

const SERVER = new URL("./servers/oidc_server.mjs", import.meta.url);

/**
 * Starts the server with `clients` registered; with `tls` (the server's
 * certificate and key, PEM) also on HTTPS, asking for client certificates.
 */
export async function startOidcServer(
  clients: OidcClient[],
  tls?: { cert: string; key: string },
): Promise<OidcServer> {
  const env: Record<string, string> = {
    OIDC_CLIENTS: JSON.stringify(clients),
    NODE_NO_WARNINGS: "1",
  };
  if (tls) env.OIDC_TLS = JSON.stringify(tls);
  const child = new Deno.Command("node", {
    args: [SERVER.pathname],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("oidc_server.mjs exited before listening");
    line += value;
  }
  const { issuer, tlsPort } = JSON.parse(line.trim()) as { issuer: string; tlsPort?: number };
  const basic = (c: OidcClient) =>
    "Basic " + btoa(`${encodeForm(c.client_id)}:${encodeForm(c.client_secret ?? "")}`);
  const post = (path: string, as: OidcClient, form: Record<string, string>) =>
    fetch(`${issuer}${path}`, {
      method: "POST",
      headers: { authorization: basic(as), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form),
    });
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    tlsTokenUrl: tlsPort ? `https://127.0.0.1:${tlsPort}/token` : undefined,
    async tokenRequests() {
      const stats = await (await fetch(`${issuer}/__stats`)).json();
      return stats.tokenRequests;
    },
    async metadataRequests() {
      const stats = await (await fetch(`${issuer}/__stats`)).json();
      return stats.metadataRequests;
    },
    async introspect(token, as) {
      const response = await post("/token/introspection", as, { token });
      if (!response.ok) throw new Error(`introspection answered ${response.status}`);
      return await response.json();
    },
    async revoke(token, as) {
      const response = await post("/token/revocation", as, {
        token,
        token_type_hint: "access_token",
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`revocation answered ${response.status}`);
    },
    async close() {
      await reader.cancel();
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** RFC 6749 Appendix B form encoding, independent of the code under test. */
export function encodeForm(text: string): string {
  return new URLSearchParams({ x: text }).toString().slice(2);
}
