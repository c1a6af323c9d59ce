import assert from "node:assert/strict";
import { isRemoteStore, onStore, storeFailureReporter } from "./_cli_store.ts";
import type { TokenEvent } from "./types.ts";

const failure = (operation: string, message: string): TokenEvent => ({
  type: "kv_error",
  at: 0,
  operation,
  message,
});

Deno.test("the CLI tells each different store failure once, in words that quote nothing of Deno's", () => {
  const lines: string[] = [];
  const report = storeFailureReporter((text) => lines.push(text));
  const url = "https://api.deno.com/v2/databases/0b7c/connect";
  report(
    failure("open", `the metadata endpoint at '${url}' responded with status 401 Unauthorized`),
  );
  report(failure("read", "Failed to fetch metadata: Invalid access token."));
  report(failure("read", "Missing DENO_KV_ACCESS_TOKEN environment variable."));
  report(failure("read", "KV did not answer within 2000 ms"));
  report(failure("write", `failed to connect to '${url}': Connection refused`));
  report({ type: "fetch_start", at: 0 });
  assert.deepEqual(lines.map((line) => line.replace(/; carrying on.*\n$/, "")), [
    "freshtoken: --kv store: it refused the access token in DENO_KV_ACCESS_TOKEN",
    "freshtoken: --kv store: it refused the access token in DENO_KV_ACCESS_TOKEN",
    "freshtoken: --kv store: DENO_KV_ACCESS_TOKEN is not set",
    "freshtoken: --kv store: it did not answer within 2 s",
    "freshtoken: --kv store: it could not be reached",
  ]);
  assert.ok(lines.every((line) => !line.includes(url)));
  report(failure("open", "responded with status 401 Unauthorized"));
  assert.equal(lines.length, 5, "the same failure again is not told again");
});

Deno.test("a run without a store keeps no encryption key; a KV Connect URL is told from a file", () => {
  const options = {
    tokenUrl: "https://login.example.com/oauth/token",
    clientId: "app",
    clientSecret: "canary-secret-cli-store",
    encryptionKey: "key",
  };
  const onEvent = () => {};
  assert.equal("encryptionKey" in onStore(options, undefined, onEvent), false);
  assert.equal(onStore(options, {} as Deno.Kv, onEvent).encryptionKey, "key");
  assert.ok(isRemoteStore("https://api.deno.com/v2/databases/0b7c/connect"));
  assert.ok(isRemoteStore("HTTP://127.0.0.1:4512"));
  assert.ok(!isRemoteStore("./tokens.kv") && !isRemoteStore(":memory:"));
});
