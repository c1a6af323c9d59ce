/**
 * The executor (docs/DESIGN.md, "The effect loop"): runs one acquisition as
 * the core drives it. It asks `core.poll` for the next effect, performs it
 * and hands the outcome to `core.handle`, its one input; it delivers the
 * events the core reported. It decides nothing: read it beside the
 * simulator's `perform` (src/sim/executor.rs), which does the same against a
 * simulated store and server.
 *
 * @module
 */

import type { Core, CoreEffect, CoreEvent, CoreOutcome, TokenRecord } from "../pkg/freshtoken.js";
import { sleep } from "./_internal.ts";
import type { Span } from "./_telemetry.ts";
import type { Lease, Snapshot, TokenStore } from "./kv_store.ts";

/** What the executor works with: the I/O the core cannot do, and where its results go. */
export interface Host {
  core: Core;
  /** The store, with KV. */
  store?: TokenStore;
  /** The wall clock (epoch ms). */
  now(): number;
  /** The monotonic clock (ms). */
  mono(): number;
  /** Sends a token or metadata request (the client's fetch, over its TLS client if any). */
  send(request: Request): Promise<Response>;
  /**
   * Calls the `clientSecret` function or `clientAssertion` for one token
   * request, within `timeoutMs`: what it gave, or `undefined` if it threw,
   * gave no string or took too long (the core says what that means).
   */
  credential(timeoutMs: number): Promise<string | undefined>;
  /** Delivers an event the core reported. */
  event(event: CoreEvent): void;
  /** Starts a span for a wait, when telemetry is on. */
  wait(name: string): Span | undefined;
}

/** The executor's own I/O state: the last read (for the lease's check) and the lease held. */
export interface Io {
  seen?: Snapshot;
  lease?: Lease;
}

/** How an acquisition ended: the `done` or `fail` effect. */
export type Ending =
  | Extract<CoreEffect, { type: "done" }>
  | Extract<CoreEffect, { type: "fail" }>;

/**
 * Runs the acquisition begun (`core.start` answered `"begun"`) to its end;
 * `written` hears of a token the moment the core holds it (before its
 * write to the store ends), so that callers are served at once.
 */
export async function execute(
  host: Host,
  written: (record: TokenRecord) => void,
): Promise<Ending> {
  const { core } = host;
  const io: Io = {};
  try {
    for (;;) {
      const effect: CoreEffect = core.poll(host.now(), host.mono());
      let outcome: CoreOutcome;
      try {
        if (core.eventCount !== 0) { for (const event of core.events()) host.event(event); }
        if (effect.type === "done" || effect.type === "fail") return effect;
        if (effect.type === "write_store") written(effect.record);
        outcome = await perform(host, effect, io);
      } catch {
        // The core ends the acquisition: its record of it never outlives the executor.
        outcome = { type: "broken" };
      }
      core.handle(host.now(), host.mono(), outcome);
    }
  } finally {
    if (io.lease !== undefined) await host.store?.releaseLease(io.lease); // ended mid-way
  }
}

/** Performs one effect; resolves to the outcome the core takes after it. */
export async function perform(host: Host, effect: CoreEffect, io: Io): Promise<CoreOutcome> {
  const { core, store } = host;
  switch (effect.type) {
    case "read_store":
      io.seen = await store!.snapshot(effect.eventual);
      return { type: "snapshot", snapshot: io.seen };
    case "take_lease": {
      const taken = await store!.takeLease(effect.ttlMs, io.seen!);
      if (taken !== undefined && taken !== "held") io.lease = taken;
      return { type: "lease", taken: taken === undefined ? undefined : taken !== "held" };
    }
    case "renew_lease":
      io.lease = io.lease && await store!.renewLease(io.lease, effect.ttlMs);
      return { type: "renewed", kept: io.lease !== undefined };
    case "release_lease":
      if (io.lease !== undefined) await store!.releaseLease(io.lease);
      io.lease = undefined;
      return { type: "stored" };
    case "write_store":
      await store!.write(effect.record);
      return { type: "stored" };
    case "remove_store":
      await store!.remove(effect.only);
      return { type: "removed" };
    case "set_backoff":
      await store!.setBackoff(effect.until);
      return { type: "stored" };
    case "read_metadata":
      return { type: "metadata_copy", copy: await store!.readMetadata() };
    case "write_metadata":
      await store!.writeMetadata(effect.copy);
      return { type: "stored" };
    case "sleep": {
      const span = effect.why === "backoff" ? host.wait("freshtoken.backoff_wait") : undefined;
      await sleep(effect.ms);
      span?.end();
      return { type: "slept" };
    }
    case "sign":
      return await core.sign(host.now());
    case "send":
      return await core.send(host.send, effect.timeoutMs);
    case "credential":
      return { type: "credential", value: await host.credential(effect.timeoutMs) };
    case "done":
    case "fail":
      return { type: "broken" }; // ends are the executor's to return, never to perform
  }
}
