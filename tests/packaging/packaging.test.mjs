// Packaging tests: the packed tarball, installed by name into consumer projects (run.sh lays
// them out under work/), loaded in headless Chromium the ways users load it. Run by run.sh:
//   node --test tests/packaging/
// Env: PKG_WORK (the work dir), RTM_SERVER (an rtm-server's base URL; the real-server part is
// skipped without it), RTM_SERVER_BIN, RTM_APP_ID, RTM_APP_KEY, RTM_AK, RTM_SK.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { build, createServer, preview } from 'vite';
import { authorization, callOpenApi } from './lib/openapi.mjs';
import { serveStatic } from './lib/static-server.mjs';

const work = process.env.PKG_WORK ?? join(import.meta.dirname, 'work');
const env = {
  server: process.env.RTM_SERVER,
  bin: process.env.RTM_SERVER_BIN ?? 'target/debug/rtm-server',
  appId: process.env.RTM_APP_ID ?? '0123456789abcdef01234567',
  appKey: process.env.RTM_APP_KEY ?? 'testappkey',
  ak: process.env.RTM_AK ?? 'AKTEST',
  sk: process.env.RTM_SK ?? 'SKTEST',
};
const installed = join(work, 'plain', 'node_modules', 'rtm-sdk');
const pkgJson = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
const WASM_IN_JS = [/AGFzbQ/, /data:application\/wasm/]; // base64 of "\0asm"; a data URL

/** Every file under `dir`, recursively, as paths. */
function files(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name));
}

function assertNoInlineWasm(paths) {
  const js = paths.filter((p) => /\.m?js$/.test(p));
  assert.ok(js.length > 0, 'some JS to scan');
  for (const p of js) {
    const text = readFileSync(p, 'utf8');
    for (const re of WASM_IN_JS) assert.doesNotMatch(text, re, `${p} inlines the wasm`);
  }
}

/** The keys of `export declare const <name>: { readonly k: ... }` in index.d.ts. */
function dtsKeys(name) {
  const dts = readFileSync(join(installed, 'index.d.ts'), 'utf8');
  const body = dts.slice(dts.indexOf(`export declare const ${name}: {`));
  return [...body.slice(0, body.indexOf('\n};')).matchAll(/readonly (\w+):/g)].map((m) => m[1]);
}
/** The members of `type ErrorCodeName` in index.d.ts. */
function dtsErrorCodes() {
  const dts = readFileSync(join(installed, 'index.d.ts'), 'utf8');
  const body = dts.slice(dts.indexOf('export type ErrorCodeName ='));
  return [...body.slice(0, body.indexOf(';')).matchAll(/'(\w+)'/g)].map((m) => m[1]);
}

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});
after(async () => {
  await browser?.close();
});

let userSeq = 0;
let engineMethods; // what the last probe saw on an engine

/**
 * Opens `url` (the probe's parameters appended), lets the probe run, plays the business server
 * when an rtm server is up, and asserts on everything the probe and the network saw.
 */
