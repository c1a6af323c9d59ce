import assert from "node:assert/strict";
import { Core, type CoreEffect, errorCodes } from "../pkg/freshtoken.js";
import { fromCore, TokenError, type TokenErrorCode } from "./token_error.ts";

/** Every member of the TypeScript union, once: the compiler refuses a missing or extra one. */
const DOCUMENTED: Record<TokenErrorCode, true> = {
  invalid_client: true,
  invalid_scope: true,
  invalid_request: true,
  unauthorized_client: true,
  unsupported_grant_type: true,
  access_denied: true,
  rate_limited: true,
  server_error: true,
  network: true,
  timeout: true,
  invalid_response: true,
  config: true,
  aborted: true,
  internal: true,
};

Deno.test("TokenErrorCode is exactly the core's list of codes", () => {
  const core = errorCodes().map((c) => c.code);
  assert.deepEqual(Object.keys(DOCUMENTED).sort(), [...core].sort());
});

Deno.test("a TokenError is retryable by default exactly when the core says its code is", () => {
  for (const { code, retryable } of errorCodes()) {
    assert.equal(new TokenError(code as TokenErrorCode, code).retryable, retryable, code);
  }
});

Deno.test("fromCore() keeps every field of the core's error", () => {
  const error = fromCore({
    message: "rate_limited (HTTP 429): slow down (retry after 5 s)",
    code: "rate_limited",
    status: 429,
    retryable: true,
    description: "slow down",
    retryAfterSeconds: 5,
  });
  assert.ok(error instanceof TokenError);
  assert.deepEqual(
    { ...error, message: error.message },
    {
      name: "TokenError",
      message: "rate_limited (HTTP 429): slow down (retry after 5 s)",
      code: "rate_limited",
      status: 429,
      retryable: true,
      description: "slow down",
      retryAfterSeconds: 5,
    },
  );
});

Deno.test("a core driven out of order fails with internal, not retryable, and says so in an event", () => {
  const core = new Core({ tokenUrl: "https://a.example/token", clientId: "id", clientSecret: "s" });
  // Polled with no acquisition begun: the executor's bug, not an outage.
  const effect = core.poll(1_700_000_000_000, 1) as CoreEffect;
  assert.equal(effect.type, "fail");
  const error = fromCore((effect as Extract<CoreEffect, { type: "fail" }>).error);
  assert.equal(error.code, "internal");
  assert.equal(error.retryable, false);
  assert.deepEqual(core.events(), [{
    type: "internal_error",
    at: 1_700_000_000_000,
    message: "no acquisition is in flight",
  }]);
});

Deno.test("fromCore() of a value that is not the core's error is internal, not retryable", () => {
  for (const thrown of [new TypeError("x is undefined"), undefined, "text"]) {
    const error = fromCore(thrown);
    assert.equal(error.code, "internal");
    assert.equal(error.retryable, false);
  }
});
