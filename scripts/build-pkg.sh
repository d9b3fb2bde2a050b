#!/usr/bin/env bash
# Builds the npm package into pkg/ (wasm-pack's convention): the size-tuned wasm module,
# wasm-bindgen's `--target web` glue, wasm-opt (npm binaryen), pkg-template/'s files, and the
# JS minified (oxc, through rolldown). `scripts/size.sh` prints and checks the shipped size.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --lib --target wasm32-unknown-unknown --profile wasm-release
wasm=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm-release/rtm_sdk.wasm
rm -rf pkg
# index.js always passes the .wasm URL to init(), so the glue needs no default path of its own
# (and bundlers see one `new URL('…wasm', import.meta.url)`, not two).
wasm-bindgen --target web --out-dir pkg --out-name rtm_sdk --omit-default-module-path "$wasm"

# Rust's wasm32 target enables these features by default; every browser we support has them.
# Measured on this module (gzip -9 of the .wasm): -Oz alone 38.05 KB; --converge -0.2 KB;
# keeping single-caller functions out of line -0.8 KB (gzip finds their repeats);
# dropping the producers/target_features sections -0.2 KB.
node_modules/.bin/wasm-opt -Oz --converge --one-caller-inline-max-function-size=1 \
  --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  pkg/rtm_sdk_bg.wasm -o pkg/rtm_sdk_bg.wasm

# Shorter import names: wasm-bindgen names each import `__wbg_<name>_<16 hex digits>` (and
# `__wbindgen_…`) under the module "./rtm_sdk_bg.js"; the hashes are incompressible and each name
# is written twice (the module's import section and the glue's import object). Rename them all
# to short base-36 names, in both files, and the import module to "a". Measured: about -0.9 KB
# gzip over the package.
node scripts/shorten-imports.mjs pkg/rtm_sdk_bg.wasm pkg/rtm_sdk.js

cp -r pkg-template/. pkg/
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
sed -i "s/\"version\": \"0.0.0\"/\"version\": \"$version\"/" pkg/package.json
rm -f pkg/.gitignore

# Minify the glue and the entry: the glue's doc comments and long local names are most of its
# bytes (exports and rtm_sdk.d.ts unchanged). The minifier writes string literals as templates;
# the `.wasm` URL goes back to a plain string, the form every bundler recognises in
# `new URL(…, import.meta.url)`.
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import { minifySync } from "rolldown/utils";
  for (const f of ["pkg/rtm_sdk.js", "pkg/index.js"]) {
    const out = minifySync(f, readFileSync(f, "utf8"), { module: true, compress: true, mangle: true });
    if (out.errors?.length) throw new Error(`${f}: ${JSON.stringify(out.errors)}`);
    let code = out.code;
    if (f.endsWith("index.js")) {
      const url = "new URL(`./rtm_sdk_bg.wasm`,import.meta.url)";
      if (!code.includes(url)) throw new Error(`${f}: no ${url} after minifying`);
      code = code.replace(url, "new URL(\"./rtm_sdk_bg.wasm\",import.meta.url)");
    }
    writeFileSync(f, code);
  }'
echo "pkg/ built: $(ls pkg | tr '\n' ' ')"
