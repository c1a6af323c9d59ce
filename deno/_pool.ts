/**
 * Token pools (docs/DESIGN.md, "Token pools"): with `poolSize` N a client
 * keeps up to N tokens, each slot a client of its own with its own token,
 * schedule, KV entry and lease. The core decides which slot serves a call
 * (`core.pick`) and what a call that got a 429 does next (`core.after429`:
 * move to a slot, wait for a slot, or return the 429), from a view of every
 * slot; this module only keeps when each slot was last used and runs
 * `client.fetch`'s loop, which sends on the slot the core names.
 *
 * @module
 */

import type { AfterLimit, SlotView } from "../pkg/freshtoken.js";
import {
  DESCRIBE,
  HELD,
  type Held,
  INVALIDATE,
  KV_ID,
  KV_PLACE,
  type KvPlace,
  LOAD_SHARED,
  PREPARE_KEY,
  REFRESH_IF_DUE,
  SAMPLE,
  SLOT,
} from "./_internal.ts";
import type { Sample } from "./_telemetry.ts";
import type { Token } from "./token.ts";
import type { GetTokenOptions, RefreshResult, TokenClient, TokenStatus } from "./types.ts";

/** One `client.fetch` call, as the core's decisions about it need it. */
export interface FetchCall {
  /** When it began, monotonic ms. */
  started: number;
  /** Requests sent so far. */
  sends: number;
  /** A 401 was met (and sent again, or returned). */
  unauthorized: boolean;
}

/** A moment on both clocks: wall (`now`) and monotonic (`mono`), ms. */
export interface Moment {
  now: number;
  mono: number;
}

/** What a call did after a 429, as a slot reports it (event and telemetry). */
export interface RateLimitReport {
  next: AfterLimit["type"];
  /** How long the slot's token cools. */
  coolingMs: number;
  /** When the send that got the 429 began, `performance.now()` ms. */
  sentAt: number;
  /** With `next` "move": the slot the call moves to. */
  to?: number;
}

/** What `client.fetch`'s loop asks of a slot (`client[SLOT]()`). */
export interface Slot {
  /** The options' `poolSize`. */
  readonly poolSize: number;
  /** The monotonic clock. */
  mono(): number;
  /** The slot as its core sees it, without `lastUsed`. */
  view(): SlotView;
  /**
   * While its hot path serves at wall time `now` (the core's last answer,
   * as `getToken()` reads it): until when its token cools, monotonic ms;
   * else `undefined`. No wasm call.
   */
  servingCooling(now: number): number | undefined;
  /** Which slot serves the next call (`core.pick`), asked of the pool's first slot. */
  pick(slots: SlotView[]): number;
  /** The slot that serves a call whose slot failed it (`core.instead`), asked of the pool's first slot. */
  instead(slots: SlotView[]): number | undefined;
  /** What a call does after slot `own` got a 429 `at` (`core.after429`), asked of the pool's first slot. */
  after429(
    slots: SlotView[],
    own: number,
    call: FetchCall,
    replayable: boolean,
    at: Moment,
  ): AfterLimit;
  getToken(options?: GetTokenOptions): Promise<Token>;
  /** Waits while its token cools, if the core says the wait fits (until `signal` aborts): then `true`. */
  whileCooling(call: FetchCall, signal: AbortSignal): Promise<boolean>;
  send(request: Request, token: Token): Promise<Response>;
  /** A 429: the core cools the token (and, with KV, it is shared); how long, ms, and when it cooled it. */
  rateLimited(
    call: FetchCall,
    response: Response,
    replayable: boolean,
  ): Promise<{ coolingMs: number; at: Moment }>;
  /** Waits `ms` for its token to stop cooling, or until `signal` aborts. */
  apiWait(ms: number, signal: AbortSignal): Promise<void>;
  /** A 401: whether to send again (the core's answer; the token may be forgotten). */
  unauthorized(response: Response, token: Token): Promise<boolean>;
  /** A request sent again after a 401 was accepted. */
  authorized(): void;
  /** Says what a call did after a 429: the event `rate_limited` and its telemetry. */
  report(report: RateLimitReport): void;
  /** Calls `then` each time a token request of this slot fails. */
  whenRequestFailed(then: () => void): void;
  /** Another slot's token requests are held back: the core holds this slot's back as long (without KV). */
  holdBackAs(other: Slot): void;
  now(): number;
  /** `client.fetch` of the client, over `slots`: the loop below, after the origin checks. */
  fetchThrough(slots: Slots, input: string | URL | Request, init?: RequestInit): Promise<Response>;
}

