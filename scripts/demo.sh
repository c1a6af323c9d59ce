#!/usr/bin/env bash
# The freshtoken demo (demo/main.ts): installs Deno if missing, then runs it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh" deno
cd "$FRESHTOKEN_ROOT"
deno task demo
