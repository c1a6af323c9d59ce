/**
 * Genesys Cloud notifications that stay up: the channel, its socket and the
 * token kept alive together.
 *
 * @module
 */

import {
  newStream,
  type NotificationEvent,
  runNotifications,
  TIME_SCALE,
} from "./_notify_executor.ts";
import { configError } from "./token_error.ts";
import type { TokenClient } from "./types.ts";

export type { NotificationEvent } from "./_notify_executor.ts";

/** Options of {@linkcode genesysNotifications}. */
export interface NotificationOptions {
  /** The topics, e.g. `"v2.users.{id}.presence"`: 1 to 1000 of them. */
  topics: string[];
  /** Ends the iteration and closes the socket. */
  signal?: AbortSignal;
}

/**
 * The Genesys Cloud notifications of `topics`, as an async iterable that
 * keeps itself alive: it creates a channel and subscribes the topics
 * through `client.fetch` (a 401 refreshes the token; the client needs
 * `baseUrl`, which {@linkcode genesysCloud} sets), opens the channel's
 * `connectUri` with Deno's WebSocket and yields each event as Genesys sent
 * it. A socket closed by the server (`v2.system.socket_closing`) or dropped,
 * or silent for two minutes, is opened again after a back-off (full jitter,
 * 0.5 s doubling to 60 s); a channel is replaced before it expires, the new
 * one open before the old one closes, and when the server has lost it.
 *
 * Events are delivered at least once: around a replacement both channels
 * are open for a moment and an event may come twice. Where Genesys sends
 * `metadata.CorrelationId`, it tells a repeat. Heartbeats and
 * `socket_closing` are handled here and never yielded; nothing is logged.
 *
 * The iteration ends when `signal` aborts or the loop is left; it throws a
 * {@linkcode TokenError} when it cannot go on: code `"config"` naming the
 * topic when Genesys refuses a subscription (HTTP 400), or the client's
 * error when no token can be had. Bad `topics` throw at once.
 *
 * @example
 * ```ts ignore
 * import { createTokenClient, genesysCloud, genesysNotifications } from "./mod.ts";
 *
 * const client = createTokenClient(genesysCloud({ region: "eu_west_1", clientId: "id", clientSecret: "secret" }));
 * for await (const event of genesysNotifications(client, { topics: ["v2.users.{id}.presence"] })) {
 *   console.log(event.topicName, event.eventBody);
 * }
 * ```
 */
export function genesysNotifications(
  client: TokenClient,
  options: NotificationOptions,
): AsyncIterable<NotificationEvent> {
  const { topics, signal } = options ?? {};
  if (typeof client?.fetch !== "function") {
    throw configError("genesysNotifications needs a TokenClient");
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw configError("signal must be an AbortSignal");
  }
  if (!Array.isArray(topics) || topics.some((t) => typeof t !== "string")) {
    throw configError("topics must be an array of topic names");
  }
  const names = [...topics];
  newStream(names).free(); // checks the names now, not at the first event
  const scale = (options as { [TIME_SCALE]?: number })[TIME_SCALE] ?? 1;
  const stop = signal ?? new AbortController().signal;
  return { [Symbol.asyncIterator]: () => runNotifications(client, names, stop, scale) };
}
