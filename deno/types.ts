/**
 * The public types of freshtoken's client.
 *
 * @module
 */

import type { TokenError, TokenErrorCode } from "./token_error.ts";
import type { Token } from "./token.ts";

/** Retry settings for one token acquisition. */
export interface RetryOptions {
  /** Attempts per acquisition, the first included. Default 4. */
  maxAttempts?: number;
  /** First backoff step in ms, before full jitter. Default 250. */
  baseDelayMs?: number;
  /** Largest backoff step in ms. Default 10000. */
  maxDelayMs?: number;
  /** Bound on one acquisition, waits included, in ms. Default 30000. */
  deadlineMs?: number;
}

/** Options of {@linkcode createTokenClient}. */
export interface TokenClientOptions {
  /**
   * Token endpoint; `https:` only, except `http:` to a loopback host.
   * Give this or `issuer`.
   */
  tokenUrl?: string;
  /**
   * Instead of `tokenUrl`: the authorization server's issuer identifier.
   * Its metadata names the token endpoint (OpenID Connect discovery at
   * `/.well-known/openid-configuration`, then RFC 8414's
   * `/.well-known/oauth-authorization-server`), and its `issuer` must equal
   * this string exactly. The metadata is read at the first token request,
   * through the same timed, capped, redirect-refusing request, and kept for
   * its `Cache-Control` lifetime (5 minutes to 24 hours; 24 hours without
   * one); with `kv` a copy is kept there, sealed by the client's secret or
   * `encryptionKey`. When it lists `token_endpoint_auth_methods_supported`,
   * an `authMethod` it does not list is a `config` error.
   *
   * @example Discovery
   * ```ts
   * import { createTokenClient } from "./mod.ts";
   *
   * const client = createTokenClient({
   *   issuer: "https://auth.example.com",
   *   clientId: "my-client",
   *   clientSecret: Deno.env.get("CLIENT_SECRET") ?? "",
   * });
   * ```
   */
  issuer?: string;
  /** Client identifier. */
  clientId: string;
  /**
   * Client secret; required by every `authMethod` but `"private_key_jwt"`
   * and the mutual-TLS ones, which refuse it.
   * It never appears in errors, events or logs.
   *
   * A function is asked again for every token request (a secret that
   * rotates: a Vault Agent sink, a Kubernetes secret volume); after an
   * `invalid_client` refusal it is asked once more and, if the secret
   * changed, the request is sent again at once. With `kv`, the stored token
   * follows the secret: a new secret is a new entry (so the function is
   * also asked before each acquisition reads KV). For
   * `"client_secret_basic"` and `"client_secret_post"`.
   */
  clientSecret?: string | (() => string | Promise<string>);
  /**
   * A JWT from another identity provider (GitHub Actions' or Deno
   * Deploy's OIDC token, a Kubernetes service account token), sent as the
   * RFC 7523 §2.2 client assertion of every token request: no secret is
   * stored anywhere. Asked for every token request, within `timeoutMs`,
   * and never kept by freshtoken; redacted like a secret. With `kv`, the
   * stored token is found without calling it (use `encryptionKey`: whoever
   * can read the KV and holds the key shares the token).
   */
  clientAssertion?: () => string | Promise<string>;
  /**
   * How the client authenticates (RFC 6749 §2.3, RFC 7523 §2.2). Default
   * `"client_secret_basic"`. The JWT methods sign a fresh assertion for
   * every token request: `"private_key_jwt"` with `privateKey`,
   * `"client_secret_jwt"` with `clientSecret` (HS256, at least 32 bytes).
   * `"tls_client_auth"` and `"self_signed_tls_client_auth"` (RFC 8705 §2)
   * authenticate with `clientCertificate` alone.
   */
  authMethod?:
    | "client_secret_basic"
    | "client_secret_post"
    | "private_key_jwt"
    | "client_secret_jwt"
    | "tls_client_auth"
    | "self_signed_tls_client_auth";
  /**
   * The signing key of `"private_key_jwt"`: a private `CryptoKey` that can
   * sign, a private JWK, or a PKCS#8 PEM string (`BEGIN PRIVATE KEY`).
   * Its shape is checked at creation; WebCrypto imports it, once and
   * non-extractable, at the first token request, where a key it refuses
   * is a `"config"` error.
   */
  privateKey?: CryptoKey | (JsonWebKey & { kid?: string }) | string;
  /** The assertion's `kid` header. Default: the JWK's `kid`, if any. */
  keyId?: string;
  /** `"RS256"`, `"PS256"`, `"ES256"` or `"EdDSA"`. Default: from the key (RS256 for RSA). */
  signingAlgorithm?: "RS256" | "PS256" | "ES256" | "EdDSA" | "HS256";
  /** The assertion's `aud`. Default: the token endpoint; some servers want their issuer identifier. */
  assertionAudience?: string;
  /**
   * The `x5t#S256` header (base64url SHA-256 of the certificate's DER), as
   * Microsoft Entra ID expects with certificate credentials.
   */
  x5tS256?: string;
  /** The certificate (PEM) of `privateKey`: its thumbprint becomes `x5tS256`. */
  certificate?: string;
  /**
   * Mutual TLS (RFC 8705): a client certificate presented to the
   * authorization server only (its token endpoint, and with `issuer` its
   * metadata), never to the APIs `fetch` calls. It authenticates the
   * client with the mutual-TLS `authMethod`s, and may also go with the
   * others (for certificate-bound tokens). Checked at creation.
   */
  clientCertificate?: ClientCertificate;
  /** Scope to request; an array is joined by spaces. */
  scope?: string | string[];
  /** `audience` parameter. */
  audience?: string;
  /** `resource` parameter(s) (RFC 8707). */
  resource?: string | string[];
  /** Further form parameters for the token request. */
  extraParams?: Record<string, string>;
  /**
   * Resolves relative URLs given to {@linkcode TokenClient.fetch}, which
   * then sends the token only to this origin (and `allowedOrigins`).
   */
  baseUrl?: string;
  /** Further origins {@linkcode TokenClient.fetch} may send the token to, with `baseUrl`. */
  allowedOrigins?: string[];
  /** A Deno KV; when given, tokens persist and are shared. */
  kv?: Deno.Kv;
  /** KV key prefix. Default `["freshtoken"]`. */
  kvPrefix?: Deno.KvKey;
  /** Base64 of 32 random bytes; KV values are then AES-256-GCM encrypted. */
  encryptionKey?: string;
  /** The fetch to use. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Clock in epoch ms, for tests. Default `Date.now`. */
  now?: () => number;
  /** Timeout of one token request in ms. Default 10000. */
  timeoutMs?: number;
  /** Retry settings. */
  retry?: RetryOptions;
  /** Refresh this many seconds before expiry instead of the computed window. */
  refreshAheadSeconds?: number;
  /**
   * How many tokens to keep at once, 1 to 50 (default 1): calls are spread
   * over them, for APIs that limit calls per token (Genesys Cloud: 300 a
   * minute per token). Slots fill as calls need them, one at a time.
   */
  poolSize?: number;
  /** Observability hook; never receives the token or the secret. */
  onEvent?: (event: TokenEvent) => void;
}

