#!/usr/bin/env bash
# Installs, once, every tool freshtoken's build, demo and tests use, and puts
# them on PATH. Source it: `. scripts/setup.sh`. Tools that are already
# there at the pinned version are reused, so reruns take a second.
#
# Needs: rustup/cargo and Node.js with npm. Everything else comes from
# crates.io or the npm registry, into $FRESHTOKEN_TOOLS (default
# ~/.cache/freshtoken) and ~/.cargo/bin.

DENO_VERSION=2.9.6
DENO_DEPLOY_VERSION=2.5.6 # the Deno that Deno Deploy documents (2.5)
BINARYEN_VERSION=132.0.0
WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1

FRESHTOKEN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRESHTOKEN_TOOLS="${FRESHTOKEN_TOOLS:-$HOME/.cache/freshtoken}"
export FRESHTOKEN_ROOT FRESHTOKEN_TOOLS
mkdir -p "$FRESHTOKEN_TOOLS"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# npm_tool NAME VERSION BIN: installs NAME@VERSION into its own folder once.
npm_tool() {
  local dir="$FRESHTOKEN_TOOLS/$1-$2"
  if [ ! -x "$dir/node_modules/$3" ]; then
    say "installing $1@$2 from npm"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$1@$2" >&2)
  fi
  printf '%s\n' "$dir/node_modules/$3"
}

# cargo_tool CRATE VERSION BIN: `cargo install`s CRATE@VERSION unless BIN --version says VERSION.
cargo_tool() {
  if ! "$3" --version 2>/dev/null | grep -q " $2\$"; then
    say "installing $1@$2 from crates.io (takes minutes, once)"
    cargo install --quiet --force "$1@$2" >&2
  fi
}

export PATH="$HOME/.cargo/bin:$PATH"
(cd "$FRESHTOKEN_ROOT" && rustup show active-toolchain >/dev/null 2>&1) ||
  (cd "$FRESHTOKEN_ROOT" && rustup toolchain install >&2)
if ! (cd "$FRESHTOKEN_ROOT" && rustup target list --installed | grep -q wasm32-unknown-unknown); then
  say "adding the wasm32-unknown-unknown target"
  (cd "$FRESHTOKEN_ROOT" && rustup target add wasm32-unknown-unknown >&2)
fi
cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
cargo_tool wasm-pack "$WASM_PACK_VERSION" wasm-pack

DENO="$(npm_tool deno "$DENO_VERSION" deno/deno)"
DENO_DEPLOY="$(npm_tool deno "$DENO_DEPLOY_VERSION" deno/deno)"
WASM_OPT="$(npm_tool binaryen "$BINARYEN_VERSION" binaryen/bin/wasm-opt)"
export DENO DENO_DEPLOY WASM_OPT
export PATH="$(dirname "$DENO"):$(dirname "$WASM_OPT"):$PATH"

# The test servers we did not write (oidc-provider), pinned by package-lock.json.
if [ ! -d "$FRESHTOKEN_ROOT/tests/servers/node_modules/oidc-provider" ]; then
  say "installing the test servers' npm packages"
  (cd "$FRESHTOKEN_ROOT/tests/servers" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
