#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS (default 600),
# all at once, then records executions, crashes and corpus sizes in
# docs/fuzz-results.json and regenerates docs/RELIABILITY.md.
# Needs nightly Rust and cargo-fuzz (installed here when missing).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" deno
cd "$FRESHTOKEN_ROOT"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-600}"
TARGETS=(parse_response retry_after encode_request)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2

cd fuzz
cargo +nightly fuzz build
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" \
    -print_final_stats=1 > "target/$t.log" 2>&1 &
done
status=0
wait || status=$?

json="{\"date\": \"$(date -u +%Y-%m-%d)\", \"seconds\": $SECONDS_PER_TARGET, \"targets\": ["
sep=""
for t in "${TARGETS[@]}"; do
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "target/$t.log" | grep -oE '[0-9]+$' | tail -1)
  crashes=$(find "artifacts/$t" -name 'crash-*' 2>/dev/null | wc -l)
  corpus=$(find "corpus/$t" -type f | wc -l)
  echo "$t: ${runs:-0} executions, $crashes crashes, corpus $corpus"
  json+="$sep{\"name\": \"$t\", \"runs\": ${runs:-0}, \"crashes\": $crashes, \"corpus\": $corpus}"
  sep=", "
done
echo "$json]}" > ../docs/fuzz-results.json
cd ..
deno run -A scripts/reliability.ts
exit "$status"
