#!/usr/bin/env bash
# Sets up, builds and runs the demo: rtm-server in demo mode (serving the demo page and a
# demo-token endpoint) and the demo business server, on loopback.
#   RTM_DEMO_PORT (default 8080) and RTM_DEMO_BUSINESS_PORT (default 9000) choose the ports.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --no-browser
scripts/build-pkg.sh
cargo build --release -p rtm-server --quiet

port=${RTM_DEMO_PORT:-8080}
bport=${RTM_DEMO_BUSINESS_PORT:-9000}
app_id=0123456789abcdef01234567
site=target/demo-site
rm -rf "$site" && mkdir -p "$site" && cp -r www-demo/. "$site/" && cp -r pkg "$site/pkg"

bin=target/release/rtm-server
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT INT TERM
"$bin" business-demo --listen "127.0.0.1:$bport" --rtm-url "http://127.0.0.1:$port" \
  --app-id "$app_id" --access-key DEMOAK --secret-key DEMOSK --callback-secret demo-callback-secret &
pids+=($!)
"$bin" serve --listen "127.0.0.1:$port" --app-id "$app_id" --app-key demo-app-key \
  --access-key DEMOAK --secret-key DEMOSK --callback-secret demo-callback-secret \
  --allow-callback "http://127.0.0.1:$bport/" --demo --demo-business-url "http://127.0.0.1:$bport" \
  --static "$site" &
pids+=($!)
echo
echo "rtm demo: open http://127.0.0.1:$port/ in two tabs (Ctrl-C stops)"
wait -n "${pids[@]}"
