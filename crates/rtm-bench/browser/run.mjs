// The browser benchmark (BENCHMARKS.md, "Browser"): one Chromium; a page receives N pushed
// messages through the SDK (phase sdk: rtm-server, OpenAPI SendUnicast to the logged-in user),
// the same pushes from rtm-server on a plain WebSocket without the SDK (phase raw: the page
// logs in with a hand-made Login frame), and N messages on a bare WebSocket (phase bare:
// bare-server /sub, text frames published on /pub; phase bare-binary: binary frames, as the
// SDK receives); prints the events/s of each and the ratios SDK/bare, raw/bare and SDK/raw
// (the SDK's own share, on the same publisher and server). --order picks the phases.
//
// The publisher pushes as fast as the receiver keeps up: at most WINDOW messages sent and not
// yet counted by the page (the page reports its count every EVERY events), and for rtm at most
// CONCURRENCY HTTP requests in flight. The time the publisher spent waiting on the window (the
// page is the bottleneck) or on its own request slots (the publisher/server is) is printed.
//
// Chromium is started directly (no DevTools protocol attached: Playwright's instrumentation
// reports every WebSocket frame over CDP, which costs more than receiving it, and would be
// what is measured). The page talks to the driver over a small HTTP control server.
//
// Started by scripts/bench-browser.sh, which starts the servers:
//   node crates/rtm-bench/browser/run.mjs --rtm http://127.0.0.1:P --bare ws://127.0.0.1:Q/sub \
//     --app-id ID --token T --user U --ak AK --sk SK [--n 100000] [--size 100] [--json FILE]
import http from 'node:http';
import net from 'node:net';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash, createHmac } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authorization, xDate } from '../../../tests/packaging/lib/openapi.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []),
);
const N = Number(args.n ?? 100000);
const SIZE = Number(args.size ?? 100);
const WINDOW = Number(args.window ?? 2000); // < bare-server's 4096-message broadcast channel
const EVERY = Number(args.every ?? 250);
const CONCURRENCY = Number(args.concurrency ?? 256);
const PHASE_TIMEOUT_MS = Number(args['phase-timeout'] ?? 50000);
const CHROMIUM = args.chromium ?? '/usr/bin/chromium';

const hardStop = setTimeout(() => {
  console.error('browser bench: overall time limit (180 s) reached');
  process.exit(2);
}, 180000);

// ---- CPU accounting (/proc): ticks of a pid, of our descendants (Chromium) ----
const HZ = 100;
const stat = (pid) => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
};
function chromiumTicks() {
  const all = new Map();
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d)) { const s = stat(d); if (s) all.set(Number(d), s); }
  let total = 0, renderer = 0;
  for (const [pid, s] of all) {
    let p = s.ppid, mine = false;
    for (let k = 0; k < 10 && p > 1; k++) { if (p === process.pid) { mine = true; break; } p = all.get(p)?.ppid ?? 0; }
    if (!mine) continue;
    total += s.ticks;
    try { if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) renderer += s.ticks; } catch {}
  }
  return { total, renderer };
}
const cpuSnap = (serverPid) => ({
  t: performance.now(),
  node: process.cpuUsage(),
  server: serverPid ? stat(serverPid)?.ticks ?? 0 : 0,
  chrome: chromiumTicks(),
});
const cpuPct = (a, b) => {
  const s = (b.t - a.t) / 1000;
  const pct = (ticks) => Math.round((ticks / HZ / s) * 100);
  return {
    node: Math.round(((b.node.user + b.node.system - a.node.user - a.node.system) / 1e6 / s) * 100),
    server: pct(b.server - a.server),
    chromium: pct(b.chrome.total - a.chrome.total),
    renderer: pct(b.chrome.renderer - a.chrome.renderer),
  };
};

const payload = (k) => {
  const head = `${k}:`;
  return head + 'x'.repeat(Math.max(0, SIZE - head.length));
};

