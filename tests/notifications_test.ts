// genesysNotifications against a loopback server that behaves like Genesys
// Cloud's notification service (tests/servers/genesys_notifications.ts):
// one test per behaviour of docs/DESIGN.md, "Notifications".

import assert from "node:assert/strict";
import {
  createTokenClient,
  genesysCloud,
  genesysNotifications,
  type NotificationEvent,
  TokenError,
} from "../deno/mod.ts";
import { TIME_SCALE } from "../deno/_notify_executor.ts";
import {
  type NotificationServer,
  type NotificationServerOptions,
  startNotificationServer,
} from "./servers/genesys_notifications.ts";

const ID = "5e1f3a7c-2b9d-4c60-8e1a-7d3f9b2c6a14";
const SECRET = "gc-canary-secret-N0tify";
const TOPIC = "v2.users.5e1f3a7c.presence";

/** A consumer: the events it got, and a way to wait for a condition. */
class Consumer {
  events: NotificationEvent[] = [];
  error: unknown;
  done: Promise<void>;

  constructor(iterable: AsyncIterable<NotificationEvent>, readonly controller: AbortController) {
    this.done = (async () => {
      try {
        for await (const event of iterable) this.events.push(event);
      } catch (error) {
        this.error = error;
      }
    })();
  }

  ids(): Set<string> {
    return new Set(this.events.map((e) => String(e.metadata?.CorrelationId)));
  }
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function withServer(
  options: Partial<NotificationServerOptions>,
  fn: (server: NotificationServer, consumer: (extra?: object) => Consumer) => Promise<void>,
): Promise<void> {
  const server = startNotificationServer({ clients: { [ID]: SECRET }, ...options });
  // The region preset, pointed at loopback: what a Genesys user writes, minus the host.
  const preset = genesysCloud({ region: "eu_west_1", clientId: ID, clientSecret: SECRET });
  const client = createTokenClient({
    ...preset,
    tokenUrl: server.tokenUrl,
    baseUrl: server.baseUrl,
  });
  const consumers: Consumer[] = [];
  const consumer = (extra: object = {}) => {
    const controller = new AbortController();
    const options = { topics: [TOPIC], ...extra, signal: controller.signal };
    const c = new Consumer(genesysNotifications(client, options), controller);
    consumers.push(c);
    return c;
  };
  try {
    await fn(server, consumer);
  } finally {
    for (const c of consumers) c.controller.abort();
    await Promise.all(consumers.map((c) => c.done));
    await server.close();
  }
}

/**
 * Events the server sent while the consumer had a socket open, up to the
 * last one it got (later ones may be on their way), that it did not get.
 */
function lostEvents(server: NotificationServer, c: Consumer): string[] {
  const got = c.ids();
  const last = Math.max(...server.events.filter((e) => got.has(e.id)).map((e) => e.at));
  const sent = new Set(server.sentWhileOpen());
  return server.events.filter((e) => e.at <= last && sent.has(e.id) && !got.has(e.id)).map((e) =>
    e.id
  );
}

/** Publishes until the consumer has got one event from now on. */
async function flowing(server: NotificationServer, c: Consumer, what: string): Promise<void> {
  const before = c.events.length;
  await until(what, () => {
    server.publish(TOPIC);
    return c.events.length > before;
  });
}

Deno.test("notifications: a channel is created and subscribed, and events come as Genesys sent them", async () => {
  await withServer({ heartbeatMs: 20 }, async (server, consumer) => {
    const c = consumer();
    await until("a socket", () => server.openSockets() === 1);
    await new Promise((r) => setTimeout(r, 100)); // heartbeats meanwhile: never yielded
    const id = server.publish(TOPIC, { presence: "Available" });
    await until("the event", () => c.events.length === 1);
    assert.deepEqual(c.events[0], {
      topicName: TOPIC,
      version: "2",
      eventBody: { presence: "Available" },
      metadata: { CorrelationId: id },
    });
    assert.equal(server.stats.channelsCreated, 1);
    assert.deepEqual(server.stats.subscribed, [[{ id: TOPIC }]]);
    // The token goes in a header only: never in a URL.
    assert.ok(server.stats.urls.every((u) => !u.includes("canary-token")), "no token in a URL");
    c.controller.abort();
    await c.done;
    assert.equal(c.error, undefined);
    await until("the socket closed", () => server.openSockets() === 0);
  });
});

Deno.test("notifications: socket_closing reconnects to the same channel", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    server.socketClosing(50);
    await until("a second connect", () => server.stats.connects === 2);
    await flowing(server, c, "events after the reconnect");
    assert.equal(server.stats.channelsCreated, 1);
    assert.equal(server.stats.subscriptions, 1);
  });
});

