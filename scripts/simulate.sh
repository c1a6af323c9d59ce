#!/usr/bin/env bash
# The deterministic simulation of many isolates sharing one store
# (src/sim/, docs/DESIGN.md "The simulator"): SEEDS scenarios from
# FIRST_SEED (default 1). Ends with "simulated N scenarios: M invariant
# violations" and exits 1 on any violation, printing the first failing
# seed, its trace and the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/simulate.sh SEEDS [FIRST_SEED]" >&2
  exit 2
fi
exec cargo run --quiet --profile sim --example simulate -- "$@"
