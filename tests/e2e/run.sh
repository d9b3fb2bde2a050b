#!/usr/bin/env bash
# End-to-end tests of the demo page: assembles the demo site (www-demo/ + pkg/) the way
# scripts/demo.sh does, starts the demo business server and rtm-server in demo mode on free
# loopback ports, then runs demo.test.mjs with node's test runner: two Chromium pages (two
# browser contexts) as two users through every flow of the page. Screenshots and server logs go
# to tests/out/e2e/.
# Assumes pkg/ is built (scripts/build-pkg.sh) and target/debug/rtm-server exists; builds nothing.
#   RTM_SERVER_BIN and RTM_PKG_DIR override the server binary and the package directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/tests/out/e2e

pkg=${RTM_PKG_DIR:-$root/pkg}
[ -f "$pkg/package.json" ] || { echo "$pkg is not built: run scripts/build-pkg.sh"; exit 1; }
bin=${RTM_SERVER_BIN:-$root/target/debug/rtm-server}
[ -x "$bin" ] || { echo "$bin is missing: cargo build -p rtm-server"; exit 1; }

rm -rf "$out"
site=$out/site
mkdir -p "$site"
cp -r "$root/www-demo/." "$site/" && cp -r "$pkg" "$site/pkg"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url log
  for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $1:"; cat "$2"; return 1
}

app_id=0123456789abcdef01234567
port=$(free_port)
bport=$(free_port)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin" business-demo --listen "127.0.0.1:$bport" --rtm-url "http://127.0.0.1:$port" \
  --app-id "$app_id" --access-key E2EAK --secret-key E2ESK --callback-secret e2e-callback-secret \
  > "$out/business-demo.log" 2>&1 &
pids+=($!)
"$bin" serve --listen "127.0.0.1:$port" --app-id "$app_id" --app-key e2e-app-key \
  --access-key E2EAK --secret-key E2ESK --callback-secret e2e-callback-secret \
  --allow-callback "http://127.0.0.1:$bport/" --demo --demo-business-url "http://127.0.0.1:$bport" \
  --static "$site" > "$out/rtm-server.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$bport/healthz" "$out/business-demo.log"
wait_http "http://127.0.0.1:$port/healthz" "$out/rtm-server.log"

export RTM_DEMO_URL="http://127.0.0.1:$port" RTM_DEMO_BUSINESS_URL="http://127.0.0.1:$bport"
export RTM_E2E_OUT=$out RTM_APP_ID=$app_id
cd "$root"
node --test --test-concurrency=1 --test-timeout=60000 "$here/demo.test.mjs" \
  || { rc=$?; echo "screenshots and server logs: $out"; exit $rc; }