async function checkConsumer(t, url, { worker = false } = {}) {
  const user = `pkg-${process.pid}-${++userSeq}`;
  const params = new URLSearchParams({ appId: env.appId, server: env.server ?? 'http://127.0.0.1:9' });
  if (env.server) {
    const token = execFileSync(env.bin, ['token', '--app-id', env.appId, '--app-key', env.appKey, '--user', user], {
      encoding: 'utf8',
    }).trim();
    params.set('token', token);
    params.set('user', user);
  }
  const context = await browser.newContext();
  const wasmResponses = [];
  const jsResponses = [];
  context.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith('.wasm')) wasmResponses.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] });
    else if (/\.m?js$/.test(path) || (r.headers()['content-type'] ?? '').includes('javascript')) jsResponses.push(r);
  });
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  try {
    const target = new URL(url);
    target.search = params.toString();
    await page.goto(target.href);
    const state = () => page.evaluate(() => globalThis.__rtm ?? {});
    const waitFor = async (key) => {
      await page
        .waitForFunction((k) => globalThis.__rtm && (k in globalThis.__rtm || 'error' in globalThis.__rtm), key, {
          timeout: 20_000,
        })
        .catch(() => {});
      const s = await state();
      assert.equal(s.error, undefined, `the probe failed: ${s.error}\nconsole:\n${consoleLines.join('\n')}`);
      assert.ok(key in s, `no '${key}' from the probe\nseen: ${JSON.stringify(s)}\nconsole:\n${consoleLines.join('\n')}`);
      return s;
    };

    let s = await waitFor(env.server ? 'loggedIn' : 'done');
    if (worker) assert.equal(s.inWorker, true, 'the probe ran inside a Worker');
    assert.equal(s.version, pkgJson.version, 'getSdkVersion() is the package version');
    assert.deepEqual(
      s.defaultKeys,
      ['ConnectionState', 'ErrorCode', 'UserOfflineReason', 'createEngine', 'destroyEngine', 'events', 'getSdkVersion'],
    );
    assert.deepEqual(s.namedMatchDefault, [], 'named exports are the default export members');
    assert.equal(s.enums.eventsPlain, true, 'events is a plain object');
    assert.ok(s.enums.eventsCount > 0, 'Object.keys(events) is not empty');
    assert.equal(s.enums.frozen, true, 'the enums and the default export are frozen');
    assert.deepEqual(s.enums.eventNames, dtsKeys('events'), 'events match index.d.ts');
    assert.deepEqual(s.enums.errorCodes, dtsErrorCodes(), 'ErrorCode matches index.d.ts');
    assert.equal(s.enums.eventsValueIsKey, true);
    assert.equal(s.enums.onRoomMessageReceived, 'onRoomMessageReceived');
    assert.equal(s.enums.errorCodePlain, true, 'ErrorCode is a plain object');
    assert.ok(s.enums.errorCodeCount > 0);
    assert.equal(s.enums.INVALID_PARAMS, 'INVALID_PARAMS');
    assert.equal(s.enums.connectionStatePlain, true, 'ConnectionState is a plain object');
    assert.deepEqual(s.enums.connectionState, {
      CONNECTION_START: 0,
      CONNECTION_STATE_DISCONNECTED: 1,
      CONNECTION_STATE_CONNECTING: 2,
      CONNECTION_STATE_CONNECTED: 3,
      CONNECTION_STATE_RECONNECTING: 4,
      CONNECTION_STATE_RECONNECTED: 5,
      CONNECTION_STATE_LOST: 6,
    });
    for (const m of ['on', 'once', 'off', 'login', 'logout', 'joinRoom', 'leaveRoom', 'setUserVisibility', 'setServerParams', 'sendServerMessage']) {
      assert.ok(s.engineMethods.includes(m), `engine.${m} exists`);
    }
    assert.equal(s.badLogin.isError, true, `login with a bad user id rejects with an Error: ${JSON.stringify(s.badLogin)}`);
    assert.equal(s.badLogin.code, 'INVALID_PARAMS');
    assert.equal(s.badLogin.name, 'SDKError');

    if (env.server) {
      const push = (Binary, Message) =>
        callOpenApi(env.server, 'SendUnicast', { AppId: env.appId, From: 'biz-server', To: user, Binary, Message }, env);
      await push(false, `hello ${user}`);
      await push(true, Buffer.from([0, 1, 2, 255]).toString('base64'));
      s = await waitFor('done');
      assert.deepEqual(s.text, { userId: 'biz-server', message: `hello ${user}` });
      assert.deepEqual(s.binary, { userId: 'biz-server', isArrayBuffer: true, bytes: [0, 1, 2, 255] });
      assert.ok(s.states.includes(3), `reached CONNECTION_STATE_CONNECTED: ${s.states}`);
    }

    // The module came from its own .wasm file, compiled by streaming (right MIME type, no
    // fallback warning), and no JS the page loaded carries it inline.
    assert.equal(wasmResponses.length, 1, `one .wasm fetched: ${JSON.stringify(wasmResponses)}`);
    assert.equal(wasmResponses[0].status, 200);
    assert.match(wasmResponses[0].type ?? '', /^application\/wasm/);
    assert.ok(!consoleLines.some((l) => /instantiateStreaming/.test(l)), consoleLines.join('\n'));
    for (const r of jsResponses) {
      const text = await r.text().catch(() => '');
      for (const re of WASM_IN_JS) assert.doesNotMatch(text, re, `${r.url()} inlines the wasm`);
    }
    t.diagnostic(`${wasmResponses[0].url} (${wasmResponses[0].type}); ${jsResponses.length} JS responses scanned`);
    if (env.server) t.diagnostic(`received over the real server: ${JSON.stringify(s.text)} ${JSON.stringify(s.binary)}`);
    engineMethods = s.engineMethods;
    return s;
  } finally {
    await context.close();
  }
}

