#!/usr/bin/env bash
# Sets up and runs every test: formatting and lints, native tests (protocol, token, signing,
# client state machine, server integration over real sockets), then the SDK in headless
# Chromium against a real rtm-server process, then the npm package build and its size budget.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh || exit 1

out=target/test-logs
mkdir -p "$out"
: > "$out/all.log"
failed_steps=()
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

step() {
  local name=$1; shift
  printf '\n\033[1;34m==> %s\033[0m\n' "$name"
  if "$@" 2>&1 | tee -a "$out/all.log"; then :; else failed_steps+=("$name"); fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url
  for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $1"; return 1
}

step "rustfmt" cargo fmt --all -- --check
step "clippy (native)" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "clippy (wasm)" cargo clippy -p rtm-sdk --target wasm32-unknown-unknown --lib --tests --quiet -- -D warnings
step "native tests" cargo test --workspace --quiet

# A real server for the browser tests.
step "build rtm-server" cargo build -p rtm-server --quiet
export RTM_TEST_APP_ID=0123456789abcdef01234567 RTM_TEST_APP_KEY=testappkey RTM_TEST_AK=AKTEST RTM_TEST_SK=SKTEST
port=$(free_port)
export RTM_TEST_SERVER="http://127.0.0.1:$port"
# The demo business server for the relay tests, and an allow-listed port where nothing listens.
bport=$(free_port)
deadport=$(free_port)
callback_secret=test-callback-secret
export RTM_TEST_BUSINESS="http://127.0.0.1:$bport" RTM_TEST_CALLBACK_TIMEOUT_MS=2000
export RTM_TEST_DEAD_CALLBACK="http://127.0.0.1:$deadport/callback"
target/debug/rtm-server business-demo --listen "127.0.0.1:$bport" --rtm-url "$RTM_TEST_SERVER" \
  --app-id "$RTM_TEST_APP_ID" --access-key "$RTM_TEST_AK" --secret-key "$RTM_TEST_SK" \
  --callback-secret "$callback_secret" > "$out/business-browser.log" 2>&1 &
pids+=($!)
wait_http "$RTM_TEST_BUSINESS/healthz" || failed_steps+=("start business-demo")
target/debug/rtm-server serve --listen "127.0.0.1:$port" --app-id "$RTM_TEST_APP_ID" \
  --app-key "$RTM_TEST_APP_KEY" --access-key "$RTM_TEST_AK" --secret-key "$RTM_TEST_SK" \
  --cors-origin '*' --allow-callback "$RTM_TEST_BUSINESS/" \
  --allow-callback "http://127.0.0.1:$deadport/" --callback-secret "$callback_secret" \
  --callback-timeout-ms "$RTM_TEST_CALLBACK_TIMEOUT_MS" > "$out/server-browser.log" 2>&1 &
pids+=($!)
wait_http "$RTM_TEST_SERVER/healthz" || failed_steps+=("start rtm-server")
# A second server that the restart test restarts under a live page, through a test-only
# supervisor with a control endpoint (scripts/restart-harness.py).
rport=$(free_port)
cport=$(free_port)
export RTM_TEST_RESTART_SERVER="http://127.0.0.1:$rport" RTM_TEST_RESTART_CONTROL="http://127.0.0.1:$cport"
python3 scripts/restart-harness.py --control "127.0.0.1:$cport" --health "$RTM_TEST_RESTART_SERVER/healthz" -- \
  target/debug/rtm-server serve --listen "127.0.0.1:$rport" --app-id "$RTM_TEST_APP_ID" \
  --app-key "$RTM_TEST_APP_KEY" --access-key "$RTM_TEST_AK" --secret-key "$RTM_TEST_SK" \
  --cors-origin '*' --allow-callback "$RTM_TEST_BUSINESS/" --callback-secret "$callback_secret" \
  > "$out/server-restart.log" 2>&1 &
pids+=($!)
wait_http "$RTM_TEST_RESTART_CONTROL/status" || failed_steps+=("start restart harness")

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120
step "browser tests (headless Chromium: page, Worker, business-server relay)" cargo test -p rtm-sdk --target wasm32-unknown-unknown --test browser --test worker --test relay
step "browser test: the server restarts under a live page" cargo test -p rtm-sdk --target wasm32-unknown-unknown --test restart

step "npm package" scripts/build-pkg.sh
[ -x scripts/size.sh ] && step "package size" scripts/size.sh
step "packaging tests (tarball: Vite build + dev, module page, Worker, tsc)" tests/packaging/run.sh
step "demo page end-to-end (two users in headless Chromium)" tests/e2e/run.sh

cd "$root"
# Totals over every runner: cargo's "test result" lines and node's "# pass" / "# fail" lines.
passed=$( (grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$out/all.log" | awk '{print $4}';
           grep -Eo '^# pass [0-9]+' "$out/all.log" | awk '{print $3}') | awk '{s+=$1} END {print s+0}')
failed=$( (grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$out/all.log" | awk '{print $6}';
           grep -Eo '^# fail [0-9]+' "$out/all.log" | awk '{print $3}') | awk '{s+=$1} END {print s+0}')
echo
if [ ${#failed_steps[@]} -gt 0 ]; then
  echo "failed steps: ${failed_steps[*]}"
  [ "$failed" -eq 0 ] && failed=${#failed_steps[@]}
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "$passed passed, $failed failed"
