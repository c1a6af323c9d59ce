// Searches the test run's output and everything the canary preload recorded
// (events, errors, KV values) for the canary secrets and tokens the tests
// use, in every encoding a leak may take, in any letter case: raw, percent-
// or form-encoded, JSON-escaped, and base64 (the Basic id:secret pair). Secrets
// ("…canary-secret…") may appear nowhere; tokens ("canary-token-…") nowhere
// but in KV values written without encryption, which is where a token is
// meant to be. Private keys may appear nowhere either: no PEM private key
// block, no private member of a JWK (RFC 7517, RFC 7518 §6).
//
// Usage: deno run --allow-read scripts/canary_scan.ts OUTPUT_LOG OBSERVED_LOG

export const SECRET = /[a-z0-9]+-canary-secret[-\w]*|canary-secret/i;
export const TOKEN = /canary-token-[0-9a-f]/i;
/** A PEM private key, or a JWK's private member with a value (escaped quotes too). */
export const PRIVATE_KEY =
  /-----BEGIN [A-Z ]*PRIVATE KEY-----|\\?"(?:d|p|q|dp|dq|qi|k)\\?"\s*:\s*\\?"[\w-]{16,}/;
/** Runs of base64 long enough to hold an encoded canary. */
const BASE64 = /[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}/g;

/** `line` and what it says once decoded: percent and JSON escapes, `+` for space, base64 runs. */
export function readings(line: string): string[] {
  const unescape = (text: string) =>
    text.replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  // JSON escapes too: a token holding `"` or `\` prints escaped in JSON (`token --json`).
  const unjson = (text: string) =>
    text.replace(/\\u([0-9a-f]{4})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)))
      .replace(/\\(["\\/])/g, "$1");
  const texts = [line, unescape(line), unescape(line.replaceAll("+", " ")), unjson(line)];
  for (const run of line.match(BASE64) ?? []) {
    try {
      const bytes = Uint8Array.from(
        atob(run.replaceAll("-", "+").replaceAll("_", "/").replace(/=+$/, "")),
        (c) => c.charCodeAt(0),
      );
      const decoded = new TextDecoder().decode(bytes);
      texts.push(decoded, unescape(decoded.replaceAll("+", " ")));
    } catch {
      // Not base64 after all.
    }
  }
  return texts;
}

const leaks = (line: string, pattern: RegExp) => readings(line).some((t) => pattern.test(t));

if (import.meta.main) {
  const [outputLog, observedLog] = Deno.args;
  let found = 0;
  const report = (where: string, what: string, line: string) => {
    found++;
    console.error(`${where}: ${what} in ${line.slice(0, 200)}`);
  };

  const output = await Deno.readTextFile(outputLog);
  output.split("\n").forEach((line, i) => {
    if (leaks(line, SECRET)) report(`${outputLog}:${i + 1}`, "a canary secret", line);
    if (leaks(line, PRIVATE_KEY)) report(`${outputLog}:${i + 1}`, "a private key", line);
    if (leaks(line, TOKEN)) report(`${outputLog}:${i + 1}`, "a canary token", line);
  });

  const observed = (await Deno.readTextFile(observedLog).catch(() => "")).split("\n").filter(
    Boolean,
  );
  const counts: Record<string, number> = { event: 0, error: 0, kv: 0 };
  for (const [i, line] of observed.entries()) {
    const { kind, value } = JSON.parse(line) as { kind: string; value: { encrypted?: boolean } };
    counts[kind] = (counts[kind] ?? 0) + 1;
    if (leaks(line, SECRET)) report(`${observedLog}:${i + 1}`, `a canary secret (${kind})`, line);
    if (leaks(line, PRIVATE_KEY)) {
      report(`${observedLog}:${i + 1}`, `a private key (${kind})`, line);
    }
    const plaintextKv = kind === "kv" && value.encrypted === false;
    if (!plaintextKv && leaks(line, TOKEN)) {
      report(`${observedLog}:${i + 1}`, `a canary token (${kind})`, line);
    }
  }
  if (observed.length === 0) {
    console.error("nothing was observed: the canary preload did not run");
    found++;
  }
  console.log(
    `canary scan: ${output.split("\n").length} output lines, ${counts.event} events, ` +
      `${counts.error} errors, ${counts.kv} KV values; ${found} leaks`,
  );
  if (found > 0) Deno.exit(1);
}
