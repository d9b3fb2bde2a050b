#!/usr/bin/env bash
# Packaging tests: `npm pack`s pkg/, installs the tarball by name into each consumer project
# (copied from consumers/ into work/, each with its own node_modules), then runs
# packaging.test.mjs with node's test runner: the TypeScript consumer under tsc --noEmit, a Vite
# app (build + preview, dev server), a plain module page and a module Worker in headless
# Chromium, against a real rtm-server that this script starts.
# Assumes pkg/ is built (scripts/build-pkg.sh) and target/debug/rtm-server exists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$here/work

[ -f "$root/pkg/package.json" ] || { echo "pkg/ is not built: run scripts/build-pkg.sh"; exit 1; }
server_bin=$root/target/debug/rtm-server
[ -x "$server_bin" ] || { echo "$server_bin is missing: cargo build -p rtm-server"; exit 1; }

rm -rf "$work"
mkdir -p "$work"
tgz=$(cd "$work" && npm pack "$root/pkg" --silent --loglevel=error | tail -n1)
echo "packed $tgz"
cp -r "$here/consumers/." "$work/"
for c in vite-app plain ts; do
  case $c in vite-app) cp "$work/probe.js" "$work/$c/src/" ;; plain) cp "$work/probe.js" "$work/$c/" ;; esac
  (cd "$work/$c" && npm install "../$tgz" --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
done

export RTM_APP_ID=0123456789abcdef01234567 RTM_APP_KEY=testappkey RTM_AK=AKTEST RTM_SK=SKTEST
export RTM_SERVER_BIN=$server_bin PKG_WORK=$work
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export RTM_SERVER="http://127.0.0.1:$port"
"$server_bin" serve --listen "127.0.0.1:$port" --app-id "$RTM_APP_ID" --app-key "$RTM_APP_KEY" \
  --access-key "$RTM_AK" --secret-key "$RTM_SK" --cors-origin '*' > "$work/rtm-server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "$RTM_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$RTM_SERVER/healthz" >/dev/null || { echo "rtm-server did not start:"; cat "$work/rtm-server.log"; exit 1; }

cd "$root"
node --test --test-concurrency=1 "$here/packaging.test.mjs"
