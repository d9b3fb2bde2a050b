#!/usr/bin/env bash
# rtm's benchmarks (BENCHMARKS.md): the same fan-out load, client count, payload and rates
# against rtm-server, the bare tokio-tungstenite broadcast server and the Socket.IO 4
# reference, in one run; then idle memory per connection and client-to-business-server
# relaying; then the side-by-side table with ratios.
#
# Everything runs on loopback; every load run is bounded (`timeout`) and every server this
# script starts is stopped when it ends. Not a test: scripts/test.sh does not run it.
#
# Environment:
#   BENCH_CLIENTS   client counts               (default "1000 10000")
#   BENCH_TARGETS   deliveries/s to sweep; each is divided by the client count to get the
#                   broadcast rate               (default "20000 50000 100000 150000 200000 400000 800000
#                   1200000 1600000 2000000 2400000 2800000 3200000 3600000 4000000": the
#                   bare server's knee lies past 2 M here, and some runs passed 3.2 M)
#   BENCH_DURATION  seconds of publishing per rate step (default 4)
#   BENCH_FIRST_DURATION  seconds of publishing at the first (moderate) rate, whose p99 is
#                   compared (default 16: at 10,000 clients, 32 bursts instead of 8)
#   BENCH_PAYLOAD   message size in bytes       (default 100)
#   BENCH_RELAY_CLIENTS  clients of the relay run (default 200)
#   BENCH_SERVERS   which servers               (default "bare rtm socketio")
#   BENCH_RTM_MAX_ROOM  largest room rtm's clients fill as visible members (default 3000):
#                   filling a room of N visible members costs N x (N - 1) Member frames (7 s
#                   for 3,000 clients here; 10,000 took 139 s and the generator, reading ~100 M
#                   Member frames, fell behind: see BENCHMARKS.md). In larger rooms the clients
#                   join invisible (setUserVisibility(false): an audience, no Member frames),
#                   like the bare server's subscribers, which know nothing of each other
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${BENCH_CLIENTS:-"1000 10000"}
TARGETS=${BENCH_TARGETS:-"20000 50000 100000 150000 200000 400000 800000 1200000 1600000 2000000 2400000 2800000 3200000 3600000 4000000"}
DURATION=${BENCH_DURATION:-4}
FIRST_DURATION=${BENCH_FIRST_DURATION:-16}
PAYLOAD=${BENCH_PAYLOAD:-100}
RELAY_CLIENTS=${BENCH_RELAY_CLIENTS:-200}
SERVERS=${BENCH_SERVERS:-"bare rtm socketio"}
RTM_MAX_ROOM=${BENCH_RTM_MAX_ROOM:-3000}

APP_ID=0123456789abcdef01234567
APP_KEY=benchkey
AK=AKB
SK=SKB
RTM_PORT=18080
BARE_PORT=18081
SIO_PORT=18082
BIZ_PORT=18083

out=target/bench
mkdir -p "$out"
rm -f "$out"/*.json

# Each process may hold ~20k descriptors (the hard limit here); 10,000 clients need the soft
# limit raised to it, in the generator and in the servers it starts.
ulimit -n "$(ulimit -Hn)"

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

echo "==> build (release)"
cargo build --release --quiet -p rtm-server -p rtm-bench
bench=target/release/rtm-bench

if [[ " $SERVERS " == *" socketio "* ]]; then
  echo "==> npm install (Socket.IO reference)"
  (cd crates/rtm-bench/ref/socketio &&
    { [ -d node_modules/socket.io ] || npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; })
fi

# rtm's limits raised for the benchmark: the OpenAPI rate limit (default 500/s per app) would
# cap the broadcast rate, and a joining client is sent one Member frame per member already in
# the room, which must fit its send queue (default 1024).
cat > "$out/rtm.toml" <<EOF
openapi_rate = 1000000
session_queue = 16384
[[apps]]
app_id = "$APP_ID"
app_key = "$APP_KEY"
allow_callbacks = ["http://127.0.0.1:$BIZ_PORT/"]
max_callbacks_in_flight = 256
[[apps.keys]]
access_key = "$AK"
secret_key = "$SK"
EOF

wait_port() { # port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start"; return 1
}

loadavg() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

port_of() {
  case $1 in rtm) echo $RTM_PORT ;; bare) echo $BARE_PORT ;; socketio) echo $SIO_PORT ;; esac
}

start_server() { # kind
  case $1 in
    rtm)
      RUST_LOG=warn target/release/rtm-server serve --listen 127.0.0.1:$RTM_PORT \
        --config "$out/rtm.toml" >"$out/rtm-server.log" 2>&1 &
      ;;
    bare)
      target/release/bare-server 127.0.0.1:$BARE_PORT >"$out/bare-server.log" 2>&1 &
      ;;
    socketio)
      node crates/rtm-bench/ref/socketio/server.js $SIO_PORT 127.0.0.1 >"$out/socketio.log" 2>&1 &
      ;;
  esac
  server_pid=$!
  wait_port "$(port_of "$1")"
}

common() { # kind clients
  echo --server "$1" --url "http://127.0.0.1:$(port_of "$1")" --server-pid "$server_pid" \
    --clients "$2" --app-id $APP_ID --app-key $APP_KEY --access-key $AK --secret-key $SK
}

for n in $CLIENTS; do
  rates=$(for t in $TARGETS; do awk -v t="$t" -v n="$n" 'BEGIN { printf "%g,", t / n }'; done)
  rates=${rates%,}
  for kind in $SERVERS; do
    echo; echo "==> fan-out: $kind, $n clients, rates $rates/s, ${DURATION}s each ($(loadavg))"
    audience=()
    if [ "$kind" = rtm ] && [ "$n" -gt "$RTM_MAX_ROOM" ]; then
      echo "rtm clients join invisible: $n > BENCH_RTM_MAX_ROOM=$RTM_MAX_ROOM"
      audience=(--invisible)
    fi
    start_server "$kind"
    # shellcheck disable=SC2046
    timeout 900 $bench fanout $(common "$kind" "$n") --rate "$rates" --duration "$DURATION" \
      --first-duration "$FIRST_DURATION" --payload "$PAYLOAD" "${audience[@]}" --json "$out/fanout-$kind-$n.json" \
      || echo "fan-out run failed ($kind, $n)"
    stop_server
    echo; echo "==> idle: $kind, $n clients ($(loadavg))"
    start_server "$kind"
    # shellcheck disable=SC2046
    timeout 300 $bench idle $(common "$kind" "$n") --json "$out/idle-$kind-$n.json" \
      || echo "idle run failed ($kind, $n)"
    stop_server
  done
done

if [[ " $SERVERS " == *" rtm "* ]]; then
  echo; echo "==> client to business server: $RELAY_CLIENTS clients"
  start_server rtm
  # shellcheck disable=SC2046
  timeout 300 $bench relay $(common rtm "$RELAY_CLIENTS") --duration "$DURATION" \
    --payload "$PAYLOAD" --biz-listen 127.0.0.1:$BIZ_PORT --json "$out/relay-rtm-$RELAY_CLIENTS.json" \
    || echo "relay run failed"
  stop_server
fi

echo
echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
$bench table "$out"/*.json | tee "$out/table.md"