Deno.test("notifications: a dropped socket reconnects to the same channel", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    server.dropAll();
    await until("a second connect", () => server.stats.connects === 2);
    await flowing(server, c, "events after the reconnect");
    assert.equal(server.stats.channelsCreated, 1);
  });
});

Deno.test("notifications: two minutes of silence (heartbeats included) reconnect", async () => {
  await withServer({ heartbeatMs: 0 }, async (server, consumer) => {
    // The stream's clock runs 200 times faster: two minutes are 0.6 s.
    const c = consumer({ [TIME_SCALE]: 200 });
    await flowing(server, c, "first events");
    server.silence(true);
    const started = Date.now();
    await until("a reconnect after the silence", () => server.stats.connects === 2);
    assert.ok(Date.now() - started >= 550, `reconnected after ${Date.now() - started} ms`);
    await flowing(server, c, "events after the reconnect");
    assert.equal(server.stats.channelsCreated, 1);
  });
});

Deno.test("notifications: heartbeats keep a quiet socket alive", async () => {
  await withServer({ heartbeatMs: 50 }, async (server, consumer) => {
    const c = consumer({ [TIME_SCALE]: 200 }); // a heartbeat every 10 s of the stream's clock
    await flowing(server, c, "first events");
    await new Promise((r) => setTimeout(r, 1_500)); // five minutes of the stream's clock
    assert.equal(server.stats.connects, 1);
  });
});

Deno.test("notifications: before the channel expires, a new one is open before the old socket closes", async () => {
  await withServer({ channelSeconds: 4 }, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    await until("a second channel, its socket alone open", () => {
      server.publish(TOPIC);
      return server.stats.channelsCreated === 2 && server.sockets.length === 2 &&
        server.sockets[0].closedAt !== undefined;
    }, 6_000);
    const [old, next] = server.sockets;
    assert.equal(old.byServer, false, "the old socket was closed by the client, before its expiry");
    assert.ok(next.openedAt <= old.closedAt!, "the new socket opened before the old one closed");
    await flowing(server, c, "events on the new channel");
    assert.deepEqual(lostEvents(server, c), [], "no event lost");
  });
});

Deno.test("notifications: a channel the server lost (evicted, expired) is replaced", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    server.evictAll();
    await until("a new channel", () => server.stats.channelsCreated === 2);
    await flowing(server, c, "events on the new channel");
    assert.ok(server.stats.verifications >= 1, "the lost channel was checked first");
  });
});

Deno.test("notifications: a 401 on a REST call refreshes the token once and goes on", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    server.revokeTokens();
    server.evictAll(); // the next channel is made with a revoked token
    await until("a new channel", () => server.stats.channelsCreated === 2);
    await flowing(server, c, "events on the new channel");
    assert.equal(server.stats.tokensIssued, 2);
  });
});

Deno.test("notifications: a 429 waits its Retry-After, then it goes on", async () => {
  await withServer({}, async (server, consumer) => {
    server.failNext(429, 1, 1);
    const started = Date.now();
    const c = consumer();
    await flowing(server, c, "events after the 429");
    assert.ok(Date.now() - started >= 950, `went on after ${Date.now() - started} ms`);
  });
});

Deno.test("notifications: 503s back off and the stream goes on", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer({ [TIME_SCALE]: 20 }); // back-offs of up to a minute in 3 s
    await flowing(server, c, "first events");
    server.failNext(503, 3);
    server.evictAll();
    await until("a new channel", () => server.stats.channelsCreated === 2);
    await flowing(server, c, "events after the 503s");
  });
});