// ---- publishers: pump(state) sends while the window and slots allow ----
// rtm's publisher: signed OpenAPI SendUnicast requests, pipelined (HTTP/1.1) on SOCKETS raw
// keep-alive connections, CONCURRENCY requests outstanding in all; Node's http client cost
// more CPU per request than the rest of the pipeline.
function makeRtmPublisher() {
  const url = new URL(args.rtm);
  const query = { Action: 'SendUnicast', Version: '2023-07-20' };
  const path = `/?${new URLSearchParams(query)}`;
  const SOCKETS = Number(args.sockets ?? 4);
  let failed = 0, firstError = null, inFlight = 0;
  // The same signature as tests/packaging/lib/openapi.mjs's authorization(), with the
  // derived signing key cached per day (checked against it below).
  let day = '', kSigning = null;
  const hmac = (k, d) => createHmac('sha256', k).update(d).digest();
  const sha = (d) => createHash('sha256').update(d).digest('hex');
  const sign = (date, hash) => {
    const d = date.slice(0, 8);
    if (d !== day) { day = d; kSigning = hmac(hmac(hmac(hmac(args.sk, d), 'cn-north-1'), 'rtc'), 'request'); }
    const canonical = `POST\n/\nAction=SendUnicast&Version=2023-07-20\nhost:${url.host}\nx-content-sha256:${hash}\nx-date:${date}\n\nhost;x-content-sha256;x-date\n${hash}`;
    const scope = `${d}/cn-north-1/rtc/request`;
    const sig = createHmac('sha256', kSigning).update(`HMAC-SHA256\n${date}\n${scope}\n${sha(canonical)}`).digest('hex');
    return `HMAC-SHA256 Credential=${args.ak}/${scope}, SignedHeaders=host;x-content-sha256;x-date, Signature=${sig}`;
  };
  {
    const date = xDate(), body = '{}', hash = sha(body);
    const want = authorization({ method: 'POST', path: '/', query, body, ak: args.ak, sk: args.sk,
      headers: { Host: url.host, 'X-Date': date, 'X-Content-Sha256': hash } });
    if (sign(date, hash) !== want) throw new Error('cached signer disagrees with openapi.mjs');
  }
  const conns = [];
  for (let i = 0; i < SOCKETS; i++) {
    const sock = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    const c = { sock, pending: [], buf: Buffer.alloc(0) };
    sock.on('data', (d) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
      for (;;) {
        const end = c.buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const head = c.buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const len = m ? Number(m[1]) : 0;
        if (c.buf.length < end + 4 + len) break;
        const status = Number(head.slice(9, 12));
        const body = c.buf.subarray(end + 4, end + 4 + len).toString();
        c.buf = c.buf.subarray(end + 4 + len);
        inFlight--;
        if (status !== 200) { failed++; firstError ??= `${status} ${body}`; }
        c.pending.shift()();
      }
    });
    sock.on('error', (e) => { firstError ??= String(e); });
    conns.push(c);
  }
  let next = 0;
  return {
    name: 'rtm',
    canSend: () => inFlight < CONCURRENCY,
    failed: () => failed,
    firstError: () => firstError,
    send(k, onDone) {
      const body = JSON.stringify({ AppId: args['app-id'], From: 'bench', To: args.user, Binary: false, Message: payload(k) });
      const date = xDate();
      const hash = createHash('sha256').update(body).digest('hex');
      const auth = sign(date, hash);
      const c = conns[next++ % conns.length];
      inFlight++;
      c.pending.push(onDone);
      c.sock.write(`POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nx-date: ${date}\r\nx-content-sha256: ${hash}\r\n` +
        `authorization: ${auth}\r\n\r\n${body}`);
    },
    close: () => conns.forEach((c) => c.sock.destroy()),
  };
}

// rtm's peer publisher (phases raw-peer, sdk-peer): a second rtm client, logged in as
// --pub-user, sending SendUser frames (sendUserMessageOutsideRoom) on one WebSocket, as the
// bare publisher sends on /pub; CONCURRENCY requests awaiting their Reply at most. The server's
// per-connection message budget must be off (max_messages_per_sec = 0).
const varint = (n) => {
  const out = [];
  for (let v = BigInt(n); ; v >>= 7n) {
    if (v < 0x80n) { out.push(Number(v)); return out; }
    out.push(Number(v & 0x7fn) | 0x80);
  }
};
const str = (x) => { const b = Buffer.from(x); return [...varint(b.length), ...b]; };
async function makePeerPublisher() {
  const ws = new WebSocket(`${args.rtm.replace(/^http/, 'ws')}/rtm?appId=${args['app-id']}`, 'rtm.v1');
  ws.binaryType = 'arraybuffer';
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error('cannot open the rtm publisher socket')); });
  let failed = 0, firstError = null, req = 0, inFlight = 0;
  const waiting = new Map();
  let loggedIn;
  const login = new Promise((r) => (loggedIn = r));
  ws.onmessage = (e) => {
    const b = new Uint8Array(e.data);
    if (b[0] !== 0x80) return; // replies only (the Welcome and pings' replies aside)
    let i = 1, id = 0, shift = 0;
    for (; b[i] & 0x80; i++, shift += 7) id += (b[i] & 0x7f) * 2 ** shift;
    id += b[i++] * 2 ** shift;
    let code = 0; shift = 0;
    for (; b[i] & 0x80; i++, shift += 7) code += (b[i] & 0x7f) * 2 ** shift;
    code += b[i] * 2 ** shift;
    if (id === 1) { loggedIn(code); return; }
    const done = waiting.get(id);
    if (!done) return;
    waiting.delete(id);
    inFlight--;
    if (code !== 0) { failed++; firstError ??= `SendUser answered code ${code}`; }
    done();
  };
  ws.send(new Uint8Array([0x01, ...varint(++req), ...str(args['pub-token']), ...str(args['pub-user'])]));
  const code = await withTimeout(login, 5000, 'publisher login');
  if (code !== 0) throw new Error(`publisher login answered code ${code}`);
  const to = str(args.user);
  return {
    name: 'peer',
    canSend: () => inFlight < CONCURRENCY,
    failed: () => failed,
    firstError: () => firstError,
    send(k, onDone) {
      const id = ++req;
      inFlight++;
      waiting.set(id, onDone);
      // SendUser { req, msg_id, room: "", to, binary: false, payload }
      ws.send(new Uint8Array([0x07, ...varint(id), ...varint(id), 0x00, ...to, 0x00, ...str(payload(k))]));
    },
    close: () => ws.close(),
  };
}

