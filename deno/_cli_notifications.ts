// `freshtoken notifications`: Genesys Cloud notification topics followed
// with genesysNotifications, each event one JSON line on stdout, until
// SIGINT or SIGTERM (exit 0). Nothing else is printed; errors end it with
// the exit code of their kind, as for the other commands.

import { onSignals } from "./_cli_commands.ts";
import { EXIT, type Invocation } from "./_cli_flags.ts";
import { genesysNotifications } from "./notifications.ts";
import type { TokenClient } from "./types.ts";

/** Prints each event of `invocation.topics` with `out` until a signal; resolves to the exit code. */
export async function notifications(
  client: TokenClient,
  invocation: Invocation,
  io: { out: (text: string) => void },
): Promise<number> {
  const controller = new AbortController();
  const stop = onSignals(["SIGINT", "SIGTERM"], () => controller.abort());
  try {
    const events = genesysNotifications(client, {
      topics: invocation.topics,
      signal: controller.signal,
    });
    for await (const event of events) io.out(`${JSON.stringify(event)}\n`);
    return EXIT.ok;
  } finally {
    stop();
  }
}
