// `freshtoken notifications` as a child process against the loopback
// Genesys-like notification server: one JSON line per event on stdout,
// exit 0 on SIGINT and SIGTERM, the API base from --base-url or
// FRESHTOKEN_BASE_URL.

import assert from "node:assert/strict";
import { cliCommand, runCli } from "./_cli.ts";
import { startNotificationServer } from "./servers/genesys_notifications.ts";

const ID = "7a2d9e41-3c5b-4f08-b6e1-9d4c2a7f3b85";
const SECRET = "gc-canary-secret-CLInotify";
const TOPIC = "v2.users.7a2d9e41.presence";

/** Runs the command until `lines` JSON lines are out, then sends `signal`. */
async function follow(signal: Deno.Signal, baseBy: "flag" | "variable") {
  const server = startNotificationServer({ clients: { [ID]: SECRET } });
  const env: Record<string, string> = {
    FRESHTOKEN_TOKEN_URL: server.tokenUrl,
    FRESHTOKEN_CLIENT_ID: ID,
    FRESHTOKEN_CLIENT_SECRET: SECRET,
  };
  const args = ["notifications", "--topic", TOPIC, "--topic", "v2.users.other.presence"];
  if (baseBy === "flag") args.push("--base-url", server.baseUrl);
  else env.FRESHTOKEN_BASE_URL = server.baseUrl;
  const child = cliCommand(["--allow-net=127.0.0.1", "--allow-env"], args, env).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const stderr = new Response(child.stderr).text();
  try {
    const ids: string[] = [];
    const deadline = Date.now() + 15_000;
    while (lines.length < 3 && Date.now() < deadline) {
      if (server.openSockets() > 0) ids.push(server.publish(TOPIC, { presence: "Busy" }));
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(lines.length >= 3, `three events printed (${lines.length})`);
    child.kill(signal);
    const status = await child.status;
    await reading;
    const err = await stderr;
    assert.equal(status.code, 0, err);
    assert.equal(err, "", "nothing on stderr");
    for (const line of lines) {
      const event = JSON.parse(line);
      assert.equal(event.topicName, TOPIC);
      assert.deepEqual(event.eventBody, { presence: "Busy" });
      assert.ok(ids.includes(event.metadata.CorrelationId));
    }
    assert.deepEqual(server.stats.subscribed, [[{ id: TOPIC }, { id: "v2.users.other.presence" }]]);
    assert.ok(!lines.join("").includes("canary-token"), "no token printed");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has ended.
    }
    await server.close();
  }
}

Deno.test("freshtoken notifications prints one JSON line per event and exits 0 on SIGTERM", async () => {
  await follow("SIGTERM", "flag");
});

Deno.test("freshtoken notifications takes FRESHTOKEN_BASE_URL and exits 0 on SIGINT", async () => {
  await follow("SIGINT", "variable");
});

Deno.test("freshtoken notifications without --topic is a configuration error", async () => {
  const env = {
    FRESHTOKEN_TOKEN_URL: "http://127.0.0.1:9/token",
    FRESHTOKEN_CLIENT_ID: ID,
    FRESHTOKEN_CLIENT_SECRET: SECRET,
  };
  const run = await runCli(["--allow-net=127.0.0.1", "--allow-env"], ["notifications"], env, [
    SECRET,
  ]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /notifications needs --topic/);
  const topicElsewhere = await runCli(["--allow-env"], ["token", "--topic", "x"], env, [SECRET]);
  assert.equal(topicElsewhere.code, 2);
  assert.match(topicElsewhere.stderr, /--topic is for the notifications command/);
});

Deno.test("freshtoken notifications refuses a plain-http base URL off loopback", async () => {
  const env = {
    FRESHTOKEN_TOKEN_URL: "http://127.0.0.1:9/token",
    FRESHTOKEN_CLIENT_ID: ID,
    FRESHTOKEN_CLIENT_SECRET: SECRET,
    FRESHTOKEN_BASE_URL: "http://api.example.com",
  };
  const run = await runCli(
    ["--allow-net=127.0.0.1", "--allow-env"],
    ["notifications", "--topic", TOPIC],
    env,
    [
      SECRET,
    ],
  );
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /FRESHTOKEN_BASE_URL/);
});

Deno.test("freshtoken --help describes notifications and --base-url", async () => {
  const run = await runCli([], ["--help"], {});
  assert.equal(run.code, 0);
  assert.match(run.stdout, /freshtoken notifications --topic T/);
  assert.match(run.stdout, /--base-url URL/);
  assert.match(run.stdout, /FRESHTOKEN_BASE_URL/);
});
