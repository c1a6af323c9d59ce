// A client's KV id (docs/DESIGN.md, "Shared state"): one stored token per
// set of request inputs and credential. The core names the inputs
// (Identity: URL, client id, method, scope, audience, resource, extra
// parameters, sorted); this module adds a fingerprint of the credential,
// never the credential: an HMAC keyed by the secret, a public key's RFC 7638
// thumbprint, a certificate's SHA-256 thumbprint. A `clientSecret` function
// is keyed by the secret it gave (`secret`): a new secret is a new entry. A
// `clientAssertion` stands for itself by name only, so that a KV hit calls
// nothing (docs/DESIGN.md, "Credentials asked for"). With an encryption key
// the whole id is keyed by it too, so that a reader of the KV keys cannot
// test guesses of the secret offline.

import { type Identity, pemDer } from "../pkg/freshtoken.js";
import { hex } from "./_cipher.ts";
import type { TokenClientOptions } from "./types.ts";

/** Bumped when what goes into the id changes: old entries are then simply not found. */
const ID_FORMAT = "freshtoken-kv-id-3";

const utf8 = new TextEncoder();

/**
 * The KV id of a client with `identity`, configured with `options`; `key` is
 * the raw encryption key; `secret` what a `clientSecret` function gave (or
 * `undefined` if it gave nothing: an entry no secret names).
 */
export async function kvId(
  identity: Identity,
  options: TokenClientOptions,
  key?: Uint8Array,
  secret?: string,
): Promise<string> {
  const proofs = await credentialProofs(options, secret);
  const named = utf8.encode(JSON.stringify([ID_FORMAT, identity, proofs.public]));
  const digest = proofs.secret === undefined
    ? await crypto.subtle.digest("SHA-256", named)
    : await hmac(utf8.encode(proofs.secret), named);
  return hex(key === undefined ? digest : await hmac(key, new Uint8Array(digest)));
}

/** What stands for the credential: the secret (only ever an HMAC key) and public thumbprints. */
async function credentialProofs(
  options: TokenClientOptions,
  secretGiven?: string,
): Promise<{ secret?: string; public: string[] }> {
  const proofs: string[] = [];
  if (options.clientAssertion !== undefined) proofs.push("client_assertion");
  if (typeof options.clientSecret === "function") {
    if (secretGiven === undefined) proofs.push("secret-unread");
    return { secret: secretGiven, public: proofs };
  }
  const { privateKey, keyId, clientCertificate } = options;
  if (privateKey !== undefined) {
    const thumbprint = await publicKeyThumbprint(privateKey);
    proofs.push(thumbprint !== undefined ? `jwk:${thumbprint}` : `kid:${keyId ?? ""}`);
  }
  if (clientCertificate?.cert !== undefined) {
    proofs.push(`x5t#S256:${await pemThumbprint(clientCertificate.cert)}`);
  }
  return { secret: options.clientSecret, public: proofs };
}

/**
 * The RFC 7638 thumbprint of the public half of a private key given as a JWK
 * or a PKCS#8 PEM (imported for the purpose, its public members exported);
 * `undefined` for a `CryptoKey` that cannot be exported, or anything unreadable.
 */
async function publicKeyThumbprint(key: unknown): Promise<string | undefined> {
  let jwk: JsonWebKey | undefined;
  if (typeof key === "string") jwk = await pemPublicJwk(key);
  else if (key instanceof CryptoKey) {
    if (key.extractable) jwk = await crypto.subtle.exportKey("jwk", key).catch(() => undefined);
  } else if (typeof key === "object" && key !== null) jwk = key as JsonWebKey;
  if (jwk === undefined) return undefined;
  // RFC 7638 §3.2: the required public members, in lexicographic order.
  const members: Record<string, string[]> = {
    RSA: ["e", "kty", "n"],
    EC: ["crv", "kty", "x", "y"],
    OKP: ["crv", "kty", "x"],
  };
  const names = members[jwk.kty ?? ""];
  const record = jwk as Record<string, unknown>;
  if (names === undefined || !names.every((n) => typeof record[n] === "string")) return undefined;
  const canonical = `{${names.map((n) => `${JSON.stringify(n)}:${JSON.stringify(record[n])}`)}}`;
  return hex(await crypto.subtle.digest("SHA-256", utf8.encode(canonical)));
}

/**
 * The key that seals this client's copy of its issuer's metadata in KV: an
 * HMAC key derived from the encryption key, else from the secret, so that
 * another process sharing the KV cannot plant a token endpoint that would
 * receive the credential. `undefined` when the client has neither (a
 * private key or a certificate alone): then no copy is kept.
 */
export async function sealKey(
  options: TokenClientOptions,
  key?: Uint8Array,
): Promise<CryptoKey | undefined> {
  // A secret that rotates cannot seal a copy that outlives it: only the key then.
  const secret = typeof options.clientSecret === "string" ? options.clientSecret : undefined;
  const material = key ?? (secret === undefined ? undefined : utf8.encode(secret));
  if (material === undefined) return undefined;
  const derived = await hmac(material, utf8.encode(SEAL_LABEL));
  return await crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

/** What the seal key is derived for: nothing else uses this label. */
const SEAL_LABEL = "freshtoken-metadata-seal-1";

/** The private key's algorithms WebCrypto can import a PKCS#8 key as, as the signer tries them. */
const PKCS8_ALGORITHMS: (RsaHashedImportParams | EcKeyImportParams | Algorithm)[] = [
  { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  { name: "RSA-PSS", hash: "SHA-256" },
  { name: "ECDSA", namedCurve: "P-256" },
  { name: "Ed25519" },
];

async function pemPublicJwk(pem: string): Promise<JsonWebKey | undefined> {
  const der = pemDer(pem, "PRIVATE KEY") as Uint8Array<ArrayBuffer> | undefined;
  if (der === undefined) return undefined;
  for (const algorithm of PKCS8_ALGORITHMS) {
    try {
      const key = await crypto.subtle.importKey("pkcs8", der, algorithm, true, ["sign"]);
      const { kty, n, e, crv, x, y } = await crypto.subtle.exportKey("jwk", key);
      return { kty, n, e, crv, x, y };
    } catch {
      // Not this algorithm's key.
    }
  }
  return undefined;
}

async function pemThumbprint(pem: string): Promise<string> {
  const der = (pemDer(pem, "CERTIFICATE") ?? utf8.encode(pem)) as Uint8Array<ArrayBuffer>;
  return hex(await crypto.subtle.digest("SHA-256", der));
}

async function hmac(key: Uint8Array, data: Uint8Array): Promise<ArrayBuffer> {
  const imported = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return await crypto.subtle.sign("HMAC", imported, data as Uint8Array<ArrayBuffer>);
}
