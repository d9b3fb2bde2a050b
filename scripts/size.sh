#!/usr/bin/env bash
# The shipped size of the npm package: the wasm module, wasm-bindgen's JS glue and the entry
# module, each compressed with gzip -9, in bytes and KB. Fails over the budget (40 KB).
# Usage: scripts/size.sh [pkg-dir]   (default pkg/, as built by scripts/build-pkg.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-pkg}
budget=${RTM_SIZE_BUDGET:-40960}

gz() { gzip -9 -c "$1" | wc -c; }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }

total=0
printf '%-22s %10s %10s\n' file raw gzip-9
for f in rtm_sdk_bg.wasm rtm_sdk.js index.js; do
  [ -f "$dir/$f" ] || { echo "$dir/$f is missing: run scripts/build-pkg.sh"; exit 1; }
  raw=$(wc -c < "$dir/$f")
  z=$(gz "$dir/$f")
  total=$((total + z))
  printf '%-22s %10s %10s  (%s)\n' "$f" "$raw" "$z" "$(kb "$z")"
done
printf '%-22s %10s %10s  (%s; budget %s)\n' total '' "$total" "$(kb "$total")" "$(kb "$budget")"
if [ "$total" -gt "$budget" ]; then
  echo "over the size budget by $((total - budget)) bytes"
  exit 1
fi
echo "within the size budget ($((budget - total)) bytes to spare)"