async function makeBarePublisher(binary = false) {
  const pubUrl = args.bare.replace(/\/sub$/, '/pub');
  // Node 20's WebSocket (undici) needs --experimental-websocket; Node 22 has it by default.
  const ws = new WebSocket(pubUrl);
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error(`cannot open ${pubUrl}`)); });
  return {
    name: binary ? 'bare-binary' : 'bare',
    canSend: () => ws.bufferedAmount < 1 << 20,
    failed: () => 0,
    firstError: () => null,
    send(k, onDone) { ws.send(binary ? Buffer.from(payload(k)) : payload(k)); onDone(); },
    close: () => ws.close(),
  };
}


// ---- the control server the page talks to ----
const phases = (args.order ?? 'bare,raw,sdk').split(',');
for (const k of phases) if (!['bare', 'bare-binary', 'raw', 'sdk', 'raw-peer', 'sdk-peer'].includes(k)) throw new Error(`unknown phase ${k}`);
if (phases.some((k) => k.endsWith('-peer')) && !(args['pub-token'] && args['pub-user'])) throw new Error('the -peer phases need --pub-user and --pub-token');
let received = 0;
let wake = () => {};
let onReady = null, onResult = null;
const ctl = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    res.setHeader('access-control-allow-origin', '*');
    if (u.pathname === '/progress') { received = Number(u.searchParams.get('c')); wake(); }
    else if (u.pathname === '/next') {
      const kind = phases.shift();
      const p = !kind ? { done: true }
        : kind.startsWith('bare') ? { kind: 'bare', url: args.bare, n: N, every: EVERY }
        : { kind: kind.replace(/-peer$/, ''), serverUrl: args.rtm, appId: args['app-id'], token: args.token, userId: args.user, n: N, every: EVERY };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(p));
      return;
    } else if (u.pathname === '/ready') onReady?.();
    else if (u.pathname === '/result') onResult?.(JSON.parse(body));
    else if (u.pathname === '/log') console.log(`  [page] ${body}`);
    res.end();
  });
});
await new Promise((r) => ctl.listen(0, '127.0.0.1', r));
const ctlUrl = `http://127.0.0.1:${ctl.address().port}`;

const withTimeout = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, j) => setTimeout(() => j(new Error(`${what} timed out`)), ms))]);