/** A client certificate for mutual TLS with the token endpoint. */
export interface ClientCertificate {
  /** The certificate, or its chain, in PEM. */
  cert: string;
  /** Its private key in PEM. It never appears in errors, events or logs. */
  key: string;
  /** Further CA certificates (PEM) to trust for the token endpoint, e.g. a private CA's. */
  caCerts?: string[];
}

/** Options of {@linkcode TokenClient.getToken}. */
export interface GetTokenOptions {
  /** The token must stay valid at least this long; otherwise a new one is fetched. */
  minValidSeconds?: number;
  /** Stops waiting (with code `"aborted"`) without cancelling the shared fetch. */
  signal?: AbortSignal;
}

/** What {@linkcode TokenClient.status} reports; never the token or the secret. */
export interface TokenStatus {
  /** Whether a usable token is cached. */
  hasToken: boolean;
  /** Expiry of the cached token, epoch ms. */
  expiresAt?: number;
  /** When the cached token will be refreshed, epoch ms. */
  refreshAt?: number;
  /** The last failure, if the last acquisition failed. */
  lastError?: TokenError;
  /** Token requests made (acquisitions, retries counted once). */
  fetches: number;
  /** Calls answered from the cache. */
  hits: number;
  /** With `poolSize` above 1: how many slots, how many hold a usable token, how many cool after a 429. */
  slots?: { size: number; filled: number; cooling: number };
}

