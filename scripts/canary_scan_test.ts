import assert from "node:assert/strict";
import { PRIVATE_KEY, readings } from "./canary_scan.ts";

const found = (line: string) => readings(line).some((t) => t.includes("canary-secret"));

Deno.test("the canary scan sees a secret raw, percent- or form-encoded, and inside base64", () => {
  const secret = "s p:a@c/e+é~x-canary-secret";
  const form = new URLSearchParams({ x: secret }).toString().slice(2);
  const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`my+id:${form}`)));
  for (
    const line of [
      `raw ${secret}`,
      `percent ${encodeURIComponent(secret)}`,
      `lower ${encodeURIComponent(secret).toLowerCase()}`,
      `form ${form}`,
      `header Basic ${basic}`,
      `unpadded ${basic.replace(/=+$/, "")}`,
    ]
  ) {
    assert.ok(found(line), line);
  }
  assert.ok(!found("an ordinary line with base64 aGVsbG8gd29ybGQgZnJvbSB0ZXN0 in it"));
});

Deno.test("the canary scan sees a PEM private key and a private JWK member, even inside JSON or base64", async () => {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const { d: _d, ...publicPart } = jwk;
  const pem =
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
  const key = (line: string) => readings(line).some((t) => PRIVATE_KEY.test(t));
  for (
    const line of [
      pem,
      `"error": ${JSON.stringify(pem)}`,
      JSON.stringify(jwk),
      JSON.stringify({ message: JSON.stringify(jwk) }),
      `base64 ${btoa(JSON.stringify(jwk))}`,
      `-----BEGIN EC PRIVATE KEY-----`,
    ]
  ) {
    assert.ok(key(line), line);
  }
  assert.ok(!key(JSON.stringify(publicPart)));
  assert.ok(!key("-----BEGIN CERTIFICATE-----"));
});

Deno.test("the canary scan reads JSON escapes and any letter case", async () => {
  const { SECRET, TOKEN } = await import("./canary_scan.ts");
  const seen = (line: string, pattern: RegExp) => readings(line).some((t) => pattern.test(t));
  assert.ok(seen(JSON.stringify({ accessToken: 'canary-token-0"q\\x' }), TOKEN));
  assert.ok(seen(`{"t":"canary\\u002dtoken-0ab"}`, TOKEN));
  assert.ok(seen(`echo HARD-CANARY-SECRET%2B%2F`, SECRET));
  assert.ok(seen(`echo ${encodeURIComponent("x-Canary-Secret+/").toLowerCase()}`, SECRET));
  assert.ok(!seen(`{"accessToken":"[redacted]"}`, TOKEN));
});
