// The notification stream's executor (docs/DESIGN.md, "Notifications"):
// it performs what the core's NotificationStream says (REST calls through
// client.fetch, Deno's WebSocket, a timer) and tells it what happened. It
// decides nothing: when to reconnect, roll over, back off or give up is the
// core's. Nothing from a message is logged, run or sent anywhere.

import { NotificationStream, type NotifyAction, type NotifyInput } from "../pkg/freshtoken.js";
import { configError, fromCore, TokenError } from "./token_error.ts";
import type { TokenClient } from "./types.ts";

/** A Genesys Cloud notification, as the server sent it, parsed. */
export interface NotificationEvent {
  /** The topic, e.g. `"v2.users.{id}.presence"`. */
  topicName: string;
  /** The event's body, as sent. */
  eventBody: unknown;
  /** The schema version, when sent. */
  version?: string;
  /** Genesys's metadata, when sent: `CorrelationId` tells a duplicate. */
  metadata?: Record<string, unknown>;
}

const CHANNELS = "/api/v2/notifications/channels";

/**
 * Tests only: `options[TIME_SCALE] = k` runs the stream's monotonic clock k
 * times faster (two minutes of silence in 1.2 s at 100), the wall clock
 * untouched.
 */
export const TIME_SCALE: unique symbol = Symbol("freshtoken.notifyTimeScale");
/** The most of a refused answer's text read (only to tell which topic a 400 is about). */
const DETAIL_LIMIT = 4096;

/** What the executor holds of one channel the core numbered. */
interface Held {
  id?: string;
  connectUri?: string;
  socket?: WebSocket;
  /** Aborts the channel's REST call in flight, if any. */
  call?: AbortController;
}

/** A message of Genesys's own that is handled here and never yielded. */
function isControl(topicName: string): boolean {
  return topicName === "channel.metadata" || topicName === "v2.system.socket_closing";
}

/**
 * Runs one stream of `topics` until `signal` aborts, the consumer stops, or
 * the core fails it: the events, in the order they came.
 */
