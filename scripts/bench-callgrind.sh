#!/usr/bin/env bash
# Counts what one delivery costs a server at a moderate rate, exactly: instructions, and
# cache lines missed in a simulated 32 KiB L1 and 1 MiB last level (this machine's per-core
# L2), under valgrind's callgrind. Timing on this machine varies by ±10% between runs; these
# counts barely move, so they show what a change to the per-turn path does.
#
#   scripts/bench-callgrind.sh [rtm|bare] [CLIENTS] [RATE] [WINDOW_SECS]   (default rtm 1000 2 10)
#
# The server runs under callgrind with instrumentation off; once every client is connected
# and the broadcasts flow, instrumentation is on for WINDOW_SECS, and the totals are divided
# by the deliveries of that window (CLIENTS x RATE x WINDOW_SECS). Server pings are off
# (`heartbeat_ms = 600000`): a slowed-down server would otherwise ping in the window. The
# per-function counts are in target/callgrind/SERVER.out (`callgrind_annotate --sort=DLmr`).
# Needs valgrind (`apt-get install valgrind`); takes about a minute plus a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-rtm}
clients=${2:-1000}
rate=${3:-2}
window=${4:-10}
out=target/callgrind
mkdir -p "$out"

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

# Line tables for the per-function report; a target dir of its own keeps the release build.
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR="$out/build" \
    cargo build --release -q -p rtm-server -p rtm-bench
bin="$out/build/release"

cat > "$out/rtm.toml" <<'EOF'
openapi_rate = 1000000
heartbeat_ms = 600000
session_queue = 16384
[[apps]]
app_id = "0123456789abcdef01234567"
app_key = "benchkey"
[[apps.keys]]
access_key = "AKB"
secret_key = "SKB"
EOF

vg=(valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes --LL=1048576,16,64
    --callgrind-out-file="$out/$kind.out")
case $kind in
    bare) port=18091; "${vg[@]}" "$bin/bare-server" "127.0.0.1:$port" >"$out/$kind.log" 2>&1 & ;;
    rtm) port=18090; RUST_LOG=warn "${vg[@]}" "$bin/rtm-server" serve --listen "127.0.0.1:$port" \
            --config "$out/rtm.toml" >"$out/$kind.log" 2>&1 & ;;
    *) echo "usage: $0 [rtm|bare] [CLIENTS] [RATE] [WINDOW_SECS]" >&2; exit 2 ;;
esac
pid=$!
gen=
trap 'kill $pid ${gen:-} 2>/dev/null || true' EXIT
sleep 3

extra=(--source-ips 4)
[ "$kind" = rtm ] && [ "$clients" -gt 3000 ] && extra+=(--invisible)
timeout 900 "$bin/rtm-bench" fanout --server "$kind" --url "http://127.0.0.1:$port" --server-pid "$pid" \
    --clients "$clients" --app-id 0123456789abcdef01234567 --app-key benchkey --access-key AKB \
    --secret-key SKB --rate "$rate" --duration $((window + 10)) --payload 100 "${extra[@]}" \
    >"$out/$kind-fanout.txt" 2>&1 &
gen=$!
until grep -q connected "$out/$kind-fanout.txt" 2>/dev/null; do
    kill -0 $gen 2>/dev/null || { cat "$out/$kind-fanout.txt"; exit 1; }
    sleep 0.5
done
sleep 4
callgrind_control -z $pid >/dev/null 2>&1
callgrind_control -i on $pid >/dev/null 2>&1
sleep "$window"
callgrind_control -i off $pid >/dev/null 2>&1
callgrind_control -d $pid >/dev/null 2>&1
wait $gen
grep '^rate' "$out/$kind-fanout.txt" | cut -c1-200
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true

dump=$(ls -t "$out/$kind.out".* | head -1)
deliveries=$(awk -v c="$clients" -v r="$rate" -v w="$window" 'BEGIN { printf "%d", c * r * w }')
echo "$kind, $clients clients, $rate/s, $window s counted ($deliveries deliveries); per delivery:"
callgrind_annotate "$dump" 2>/dev/null | grep 'PROGRAM TOTALS' | tr -d , | awk -v d=$deliveries \
    '{printf "  instructions %.0f  L1i misses %.1f  L1d misses %.1f read, %.1f write  LL misses %.1f read, %.1f write\n", $1/d, $7/d, $9/d, $11/d, $15/d, $17/d}'
echo "per function: callgrind_annotate --sort=DLmr $dump"
