// Outage tolerance on an injected clock: the token endpoint fails with 5xx,
// then refuses connections, then hangs, for 80 % of the time left between
// the refresh moment and the token becoming unusable. Callers see no
// failure, background attempts are one at a time and spaced by the
// hold-back (1 s doubling to 60 s), and the client recovers once the
// endpoint does. A short outage inside the refresh window costs a handful
// of requests; one that outlasts the token gives a clear retryable error,
// not a hang.

import assert from "node:assert/strict";
import { createTokenClient, TokenError, type TokenEvent } from "../deno/mod.ts";
import { freePort } from "./_processes.ts";
import { type Fault, startFaultServer } from "./servers/fault_server.ts";

type Phase = "up" | "5xx" | "refused" | "hang";

function setup(phaseAt: (now: number) => Phase) {
  const clock = { now: 1_700_000_000_000 };
  let issued = 0;
  const server = startFaultServer((): Fault => {
    const phase = phaseAt(clock.now);
    if (phase === "5xx") return { kind: "respond", status: 503, body: "{}" };
    if (phase === "hang") return { kind: "hang" };
    issued++;
    const body = JSON.stringify({ access_token: `canary-token-0${issued}`, expires_in: 3600 });
    return { kind: "respond", status: 200, body };
  });
  const refusedUrl = `http://127.0.0.1:${freePort()}/token`;
  const background: number[] = [];
  const events: TokenEvent[] = [];
  const acquiring = { now: false };
  const client = createTokenClient({
    tokenUrl: server.tokenUrl,
    clientId: "outage",
    clientSecret: "outage-canary-secret",
    now: () => clock.now,
    timeoutMs: 100,
    retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10_000, deadlineMs: 2_000 },
    // A refused connection needs a closed port: route there while the phase says so.
    fetch: (input, init) =>
      fetch(phaseAt(clock.now) === "refused" ? refusedUrl : input as string, init),
    onEvent: (e) => {
      events.push(e);
      if (e.type === "background_refresh") background.push(clock.now);
      // An acquisition ends with a token or a failed attempt, unless a retry follows at once.
      if (e.type === "fetch_start" || e.type === "retry") acquiring.now = true;
      if (e.type === "fetch_ok" || e.type === "fetch_error") acquiring.now = false;
    },
  });
  /**
   * Waits (real time) until no acquisition is running, so each simulated
   * step sees the outcome of the last: the clock must not move on while a
   * request is still out.
   */
  const settle = async () => {
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 400 && acquiring.now; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 5)); // the client's own bookkeeping after the event
  };
  return { clock, client, server, background, events, settle, issued: () => issued };
}

Deno.test("an outage for 80 % of the time left until unusable fails no call and is ridden out", async () => {
  let outageStart = Infinity;
  let outageEnd = Infinity;
  const phaseAt = (now: number): Phase => {
    if (now < outageStart || now >= outageEnd) return "up";
    const third = (outageEnd - outageStart) / 3;
    return now < outageStart + third ? "5xx" : now < outageStart + 2 * third ? "refused" : "hang";
  };
  const { clock, client, server, background, settle, issued } = setup(phaseAt);
  try {
    const first = await client.getToken();
    const { refreshAt } = client.status();
    const usableUntil = first.expiresAt - 30_000; // 3600 s tokens: 30 s of skew
    outageStart = refreshAt!;
    outageEnd = refreshAt! + 0.8 * (usableUntil - refreshAt!);

    let calls = 0;
    let recoveredAt: number | undefined;
    for (clock.now = refreshAt! - 5_000; clock.now < usableUntil; clock.now += 2_000) {
      const token = await client.getToken(); // throws on failure: none may fail
      calls++;
      assert.ok(token.expiresAt - 30_000 > clock.now, "served a token past its usable time");
      if (recoveredAt === undefined && token.accessToken !== first.accessToken) {
        recoveredAt = clock.now;
      }
      await settle();
    }
    const outageSeconds = (outageEnd - outageStart) / 1000;
    const attempts = background.filter((t) => t >= outageStart && t < outageEnd).length;
    console.log(
      `outage ${outageSeconds.toFixed(0)} s: ${calls} calls, 0 failed; ${attempts} background ` +
        `refreshes during the outage; recovered ${
          ((recoveredAt! - outageEnd) / 1000).toFixed(0)
        } s after it ended`,
    );
    // The hold-back doubles from 1 s to 60 s (equal jitter: at least half): no hammering.
    assert.ok(attempts >= 5, `${attempts} attempts: the client gave up`);
    assert.ok(attempts <= 16, `${attempts} attempts in ${outageSeconds} s`);
    for (let i = 5; i < background.length && background[i] < outageEnd; i++) {
      assert.ok(background[i] - background[i - 1] >= 8_000, "background attempts too close");
    }
    // At most one hold-back (60 s) and one call step after the outage.
    assert.ok(recoveredAt !== undefined && recoveredAt - outageEnd <= 62_000, "slow recovery");
    assert.ok(recoveredAt! < usableUntil);
    assert.equal(issued(), 2);
  } finally {
    await server.close();
  }
});

Deno.test("a 5 s outage inside the refresh window costs at most 5 token requests and no failed call", async () => {
  let outageStart = Infinity;
  const { clock, client, server } = setup((now) =>
    now >= outageStart && now < outageStart + 5_000 ? "5xx" : "up"
  );
  try {
    await client.getToken();
    const { refreshAt } = client.status();
    outageStart = refreshAt!;
    const before = server.requests;
    // A caller every 100 ms (simulated), from 1 s before the outage to 1 s after it.
    let during = 0;
    for (clock.now = refreshAt! - 1_000; clock.now < outageStart + 6_000; clock.now += 100) {
      const token = await client.getToken(); // throws on failure: none may fail
      assert.ok(token.expiresAt - 30_000 > clock.now);
      await new Promise((r) => setTimeout(r, 1)); // lets a background attempt run
      if (clock.now < outageStart + 5_000) during = server.requests - before;
    }
    console.log(`5 s outage: ${during} token requests during it`);
    assert.ok(during >= 1 && during <= 5, `${during} token requests during a 5 s outage`);
  } finally {
    await server.close();
  }
});

Deno.test("an outage that outlasts the token gives callers a retryable error, not a hang", async () => {
  let down = false;
  const { clock, client, server } = setup(() => down ? "5xx" : "up");
  try {
    const first = await client.getToken();
    down = true;
    clock.now = first.expiresAt - 29_000; // past usable
    const started = Date.now();
    const error = await client.getToken().catch((e) => e);
    assert.ok(error instanceof TokenError, String(error));
    assert.equal(error.code, "server_error");
    assert.equal(error.retryable, true);
    assert.ok(Date.now() - started < 2_500, "not bounded by the deadline");
    assert.equal(client.status().hasToken, false);
  } finally {
    await server.close();
  }
});
