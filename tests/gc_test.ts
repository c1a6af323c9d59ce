// Dropped clients are garbage-collected: the wasm core keeps no JavaScript
// value between calls, so no cycle through its externref table keeps a
// client, its secret or its token alive (tests/gc_worker.ts).

import assert from "node:assert/strict";

Deno.test("100 dropped clients, each with a token, KV and a hook that refers to it, are all collected", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-read",
      new URL("./gc_worker.ts", import.meta.url).pathname,
    ],
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const { created, alive } = JSON.parse(stdout);
  assert.equal(created, 100);
  assert.equal(alive, 0, `${alive} of ${created} clients are still alive`);
});
