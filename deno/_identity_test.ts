import assert from "node:assert/strict";
import { Core } from "../pkg/freshtoken.js";
import { kvId } from "./_identity.ts";
import type { TokenClientOptions } from "./types.ts";

const base: TokenClientOptions = {
  tokenUrl: "https://login.example.com/oauth/token",
  clientId: "app",
  clientSecret: "identity-canary-secret-1",
};

/** The id a client with `options` stores its token under. */
function idOf(options: TokenClientOptions, key?: Uint8Array): Promise<string> {
  const core = new Core(options as unknown as Record<string, unknown>);
  return kvId(core.identity, options, key);
}

Deno.test("the KV id covers every request input, in any order, and never holds the secret", async () => {
  const id = await idOf({ ...base, scope: "b a", extraParams: { organization: "org_A", x: "1" } });
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(
    await idOf({ ...base, scope: ["a", "b"], extraParams: { x: "1", organization: "org_A" } }),
    id,
  );
  const others: TokenClientOptions[] = [
    { ...base, scope: "a b", extraParams: { organization: "org_B", x: "1" } },
    { ...base, scope: "a b", extraParams: { organization: "org_A", x: "1" }, audience: "api" },
    {
      ...base,
      scope: "a b",
      extraParams: { organization: "org_A", x: "1" },
      authMethod: "client_secret_post",
    },
    { ...base, scope: "a b", extraParams: { organization: "org_A", x: "1" }, resource: "r" },
    {
      ...base,
      scope: "a b",
      extraParams: { organization: "org_A", x: "1" },
      clientSecret: "identity-canary-secret-2",
    },
  ];
  for (const other of others) assert.notEqual(await idOf(other), id, JSON.stringify(other));
  assert.ok(!id.includes("canary"));
});

Deno.test("with an encryption key the id is keyed by it too", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const plain = await idOf(base);
  const keyed = await idOf(base, key);
  assert.notEqual(keyed, plain);
  assert.equal(await idOf(base, key), keyed);
  assert.notEqual(await idOf(base, crypto.getRandomValues(new Uint8Array(32))), keyed);
});

Deno.test("private_key_jwt: the public key's thumbprint, the same for its JWK and its PEM", async () => {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const pem = `-----BEGIN PRIVATE KEY-----\n${
    btoa(String.fromCharCode(...der))
  }\n-----END PRIVATE KEY-----\n`;
  const keyed = (privateKey: TokenClientOptions["privateKey"], keyId?: string) =>
    idOf({
      tokenUrl: base.tokenUrl,
      clientId: "app",
      authMethod: "private_key_jwt",
      privateKey,
      ...(keyId ? { keyId } : {}),
    });
  const fromJwk = await keyed(jwk);
  assert.equal(await keyed(pem), fromJwk);
  const other = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  assert.notEqual(await keyed(await crypto.subtle.exportKey("jwk", other.privateKey)), fromJwk);
  // A key that cannot be exported is named by its keyId.
  const sealed = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  assert.notEqual(await keyed(sealed, "key-1"), await keyed(sealed, "key-2"));
});
