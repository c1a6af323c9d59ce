// OpenTelemetry through Deno's built-in support, end to end: a process with
// OTEL_DENO=true exports OTLP http/json to a loopback receiver, which gets
// freshtoken's spans and metrics (tests/telemetry_worker.ts) and never a
// secret, a token or a private key, in any encoding.

import assert from "node:assert/strict";
import { PRIVATE_KEY, readings } from "../scripts/canary_scan.ts";

interface Attribute {
  key: string;
  value: {
    stringValue?: string;
    intValue?: string | number;
    doubleValue?: number;
    boolValue?: boolean;
  };
}
interface Span {
  name: string;
  spanId: string;
  parentSpanId?: string;
  attributes?: Attribute[];
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

/** How long the API takes to answer a call with 429 in tests/telemetry_worker.ts. */
const ROUND_TRIP_MS = 150;

/** A span's duration, ms. */
const duration = (span: Span) =>
  Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e6;

const attributes = (list: Attribute[] = []) =>
  Object.fromEntries(list.map(({ key, value }) => [key, Object.values(value)[0]]));

/** What an OTLP receiver on loopback got while `worker` ran with Deno's OpenTelemetry on. */
async function exported(
  worker: string,
  flags: string[],
  env: Record<string, string>,
): Promise<{ received: { path: string; body: string }[]; output: Deno.CommandOutput }> {
  const received: { path: string; body: string }[] = [];
  const receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      received.push({ path: new URL(req.url).pathname, body: await req.text() });
      return Response.json({});
    },
  );
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, new URL(worker, import.meta.url).pathname],
      env: {
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
        ...env,
      },
      stdin: "null",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    await new Promise((r) => setTimeout(r, 200)); // the exporter's last requests
    return { received, output };
  } finally {
    await receiver.shutdown();
  }
}

/** The spans among what the receiver got. */
const spansIn = (received: { path: string; body: string }[]): Span[] =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
    JSON.parse(r.body).resourceSpans.flatMap((rs: { scopeSpans: { spans: Span[] }[] }) =>
      rs.scopeSpans.flatMap((ss) => ss.spans)
    )
  );

