#!/usr/bin/env bash
# Builds the npm package into pkg/ (wasm-pack's convention): the size-tuned wasm module,
# wasm-bindgen's `--target web` glue, wasm-opt -Oz (npm binaryen), and pkg-template/'s files.
# Prints the shipped size (wasm + JS, gzip -9).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release
wasm=target/wasm32-unknown-unknown/wasm-release/rtm_sdk.wasm
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name rtm_sdk "$wasm"
node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  pkg/rtm_sdk_bg.wasm -o pkg/rtm_sdk_bg.wasm
cp -r pkg-template/. pkg/
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
sed -i "s/\"version\": \"0.0.0\"/\"version\": \"$version\"/" pkg/package.json
rm -f pkg/.gitignore
echo "pkg/ built: $(ls pkg | tr '\n' ' ')"
