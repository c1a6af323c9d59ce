/**
 * A loopback server that behaves like Genesys Cloud's notification service,
 * for the notification tests, the long run and the demo:
 *
 * - `POST /oauth/token`: the client-credentials grant (HTTP Basic), tokens
 *   prefixed `canary-token-` so that the test command can find a leak;
 * - `POST /api/v2/notifications/channels` → `{ id, connectUri, expires }`
 *   (a channel lives `channelSeconds`; a channel past `maxChannels` evicts
 *   the oldest, as Genesys does past 20);
 * - `PUT …/channels/{id}/subscriptions` with `[{ "id": topic }]` (400 for a
 *   topic in `badTopics`, naming it), `HEAD …/channels/{id}` (200 or 404);
 * - `GET /channels/{id}`: the channel's WebSocket, with heartbeats
 *   (`channel.metadata`) and events, as Genesys sends them.
 *
 * Every REST call needs a live bearer token (401 otherwise). Faults are
 * injected through the returned object: `socket_closing`, drops, silence,
 * eviction, expiry, and statuses for the next REST calls.
 *
 * @module
 */

/** Options of {@linkcode startNotificationServer}. */
export interface NotificationServerOptions {
  clients: Record<string, string>;
  /** Token lifetime, seconds. Default 86400. */
  tokenSeconds?: number;
  /** Channel lifetime, seconds. Default 86400 (Genesys: 24 hours). */
  channelSeconds?: number;
  /** Heartbeat period, ms; 0 for none. Default 30000. */
  heartbeatMs?: number;
  /** Channels kept per client before the oldest is evicted. Default 20. */
  maxChannels?: number;
  /** Topics answered with 400. */
  badTopics?: string[];
  /** The `connectUri` given for a channel (to test the check of it). */
  connectUriFor?: (id: string, origin: string) => string;
}

/** A socket as the server saw it. */
export interface SocketRecord {
  channel: string;
  openedAt: number;
  closedAt?: number;
  /** The server closed it (a fault, an expiry, an eviction). */
  byServer: boolean;
}

/** An event as the server sent it. */
export interface SentEvent {
  id: string;
  at: number;
  sockets: SocketRecord[];
}

/** What the server counted. */
export interface NotificationStats {
  tokensIssued: number;
  channelsCreated: number;
  subscriptions: number;
  verifications: number;
  connects: number;
  refusedConnects: number;
  /** When each connect (refused ones too) came, ms. */
  connectTimes: number[];
  api401: number;
  /** Every URL requested (path and query), to check that no token is in one. */
  urls: string[];
  /** The subscription bodies received. */
  subscribed: unknown[];
}

/** A running server. */
export interface NotificationServer {
  tokenUrl: string;
  baseUrl: string;
  stats: NotificationStats;
  sockets: SocketRecord[];
  events: SentEvent[];
  /** Sends an event on `topic` to every open socket of a channel subscribed to it; its CorrelationId. */
  publish(topic: string, body?: unknown): string;
  /** `v2.system.socket_closing` on every open socket, then closes them after `afterMs`. */
  socketClosing(afterMs?: number): void;
  /** Closes every open socket at once. */
  dropAll(): void;
  /** Stops (or restarts) sending anything, heartbeats included, on the sockets open now. */
  silence(on: boolean): void;
  /** Forgets every channel (its sockets closed), as an eviction or expiry does. */
  evictAll(): void;
  /** The next `times` REST calls to the notification API get `status`. */
  failNext(status: number, times?: number, retryAfterSeconds?: number): void;
  /** Revokes every token, so that the next API call gets 401. */
  revokeTokens(): void;
  /**
   * Events sent while the client had a socket open: to a socket that stayed
   * open `graceMs` longer (an event written to a socket the client is
   * closing is lost on the way, as with Genesys).
   */
  sentWhileOpen(graceMs?: number): string[];
  /** Channels the server knows now. */
  liveChannels(): number;
  /** Sockets open now. */
  openSockets(): number;
  close(): Promise<void>;
}

interface Channel {
  id: string;
  created: number;
  expires: number;
  topics: Set<string>;
  sockets: Set<Live>;
  expiry: ReturnType<typeof setTimeout>;
}

interface Live {
  socket: WebSocket;
  record: SocketRecord;
  silent: boolean;
  heartbeat?: ReturnType<typeof setInterval>;
  closingSent: boolean;
}

