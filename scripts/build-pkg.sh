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
node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  const wasmFile = "pkg/rtm_sdk_bg.wasm", glueFile = "pkg/rtm_sdk.js";
  const wasm = readFileSync(wasmFile);
  let glue = readFileSync(glueFile, "utf8");
  const MODULE = "./rtm_sdk_bg.js";
  let pos = 0;
  const uleb = () => { let r = 0, s = 0, b; do { b = wasm[pos++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  const enc = (n) => { const o = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return Buffer.from(o); };
  const str = (s) => { const b = Buffer.from(s, "utf8"); return Buffer.concat([enc(b.length), b]); };
  const readStr = () => { const n = uleb(); const s = wasm.toString("utf8", pos, pos + n); pos += n; return s; };
  pos = 8;
  const out = [wasm.subarray(0, 8)];
  let renamed = 0;
  while (pos < wasm.length) {
    const id = wasm[pos++];
    const size = uleb();
    const start = pos, end = pos + size;
    if (id !== 2) { out.push(Buffer.from([id]), enc(size), wasm.subarray(start, end)); pos = end; continue; }
    const count = uleb();
    const parts = [enc(count)];
    for (let i = 0; i < count; i++) {
      const mod = readStr(), field = readStr();
      const descStart = pos;
      const kind = wasm[pos++];
      if (kind === 0) uleb();
      else if (kind === 1) { pos++; const f = uleb(); uleb(); if (f & 1) uleb(); }
      else if (kind === 2) { const f = uleb(); uleb(); if (f & 1) uleb(); }
      else if (kind === 3) { pos += 2; }
      else throw new Error(`import kind ${kind}`);
      const desc = wasm.subarray(descStart, pos);
      if (mod !== MODULE) { parts.push(str(mod), str(field), desc); continue; }
      const short = (renamed++).toString(36);
      const key = new RegExp(`\\b${field}:`, "g");
      const hits = glue.match(key)?.length ?? 0;
      if (hits !== 1) throw new Error(`${field}: ${hits} keys in the glue`);
      glue = glue.replace(key, `"${short}":`);
      parts.push(str("a"), str(short), desc);
    }
    if (pos !== end) throw new Error("import section not fully read");
    const body = Buffer.concat(parts);
    out.push(Buffer.from([2]), enc(body.length), body);
  }
  const mod = JSON.stringify(MODULE);
  if (glue.split(`${mod}:`).length !== 2) throw new Error(`${mod} is not keyed once in the glue`);
  glue = glue.replace(`${mod}:`, "\"a\":");
  writeFileSync(wasmFile, Buffer.concat(out));
  writeFileSync(glueFile, glue);
  console.log(`renamed ${renamed} imports`);'

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
