#!/usr/bin/env bash
# The browser benchmark (BENCHMARKS.md, "Browser"): in one headless Chromium, a page receives
# 100,000 pushed ~100-byte messages on a bare WebSocket (bare-server), then from rtm-server
# (OpenAPI SendUnicast) on a plain WebSocket without the SDK ("raw"), then through the SDK,
# then both again with the messages sent by a peer rtm client (sendUserMessageOutsideRoom on
# a WebSocket, as the bare publisher sends: "raw-peer", "sdk-peer"); prints events/s of each
# and the ratios. Loopback only; bounded (timeout 180 s); stops the servers it starts.
#
# Environment: BENCH_BROWSER_N (default 100000), BENCH_PAYLOAD (default 100),
#   BENCH_BROWSER_ORDER (phases, default bare,raw,sdk,raw-peer,sdk-peer; also bare-binary),
#   BENCH_BROWSER_ARGS (extra run.mjs flags, e.g. "--window 4000 --concurrency 64"),
#   BENCH_BROWSER_PKG (an SDK package directory to measure instead of building pkg/ from the
#   working tree, e.g. a copy of an older build for an A/B comparison)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_BROWSER_N:-100000}
PAYLOAD=${BENCH_PAYLOAD:-100}
APP_ID=0123456789abcdef01234567
APP_KEY=benchkey
AK=AKB
SK=SKB
RTM_PORT=18090
BARE_PORT=18091
USER_ID=browser1

out=target/bench-browser
www=$out/www
mkdir -p "$out"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "==> build (release server, SDK package)"
cargo build --release --quiet -p rtm-server -p rtm-bench
# Always the working tree's SDK (a pkg/ left from an older build would be measured otherwise).
pkg=${BENCH_BROWSER_PKG:-}
if [ -z "$pkg" ]; then scripts/build-pkg.sh >/dev/null; pkg=pkg; fi
[ -f "$pkg/index.js" ] || { echo "no SDK package in $pkg"; exit 1; }
rm -rf "$www" && mkdir -p "$www"
cp crates/rtm-bench/browser/index.html "$www/"
cp -r "$pkg" "$www/pkg"

cat > "$out/rtm.toml" <<EOT
openapi_rate = 1000000
session_queue = 16384
max_messages_per_sec = 0
[[apps]]
app_id = "$APP_ID"
app_key = "$APP_KEY"
[[apps.keys]]
access_key = "$AK"
secret_key = "$SK"
EOT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start"; return 1
}

RUST_LOG=warn target/release/rtm-server serve --listen 127.0.0.1:$RTM_PORT --config "$out/rtm.toml" \
  --static "$www" >"$out/rtm-server.log" 2>&1 &
rtm_pid=$!; pids+=("$rtm_pid")
target/release/bare-server 127.0.0.1:$BARE_PORT >"$out/bare-server.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
wait_port $RTM_PORT
wait_port $BARE_PORT

token=$(target/release/rtm-server token --app-id $APP_ID --app-key $APP_KEY --user $USER_ID)
pub_token=$(target/release/rtm-server token --app-id $APP_ID --app-key $APP_KEY --user benchpub)

echo "==> browser: $N messages of $PAYLOAD bytes, SDK vs bare WebSocket (load average $(cut -d' ' -f1-3 /proc/loadavg))"
# shellcheck disable=SC2086
timeout 180 node --experimental-websocket --no-warnings crates/rtm-bench/browser/run.mjs --rtm "http://127.0.0.1:$RTM_PORT" \
  --bare "ws://127.0.0.1:$BARE_PORT/sub" --rtm-pid "$rtm_pid" --bare-pid "$bare_pid" \
  --app-id $APP_ID --token "$token" --user $USER_ID --ak $AK --sk $SK \
  --pub-user benchpub --pub-token "$pub_token" --order "${BENCH_BROWSER_ORDER:-bare,raw,sdk,raw-peer,sdk-peer}" \
  --n "$N" --size "$PAYLOAD" --json "$out/browser.json" ${BENCH_BROWSER_ARGS:-}
echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