export async function* runNotifications(
  client: TokenClient,
  topics: string[],
  signal: AbortSignal,
  scale = 1,
): AsyncGenerator<NotificationEvent> {
  const core = newStream(topics);
  const mono = () => performance.now() * scale;
  const held = new Map<number, Held>();
  const ready: NotificationEvent[] = [];
  let failure: unknown;
  let lastError: unknown;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wakeUp: (() => void) | undefined;
  /** The API's origin, from the first answer: connectUri must be on its domain family. */
  let apiUrl: URL | undefined;
  const stop = new AbortController();
  const stopped = AbortSignal.any([signal, stop.signal]);

  const woken = () => {
    wakeUp?.();
    wakeUp = undefined;
  };
  const feed = (input: NotifyInput) => {
    if (stopped.aborted || failure !== undefined) return;
    let step;
    try {
      step = core.handle(Date.now(), mono(), Math.random(), input);
    } catch {
      // The core refused the input: a bug here, not a reason to retry.
      failure = new TokenError("internal", "the notification stream was driven out of order");
      return woken();
    }
    for (const action of step.actions) perform(action);
    clearTimeout(timer);
    if (step.wakeAt !== undefined) {
      const ms = Math.max(0, (step.wakeAt - mono()) / scale);
      timer = setTimeout(() => feed({ type: "tick" }), ms);
    }
  };
  const perform = (action: NotifyAction) => {
    switch (action.type) {
      case "create":
        held.set(action.channel, {});
        return void rest(action.channel, action.timeoutMs, create);
      case "subscribe":
        return void rest(action.channel, action.timeoutMs, subscribe);
      case "verify":
        return void rest(action.channel, action.timeoutMs, verify);
      case "connect":
        return connect(action.channel);
      case "disconnect":
        return closeSocket(held.get(action.channel));
      case "forget": {
        const channel = held.get(action.channel);
        closeSocket(channel);
        channel?.call?.abort();
        held.delete(action.channel);
        return;
      }
      case "fail":
        failure = action.error !== undefined ? fromCore(action.error) : lastError;
        failure ??= new TokenError("internal", "the notification stream failed unexpectedly");
        return woken();
    }
  };

  /** One REST call of a channel: its answer, or why there is none, goes to the core. */
  const rest = async (
    channel: number,
    timeoutMs: number,
    call: (channel: number, held: Held, signal: AbortSignal) => Promise<NotifyInput>,
  ) => {
    const record = held.get(channel);
    if (record === undefined) return;
    const controller = new AbortController();
    record.call = controller;
    const signal = AbortSignal.any([stopped, controller.signal, AbortSignal.timeout(timeoutMs)]);
    let input: NotifyInput;
    try {
      input = await call(channel, record, signal);
    } catch (error) {
      if (stopped.aborted || controller.signal.aborted) return;
      lastError = error instanceof TokenError ? error : unreachable(error);
      input = { type: "unreachable", channel, retryable: (lastError as TokenError).retryable };
    } finally {
      if (record.call === controller) record.call = undefined;
    }
    feed(input);
  };

  const create = async (
    channel: number,
    record: Held,
    signal: AbortSignal,
  ): Promise<NotifyInput> => {
    const response = await client.fetch(CHANNELS, { method: "POST", signal });
    if (!response.ok) return await refused(channel, response);
    apiUrl ??= response.url === "" ? undefined : new URL(response.url);
    const body = await response.json().catch(() => undefined) as
      | Record<string, unknown>
      | undefined;
    const id = body?.id;
    const connectUri = body?.connectUri;
    if (typeof id !== "string" || id === "" || typeof connectUri !== "string") {
      throw new TokenError(
        "invalid_response",
        "the notification channel answer has no id or connectUri",
        {
          retryable: true,
        },
      );
    }
    checkConnectUri(connectUri, apiUrl);
    record.id = id;
    record.connectUri = connectUri;
    return {
      type: "created",
      channel,
      expires: finite(Date.parse(String(body?.expires))),
      serverDate: finite(Date.parse(response.headers.get("date") ?? "")),
    };
  };

  const subscribe = async (
    channel: number,
    record: Held,
    signal: AbortSignal,
  ): Promise<NotifyInput> => {
    const response = await client.fetch(
      `${CHANNELS}/${encodeURIComponent(record.id!)}/subscriptions`,
      {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(topics.map((id) => ({ id }))),
        signal,
      },
    );
    if (!response.ok) return await refused(channel, response);
    await response.body?.cancel();
    return { type: "subscribed", channel };
  };

  const verify = async (
    channel: number,
    record: Held,
    signal: AbortSignal,
  ): Promise<NotifyInput> => {
    const url = `${CHANNELS}/${encodeURIComponent(record.id!)}`;
    const response = await client.fetch(url, { method: "HEAD", signal });
    await response.body?.cancel();
    if (response.ok || response.status === 404) {
      return { type: "known", channel, known: response.ok };
    }
    return await refused(channel, response);
  };

  const connect = (channel: number) => {
    const record = held.get(channel);
    if (record?.connectUri === undefined) return;
    let socket: WebSocket;
    try {
      socket = new WebSocket(record.connectUri);
    } catch {
      return queueMicrotask(() => feed({ type: "dropped", channel }));
    }
    record.socket = socket;
    const mine = () => held.get(channel)?.socket === socket;
    socket.onopen = () => mine() && feed({ type: "opened", channel });
    socket.onmessage = (message) => {
      if (!mine()) return;
      const event = parse(message.data);
      const closing = event?.topicName === "v2.system.socket_closing";
      if (event !== undefined && !isControl(event.topicName)) {
        ready.push(event);
        woken();
      }
      feed({ type: "heard", channel, closing });
    };
    socket.onerror = () => {};
    socket.onclose = () => {
      if (!mine()) return;
      record.socket = undefined;
      feed({ type: "dropped", channel });
    };
  };

  const onAbort = () => woken();
  stopped.addEventListener("abort", onAbort);
  try {
    feed({ type: "tick" });
    while (true) {
      while (ready.length > 0) yield ready.shift()!;
      if (failure !== undefined) throw failure;
      if (stopped.aborted) return;
      await new Promise<void>((resolve) => wakeUp = resolve);
    }
  } finally {
    stop.abort();
    stopped.removeEventListener("abort", onAbort);
    clearTimeout(timer);
    for (const record of held.values()) {
      closeSocket(record);
      record.call?.abort();
    }
    held.clear();
    core.free();
  }
}

