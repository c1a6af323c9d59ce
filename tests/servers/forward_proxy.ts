/**
 * A forward proxy on loopback for the tests, as corporate networks run
 * one: absolute-form requests (`GET http://host:port/path HTTP/1.1`, RFC 9112
 * §3.2.2) are passed on to the origin, and `CONNECT host:port` (RFC 9110
 * §9.3.6) opens a tunnel. Every host is reached on 127.0.0.1 at the port
 * asked for. It records the request line of each, which is all it sees of
 * a tunnel: the TLS inside stays between client and server.
 *
 * @module
 */

/** A running proxy. */
export interface ForwardProxy {
  /** `http://127.0.0.1:PORT`, for HTTP_PROXY and HTTPS_PROXY. */
  url: string;
  /** The request lines received, in order (`CONNECT 127.0.0.1:4431`, `GET http://… HTTP/1.1`). */
  seen: string[];
  close(): void;
}

const HEAD_END = new TextEncoder().encode("\r\n\r\n");

/** Starts the proxy on 127.0.0.1 with a free port. */
export function startForwardProxy(): ForwardProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const open = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      open.add(conn);
      handle(conn, seen, open).catch(() => {}).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // Closed by the pipe already.
        }
      });
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    seen,
    close: () => {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

async function handle(conn: Deno.Conn, seen: string[], open: Set<Deno.Conn>): Promise<void> {
  const head = await readHead(conn);
  if (head === undefined) return;
  const text = new TextDecoder().decode(head.bytes.subarray(0, head.end));
  const line = text.slice(0, text.indexOf("\r\n"));
  seen.push(line);
  const [method, target] = line.split(" ");
  if (method === "CONNECT") {
    const port = Number(target.slice(target.lastIndexOf(":") + 1));
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
    open.add(upstream);
    await conn.write(new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"));
    await Promise.allSettled([
      conn.readable.pipeTo(upstream.writable),
      upstream.readable.pipeTo(conn.writable),
    ]);
    open.delete(upstream);
    return;
  }
  // Absolute form: the origin gets the path and the headers, one request
  // per connection (so that each request line is recorded).
  const url = new URL(target);
  const upstream = await Deno.connect({ hostname: "127.0.0.1", port: Number(url.port || 80) });
  open.add(upstream);
  const headers = text.slice(line.length + 2, text.length - 4).split("\r\n")
    .filter((h) => !/^(proxy-)?connection:/i.test(h));
  const origin = [
    `${method} ${url.pathname}${url.search} HTTP/1.1`,
    ...headers,
    "Connection: close",
  ];
  await upstream.write(new TextEncoder().encode(`${origin.join("\r\n")}\r\n\r\n`));
  await upstream.write(head.bytes.subarray(head.end));
  await Promise.allSettled([
    conn.readable.pipeTo(upstream.writable),
    upstream.readable.pipeTo(conn.writable),
  ]);
  open.delete(upstream);
}

/** The bytes read until the end of the head, and where the head ends. */
async function readHead(conn: Deno.Conn): Promise<{ bytes: Uint8Array; end: number } | undefined> {
  let bytes = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  for (;;) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    const next = new Uint8Array(bytes.length + n);
    next.set(bytes);
    next.set(chunk.subarray(0, n), bytes.length);
    bytes = next;
    const end = indexOf(bytes, HEAD_END);
    if (end >= 0) return { bytes, end: end + HEAD_END.length };
    if (bytes.length > 64 * 1024) return undefined;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