Deno.test("spans and metrics reach an OTLP receiver, with no secret, token or key in any byte", async () => {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const { received } = await exported("./telemetry_worker.ts", [
    "--unstable-kv",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-env",
  ], {
    OTEL_METRIC_EXPORT_INTERVAL: "200",
    OTEL_SERVICE_NAME: "freshtoken-test",
    TEST_PRIVATE_JWK: JSON.stringify(jwk),
    ROUND_TRIP_MS: String(ROUND_TRIP_MS),
  });

  const canaryLog = Deno.env.get("FRESHTOKEN_CANARY_LOG");
  for (const { path, body } of received) {
    if (canaryLog) {
      const line = JSON.stringify({ kind: "telemetry", value: { path, body } });
      await Deno.writeTextFile(canaryLog, `${line}\n`, { append: true });
    }
    for (const line of body.split("\n")) {
      const leaked = readings(line).find((t) =>
        /canary-secret|canary-token-/.test(t) || PRIVATE_KEY.test(t) || t.includes(jwk.d!)
      );
      assert.equal(leaked, undefined, `${path} carries a secret, a token or a key`);
    }
  }

  const spans = spansIn(received);
  const acquisitions = spans.filter((s) => s.name === "freshtoken.acquire");
  const ids = acquisitions.map((s) => attributes(s.attributes)["freshtoken.client_id"]);
  assert.ok(ids.includes("otel-key-app"), "the private_key_jwt client's acquisition is traced");
  const sources = acquisitions.map((s) => attributes(s.attributes)["freshtoken.source"]);
  assert.ok(sources.includes("network") && sources.includes("kv"), JSON.stringify(sources));
  const network = acquisitions.map((s) => attributes(s.attributes)).find((a) =>
    a["freshtoken.source"] === "network" && a["freshtoken.outcome"] === "ok"
  );
  assert.ok(network, "a successful network acquisition");
  assert.equal(Number(network["freshtoken.attempts"]), 1);
  assert.equal(Number(network["freshtoken.lifetime_seconds"]), 86_400);
  assert.equal(network["freshtoken.client_id"], "otel-app");
  assert.ok(
    acquisitions.some((s) => attributes(s.attributes)["freshtoken.outcome"] === "server_error"),
    "a failed background acquisition",
  );
  const wait = spans.find((s) => s.name === "freshtoken.lease_wait");
  assert.ok(wait, "a lease wait span");
  assert.ok(acquisitions.some((s) => s.spanId === wait.parentSpanId), "the wait is a child span");

  // A call that moved to another slot after a 429: the move's span covers
  // the round trip that got the 429 and names both slots; the wait that
  // followed names the slot it waited for (slot 1, whose 429 named the
  // wait) and its length.
  const move = spans.find((s) => s.name === "freshtoken.rate_limit_move");
  assert.ok(move, `a move span (got ${[...new Set(spans.map((s) => s.name))]})`);
  const moved = attributes(move.attributes);
  assert.equal(Number(moved["freshtoken.slot"]), 0);
  assert.equal(Number(moved["freshtoken.slot_to"]), 1);
  assert.equal(Number(moved["freshtoken.cooling_ms"]), 1000);
  assert.equal(moved["freshtoken.client_id"], "otel-app");
  assert.ok(duration(move) >= ROUND_TRIP_MS, `the move cost ${duration(move)} ms`);
  const waited = spans.find((s) => s.name === "freshtoken.rate_limit_wait");
  assert.ok(waited, "a rate-limit wait span");
  const wait429 = attributes(waited.attributes);
  assert.equal(Number(wait429["freshtoken.slot"]), 1);
  assert.ok(Number(wait429["freshtoken.delay_ms"]) > 0, JSON.stringify(wait429));
  assert.ok(duration(waited) >= Number(wait429["freshtoken.delay_ms"]) - 5);

  const metrics = new Map<string, unknown>();
  for (const r of received.filter((r) => r.path === "/v1/metrics")) {
    for (const rm of JSON.parse(r.body).resourceMetrics) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) metrics.set(m.name, m);
      }
    }
  }
  for (
    const name of [
      "freshtoken.token_requests",
      "freshtoken.cache_hits",
      "freshtoken.acquisition.duration",
      "freshtoken.background_refresh.failures",
      "freshtoken.token.expires_in",
      "freshtoken.rate_limited",
    ]
  ) {
    assert.ok(metrics.has(name), `${name} was not exported (got ${[...metrics.keys()]})`);
  }
  const hits = JSON.stringify(metrics.get("freshtoken.cache_hits"));
  assert.match(hits, /"stringValue":"memory"/);
  assert.match(hits, /"stringValue":"kv"/);
  const limited = JSON.stringify(metrics.get("freshtoken.rate_limited"));
  assert.match(limited, /"key":"freshtoken.next","value":\{"stringValue":"move"\}/);
  assert.match(limited, /"key":"freshtoken.next","value":\{"stringValue":"wait"\}/);
});

Deno.test("the rate_limit_move span's slot_to is the slot the moved call was sent with", async () => {
  const { received, output } = await exported(
    "./telemetry_move_worker.ts",
    ["--allow-net=127.0.0.1", "--allow-read", "--allow-env"],
    { OTEL_SERVICE_NAME: "freshtoken-move" },
  );
  const { movedTo, sends } = JSON.parse(new TextDecoder().decode(output.stdout));
  const spans = spansIn(received);
  const move = spans.find((s) => s.name === "freshtoken.rate_limit_move");
  assert.ok(move, "a move span");
  const moved = attributes(move.attributes);
  assert.equal(
    Number(moved["freshtoken.slot_to"]),
    movedTo,
    `the span says the call moved to slot ${moved["freshtoken.slot_to"]}; ` +
      `it was sent with slot ${movedTo} (sends by slot: ${sends})`,
  );
});
