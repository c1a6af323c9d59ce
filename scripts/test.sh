#!/usr/bin/env bash
# Every check and test of freshtoken, on a fresh machine too: installs what
# it needs first (scripts/setup.sh), then
#   Rust: fmt, clippy (native and wasm32), cargo test;
#   pkg/: rebuilt with the pinned tools, must equal what is committed;
#   Deno 2.9: fmt, lint, type check, doc lint, unit and end-to-end tests;
#   README: code blocks type- or syntax-checked; deno publish --dry-run;
#   Deno 2.5 (what Deno Deploy runs): the same tests;
#   the whole output is scanned for the canary secrets and tokens.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" all
cd "$FRESHTOKEN_ROOT"

export NO_COLOR=1
LOG="$(mktemp)"
export FRESHTOKEN_CANARY_LOG="$(mktemp)" # events, errors and KV values, from tests/_canary_preload.ts
trap 'rm -f "$LOG" "$FRESHTOKEN_CANARY_LOG"' EXIT
step() { printf '\n== %s\n' "$*" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; }

step "Rust: fmt, clippy, tests"
run cargo fmt --check
run cargo clippy --quiet --all-targets --all-features -- -D warnings
run cargo clippy --quiet --target wasm32-unknown-unknown -- -D warnings
run cargo test --quiet --all-features

step "pkg/: rebuilt from src/ with the pinned tools, compared with the committed build"
run scripts/build_wasm.sh
if ! git diff --quiet -- pkg/ || [ -n "$(git status --porcelain -- pkg/)" ]; then
  git status --short -- pkg/
  echo "pkg/ is stale: run scripts/build_wasm.sh and commit pkg/" >&2
  exit 1
fi

step "Deno $DENO_VERSION: fmt, lint, type check, doc lint"
run deno fmt --check
run deno lint
run deno check deno/ demo/ tests/*.ts tests/servers/*.ts scripts/*.ts bench/ # bench/: peers from npm
run deno doc --lint deno/mod.ts deno/cron.ts deno/cli.ts
(cd examples/deploy && run deno check main.ts)

step "README: every code block checked; the package publishes"
run deno check --doc-only README.md
run deno run --allow-read --allow-write --allow-run scripts/check_readme.ts README.md
run deno publish --dry-run --allow-dirty

step "Deno $DENO_VERSION: unit and end-to-end tests"
run deno task test

step "Deno $DENO_DEPLOY_VERSION (Deno Deploy's version): the same tests"
run "$DENO_DEPLOY" task test

step "Canary scan: no test secret or token in any output, event, error or encrypted KV value"
# Test secrets contain "canary-secret"; the test servers' tokens start with "canary-token-".
cp "$LOG" "$LOG.scan"
run deno run --allow-read scripts/canary_scan.ts "$LOG.scan" "$FRESHTOKEN_CANARY_LOG"
rm -f "$LOG.scan"

sum() { grep -oE '[0-9]+' | awk '{ n += $1 } END { print n + 0 }'; }
passed=$(grep -ohE '(ok|FAILED)\. [0-9]+ passed|\| [0-9]+ passed' "$LOG" | sum)
failed=$(grep -ohE '[0-9]+ failed' "$LOG" | sum)
echo
echo "${passed} passed, ${failed} failed"
