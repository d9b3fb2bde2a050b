#!/usr/bin/env bash
# Fuzzes the protocol parsers with cargo-fuzz (libFuzzer + AddressSanitizer), each target for a
# bounded time: the frame decoders, the "001" token parser, the OpenAPI request parser.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s each, every target)
#
# cargo-fuzz wants a nightly compiler for its -Z flags. On a stable toolchain the script sets
# RUSTC_BOOTSTRAP=1, which lets stable rustc accept them (no other toolchain is fetched).
# Crashes are kept in fuzz/artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> fuzz/artifacts/<target>/<file>
# The corpus grows in fuzz/corpus/<target>/ (git-ignored), seeded from fuzz/seeds/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(frame_decode token_parse openapi_sign)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
echo "fuzz.sh: building ${TARGETS[*]} ($(rustc --version))"
cargo fuzz build -O

failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "fuzz.sh: $t for ${SECONDS_EACH}s"
  log="$(mktemp)"
  if cargo fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | sed "s/^/  $t: /"
  else
    echo "fuzz.sh: $t FAILED; its log:"
    tail -n 60 "$log"
    failed+=("$t")
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz.sh: no crash in ${TARGETS[*]}"
