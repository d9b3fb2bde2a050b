// The rtm demo page: every flow of the SDK, with a live event log.
import VERTC from './pkg/index.js';

const $ = (id) => document.getElementById(id);
const STATE_NAMES = Object.fromEntries(Object.entries(VERTC.ConnectionState).map(([k, v]) => [v, k]));

let engine = null;
let demo = {};

function log(event, body, cls = '') {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  const t = document.createElement('time');
  t.textContent = new Date().toLocaleTimeString(undefined, { hour12: false }) + '.' + String(Date.now() % 1000).padStart(3, '0');
  const ev = document.createElement('span');
  ev.className = 'ev';
  ev.textContent = event;
  const b = document.createElement('span');
  b.className = 'body';
  b.textContent = body ?? '';
  li.append(t, ev, b);
  $('log').prepend(li);
}

const hex = (buf) => [...new Uint8Array(buf)].map((x) => x.toString(16).padStart(2, '0')).join('');
function fromHex(s) {
  const clean = s.replace(/[^0-9a-fA-F]/g, '');
  if (clean.length % 2) throw new Error('hex needs an even number of digits');
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}
const show = (m) => (typeof m === 'string' ? JSON.stringify(m) : `<${m.byteLength} bytes> ${hex(m.slice(0, 64))}`);

function engineOrCreate() {
  if (engine) return engine;
  const serverUrl = $('serverUrl').value.trim() || undefined;
  engine = VERTC.createEngine($('appId').value.trim(), { serverUrl });
  const E = VERTC.events;
  for (const name of [E.onUserMessageReceived, E.onUserBinaryMessageReceived, E.onRoomMessageReceived,
    E.onRoomBinaryMessageReceived, E.onUserMessageReceivedOutsideRoom, E.onUserBinaryMessageReceivedOutsideRoom]) {
    engine.on(name, (e) => log(name, `from ${e.userId}: ${show(e.message)}`, 'ok'));
  }
  engine.on(E.onConnectionStateChanged, (e) => {
    const name = STATE_NAMES[e.state] ?? String(e.state);
    $('state').textContent = name.replace('CONNECTION_STATE_', '').replace('CONNECTION_', '');
    $('state').className = `state s${e.state}`;
    log('onConnectionStateChanged', name);
  });
  engine.on(E.onError, (e) => {
    log('onError', e.errorCode, 'err');
    if (e.errorCode === 'RTM_DUPLICATE_LOGIN') loggedIn = false;
    if (e.errorCode === 'DUPLICATE_LOGIN') room = null;
    updateWho();
  });
  engine.on(E.onServerParamsSetResult, (code) => log('onServerParamsSetResult', code ? String(code) : 'ok', code ? 'err' : 'ok'));
  engine.on(E.onServerMessageSendResult, (e) => log('onServerMessageSendResult', JSON.stringify(e)));
  if (E.onUserJoined) engine.on(E.onUserJoined, (e) => log('onUserJoined', JSON.stringify(e.userInfo)));
  if (E.onUserLeave) engine.on(E.onUserLeave, (e) => log('onUserLeave', JSON.stringify(e)));
  return engine;
}

async function demoToken(user, room = '') {
  const r = await fetch(`/demo/token?user=${encodeURIComponent(user)}&room=${encodeURIComponent(room)}`);
  if (!r.ok) throw new Error(`token endpoint answered ${r.status}`);
  return (await r.json()).token;
}

function action(button, name, fn) {
  $(button).addEventListener('click', async () => {
    $(button).disabled = true;
    try {
      const result = await fn();
      log(name, result === undefined ? 'ok' : describe(result), 'ok');
    } catch (e) {
      log(name, e.code ? `${e.code}: ${e.message}` : String(e), 'err');
    } finally {
      $(button).disabled = false;
    }
  });
}
const replacer = (_k, v) => (v instanceof ArrayBuffer ? `<${v.byteLength} bytes>` : v);
// A business-server reply is usually JSON: show it parsed rather than as an escaped string.
function describe(result) {
  if (result && typeof result === 'object' && 'msgId' in result && typeof result.response === 'string') {
    let reply = result.response;
    try { reply = JSON.stringify(JSON.parse(reply)); } catch { /* plain text */ }
    return `msgId ${result.msgId}, reply ${reply}`;
  }
  return typeof result === 'object' ? JSON.stringify(result, replacer) : String(result);
}
function updateWho() {
  const u = loggedIn ? $('userId').value.trim() : null;
  $('who').textContent = [u ? `user ${u}` : 'not logged in', room ? `room ${room}` : null].filter(Boolean).join(' · ');
}
let loggedIn = false;
let room = null;