describe('the tarball', () => {
  test('is rtm-sdk with a browser-only ESM entry, its own .wasm and no inline wasm', () => {
    assert.equal(pkgJson.name, 'rtm-sdk');
    assert.equal(pkgJson.type, 'module');
    assert.deepEqual(Object.keys(pkgJson.exports['.']).sort(), ['default', 'types']);
    assert.ok(!JSON.stringify(pkgJson.exports).match(/"(node|require)"/), 'no Node-only condition');
    const shipped = files(installed).map((p) => p.slice(installed.length + 1)).sort();
    assert.ok(shipped.includes('rtm_sdk_bg.wasm'), shipped.join(' '));
    assert.ok(shipped.includes('index.js') && shipped.includes('index.d.ts'), shipped.join(' '));
    assertNoInlineWasm(files(installed));
    // The form bundlers (Vite, webpack 5, Rollup, esbuild) turn into an emitted asset.
    assert.match(readFileSync(join(installed, 'index.js'), 'utf8'), /new URL\((["'])\.\/rtm_sdk_bg\.wasm\1, ?import\.meta\.url\)/);
    const wasm = readFileSync(join(installed, 'rtm_sdk_bg.wasm'));
    assert.deepEqual([...wasm.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
  });

  test("index.js's enums match the wasm module's, where it still exports them", async (t) => {
    const glue = await import(join(installed, 'rtm_sdk.js'));
    glue.initSync({ module: readFileSync(join(installed, 'rtm_sdk_bg.wasm')) });
    const statics = (cls) =>
      Object.getOwnPropertyNames(cls).filter((k) => !['length', 'name', 'prototype'].includes(k));
    const sorted = (a) => [...a].sort();
    if (glue.events) assert.deepEqual(sorted(statics(glue.events)), sorted(dtsKeys('events')));
    if (glue.ErrorCode) assert.deepEqual(sorted(statics(glue.ErrorCode)), sorted(dtsErrorCodes()));
    if (glue.ConnectionState) {
      const numeric = Object.fromEntries(Object.entries(glue.ConnectionState).filter(([k]) => !/^\d+$/.test(k)));
      assert.deepEqual(Object.keys(numeric), dtsKeys('ConnectionState'));
    }
    if (!glue.events && !glue.ErrorCode) t.diagnostic('the wasm module exports no string enums');
  });

  test('the signer used below matches REFERENCE §4', () => {
    const body = '{"AppId":"0123456789abcdef01234567","From":"server","To":"user1","Binary":false,"Message":"hello"}';
    const headers = {
      Host: 'rtc.volcengineapi.com',
      'X-Date': '20240102T030405Z',
      'X-Content-Sha256': '085659ac69dec929c1efd47f777e0d138ee4285aad16e0911fbb8cd25c5f7b30',
    };
    const req = { method: 'POST', path: '/', query: { Action: 'SendUnicast', Version: '2023-07-20' }, body, ak: 'AKTEST', sk: 'SKTEST' };
    assert.match(authorization({ ...req, headers }), /SignedHeaders=host;x-content-sha256;x-date, Signature=a15c1b8569ff91302de8b2c5e22fbbed4860b74247d929ce60e9427d32c11dec$/);
    assert.match(
      authorization({ ...req, headers: { ...headers, 'Content-Type': 'application/json' } }),
      /Signature=d4dbc6070466471d9adc93acba50850f3bf4c8b1dda6c48ad742d510e2bac592$/,
    );
  });
});

describe('TypeScript consumer', () => {
  const tsc = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsc');
  for (const config of ['tsconfig.json', 'tsconfig.nodenext.json']) {
    test(`tsc --noEmit -p ${config}`, () => {
      try {
        execFileSync(tsc, ['--noEmit', '-p', join(work, 'ts', config)], { encoding: 'utf8' });
      } catch (e) {
        assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
      }
    });
  }
});

describe('Vite app (vanilla template), `import VERTC from "rtm-sdk"`', () => {
  const root = join(work, 'vite-app');

  test('vite build, served by vite preview', async (t) => {
    await build({ root, logLevel: 'warn' });
    const dist = join(root, 'dist');
    const emitted = files(dist);
    assert.ok(emitted.some((p) => p.endsWith('.wasm')), `the .wasm is its own asset: ${emitted.join(' ')}`);
    assertNoInlineWasm(emitted);
    const server = await preview({ root, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0 } });
    try {
      await checkConsumer(t, server.resolvedUrls.local[0]);
    } finally {
      await new Promise((resolve) => server.httpServer.close(resolve));
    }
  });

  test('vite dev server', async (t) => {
    const server = await createServer({ root, logLevel: 'warn', server: { host: '127.0.0.1', port: 0 } });
    await server.listen();
    try {
      await checkConsumer(t, server.resolvedUrls.local[0]);
    } finally {
      await server.close();
    }
  });
});

describe('no bundler', () => {
  let server;
  before(async () => {
    server = await serveStatic(join(work, 'plain'));
  });
  after(() => server?.close());

  test('a plain <script type="module"> page with an import map', async (t) => {
    await checkConsumer(t, server.url);
  });

  test('a dedicated module Web Worker', async (t) => {
    await checkConsumer(t, new URL('worker.html', server.url).href, { worker: true });
  });
});

test('every engine method typed in index.d.ts exists at run time', () => {
  assert.ok(engineMethods, 'a probe ran');
  const dts = readFileSync(join(installed, 'index.d.ts'), 'utf8');
  const body = dts.slice(dts.indexOf('export interface IRTCEngine'));
  const typed = [...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]);
  assert.ok(typed.length > 20, `parsed the methods: ${typed}`);
  const missing = typed.filter((m) => !engineMethods.includes(m));
  assert.deepEqual(missing, [], 'every typed method exists');
  // wasm-bindgen's own memory-management methods are not part of the API.
  const bindgen = ['free', '__destroy_into_raw'];
  const untyped = engineMethods.filter((m) => !typed.includes(m) && !bindgen.includes(m));
  assert.deepEqual(untyped, [], 'every run-time method is typed');
});