Deno.test("notifications: a 400 on subscribing is a config error naming the topic, not retried", async () => {
  await withServer({ badTopics: ["v2.users.nobody.presence"] }, async (server, consumer) => {
    const c = consumer({ topics: [TOPIC, "v2.users.nobody.presence"] });
    await c.done;
    assert.ok(c.error instanceof TokenError, String(c.error));
    assert.equal(c.error.code, "config");
    assert.match(c.error.message, /"v2\.users\.nobody\.presence"/);
    assert.doesNotMatch(c.error.message, /Unable to subscribe/); // the server's text is not echoed
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.stats.channelsCreated, 1);
    assert.equal(server.stats.subscribed.length, 1);
  });
});

Deno.test("notifications: a connectUri off the API's domain family is refused", async () => {
  const options = { connectUriFor: (id: string) => `wss://evil.example/channels/${id}` };
  await withServer(options, async (server, consumer) => {
    const c = consumer();
    await c.done;
    assert.ok(c.error instanceof TokenError);
    assert.equal(c.error.code, "invalid_response");
    assert.match(c.error.message, /connectUri/);
    assert.doesNotMatch(c.error.message, /evil/);
    assert.equal(server.stats.connects, 0);
  });
});

Deno.test("notifications: bad options throw at once, naming the option", () => {
  const client = createTokenClient({
    tokenUrl: "http://127.0.0.1:9/t",
    clientId: "a",
    clientSecret: "b",
  });
  for (
    const topics of [[], [""], ["a b"], "v2.x" as unknown as string[], [1] as unknown as string[]]
  ) {
    assert.throws(
      () => genesysNotifications(client, { topics }),
      (e) => e instanceof TokenError && e.code === "config" && /topics/.test(e.message),
    );
  }
  assert.throws(
    () => genesysNotifications(client, { topics: ["x"], signal: {} as AbortSignal }),
    /signal/,
  );
});

Deno.test("notifications: the signal ends the iteration and closes the socket", async () => {
  await withServer({}, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    c.controller.abort();
    await c.done;
    assert.equal(c.error, undefined);
    await until("no socket", () => server.openSockets() === 0);
    const connects = server.stats.connects;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.stats.connects, connects, "nothing after the abort");
  });
});

Deno.test("notifications: a token revoked before a rollover is replaced, and the rollover has no gap", async () => {
  await withServer({ channelSeconds: 4 }, async (server, consumer) => {
    const c = consumer();
    await flowing(server, c, "first events");
    server.revokeTokens(); // the next REST call, the rollover's, meets a 401
    await until("a second channel, its socket alone open", () => {
      server.publish(TOPIC);
      return server.stats.channelsCreated === 2 && server.sockets.length === 2 &&
        server.sockets[0].closedAt !== undefined;
    }, 6_000);
    const [old, next] = server.sockets;
    assert.equal(old.byServer, false);
    assert.ok(next.openedAt <= old.closedAt!, "the new socket opened before the old one closed");
    assert.equal(server.stats.tokensIssued, 2);
    assert.equal(server.stats.api401, 1);
    await flowing(server, c, "events on the new channel");
    assert.deepEqual(lostEvents(server, c), [], "no event lost");
  });
});

Deno.test("notifications: leaving the loop closes the socket", async () => {
  await withServer({}, async (server) => {
    const preset = genesysCloud({ region: "eu_west_1", clientId: ID, clientSecret: SECRET });
    const client = createTokenClient({
      ...preset,
      tokenUrl: server.tokenUrl,
      baseUrl: server.baseUrl,
    });
    const publisher = setInterval(() => server.publish(TOPIC), 10);
    try {
      for await (const event of genesysNotifications(client, { topics: [TOPIC] })) {
        assert.equal(event.topicName, TOPIC);
        break;
      }
    } finally {
      clearInterval(publisher);
    }
    await until("no socket", () => server.openSockets() === 0);
  });
});
