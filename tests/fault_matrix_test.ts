// Every fault of tests/fault_matrix.ts ends as expected, within the deadline.

import assert from "node:assert/strict";
import { FAULTS, runCase, SETTINGS } from "./fault_matrix.ts";

for (const c of FAULTS) {
  Deno.test(`fault matrix: ${c.group}: ${c.name}`, async () => {
    const outcome = await runCase(c);
    const shown = JSON.stringify(outcome);
    if ("token" in c.expect) {
      assert.equal(outcome.result, "token", shown);
    } else {
      assert.equal(outcome.result, c.expect.code, shown);
      assert.equal(outcome.retryable, c.expect.retryable, shown);
    }
    if (c.expect.attempts === "many") {
      assert.ok(outcome.attempts >= 2 && outcome.attempts <= SETTINGS.retry.maxAttempts, shown);
    } else {
      assert.equal(outcome.attempts, c.expect.attempts, shown);
    }
    // Never hangs: bounded by the deadline plus one request timeout.
    assert.ok(outcome.ms <= SETTINGS.retry.deadlineMs + SETTINGS.timeoutMs + 500, shown);
    if (c.redirect) assert.equal(outcome.elsewhere, 0, "the redirect target was reached");
    if (c.name.startsWith("429 Retry-After: 1 year")) {
      assert.equal(outcome.retryAfterSeconds, 31_536_000);
      assert.ok(outcome.ms < 500, "did not fail fast");
    }
    if (c.name.startsWith("429 Retry-After: 1 (seconds)")) assert.ok(outcome.ms >= 1_000, shown);
  });
}
