import assert from "node:assert/strict";
import { cronPeriodSeconds } from "./_cron_period.ts";

Deno.test("cronPeriodSeconds() is the longest gap between two runs", () => {
  assert.equal(cronPeriodSeconds("*/5 * * * *"), 300);
  assert.equal(cronPeriodSeconds("* * * * *"), 60);
  assert.equal(cronPeriodSeconds("0 * * * *"), 3600);
  assert.equal(cronPeriodSeconds("0,10,45 * * * *"), 35 * 60);
  assert.equal(cronPeriodSeconds("0 3 * * *"), 86_400);
  assert.equal(cronPeriodSeconds("*/20 8-17 * * *"), (24 - 17 + 8) * 3600 - 40 * 60);
  assert.equal(cronPeriodSeconds("7/15 * * * *"), 900);
});

Deno.test("cronPeriodSeconds() is Infinity for schedules it cannot bound", () => {
  for (const schedule of ["0 3 * * 1", "0 0 1 * *", "@hourly", "61 * * * *", "*/0 * * * *", ""]) {
    assert.equal(cronPeriodSeconds(schedule), Infinity, schedule);
  }
});
