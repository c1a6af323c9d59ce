// Every case of the hardening matrix (tests/hardening.ts) ends as it must.

import assert from "node:assert/strict";
import { CASES } from "./hardening.ts";

for (const c of CASES) {
  Deno.test(`hardening: ${c.group}: ${c.name}`, async () => {
    const { ok, outcome } = await c.run();
    assert.ok(ok, outcome);
  });
}