/** Starts the server on 127.0.0.1 with a free port. */
export function startNotificationServer(options: NotificationServerOptions): NotificationServer {
  const tokenSeconds = options.tokenSeconds ?? 86_400;
  const channelSeconds = options.channelSeconds ?? 86_400;
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  const maxChannels = options.maxChannels ?? 20;
  const bad = new Set(options.badTopics ?? []);
  const tokens = new Map<string, number>();
  const channels = new Map<string, Channel>();
  const sockets: SocketRecord[] = [];
  const events: SentEvent[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let failures: { status: number; times: number; retryAfter?: number } | undefined;
  const stats: NotificationStats = {
    tokensIssued: 0,
    channelsCreated: 0,
    subscriptions: 0,
    verifications: 0,
    connects: 0,
    refusedConnects: 0,
    connectTimes: [],
    api401: 0,
    urls: [],
    subscribed: [],
  };

  const later = (ms: number, f: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      f();
    }, ms);
    timers.add(timer);
  };

  const closeLive = (live: Live, byServer: boolean) => {
    clearInterval(live.heartbeat);
    if (live.record.closedAt === undefined) {
      live.record.closedAt = Date.now();
      live.record.byServer = byServer;
    }
    for (const channel of channels.values()) channel.sockets.delete(live);
    try {
      live.socket.close();
    } catch {
      // Closed already.
    }
  };

  const forget = (channel: Channel) => {
    clearTimeout(channel.expiry);
    channels.delete(channel.id);
    for (const live of [...channel.sockets]) closeLive(live, true);
  };

  const send = (live: Live, message: unknown) => {
    if (live.silent || live.socket.readyState !== WebSocket.OPEN) return false;
    live.socket.send(JSON.stringify(message));
    return true;
  };

  const authorized = (request: Request) => {
    const token = request.headers.get("authorization")?.match(/^bearer (\S+)$/i)?.[1];
    const until = token === undefined ? undefined : tokens.get(token);
    return until !== undefined && until > Date.now();
  };

  const tokenEndpoint = async (request: Request): Promise<Response> => {
    const form = new URLSearchParams(await request.text());
    const basic = request.headers.get("authorization")?.match(/^basic (\S+)$/i)?.[1];
    const [id, secret] = basic === undefined ? [] : atob(basic).split(":").map(decodeURIComponent);
    if (form.get("grant_type") !== "client_credentials") {
      return Response.json({ error: "unsupported_grant_type" }, { status: 400 });
    }
    if (id === undefined || options.clients[id] !== secret) {
      return Response.json({ error: "invalid_client" }, { status: 401 });
    }
    const token = `canary-token-${crypto.randomUUID().replaceAll("-", "")}`;
    tokens.set(token, Date.now() + tokenSeconds * 1000);
    stats.tokensIssued++;
    return Response.json({ access_token: token, token_type: "bearer", expires_in: tokenSeconds });
  };

  const createChannel = (origin: string): Response => {
    const id = `streaming-${crypto.randomUUID()}`;
    const now = Date.now();
    const channel: Channel = {
      id,
      created: now,
      expires: now + channelSeconds * 1000,
      topics: new Set(),
      sockets: new Set(),
      expiry: setTimeout(() => forget(channel), channelSeconds * 1000),
    };
    channels.set(id, channel);
    stats.channelsCreated++;
    if (channels.size > maxChannels) {
      const oldest = [...channels.values()].sort((a, b) => a.created - b.created)[0];
      forget(oldest);
    }
    const wsOrigin = origin.replace(/^http/, "ws");
    const connectUri = options.connectUriFor?.(id, wsOrigin) ?? `${wsOrigin}/channels/${id}`;
    return Response.json({ connectUri, id, expires: new Date(channel.expires).toISOString() });
  };

  const subscribe = async (channel: Channel, request: Request): Promise<Response> => {
    const body = await request.json().catch(() => undefined);
    stats.subscribed.push(body);
    if (!Array.isArray(body)) return Response.json({ message: "bad body" }, { status: 400 });
    for (const entry of body) {
      if (bad.has(entry?.id)) {
        return Response.json(
          { message: `Unable to subscribe to topic ${entry.id}: not found`, status: 400 },
          { status: 400 },
        );
      }
    }
    stats.subscriptions++;
    channel.topics = new Set(body.map((entry: { id: string }) => entry.id));
    return Response.json({ entities: body });
  };

  const api = (
    request: Request,
    pathname: string,
    origin: string,
  ): Response | Promise<Response> => {
    if (failures !== undefined && failures.times > 0) {
      failures.times--;
      const headers: Record<string, string> = {};
      if (failures.retryAfter !== undefined) headers["retry-after"] = String(failures.retryAfter);
      return Response.json({ status: failures.status }, { status: failures.status, headers });
    }
    if (!authorized(request)) {
      stats.api401++;
      return Response.json({ message: "Authentication failed.", status: 401 }, { status: 401 });
    }
    const match = pathname.match(
      /^\/api\/v2\/notifications\/channels(?:\/([^/]+))?(\/subscriptions)?$/,
    );
    if (match === null) return new Response(null, { status: 404 });
    const [, id, subscriptions] = match;
    if (id === undefined && request.method === "POST") return createChannel(origin);
    const channel = id === undefined ? undefined : channels.get(decodeURIComponent(id));
    if (request.method === "HEAD" && subscriptions === undefined && id !== undefined) {
      stats.verifications++;
      return new Response(null, { status: channel === undefined ? 404 : 200 });
    }
    if (channel === undefined) return Response.json({ status: 404 }, { status: 404 });
    if (request.method === "PUT" && subscriptions !== undefined) return subscribe(channel, request);
    return new Response(null, { status: 405 });
  };

  const connect = (request: Request, id: string): Response => {
    stats.connectTimes.push(Date.now());
    const channel = channels.get(decodeURIComponent(id));
    if (channel === undefined || request.headers.get("upgrade") !== "websocket") {
      stats.refusedConnects++;
      return new Response(null, { status: 404 });
    }
    stats.connects++;
    const { socket, response } = Deno.upgradeWebSocket(request);
    const record: SocketRecord = { channel: channel.id, openedAt: Date.now(), byServer: false };
    const live: Live = { socket, record, silent: false, closingSent: false };
    socket.onopen = () => {
      if (!channels.has(channel.id)) return closeLive(live, true);
      sockets.push(record);
      channel.sockets.add(live);
      if (heartbeatMs > 0) {
        live.heartbeat = setInterval(() => {
          send(live, {
            topicName: "channel.metadata",
            eventBody: { message: "WebSocket Heartbeat" },
          });
        }, heartbeatMs);
      }
    };
    socket.onclose = () => closeLive(live, false);
    socket.onerror = () => {};
    socket.onmessage = (message) => {
      if (String(message.data).includes('"ping"')) {
        send(live, { topicName: "channel.metadata", eventBody: { message: "pong" } });
      }
    };
    return response;
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    stats.urls.push(url.pathname + url.search);
    if (request.method === "POST" && url.pathname === "/oauth/token") return tokenEndpoint(request);
    if (url.pathname.startsWith("/api/")) return api(request, url.pathname, url.origin);
    const ws = url.pathname.match(/^\/channels\/([^/]+)$/);
    if (ws !== null) return connect(request, ws[1]);
    return new Response(null, { status: 404 });
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const allLive = () => [...channels.values()].flatMap((c) => [...c.sockets]);

  return {
    tokenUrl: `${origin}/oauth/token`,
    baseUrl: origin,
    stats,
    sockets,
    events,
    publish(topic, body = { id: crypto.randomUUID() }) {
      const id = crypto.randomUUID();
      const event: SentEvent = { id, at: Date.now(), sockets: [] };
      const message = {
        topicName: topic,
        version: "2",
        eventBody: body,
        metadata: { CorrelationId: id },
      };
      for (const channel of channels.values()) {
        if (!channel.topics.has(topic)) continue;
        for (const live of channel.sockets) {
          if (!live.closingSent && send(live, message)) event.sockets.push(live.record);
        }
      }
      events.push(event);
      return id;
    },
    socketClosing(afterMs = 100) {
      for (const live of allLive()) {
        send(live, { topicName: "v2.system.socket_closing", eventBody: { message: "closing" } });
        live.closingSent = true;
        later(afterMs, () => closeLive(live, true));
      }
    },
    dropAll() {
      for (const live of allLive()) closeLive(live, true);
    },
    silence(on) {
      for (const live of allLive()) live.silent = on;
    },
    evictAll() {
      for (const channel of [...channels.values()]) forget(channel);
    },
    failNext(status, times = 1, retryAfterSeconds) {
      failures = { status, times, retryAfter: retryAfterSeconds };
    },
    sentWhileOpen: (graceMs = 50) =>
      events.filter((e) =>
        e.sockets.some((s) => s.closedAt === undefined || s.closedAt - e.at > graceMs)
      ).map((e) => e.id),
    revokeTokens: () => tokens.clear(),
    liveChannels: () => channels.size,
    openSockets: () => allLive().length,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const channel of [...channels.values()]) forget(channel);
      await server.shutdown();
    },
  };
}
