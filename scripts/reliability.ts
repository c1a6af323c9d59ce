// Runs the fault matrix (tests/fault_matrix.ts) and the hardening matrix
// (tests/hardening.ts) and writes both to docs/RELIABILITY.md, with the
// fuzzing figures of docs/fuzz-results.json.
//
// Usage: deno run -A --unstable-kv scripts/reliability.ts

import { FAULTS, type Outcome, runCase, SETTINGS } from "../tests/fault_matrix.ts";
import { CASES } from "../tests/hardening.ts";

const rows: string[] = [];
let mismatches = 0;
for (const c of FAULTS) {
  const o: Outcome = await runCase(c);
  const expected = "token" in c.expect ? "token" : c.expect.code;
  const ok = o.result === expected &&
    (c.expect.attempts === "many" || o.attempts === c.expect.attempts);
  if (!ok) mismatches++;
  const detail = [
    o.status ? `HTTP ${o.status}` : "",
    o.retryAfterSeconds !== undefined ? `retryAfterSeconds ${o.retryAfterSeconds}` : "",
    o.elsewhere !== undefined ? `redirect target reached ${o.elsewhere}×` : "",
  ].filter(Boolean).join("; ");
  rows.push(
    `| ${c.group} | ${c.name} | ${o.result} | ${o.retryable ?? "—"} | ${o.attempts} | ${o.ms} | ${
      detail || "—"
    } | ${ok ? "yes" : "**no**"} |`,
  );
  console.log(
    `${
      ok ? "ok  " : "FAIL"
    } ${c.group}: ${c.name} -> ${o.result} (${o.attempts} attempts, ${o.ms} ms)`,
  );
}

const GROUPS: Record<string, string> = {
  credentials: "Credentials and tokens never leave, in any encoding",
  "shared state": "Shared state that one bad actor cannot poison",
  hammering: "The endpoint is never hammered, whatever the caller asks",
  destinations: "Tokens go only where they belong",
  cron: "The cron job keeps up with any lifetime",
  misuse: "Misuse gets a clear answer",
  "day one": "Round 3: what a new user meets on day one",
  secrets: "Round 3: secrets stay with freshtoken",
  "one tenant, one token": "Round 3: shared KV, one tenant, one token",
  options: "Round 3: options that look harmless",
  process: "Round 3: process hygiene",
  "round 4 cron":
    "Round 4: one cron job per place, every store refreshed, and the job's configuration is the handler's",
  "round 4 secrets cli":
    "Round 4: secrets in the wrong place (the Genesys region, exec's environment)",
  "round 4 messages cli": "Round 4: the CLI's messages a new user meets",
  "round 4 files": "Round 4: files that are not freshtoken's",
  "round 4 masking": "Round 4: in GitHub Actions every token is masked before a file gets it",
  "round 4 readiness": "Round 4: an agent that says whether it got its first token",
  "round 4: shared kv": "Round 4: a shared KV with a fast clock or unreadable values",
  "round 4: first messages": "Round 4: what a wrong URL or issuer tells a new user",
};
/** What a group's cases stand for, above its table: the rule each class of defect now follows. */
const INTROS: Record<string, string> = {
  "round 4 files":
    "An agent used to delete or overwrite whatever its `--sink` named: a user's file, an empty " +
    "directory, a FIFO, a stray `.lock` file. It now writes only paths of its own. A path that " +
    "exists is refused with exit 2, naming the flag and why, unless a dead agent left it (its " +
    "`.lock` carries the agent's mark and is no longer locked). Lock and temporary files are made " +
    "exclusively, never through a symbolic link, with short names, so a 240-byte sink name works; " +
    "the first write of a sink is exclusive too, and the agent remembers the file it wrote, so a " +
    "file put or moved onto the sink later is neither overwritten nor removed. A file-system " +
    "error names the flag and the reason.",
  "round 4 masking":
    "`exec` masked only the first token and the agent none. Every token now passes one place, " +
    "the token-file writer, which registers its `::add-mask::` before any file gets it: on " +
    "stderr for `exec`, on the agent's stdout, so a log sent to a file does not hide it. The " +
    "runner reads a step's output only while the step runs: an agent that outlives its step " +
    "cannot mask the tokens it refreshes later, and the README's recipe says what to do.",
  "round 4 readiness":
    "`agent --background` starts the agent detached and waits on a pipe: 0 once the first token " +
    "is in its files (its mask printed first), else the agent's own exit code with the reason. " +
    "An agent stopped before then ends with 128 + the signal's number, one whose waiting parent " +
    "is gone stops and removes its files, and a `--client-secret` reaches the detached agent " +
    "through its environment, never its command line. The GitHub and GitLab recipes stop there " +
    "and show why, instead of a silent wait and an anonymous 401.",
  "round 4 secrets cli":
    "A value given as the Genesys region that is no region is refused naming the flag, variable " +
    "or option, never the value; a near miss gets the region's own name. `exec`'s command gets " +
    "no variable holding a credential freshtoken used, inside other text too, in any encoding the " +
    "core's redactor knows (the same rule that cleans server text); the withheld names, never " +
    "values, go to stderr.",
  "round 4 messages cli":
    "Each client value is taken in the README's order per value (flags, `FRESHTOKEN_*`, " +
    "`GENESYS_CLOUD_*`, `GENESYSCLOUD_*`); configuration errors name the flag or variable the " +
    "user set; commands get did-you-mean; `status` says which client at which endpoint; the " +
    "README's install and import lines are checked from a clone.",
  "round 4: shared kv":
    "A stored record never makes a token look valid longer than its stated lifetime on the " +
    "reader's own clock: a record issued further in the reader's future than the skew allowance " +
    "the schedule keeps for that lifetime (at most 30 s) is refused and replaced. Every value a " +
    "`kv` answers is read inside the store's guard: a throwing getter, a Proxy trap, an " +
    "unprintable throw or an oversized token is a `kv_error` and a miss, and the caller gets a " +
    "token from the server.",
  "round 4: first messages":
    "An `https:` URL to a plain-HTTP server or a certificate the client refuses is a permanent " +
    "`config` error (CLI exit 2), while a connection closed during the handshake stays a " +
    "retryable `network` error; errors say whether the token or the metadata request failed; a " +
    "404 says to check the URL's path; an issuer mismatch shows both issuers, sanitised.",
  "round 4 cron":
    "One job per place a token lives (key prefix and KV identity); the job refreshes every store " +
    "registered for that place. `freshtoken/cron` makes its clients at import, so a refused " +
    "configuration stops the deployment at once, and exports them with their store, so a " +
    "handler and the job cannot end up on different stores.",
};
const hardening: Record<string, string[]> = {};
for (const c of CASES) {
  const { ok, outcome } = await c.run();
  if (!ok) mismatches++;
  (hardening[c.group] ??= []).push(
    `| ${c.name} | ${outcome.replaceAll("|", "\\|")} | ${ok ? "yes" : "**no**"} |`,
  );
  console.log(`${ok ? "ok  " : "FAIL"} ${c.group}: ${c.name} -> ${outcome}`);
}
const hardeningSections = Object.entries(hardening).map(([group, rows]) =>
  `### ${GROUPS[group] ?? group}\n\n${
    INTROS[group] ? `${INTROS[group]}\n\n` : ""
  }| case | outcome | as expected |\n|---|---|---|\n${rows.join("\n")}`
).join("\n\n");