// Runs one phase: the page is ready to receive; publish N, wait for its result.
async function phase(pub, serverPid, result) {
  received = 0;
  let sent = 0;
  const cpu0 = cpuSnap(serverPid);
  const t0 = performance.now();
  let blockedWindow = 0, blockedSlots = 0, lastSent = t0;
  // The pump: send while allowed; when blocked, wait for progress or a completion and charge
  // the wait to what blocked it.
  while (sent < N) {
    if (performance.now() - t0 > PHASE_TIMEOUT_MS) throw new Error(`${pub.name}: phase timed out, sent ${sent}, received ${received}`);
    if (sent - received >= WINDOW) {
      const w0 = performance.now();
      await new Promise((r) => { wake = r; setTimeout(r, 50); });
      blockedWindow += performance.now() - w0;
    } else if (!pub.canSend()) {
      const w0 = performance.now();
      await new Promise((r) => { wake = r; setTimeout(r, pub.name === 'bare' ? 1 : 50); });
      blockedSlots += performance.now() - w0;
    } else {
      pub.send(sent++, () => { lastSent = performance.now(); wake(); });
      // Yield now and then so completions and progress reports are handled.
      if (sent % 64 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  const r = await withTimeout(result, PHASE_TIMEOUT_MS, `${pub.name}: page result (${received}/${N})`);
  const t1 = performance.now();
  const cpu = cpuPct(cpu0, cpuSnap(serverPid));
  const pubSecs = (lastSent - t0) / 1000;
  return {
    server: pub.name,
    events: r.count,
    page_ms: Math.round(r.ms),
    events_per_s: Math.round(r.count / (r.ms / 1000)),
    publisher_per_s: Math.round(N / pubSecs),
    wall_ms: Math.round(t1 - t0),
    blocked_on_page_ms: Math.round(blockedWindow),
    blocked_on_publisher_ms: Math.round(blockedSlots),
    failed: pub.failed(),
    first_error: pub.firstError(),
    cpu_pct: cpu,
    renderer_us_per_event: Math.round((cpu.renderer / 100) * ((t1 - t0) / 1000) / r.count * 1e6),
  };
}

const profile = mkdtempSync(join(tmpdir(), 'rtm-bench-chromium-'));
const order = [...phases];
const nextReady = () => new Promise((r) => (onReady = r));
const nextResult = () => new Promise((r) => (onResult = r));
let ready = nextReady();
const chrome = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`,
  `${args.rtm}/index.html?ctl=${encodeURIComponent(ctlUrl)}`], { stdio: ['ignore', 'ignore', 'pipe'] });
let chromeErr = '';
chrome.stderr.on('data', (d) => (chromeErr = (chromeErr + d).slice(-4000)));
const version = await new Promise((r) => {
  const v = spawn(CHROMIUM, ['--version']);
  let o = '';
  v.stdout.on('data', (d) => (o += d));
  v.on('close', () => r(o.trim()));
});
const results = [];
let code = 0;
try {
  for (const which of order) {
    await withTimeout(ready, 30000, `page setup (${which})`);
    const result = nextResult();
    ready = nextReady();
    let r;
    if (which.startsWith('bare')) {
      const pub = await makeBarePublisher(which === 'bare-binary');
      r = await phase(pub, Number(args['bare-pid'] ?? 0), result);
      pub.close();
    } else {
      const pub = which.endsWith('-peer') ? await makePeerPublisher() : makeRtmPublisher();
      r = await phase(pub, Number(args['rtm-pid'] ?? 0), result);
      pub.close();
      r.server = which;
    }
    console.log(JSON.stringify(r));
    results.push(r);
  }
  const sdk = results.find((r) => r.server === 'sdk'), bare = results.find((r) => r.server === 'bare');
  console.log(`\n${version}, one page, ${N} messages of ${SIZE} bytes, window ${WINDOW}, ${CONCURRENCY} HTTP requests in flight`);
  console.log('| page | events/s | first→last event ms | publisher sends/s | publisher waited on page / on itself ms | CPU % node / server / Chromium (renderer) | renderer CPU µs/event |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(`| ${r.server} | ${r.events_per_s.toLocaleString('en')} | ${r.page_ms} | ${r.publisher_per_s.toLocaleString('en')} | ${r.blocked_on_page_ms} / ${r.blocked_on_publisher_ms} | ${r.cpu_pct.node} / ${r.cpu_pct.server} / ${r.cpu_pct.chromium} (${r.cpu_pct.renderer}) | ${r.renderer_us_per_event} |`);
  if (sdk && bare) console.log(`\nratio SDK/bare events/s: ${(sdk.events_per_s / bare.events_per_s).toFixed(2)}`);
  const raw = results.find((r) => r.server === 'raw');
  if (raw && bare) console.log(`ratio raw/bare events/s (the rtm pipeline without the SDK): ${(raw.events_per_s / bare.events_per_s).toFixed(2)}`);
  if (raw && sdk) console.log(`ratio SDK/raw events/s (the SDK's own share): ${(sdk.events_per_s / raw.events_per_s).toFixed(2)}`);
  const sdkPeer = results.find((r) => r.server === 'sdk-peer'), rawPeer = results.find((r) => r.server === 'raw-peer');
  if (sdkPeer && bare) console.log(`ratio SDK/bare events/s, pushed by a peer (sendUserMessageOutsideRoom): ${(sdkPeer.events_per_s / bare.events_per_s).toFixed(2)}`);
  if (rawPeer && bare) console.log(`ratio raw/bare events/s, pushed by a peer: ${(rawPeer.events_per_s / bare.events_per_s).toFixed(2)}`);
  if (rawPeer && sdkPeer) console.log(`ratio SDK/raw events/s, pushed by a peer: ${(sdkPeer.events_per_s / rawPeer.events_per_s).toFixed(2)}`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ chromium: version, n: N, size: SIZE, window: WINDOW, concurrency: CONCURRENCY, results }, null, 2));
} catch (e) {
  console.error(`browser bench failed: ${e.stack ?? e}`);
  if (chromeErr) console.error(`chromium stderr (tail):\n${chromeErr}`);
  code = 1;
} finally {
  chrome.kill('SIGTERM');
  await withTimeout(new Promise((r) => (chrome.exitCode !== null ? r() : chrome.once('exit', r))), 5000, 'chromium exit').catch(() => chrome.kill('SIGKILL'));
  ctl.close();
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }); } catch {}
  clearTimeout(hardStop);
}
process.exit(code);
