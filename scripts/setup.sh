#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need, skipping what is present:
# the wasm target, wasm-bindgen-cli at the version in Cargo.lock, Chromium and chromedriver,
# Redis, and the npm tools (binaryen's wasm-opt, playwright-core, typescript, vite).
# Usage: scripts/setup.sh [--no-browser]
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=1
[ "${1:-}" = "--no-browser" ] && want_browser=0

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen crate exactly.
[ -f Cargo.lock ] || cargo generate-lockfile
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$wbg_version" ]; then
  log "installing wasm-bindgen-cli $wbg_version (found '${have:-none}'; takes a few minutes once)"
  cargo install wasm-bindgen-cli --version "$wbg_version" --locked \
    || cargo install wasm-bindgen-cli --version "$wbg_version" --force
fi

apt_pkgs=()
if [ "$want_browser" = 1 ]; then
  [ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
  [ -x /usr/bin/chromedriver ] || apt_pkgs+=(chromium-driver)
fi
command -v redis-server >/dev/null || apt_pkgs+=(redis-server)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

# npm tools, pinned by package-lock.json.
if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm tools"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi
log "ready"
