// A process-wide observer for the test command's secret scan
// (tests/_canary_preload.ts): it sees every event, every TokenError and every
// value written to KV, and fails the run if a canary secret or token shows
// up. Nothing sets it in normal use, and then this is one property read.

const OBSERVER = Symbol.for("freshtoken.observer");

/** What the observer is told about. */
export type Observed = "event" | "error" | "kv";

/** Hands `value` to the observer, if one is installed. */
export function observe(kind: Observed, value: unknown): void {
  const observer = (globalThis as Record<symbol, unknown>)[OBSERVER];
  if (typeof observer === "function") observer(kind, value);
}
