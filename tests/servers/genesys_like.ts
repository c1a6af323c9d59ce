/**
 * A loopback server that behaves like Genesys Cloud's login and API hosts,
 * for the tests and the demo:
 *
 * - `POST /oauth/token` takes the client-credentials grant with HTTP Basic
 *   only and a form body only; the lifetime is the server's own setting,
 *   whatever the request asks; past `rateLimit` requests per window it
 *   answers 429 with `Retry-After`. Errors carry `error`, `description`
 *   and `error_description`, as Genesys Cloud's do.
 * - `GET /api/v2/organizations/me` answers 200 for a live token, 401 otherwise.
 *
 * @module
 */

/** Options of {@linkcode startGenesysLike}. */
export interface GenesysLikeOptions {
  /** Client ids and their secrets. */
  clients: Record<string, string>;
  /** Lifetime of every token, seconds. Default 86400 (Genesys' default). */
  lifetimeSeconds?: number;
  /** At most `max` token requests per `windowSeconds`, then 429. */
  rateLimit?: { max: number; windowSeconds: number };
}

/** What the server counted. */
export interface GenesysLikeStats {
  tokenRequests: number;
  tokensIssued: number;
  rateLimited: number;
  apiCalls: number;
  api401: number;
}

/** A running server. */
export interface GenesysLike {
  /** `http://127.0.0.1:PORT/oauth/token` */
  tokenUrl: string;
  /** `http://127.0.0.1:PORT`, the API base. */
  baseUrl: string;
  stats: GenesysLikeStats;
  /** Revokes every token issued so far, as deleting an OAuth client's grants does. */
  revokeAll(): void;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 with a free port. */
export function startGenesysLike(options: GenesysLikeOptions): GenesysLike {
  const lifetime = options.lifetimeSeconds ?? 86_400;
  const stats: GenesysLikeStats = {
    tokenRequests: 0,
    tokensIssued: 0,
    rateLimited: 0,
    apiCalls: 0,
    api401: 0,
  };
  const live = new Map<string, number>();
  let recent: number[] = [];

  const tokenEndpoint = async (request: Request): Promise<Response> => {
    stats.tokenRequests++;
    const limit = options.rateLimit;
    if (limit) {
      const now = Date.now();
      recent = recent.filter((t) => now - t < limit.windowSeconds * 1000);
      if (recent.length >= limit.max) {
        stats.rateLimited++;
        const wait = Math.ceil((recent[0] + limit.windowSeconds * 1000 - now) / 1000);
        return Response.json(
          {
            message: "Rate limit exceeded the maximum. Retry the request in a few seconds.",
            status: 429,
          },
          { status: 429, headers: { "Retry-After": String(Math.max(1, wait)) } },
        );
      }
      recent.push(now);
    }
    const type = request.headers.get("content-type") ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) {
      return oauthError(
        400,
        "invalid_request",
        "Content-Type must be application/x-www-form-urlencoded",
      );
    }
    const form = new URLSearchParams(await request.text());
    if (form.get("grant_type") !== "client_credentials") {
      return oauthError(400, "unsupported_grant_type", "grant type not supported");
    }
    const credentials = basicCredentials(request.headers.get("authorization"));
    if (credentials === undefined) {
      return oauthError(401, "invalid_client", "client credentials must be sent with HTTP Basic");
    }
    const [id, secret] = credentials;
    if (!Object.hasOwn(options.clients, id)) {
      return oauthError(400, "invalid_client", "client not found");
    }
    if (options.clients[id] !== secret) {
      return oauthError(401, "invalid_client", "authentication failed");
    }
    // A recognisable prefix lets the test command scan all output for leaked tokens.
    const token = `canary-token-${crypto.randomUUID().replaceAll("-", "")}`;
    live.set(token, Date.now() + lifetime * 1000);
    stats.tokensIssued++;
    return Response.json({ access_token: token, token_type: "bearer", expires_in: lifetime });
  };

  const api = (request: Request): Response => {
    stats.apiCalls++;
    const token = request.headers.get("authorization")?.match(/^bearer (\S+)$/i)?.[1];
    const expiresAt = token === undefined ? undefined : live.get(token);
    if (expiresAt === undefined || expiresAt <= Date.now()) {
      stats.api401++;
      return Response.json(
        { message: "Authentication failed.", code: "authentication.required", status: 401 },
        { status: 401 },
      );
    }
    return Response.json({ id: "0f9bd2d1-1c2f-4a54-8bd4-0a1e3f6c9d11", name: "Loopback Org" });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { pathname } = new URL(request.url);
    if (request.method === "POST" && pathname === "/oauth/token") return tokenEndpoint(request);
    if (request.method === "GET" && pathname === "/api/v2/organizations/me") return api(request);
    return Response.json({ message: "not found", status: 404 }, { status: 404 });
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    tokenUrl: `${origin}/oauth/token`,
    baseUrl: origin,
    stats,
    revokeAll: () => live.clear(),
    close: () => server.shutdown(),
  };
}

function oauthError(status: number, error: string, description: string): Response {
  return Response.json({ error, description, error_description: description }, { status });
}

/** Reads `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1). */
function basicCredentials(header: string | null): [string, string] | undefined {
  const encoded = header?.match(/^basic ([A-Za-z0-9+/=]+)$/i)?.[1];
  if (encoded === undefined) return undefined;
  try {
    const pair = new TextDecoder().decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
    const colon = pair.indexOf(":");
    if (colon < 0) return undefined;
    const decode = (s: string) => decodeURIComponent(s.replaceAll("+", " "));
    return [decode(pair.slice(0, colon)), decode(pair.slice(colon + 1))];
  } catch {
    return undefined;
  }
}
