import assert from "node:assert/strict";
import { checkConnectUri } from "./_notify_executor.ts";
import { TokenError } from "./token_error.ts";

Deno.test("checkConnectUri() opens wss: on the API's Genesys domain family only", () => {
  const ie = new URL("https://api.mypurecloud.ie");
  const loopback = new URL("http://127.0.0.1:8080");
  const cases: [string, URL | undefined, boolean][] = [
    ["wss://streaming.mypurecloud.ie/channels/streaming-1", ie, true],
    ["wss://mypurecloud.ie/channels/x", ie, true],
    ["ws://streaming.mypurecloud.ie/channels/x", ie, false], // not TLS
    ["wss://streaming.mypurecloud.ie.evil.example/x", ie, false],
    ["wss://evilmypurecloud.ie/x", ie, false],
    ["wss://streaming.mypurecloud.com/x", ie, false], // another region's domain
    ["wss://user:pass@streaming.mypurecloud.ie/x", ie, false],
    ["ws://127.0.0.1:8080/channels/x", ie, false], // loopback only for a loopback API
    ["https://streaming.mypurecloud.ie/x", ie, false],
    ["not a url", ie, false],
    ["wss://streaming.mypurecloud.ie/x", undefined, false],
    ["ws://127.0.0.1:9000/channels/x", loopback, true],
    ["ws://localhost:9000/channels/x", loopback, true],
    ["ws://10.0.0.1/channels/x", loopback, false],
  ];
  for (const [uri, api, ok] of cases) {
    if (ok) {
      checkConnectUri(uri, api);
    } else {
      assert.throws(
        () => checkConnectUri(uri, api),
        (e) =>
          e instanceof TokenError && e.code === "invalid_response" && !e.retryable &&
          !e.message.includes(uri),
        uri,
      );
    }
  }
});