/** The slots `client.fetch` chooses from. */
export interface Slots {
  /** The slot for the next send. */
  pick(): Slot;
  /** The slot's token, or, when the slot fails to give one, another slot's that serves. */
  token(slot: Slot, signal: AbortSignal): Promise<{ slot: Slot; token: Token }>;
  /** After `slot` got a 429 `at` (it now cools): the core's answer, its slot taken for the next send. */
  after429(
    slot: Slot,
    call: FetchCall,
    replayable: boolean,
    at: Moment,
  ): { next: AfterLimit; to?: Slot };
}

/**
 * `client.fetch`'s loop over `slots`: send with the slot picked; after a
 * 429, do as the core says (move to the slot it names, wait for the slot
 * it names, or return the 429), sending next on that slot; after a 401,
 * send once more as the core says. A wait ends when the request's signal
 * aborts, and the call then rejects with its reason, as `fetch` does.
 */
export async function fetchLoop(
  slots: Slots,
  request: Request,
  replayable: boolean,
  started: number,
): Promise<Response> {
  const call: FetchCall = { started, sends: 0, unauthorized: false };
  const signal = request.signal;
  let next: Slot | undefined;
  for (;;) {
    signal.throwIfAborted();
    const { slot, token } = await abortable(signal, slots.token(next ?? slots.pick(), signal));
    next = slot; // it may come with another isolate's cooling: the same slot after the wait
    if (await slot.whileCooling(call, signal)) continue;
    signal.throwIfAborted();
    const sentAt = performance.now(); // for telemetry only: what a move cost
    const response = await slot.send(replayable ? request.clone() : request, token);
    call.sends++;
    if (response.status === 429) {
      const { coolingMs, at } = await slot.rateLimited(call, response, replayable);
      const { next: after, to } = slots.after429(slot, call, replayable, at);
      const moved = after.type === "move" ? after.slot : undefined;
      slot.report({ next: after.type, coolingMs, sentAt, to: moved });
      if (after.type === "return") return response;
      await response.body?.cancel();
      next = to;
      if (after.type === "wait") await to!.apiWait(after.ms, signal);
    } else if (response.status === 401 && replayable && !call.unauthorized) {
      call.unauthorized = true;
      next = undefined; // the slot's token may be forgotten: the core picks again
      if (!await slot.unauthorized(response, token)) return response;
    } else {
      if (call.unauthorized && response.status !== 401) slot.authorized();
      return response;
    }
  }
}