action('login', 'login', async () => {
  const user = $('userId').value.trim();
  await engineOrCreate().login(await demoToken(user), user);
  loggedIn = true;
  updateWho();
});
action('logout', 'logout', async () => {
  await engineOrCreate().logout();
  loggedIn = false;
  updateWho();
});
action('join', 'joinRoom', async () => {
  const user = $('userId').value.trim();
  const roomId = $('roomId').value.trim();
  await engineOrCreate().joinRoom(await demoToken(user, roomId), roomId, { userId: user, extraInfo: `tab at ${location.host}` }, {});
  room = roomId;
  updateWho();
});
action('leave', 'leaveRoom', async () => {
  await engineOrCreate().leaveRoom();
  room = null;
  updateWho();
});
const peer = () => $('peerId').value.trim();
action('sendPeerOutside', 'sendUserMessageOutsideRoom', async () => `msgId ${await engineOrCreate().sendUserMessageOutsideRoom(peer(), $('peerText').value)}`);
action('sendPeerRoom', 'sendUserMessage', async () => `msgId ${await engineOrCreate().sendUserMessage(peer(), $('peerText').value)}`);
action('sendRoom', 'sendRoomMessage', async () => `msgId ${await engineOrCreate().sendRoomMessage($('peerText').value)}`);
action('peerStatus', 'getPeerOnlineStatus', async () => ['OFFLINE', 'ONLINE', 'UNREACHABLE'][await engineOrCreate().getPeerOnlineStatus(peer())]);
action('setParams', 'setServerParams', () => engineOrCreate().setServerParams($('cbSig').value, $('cbUrl').value.trim()));
action('sendText', 'sendServerMessage', () => engineOrCreate().sendServerMessage($('srvText').value));
action('sendHex', 'sendServerBinaryMessage', () => engineOrCreate().sendServerBinaryMessage(fromHex($('srvHex').value).buffer));
$('srvFile').addEventListener('change', async () => {
  const f = $('srvFile').files[0];
  if (!f) return;
  try {
    const r = await engineOrCreate().sendServerBinaryMessage(await f.arrayBuffer());
    log('sendServerBinaryMessage', `${f.name}: ${JSON.stringify(r, replacer)}`, 'ok');
  } catch (e) {
    log('sendServerBinaryMessage', e.code ? `${e.code}: ${e.message}` : String(e), 'err');
  }
  $('srvFile').value = '';
});
action('apiSend', 'OpenAPI', async () => {
  if (!demo.consoleUrl) throw new Error('no business-server console in this mode');
  const binary = $('apiBinary').checked;
  const raw = $('apiMsg').value;
  const body = {
    Action: $('action').value,
    From: $('apiFrom').value.trim(),
    To: $('apiTo').value.trim(),
    RoomId: $('apiRoom').value.trim(),
    Binary: binary,
    Message: binary ? hex(fromHex(raw)) : raw,
  };
  const r = await fetch(demo.consoleUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${r.status} ${text}`);
  return JSON.parse(text);
});
$('clear').addEventListener('click', () => { $('log').innerHTML = ''; });

// Defaults: a fresh user id per tab, so two tabs side by side are two users.
(async () => {
  $('userId').value = sessionStorage.getItem('rtm-demo-user') ?? `user-${Math.random().toString(36).slice(2, 7)}`;
  sessionStorage.setItem('rtm-demo-user', $('userId').value);
  try {
    const r = await fetch('/demo/config');
    if (r.ok) demo = await r.json();
  } catch { /* not in demo mode */ }
  $('appId').value = demo.appId ?? '';
  $('cbUrl').value = demo.callbackUrl ?? '';
  $('apiTo').value = $('userId').value;
  log('ready', `rtm SDK ${VERTC.getSdkVersion()}`);
})();