/** A client that keeps one token fresh. Create with {@linkcode createTokenClient}. */
export interface TokenClient {
  /** A usable token: from the cache, or fetched (once for all concurrent callers). */
  getToken(options?: GetTokenOptions): Promise<Token>;
  /** Fetches a new token now (joining a fetch already in flight). */
  refresh(): Promise<Token>;
  /** Forgets the cached token, in memory and in KV. */
  invalidate(): Promise<void>;
  /**
   * `fetch` with `Authorization: <type> <token>`. With `baseUrl`, only to
   * that origin (and `allowedOrigins`): another one is refused with a
   * `config` {@linkcode TokenError}. On a 401 it fetches a new token and
   * sends once more, when the body can be replayed; while 401s go on, at
   * most once per back-off period (1 s doubling to a minute).
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** Cache state and counters. */
  status(): TokenStatus;
}

/** Options of {@linkcode refreshIfDue}. */
export interface RefreshIfDueOptions {
  /**
   * Also refresh a token that would enter its refresh window within this
   * many seconds: a job passes its own period. Default 0.
   */
  aheadSeconds?: number;
}

/**
 * What {@linkcode refreshIfDue} resolves to: `"fresh"` (not due, nothing
 * sent), `"refreshed"` or `"failed"`.
 */
export type RefreshResult = "fresh" | "refreshed" | "failed";

/** Fields every {@linkcode TokenEvent} carries. */
export interface TokenEventBase {
  /** When it happened, epoch ms (from the client's clock). */
  at: number;
  /** With `poolSize` above 1: the slot it happened to. */
  slot?: number;
}

/** What {@linkcode TokenClientOptions.onEvent} receives. */
export type TokenEvent =
  | TokenEventBase & { type: "fetch_start" }
  | TokenEventBase & { type: "fetch_ok"; lifetimeSeconds: number; attempts: number }
  | TokenEventBase & {
    type: "fetch_error";
    code: TokenErrorCode;
    status?: number;
    retryable: boolean;
    attempt: number;
  }
  | TokenEventBase & { type: "retry"; delayMs: number; attempt: number }
  | TokenEventBase & { type: "internal_error"; message: string }
  | TokenEventBase & { type: "cache_hit"; source: "memory" | "kv" }
  | TokenEventBase & { type: "kv_write" }
  | TokenEventBase & { type: "kv_error"; operation: string; message: string }
  | TokenEventBase & { type: "lease_wait" }
  | TokenEventBase & { type: "background_refresh" }
  /** The API answered `client.fetch` with 429: its token cools `coolingMs`; the call waits, moves to another slot of the pool, or returns the 429. */
  | TokenEventBase & {
    type: "rate_limited";
    status: 429;
    coolingMs: number;
    next: "wait" | "return" | "move";
  }
  /** `client.fetch` waits `delayMs` for its token to stop cooling before it sends (again). */
  | TokenEventBase & { type: "api_wait"; delayMs: number };

/** Options of {@linkcode registerRefreshCron}. */
export interface RefreshCronOptions {
  /**
   * The job's name, as Deno Deploy lists it: at most 64 ASCII letters,
   * digits, whitespace, `-` and `_` (Deno.cron's rule), not starting with
   * `freshtoken refresh`. Default: `freshtoken refresh` and a digest of the
   * key prefix and KV id, the same on every start (`in memory` without KV,
   * numbered from 2 on in the order registered).
   */
  name?: string;
  /** A five-field cron schedule. Default `"*\/5 * * * *"`: every 5 minutes. */
  schedule?: string;
}
