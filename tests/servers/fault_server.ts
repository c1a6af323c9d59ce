/**
 * A token endpoint that misbehaves on purpose, for the reliability tests: a
 * raw TCP server on 127.0.0.1 speaking just enough HTTP/1.1 to fail in every
 * way a real one can — wrong statuses, bad bodies, resets mid-response,
 * silence, a trickle, redirects. What it does is scripted per request.
 *
 * @module
 */

/** What the server does with one request. */
export type Fault =
  | { kind: "respond"; status: number; body?: string; headers?: Record<string, string> }
  /** Announces a body, sends part of it, then closes the connection. */
  | { kind: "reset" }
  /** Accepts the request and never answers. */
  | { kind: "hang" }
  /** Sends headers, then one byte of body every `everyMs`, forever. */
  | { kind: "trickle"; everyMs: number }
  /** Sends `text` as it is (status line, headers and body), then closes. */
  | { kind: "raw"; text: string };

/** A running fault server. */
export interface FaultServer {
  tokenUrl: string;
  /** Requests received, in order. */
  requests: number;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = { 200: "OK", 302: "Found", 429: "Too Many Requests" };

/** Starts the server; `script(n)` decides what request `n` (from 1) gets. */
export function startFaultServer(script: (n: number) => Fault): FaultServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const timers = new Set<ReturnType<typeof setInterval>>();
  const state: FaultServer = {
    tokenUrl: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/token`,
    requests: 0,
    async close() {
      listener.close();
      for (const timer of timers) clearInterval(timer);
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Already closed by the client.
        }
      }
      await accepting;
    },
  };

  const serve = async (conn: Deno.Conn) => {
    open.add(conn);
    try {
      if (!await readRequest(conn)) return;
      const fault = script(++state.requests);
      const write = (text: string) => conn.write(new TextEncoder().encode(text));
      switch (fault.kind) {
        case "respond": {
          const body = new TextEncoder().encode(fault.body ?? "");
          const headers = {
            "content-type": "application/json",
            "content-length": String(body.length),
            connection: "close",
            ...fault.headers,
          };
          await write(
            `HTTP/1.1 ${fault.status} ${REASONS[fault.status] ?? "Status"}\r\n` +
              Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n",
          );
          await writeAll(conn, body);
          break;
        }
        case "reset":
          await write(
            'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{"access_tok',
          );
          break;
        case "hang":
          await new Promise(() => {}); // Closed by close().
          break;
        case "raw":
          await writeAll(conn, new TextEncoder().encode(fault.text));
          break;
        case "trickle": {
          await write(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n",
          );
          await new Promise<void>((resolve) => {
            const timer = setInterval(() => {
              conn.write(new TextEncoder().encode(" ")).catch(() => {
                clearInterval(timer);
                timers.delete(timer);
                resolve();
              });
            }, fault.everyMs);
            timers.add(timer);
          });
          break;
        }
      }
    } catch {
      // The client went away: that is its right.
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch {
      // Listener closed.
    }
  })();
  return state;
}

/** Reads one request (headers and a Content-Length body); false if the client left first. */
async function readRequest(conn: Deno.Conn): Promise<boolean> {
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return false;
    text += new TextDecoder().decode(buffer.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const length = Number(text.slice(0, end).match(/content-length:\s*(\d+)/i)?.[1] ?? 0);
    if (text.length - end - 4 >= length) return true;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}
