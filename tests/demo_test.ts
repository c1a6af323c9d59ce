// The demo (the README's first command) runs to its summary: no 401s, and a
// refresh ahead of expiry in its timeline. Shortened to 16 s here (a refresh comes 9–10 s into a 20 s token; the margin is for a loaded machine).

import assert from "node:assert/strict";

Deno.test("the demo refreshes ahead of expiry and serves every call without a 401", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--unstable-cron",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      new URL("../demo/main.ts", import.meta.url).pathname,
    ],
    env: { FRESHTOKEN_DEMO_SECONDS: "16" },
    clearEnv: true,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /cron\s+refreshIfDue: refreshed \(ahead of expiry\)/);
  assert.match(stdout, /newer token read from KV/);
  const summary = stdout.match(
    /summary: (\d+) requests served .* with (\d+) token requests; 0 answered 401/,
  );
  assert.ok(summary, stdout);
  assert.ok(Number(summary[1]) > 40 && Number(summary[2]) <= 3, summary[0]);
});
