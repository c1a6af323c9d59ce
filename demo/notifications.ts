/**
 * The notifications demo. On 127.0.0.1 it starts a Genesys Cloud-like
 * notification service whose channels live 12 s, publishes a presence
 * event every half second, and every few seconds closes the socket
 * (`socket_closing`), drops it or evicts the channel; `genesysNotifications`
 * keeps the stream up, replaces each channel before it expires, and the
 * summary counts events sent and received, reconnects and channels.
 *
 * With GENESYS_CLOUD_REGION, GENESYS_CLOUD_CLIENT_ID,
 * GENESYS_CLOUD_CLIENT_SECRET and GENESYS_CLOUD_USER_ID set, it follows that
 * user's presence on the real Genesys Cloud instead (change it in the
 * Genesys Cloud app to see events).
 *
 * Run: `deno run --allow-net --allow-env demo/notifications.ts`
 * (FRESHTOKEN_DEMO_SECONDS sets how long; default 30).
 *
 * @module
 */

import { createTokenClient, genesysCloud, genesysNotifications } from "../deno/mod.ts";
import { startNotificationServer } from "../tests/servers/genesys_notifications.ts";

const RUN_MS = Number(Deno.env.get("FRESHTOKEN_DEMO_SECONDS") ?? 30) * 1000;
const env = (name: string) => Deno.env.get(name)?.trim() || undefined;
const real = env("GENESYS_CLOUD_REGION") && env("GENESYS_CLOUD_CLIENT_ID") &&
  env("GENESYS_CLOUD_CLIENT_SECRET") && env("GENESYS_CLOUD_USER_ID");
const ID = "demo-client";
const SECRET = "demo-secret";
const local = real ? undefined : startNotificationServer({
  clients: { [ID]: SECRET },
  channelSeconds: 12,
  heartbeatMs: 5_000,
});
const user = env("GENESYS_CLOUD_USER_ID") ?? "5f2c0b7e-demo";
const topic = `v2.users.${user}.presence`;
const client = createTokenClient(
  local
    ? {
      ...genesysCloud({ region: "eu_west_1", clientId: ID, clientSecret: SECRET }),
      tokenUrl: local.tokenUrl,
      baseUrl: local.baseUrl,
    }
    : genesysCloud({
      region: env("GENESYS_CLOUD_REGION")!,
      clientId: env("GENESYS_CLOUD_CLIENT_ID")!,
      clientSecret: env("GENESYS_CLOUD_CLIENT_SECRET")!,
    }),
);

const started = Date.now();
const at = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
console.log(
  local
    ? `freshtoken notifications demo: Genesys-like notification service at ${local.baseUrl} (12 s channels)`
    : `freshtoken notifications demo: Genesys Cloud, region ${env("GENESYS_CLOUD_REGION")}`,
);
console.log(`following ${topic} for ${RUN_MS / 1000} s`);

const stop = new AbortController();
const timers: ReturnType<typeof setInterval>[] = [];
if (local) {
  const states = ["Available", "Busy", "Away", "Meal", "Meeting"];
  timers.push(setInterval(() => {
    local.publish(topic, {
      presenceDefinition: { systemPresence: states[Math.floor(Math.random() * 5)] },
    });
  }, 500));
  const faults: [string, () => void][] = [
    ["the server sends socket_closing", () => local.socketClosing(200)],
    ["the server drops the socket", () => local.dropAll()],
    ["the server evicts the channel", () => local.evictAll()],
  ];
  let n = 0;
  timers.push(setInterval(() => {
    const [what, fault] = faults[n++ % faults.length];
    console.log(`${at()}  fault: ${what}`);
    fault();
  }, 7_000));
}
setTimeout(() => stop.abort(), RUN_MS);
Deno.addSignalListener("SIGINT", () => stop.abort());

const seen = new Set<unknown>();
let repeats = 0;
let channels = 0;
for await (const event of genesysNotifications(client, { topics: [topic], signal: stop.signal })) {
  const id = event.metadata?.CorrelationId;
  if (id !== undefined && seen.has(id)) {
    repeats++;
    continue;
  }
  seen.add(id);
  const presence = (event.eventBody as { presenceDefinition?: { systemPresence?: string } })
    ?.presenceDefinition?.systemPresence;
  if (local && local.stats.channelsCreated !== channels) {
    channels = local.stats.channelsCreated;
    console.log(`${at()}  channel ${channels} open`);
  }
  if (!local || seen.size % 10 === 1) {
    console.log(`${at()}  ${event.topicName}: ${presence ?? "?"}`);
  }
}
timers.forEach(clearInterval);
if (local) {
  const sent = new Set(local.sentWhileOpen());
  const received = [...sent].filter((id) => seen.has(id)).length;
  console.log(
    `summary: ${sent.size} events sent while a socket was open, ${received} received ` +
      `(${repeats} repeats dropped by CorrelationId); ${local.stats.connects} sockets opened, ` +
      `${local.stats.channelsCreated} channels, ${local.stats.tokensIssued} token(s)`,
  );
  await local.close();
} else {
  console.log(
    `summary: ${seen.size} events received (${repeats} repeats dropped by CorrelationId)`,
  );
}
Deno.exit(0);