const FUZZ_WHAT: Record<string, string> = {
  parse_response: "any bytes as a token endpoint answer, with any status",
  retry_after: "any text as a Retry-After value",
  encode_request: "any options: id, secret, scope, parameters",
};

let fuzz = "Not run yet: `scripts/fuzz.sh` records its figures here.";
try {
  const results = JSON.parse(await Deno.readTextFile("docs/fuzz-results.json")) as {
    date: string;
    seconds: number;
    targets: { name: string; runs: number; crashes: number; corpus: number }[];
  };
  fuzz = `From \`scripts/fuzz.sh\` on ${results.date}, ${results.seconds} s per target ` +
    `(libFuzzer via cargo-fuzz, nightly Rust):\n\n| target | what it feeds | executions | crashes | corpus |\n|---|---|---|---|---|\n` +
    results.targets.map((t) =>
      `| \`${t.name}\` | ${FUZZ_WHAT[t.name] ?? ""} | ${
        t.runs.toLocaleString("en")
      } | ${t.crashes} | ${t.corpus} |`
    ).join("\n");
} catch {
  // Keep the placeholder.
}

// The outage of a client without a store, in the one simulator (src/sim/): the core's driver on a
// simulated clock.
const simulation = await new Deno.Command("cargo", {
  args: ["test", "--quiet", "--lib", "sim::tests::a_5_second_outage", "--", "--nocapture"],
  stderr: "inherit",
}).output();
const simulated = new TextDecoder().decode(simulation.stdout).split("\n")
  .find((line) => line.startsWith("outage simulation:")) ?? "outage simulation: did not run";
if (!simulation.success) mismatches++;

const doc = `# Reliability

Generated by \`deno run -A scripts/reliability.ts\` from a real run on ${
  new Date().toISOString().slice(0, 10)
} (${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}). The same cases are asserted by
\`tests/fault_matrix_test.ts\` and \`tests/hardening_test.ts\` in the test command.

## Fault matrix

Each fault comes from \`tests/servers/fault_server.ts\`, a raw TCP server on 127.0.0.1 scripted per
request ("then a token" means the next request succeeds). Client settings: \`timeoutMs\`
${SETTINGS.timeoutMs}, \`retry\` ${JSON.stringify(SETTINGS.retry)}. Every call ends within the
deadline plus one request timeout; none hangs.

| group | fault | outcome | retryable | attempts | ms | detail | as expected |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}

## Hardening

What a hostile token server, a hostile KV co-tenant and a careless caller can try, from
\`tests/hardening.ts\`: each case runs against real loopback servers and a real Deno KV. The CLI's
answers to misuse (exit 2 with the flag or path to fix, arguments named by position only) are
asserted by \`tests/cli_e2e_test.ts\`; 16 processes sharing one SQLite file never make two token
requests for one refresh window (\`tests/kv_e2e_test.ts\`).

${hardeningSections}

### Round 3: callers after an outage get a token, not the outage's error

A 12 s token, the endpoint down for 5 s from a random moment inside the refresh window, callers
every 20–300 ms for a minute: the simulator (\`src/sim/scenario.rs\`, its scenario of a client without a
store) runs the core's own driver, state machine and retry loop on a simulated clock, one seed per
draw of the outage, the request latencies and the callers, and asserts at most 5 token requests
during the outage and a usable token for every caller (invariant 7; \`cargo test\` runs all of
them each time). From this run:

    ${simulated}

Under the rules before this round (a hold-back free to outlast the token, and callers without a
token handed the last error while it ran) 72 of the same 1000 seeds refused calls right after
recovery with the stale \`server_error (HTTP 503)\`.

## Fuzzing

${fuzz}
`;
await Deno.writeTextFile("docs/RELIABILITY.md", doc);
console.log(
  `docs/RELIABILITY.md written: ${FAULTS.length} faults and ${CASES.length} hardening cases, ` +
    `${mismatches} not as expected`,
);
if (mismatches > 0) Deno.exit(1);
