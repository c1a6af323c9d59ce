// Searches the test run's output and everything the canary preload recorded
// (events, errors, KV values) for the canary secrets and tokens the tests
// use. Secrets ("…canary-secret…") may appear nowhere; tokens
// ("canary-token-…") nowhere but in KV values written without encryption,
// which is where a token is meant to be.
//
// Usage: deno run --allow-read scripts/canary_scan.ts OUTPUT_LOG OBSERVED_LOG

const SECRET = /[a-z0-9]+-canary-secret[-\w]*|canary-secret/i;
const TOKEN = /canary-token-[0-9a-f]/i;

const [outputLog, observedLog] = Deno.args;
let leaks = 0;
const report = (where: string, what: string, line: string) => {
  leaks++;
  console.error(`${where}: ${what} in ${line.slice(0, 200)}`);
};

const output = await Deno.readTextFile(outputLog);
output.split("\n").forEach((line, i) => {
  if (SECRET.test(line)) report(`${outputLog}:${i + 1}`, "a canary secret", line);
  if (TOKEN.test(line)) report(`${outputLog}:${i + 1}`, "a canary token", line);
});

const observed = (await Deno.readTextFile(observedLog).catch(() => "")).split("\n").filter(Boolean);
const counts: Record<string, number> = { event: 0, error: 0, kv: 0 };
for (const [i, line] of observed.entries()) {
  const { kind, value } = JSON.parse(line) as { kind: string; value: { encrypted?: boolean } };
  counts[kind] = (counts[kind] ?? 0) + 1;
  if (SECRET.test(line)) report(`${observedLog}:${i + 1}`, `a canary secret (${kind})`, line);
  const plaintextKv = kind === "kv" && value.encrypted === false;
  if (!plaintextKv && TOKEN.test(line)) {
    report(`${observedLog}:${i + 1}`, `a canary token (${kind})`, line);
  }
}
if (observed.length === 0) {
  console.error("nothing was observed: the canary preload did not run");
  leaks++;
}
console.log(
  `canary scan: ${output.split("\n").length} output lines, ${counts.event} events, ` +
    `${counts.error} errors, ${counts.kv} KV values; ${leaks} leaks`,
);
if (leaks > 0) Deno.exit(1);
