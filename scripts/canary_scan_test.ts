import assert from "node:assert/strict";
import { readings } from "./canary_scan.ts";

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
