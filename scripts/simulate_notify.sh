#!/usr/bin/env bash
# The notification stream's simulator (src/notify/sim.rs, docs/DESIGN.md
# "Notifications"): SEEDS streams from FIRST_SEED (default 1) against a
# simulated Genesys-like server with faults. Ends with "simulated N
# notification streams: M invariant violations" and exits 1 on any,
# printing the first failing seed, its trace and the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/simulate_notify.sh SEEDS [FIRST_SEED]" >&2
  exit 2
fi
exec cargo run --quiet --profile sim --example simulate_notify -- "$@"