/** The core's stream of `topics`; bad topic names are a `config` error. */
export function newStream(topics: string[]): NotificationStream {
  try {
    return new NotificationStream(topics);
  } catch (error) {
    if (error instanceof Error) throw configError("topics must be an array of topic names");
    throw fromCore(error);
  }
}

function closeSocket(record: Held | undefined) {
  const socket = record?.socket;
  if (record === undefined || socket === undefined) return;
  record.socket = undefined;
  try {
    socket.close(1000);
  } catch {
    // Already closing.
  }
}

/** A refused REST call, for the core: its status, `Retry-After`, and (on a 400) its text. */
async function refused(channel: number, response: Response): Promise<NotifyInput> {
  const input: NotifyInput = { type: "refused", channel, status: response.status };
  const retryAfter = Number(response.headers.get("retry-after") ?? NaN);
  if (Number.isFinite(retryAfter) && retryAfter >= 0) input.retryAfterSeconds = retryAfter;
  if (response.status === 400) {
    input.detail = (await response.text().catch(() => "")).slice(0, DETAIL_LIMIT);
  } else {
    await response.body?.cancel();
  }
  return input;
}

/** A failure without an answer (the connection, a timeout), as a retryable error. */
function unreachable(error: unknown): TokenError {
  const timeout = error instanceof DOMException && error.name === "TimeoutError";
  if (error instanceof TypeError && /url/i.test(error.message)) {
    return configError("genesysNotifications needs a client with baseUrl (genesysCloud sets it)");
  }
  return new TokenError(
    timeout ? "timeout" : "network",
    `a notification channel request failed (${timeout ? "timed out" : "no answer"})`,
    { retryable: true },
  );
}

function finite(n: number): number | undefined {
  return Number.isFinite(n) ? n : undefined;
}

/** A message as JSON with a string `topicName`; anything else is only a sign of life. */
function parse(data: unknown): NotificationEvent | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { topicName, eventBody, version, metadata } = value as Record<string, unknown>;
  if (typeof topicName !== "string") return undefined;
  const event: NotificationEvent = { topicName, eventBody };
  if (typeof version === "string") event.version = version;
  if (typeof metadata === "object" && metadata !== null) {
    event.metadata = metadata as Record<string, unknown>;
  }
  return event;
}

/** Hosts that are this machine. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * A channel's `connectUri` is opened only when it is `wss:` on the API's
 * Genesys domain family (`api.mypurecloud.ie` → `*.mypurecloud.ie`), or,
 * for an API on this machine (tests), `ws:`/`wss:` to this machine: an
 * answer cannot send the socket elsewhere.
 */
export function checkConnectUri(connectUri: string, api: URL | undefined): void {
  let uri: URL;
  try {
    uri = new URL(connectUri);
  } catch {
    throw refusedUri("is not a URL");
  }
  if (api === undefined) throw refusedUri("cannot be checked: the API's address is unknown");
  const local = isLoopback(api.hostname);
  if (local) {
    if ((uri.protocol === "ws:" || uri.protocol === "wss:") && isLoopback(uri.hostname)) return;
    throw refusedUri("must be ws: or wss: to this machine, as the API is");
  }
  const family = api.hostname.replace(/^api\./, "");
  const onFamily = uri.hostname === family || uri.hostname.endsWith(`.${family}`);
  if (uri.protocol === "wss:" && onFamily && uri.username === "" && uri.password === "") return;
  throw refusedUri(`must be wss: on ${family}`);
}

function refusedUri(why: string): TokenError {
  return new TokenError("invalid_response", `the notification channel's connectUri ${why}`, {
    retryable: false,
  });
}
