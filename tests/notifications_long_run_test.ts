// A scaled-down long run of genesysNotifications: the stream's clock runs
// 12 times faster (two minutes of silence are 10 s, a minute's connection
// 5 s), channels live a minute (several lifetimes in one run), and random
// faults — socket_closing, drops, silence, evictions, revoked tokens, 429s
// and 503s on the REST calls — come while events are published every
// 20 ms. It prints the figures (events sent and received, reconnects,
// rollovers, the longest gap) and checks that no event the server sent
// while a socket was open is lost and that reconnects stay within what the
// back-off allows. FRESHTOKEN_LONG_RUN_SECONDS sets the length (default 30).

import assert from "node:assert/strict";
import { createTokenClient, genesysCloud, genesysNotifications } from "../deno/mod.ts";
import { TIME_SCALE } from "../deno/_notify_executor.ts";
import { startNotificationServer } from "./servers/genesys_notifications.ts";

const ID = "0b6e2c8d-4f1a-4e37-9a5c-3d8f7b1e2a60";
const SECRET = "gc-canary-secret-L0ngRun";
const TOPIC = "v2.users.0b6e2c8d.presence";

Deno.test("notifications long run: several channel lifetimes with random faults lose no event", async () => {
  const seconds = Number(Deno.env.get("FRESHTOKEN_LONG_RUN_SECONDS") ?? 30);
  const server = startNotificationServer({
    clients: { [ID]: SECRET },
    channelSeconds: 60,
    heartbeatMs: 1_000,
  });
  const preset = genesysCloud({ region: "eu_west_1", clientId: ID, clientSecret: SECRET });
  const client = createTokenClient({
    ...preset,
    tokenUrl: server.tokenUrl,
    baseUrl: server.baseUrl,
  });
  const controller = new AbortController();
  const received = new Set<string>();
  let events = 0;
  const options = { topics: [TOPIC], signal: controller.signal, [TIME_SCALE]: 12 };
  const consuming = (async () => {
    for await (const event of genesysNotifications(client, options)) {
      events++;
      received.add(String(event.metadata?.CorrelationId));
    }
  })();
  const faults: string[] = [];
  const publisher = setInterval(() => server.publish(TOPIC), 20);
  const end = Date.now() + seconds * 1000;
  try {
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1_500));
      const fault =
        ["closing", "drop", "evict", "revoke", "429", "503"][Math.floor(Math.random() * 6)];
      faults.push(fault);
      if (fault === "closing") server.socketClosing(100);
      if (fault === "drop") server.dropAll();
      if (fault === "evict") server.evictAll();
      if (fault === "silence") server.silence(true);
      if (fault === "revoke") server.revokeTokens();
      if (fault === "429") server.failNext(429, 1, 1);
      if (fault === "503") server.failNext(503, 2);
    }
    // A quiet spell: the stream comes back, and the last events arrive.
    const quiet = Date.now() + 30_000;
    let marker = "";
    while (Date.now() < quiet && !received.has(marker)) {
      marker = server.publish(TOPIC);
      await new Promise((r) => setTimeout(r, 100));
      if (received.has(marker)) break;
    }
    assert.ok(received.has(marker), "events flow again after the faults");
  } finally {
    clearInterval(publisher);
    controller.abort();
    await consuming;
    await server.close();
  }

  const last = Math.max(...server.events.filter((e) => received.has(e.id)).map((e) => e.at));
  const sentWhileOpen = new Set(server.sentWhileOpen());
  const sent = server.events.filter((e) => e.at <= last && sentWhileOpen.has(e.id));
  const lost = sent.filter((e) => !received.has(e.id));
  const sockets = server.sockets;
  const rollovers = sockets.filter((s, i) =>
    !s.byServer && s.closedAt !== undefined &&
    sockets.some((t, j) =>
      j !== i && t.openedAt <= s.closedAt! && (t.closedAt ?? Infinity) > s.closedAt!
    )
  ).length;
  // The longest time with no socket open, after the first opened.
  const edges = sockets.flatMap((s) => [[s.openedAt, 1], [s.closedAt ?? Infinity, -1]]).sort((
    a,
    b,
  ) => a[0] - b[0] || b[1] - a[1]);
  let open = 0, since = 0, longestGap = 0;
  for (const [at, step] of edges) {
    if (open === 0 && step === 1 && since > 0) longestGap = Math.max(longestGap, at - since);
    open += step;
    if (open === 0) since = at;
  }
  const connects = server.stats.connectTimes.length;
  console.log(
    `long run ${seconds} s: events sent while a socket was open ${sent.length}, received ${
      sent.length - lost.length
    } (${events} yielded, duplicates included), faults ${faults.length}, channels ${server.stats.channelsCreated}, ` +
      `reconnects ${
        connects - 1
      }, rollovers ${rollovers}, longest gap ${longestGap} ms, tokens ${server.stats.tokensIssued}`,
  );
  assert.deepEqual(lost.map((e) => e.id), [], "no event sent while a socket was open is lost");
  // Each fault costs at most a few connects (a failed one, the one after the check);
  // each channel one; a tight loop would make hundreds.
  assert.ok(
    connects <= 4 * faults.length + server.stats.channelsCreated + 2,
    `${connects} connects for ${faults.length} faults`,
  );
  // Never two connects within the back-off's first ceiling's share of a millisecond: no loop.
  const times = server.stats.connectTimes;
  const burst = times.filter((t, i) => i >= 5 && t - times[i - 5] < 100).length;
  assert.equal(burst, 0, "six connects within 100 ms");
});
