// Renames a wasm-bindgen module's imports to short base-36 names, in the .wasm's import section
// and in the JS glue's import object, and its import module to "a". wasm-bindgen names each
// import `__wbg_<name>_<16 hex digits>` under "./rtm_sdk_bg.js": the hashes are incompressible
// and each name is written twice. Fails loudly when the glue does not have each name exactly
// once, so a wasm-bindgen upgrade that changes the glue cannot ship a broken package.
// Usage: node scripts/shorten-imports.mjs pkg/rtm_sdk_bg.wasm pkg/rtm_sdk.js
import { readFileSync, writeFileSync } from "node:fs";
const [wasmFile, glueFile] = process.argv.slice(2);
if (!wasmFile || !glueFile) throw new Error("usage: shorten-imports.mjs MODULE.wasm GLUE.js");
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
console.log(`renamed ${renamed} imports`);
