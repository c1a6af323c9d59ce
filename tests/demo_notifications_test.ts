// The notifications demo runs to its summary: faults injected, every event
// sent while a socket was open received, a channel replaced before it expired.

import assert from "node:assert/strict";

Deno.test("the notifications demo keeps the stream up through its faults", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env",
      new URL("../demo/notifications.ts", import.meta.url).pathname,
    ],
    env: { FRESHTOKEN_DEMO_SECONDS: "15" },
    clearEnv: true,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(stdout, /fault: the server sends socket_closing/);
  const summary = stdout.match(
    /summary: (\d+) events sent while a socket was open, (\d+) received.* (\d+) channels/,
  );
  assert.ok(summary, stdout);
  assert.ok(Number(summary[1]) > 15, summary[0]);
  assert.equal(summary[2], summary[1], "every event sent while a socket was open is received");
  assert.ok(Number(summary[3]) >= 2, "a channel replaced before it expired");
});