/** `promise`, but when `signal` aborts while it is awaited, the signal's reason. */
async function abortable<T>(signal: AbortSignal, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

/** A client with `poolSize` above 1: its slots, made as calls first need them. */
export class PoolClient implements TokenClient {
  readonly #first: TokenClient;
  readonly #make: (slot: number) => TokenClient;
  readonly #clients: (TokenClient | undefined)[];
  /** When a call last took each slot, monotonic ms. */
  readonly #lastUsed: number[];
  readonly #slotsOf: Slots;

  /** A pool whose slot 0 is `first`; `make(k)` makes slot k. */
  constructor(first: TokenClient, make: (slot: number) => TokenClient) {
    this.#first = first;
    this.#make = make;
    const size = slotOf(first).poolSize;
    this.#clients = Array.from({ length: size }, (_, k) => k === 0 ? first : undefined);
    this.#lastUsed = Array.from({ length: size }, () => -Infinity);
    this.#told(first);
    this.#slotsOf = {
      pick: () => slotOf(this.#clients[this.#take()]!),
      token: async (slot, signal) => {
        const k = this.#index(slot);
        return { slot: slotOf(this.#clients[k]!), token: await this.#tokenOf(k, { signal }) };
      },
      after429: (slot, call, replayable, at) => {
        const own = this.#index(slot);
        const next = slotOf(this.#first).after429(this.#views(), own, call, replayable, at);
        return { next, to: next.type === "return" ? undefined : slotOf(this.#use(next.slot)) };
      },
    };
  }

  /** Every slot as the core reads it; a slot not yet made is empty. */
  #views(): SlotView[] {
    return this.#clients.map((client, k) => {
      const lastUsed = this.#lastUsed[k];
      if (client === undefined) {
        return { usable: false, filling: false, heldBack: false, coolingUntil: 0, lastUsed };
      }
      return { ...slotOf(client).view(), lastUsed };
    });
  }

  /**
   * The views when every slot serves from its hot path, read without
   * asking the cores: each slot is usable, and a pick reads nothing else
   * of such slots but `coolingUntil` and `lastUsed` (src/pool.rs, `pick`:
   * no slot is empty, so none is filled, and none is waited for as empty).
   * Else `undefined`.
   */
  #servingViews(): SlotView[] | undefined {
    const now = slotOf(this.#first).now();
    const views: SlotView[] = [];
    for (let k = 0; k < this.#clients.length; k++) {
      const client = this.#clients[k];
      const coolingUntil = client && slotOf(client).servingCooling(now);
      if (coolingUntil === undefined) return undefined;
      const lastUsed = this.#lastUsed[k];
      views.push({ usable: true, filling: false, heldBack: false, coolingUntil, lastUsed });
    }
    return views;
  }

  /** The slot the core picks for the next call, taken (its client made if new). */
  #take(): number {
    const k = slotOf(this.#first).pick(this.#servingViews() ?? this.#views());
    this.#use(k);
    return k;
  }

  /** Slot `k`'s client, taken by a call now (made if new). */
  #use(k: number): TokenClient {
    this.#lastUsed[k] = slotOf(this.#first).mono();
    return this.#clients[k] ??= this.#makeSlot(k);
  }

  /**
   * Makes slot `k`. When a token request of a slot fails, the others are
   * held back as long (the core's rule, `holdBackAs`): the token endpoint's
   * back-off covers every slot, as the shared entry does with KV.
   */
  #makeSlot(k: number): TokenClient {
    const client = this.#make(k);
    this.#told(client);
    return client;
  }

  /** Tells the other slots when a token request of `client` fails. */
  #told(client: TokenClient): void {
    const failed = slotOf(client);
    failed.whenRequestFailed(() => {
      for (const other of this.#clients) {
        if (other !== undefined && other !== client) slotOf(other).holdBackAs(failed);
      }
    });
  }

  /** The index of `slot`. */
  #index(slot: Slot): number {
    return this.#clients.findIndex((client) => client !== undefined && slotOf(client) === slot);
  }

  /**
   * Slot `k`'s token; when the slot fails to give one, the token of the
   * slot the core names instead (one that serves and does not cool), so no
   * call fails while such a slot exists.
   */
  async #tokenOf(k: number, options?: GetTokenOptions): Promise<Token> {
    try {
      return await this.#clients[k]!.getToken(options);
    } catch (error) {
      if (options?.signal?.aborted) throw error;
      const other = slotOf(this.#first).instead(this.#views());
      if (other === undefined || other === k) throw error;
      return await this.#use(other).getToken(options);
    }
  }

  /** The slots made so far. */
  #made(): TokenClient[] {
    return this.#clients.filter((c): c is TokenClient => c !== undefined);
  }

  getToken(options?: GetTokenOptions): Promise<Token> {
    return this.#tokenOf(this.#take(), options);
  }

  refresh(): Promise<Token> {
    return this.#clients[this.#take()]!.refresh();
  }

  /**
   * Forgets every slot's token; with KV, deletes every slot's stored
   * token, also of the slots this process has not made, as `invalidate()`
   * does for a client alone: in one KV operation through slot 0's store,
   * making no slot (each would ask a `clientSecret` function).
   */
  async invalidate(): Promise<void> {
    const size = this.#clients.length;
    await Promise.all(
      this.#made().map((client) =>
        call<Promise<void>>(client, INVALIDATE, client === this.#first ? size : 0)
      ),
    );
  }

  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return slotOf(this.#first).fetchThrough(this.#slotsOf, input, init);
  }

  status(): TokenStatus {
    const statuses = this.#made().map((client) => client.status());
    const mono = slotOf(this.#first).mono();
    const status: TokenStatus = {
      ...statuses[0],
      hasToken: statuses.some((s) => s.hasToken),
      fetches: statuses.reduce((n, s) => n + s.fetches, 0),
      hits: statuses.reduce((n, s) => n + s.hits, 0),
      slots: {
        size: this.#clients.length,
        filled: statuses.filter((s) => s.hasToken).length,
        cooling: this.#made().filter((c) => slotOf(c).view().coolingUntil > mono).length,
      },
    };
    return status;
  }

  /** Reads every slot's stored token that this process has not made yet, then its own. */
  async [LOAD_SHARED](): Promise<void> {
    await Promise.all(this.#all().map((client) => loadShared(client)));
  }

  /**
   * A cron check of every filled slot: one held here, or one another
   * isolate stored (read first, sending nothing). An empty slot stays empty.
   */
  async [REFRESH_IF_DUE](aheadMs: number): Promise<RefreshResult> {
    const results = await Promise.all(
      this.#all().map(async (client, k) => {
        if (k > 0 && !client.status().hasToken) await loadShared(client);
        if (k > 0 && !client.status().hasToken) return "fresh" as const;
        const check = client as unknown as Record<symbol, (ms: number) => Promise<RefreshResult>>;
        return await check[REFRESH_IF_DUE](aheadMs);
      }),
    );
    if (results.includes("failed")) return "failed";
    return results.includes("refreshed") ? "refreshed" : "fresh";
  }

  /** Every slot, made now if it was not (for the cron job, which reads KV for each). */
  #all(): TokenClient[] {
    return this.#clients.map((client, k) => this.#clients[k] = client ?? this.#makeSlot(k));
  }

  [KV_ID](): Promise<string | undefined> {
    return call(this.#first, KV_ID);
  }

  [KV_PLACE](): KvPlace | undefined {
    return call(this.#first, KV_PLACE);
  }

  [PREPARE_KEY](): Promise<void> {
    return call(this.#first, PREPARE_KEY);
  }

  [DESCRIBE](): string {
    return call(this.#first, DESCRIBE);
  }

  [HELD](): Held | undefined {
    return call(this.#first, HELD);
  }

  [SAMPLE](): Sample {
    return call(this.#first, SAMPLE);
  }

  toJSON(): Record<string, unknown> {
    return {
      ...(this.#first as unknown as { toJSON(): Record<string, unknown> }).toJSON(),
      ...this.status(),
    };
  }

  [Symbol.for("Deno.customInspect")](): string {
    const { hasToken, fetches, hits, slots } = this.status();
    return `TokenClient { ${call<string>(this.#first, DESCRIBE)}, hasToken: ${hasToken}, ` +
      `fetches: ${fetches}, hits: ${hits}, slots: ${slots!.filled}/${slots!.size} }`;
  }
}

function slotOf(client: TokenClient): Slot {
  return (client as unknown as Record<symbol, () => Slot>)[SLOT]();
}

function call<T>(client: TokenClient, symbol: symbol, ...args: unknown[]): T {
  return (client as unknown as Record<symbol, (...args: unknown[]) => T>)[symbol](...args);
}

function loadShared(client: TokenClient): Promise<void> {
  return call<Promise<void>>(client, LOAD_SHARED);
}
