#!/usr/bin/env bash
# Installs, once, the tools freshtoken's demo, build and tests use, and puts
# them on PATH. Source it from the other scripts:
#
#   . scripts/setup.sh deno   # Deno only (the demo: pkg/ is committed)
#   . scripts/setup.sh        # everything (the build and the tests)
#
# Tools already there at the pinned version are reused, so reruns take a
# second. Needs rustup/cargo, Node.js with npm, and (for the tests) the
# openssl command; everything else comes
# from crates.io or the npm registry, into $FRESHTOKEN_TOOLS (default
# ~/.cache/freshtoken) and ~/.cargo/bin.

DENO_VERSION=2.9.6
DENO_DEPLOY_VERSION=2.5.6 # Deno Deploy documents Deno 2.5
BINARYEN_VERSION=132.0.0  # Debian's binaryen 108 breaks wasm-bindgen's output
WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1
DENOKV_VERSION=0.14.0 # the self-hosted KV Connect server of the KV tests

FRESHTOKEN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRESHTOKEN_TOOLS="${FRESHTOKEN_TOOLS:-$HOME/.cache/freshtoken}"
export FRESHTOKEN_ROOT FRESHTOKEN_TOOLS DENO_VERSION DENO_DEPLOY_VERSION
mkdir -p "$FRESHTOKEN_TOOLS"
export PATH="$HOME/.cargo/bin:$PATH"
# Deno reads the machine's CA store, as npm does, for npm: type packages.
export DENO_TLS_CA_STORE="${DENO_TLS_CA_STORE:-system,mozilla}"

say() { printf '[setup] %s\n' "$*" >&2; }

# npm_tool NAME VERSION BIN: installs NAME@VERSION into a folder of its own, once.
npm_tool() {
  local dir="$FRESHTOKEN_TOOLS/$1-$2"
  if [ ! -x "$dir/node_modules/$3" ]; then
    say "installing $1@$2 from npm"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$1@$2" >&2) || return 1
  fi
  printf '%s\n' "$dir/node_modules/$3"
}

# cargo_tool CRATE VERSION BIN: cargo-installs CRATE@VERSION unless that version's BIN is installed.
cargo_tool() {
  if ! { cargo install --list | grep -qx "$1 v$2:" && command -v "$3" >/dev/null; }; then
    say "installing $1@$2 from crates.io (minutes, once)"
    # The crate's own lockfile when it still resolves (one of wasm-bindgen-cli's pins was yanked).
    cargo install --quiet --force --locked "$1@$2" >&2 ||
      cargo install --quiet --force "$1@$2" >&2 || return 1
  fi
}

setup_deno() {
  DENO="$(npm_tool deno "$DENO_VERSION" deno/deno)" || return 1
  export DENO PATH="$(dirname "$DENO"):$PATH"
}

setup_build() {
  (cd "$FRESHTOKEN_ROOT" && rustup show active-toolchain >/dev/null 2>&1) ||
    (cd "$FRESHTOKEN_ROOT" && rustup toolchain install >&2) || return 1
  if ! (cd "$FRESHTOKEN_ROOT" && rustup target list --installed | grep -qx wasm32-unknown-unknown); then
    say "adding the wasm32-unknown-unknown target"
    (cd "$FRESHTOKEN_ROOT" && rustup target add wasm32-unknown-unknown >&2) || return 1
  fi
  cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen || return 1
  cargo_tool wasm-pack "$WASM_PACK_VERSION" wasm-pack || return 1
  WASM_OPT="$(npm_tool binaryen "$BINARYEN_VERSION" binaryen/bin/wasm-opt)" || return 1
  export WASM_OPT
}

setup_tests() {
  # The key-authentication tests make their X.509 certificates with the openssl CLI.
  command -v openssl >/dev/null || { say "the tests need the openssl command (apt install openssl)"; return 1; }
  DENO_DEPLOY="$(npm_tool deno "$DENO_DEPLOY_VERSION" deno/deno)" || return 1
  cargo_tool denokv "$DENOKV_VERSION" denokv || return 1
  export DENO_DEPLOY
  # The third-party servers of the end-to-end tests, pinned by package-lock.json.
  if [ ! -d "$FRESHTOKEN_ROOT/tests/servers/node_modules/oidc-provider" ]; then
    say "installing the test servers' npm packages"
    (cd "$FRESHTOKEN_ROOT/tests/servers" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
      return 1
  fi
}

case "${1:-all}" in
  deno) setup_deno ;;
  *) setup_deno && setup_build && setup_tests ;;
esac
