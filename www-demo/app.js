// The rtm demo page: every flow of the SDK, with a live event log.
//
// Stable hooks for tests and tools: every log entry is an <li> with data-event (the event or
// call name) and data-kind (ok, err or info); #state carries data-state (the ConnectionState
// name); #error shows the latest error's code; the reply panels carry data-status.
import VERTC from './pkg/index.js';

const $ = (id) => document.getElementById(id);
const E = VERTC.events;
const STATE_NAMES = Object.fromEntries(Object.entries(VERTC.ConnectionState).map(([k, v]) => [v, k]));
const shortState = (name) => name.replace('CONNECTION_STATE_', '').replace('CONNECTION_', '');
const ONLINE = ['OFFLINE', 'ONLINE', 'UNREACHABLE'];

// ----- state ---------------------------------------------------------------------------------

let engine = null;
let engineKey = ''; // the serverUrl/appId the engine was made with
let demo = {}; // /demo/config: appId, callbackUrl, consoleUrl
let loggedIn = false;
let room = null;
let params = null; // the callback URL last set successfully
const members = new Map(); // userId -> extraInfo, others in the room
const busy = new Set(); // buttons whose call is in flight

// ----- rendering -----------------------------------------------------------------------------

function stamp() {
  const d = new Date();
  return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

/** Adds a log entry: `event` is an event name or a call ("login()"), `kind` ok, err or info. */
function log(event, body, kind = 'info', code = null) {
  const li = document.createElement('li');
  li.className = kind;
  li.dataset.event = event.replace(/\(\)$/, '');
  li.dataset.kind = kind;
  const t = document.createElement('time');
  t.textContent = stamp();
  const ev = document.createElement('span');
  ev.className = 'ev';
  ev.textContent = event;
  const b = document.createElement('span');
  b.className = 'body';
  if (code) {
    const c = document.createElement('code');
    c.className = 'code';
    c.textContent = code;
    b.append(c, ' ');
  }
  b.append(body ?? '');
  li.append(t, ev, b);
  $('log').prepend(li);
}

/** Shows an error in the bar under the header (and the log). */
function showError(where, code, text) {
  $('error').hidden = false;
  $('error').dataset.code = code || '';
  $('errorCode').textContent = code || 'Error';
  $('errorText').textContent = `${where}: ${text}`;
}
function clearError() {
  $('error').hidden = true;
}

const hex = (buf) => [...new Uint8Array(buf)].map((x) => x.toString(16).padStart(2, '0')).join('');
function fromHex(s) {
  const clean = s.replace(/\s+|0x/g, '');
  if (!/^[0-9a-fA-F]*$/.test(clean)) throw new Error('hex digits only (0-9, a-f)');
  if (clean.length % 2) throw new Error('hex needs an even number of digits');
  if (!clean) throw new Error('enter some hex, e.g. 00ff10');
  return Uint8Array.from(clean.match(/../g), (h) => parseInt(h, 16));
}
const show = (m) => (typeof m === 'string'
  ? JSON.stringify(m)
  : `<${m.byteLength} bytes> ${hex(m.slice(0, 32))}${m.byteLength > 32 ? '…' : ''}`);
const size = (n) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KB`);

/** Fills a reply panel: a title line and key/value rows. */
function renderReply(panel, status, title, rows) {
  $(panel).hidden = false;
  $(panel).dataset.status = status;
  $(`${panel}Title`).textContent = title;
  const dl = $(`${panel}Body`);
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = typeof v === 'string' ? v : JSON.stringify(v);
    dl.append(dt, dd);
  }
}

/** The business server's reply body, parsed when it is JSON, as readable rows. */
function replyRows(body) {
  let parsed;
  try { parsed = JSON.parse(body); } catch { return [['body', body || '(empty)']]; }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return [['body', JSON.stringify(parsed)]];
  // The demo business server's fields in reading order, then anything else.
  const order = ['ok', 'error', 'echo', 'binary', 'head', 'len', 'truncated', 'received', 'prev', 'push'];
  const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
  const entries = Object.entries(parsed).sort(([a], [b]) => rank(a) - rank(b));
  return entries.map(([k, v]) => {
    if (k === 'push' && v && typeof v === 'object') {
      // The demo business server's own OpenAPI call: "SendUnicast → 200 success".
      const res = v.response?.ResponseMetadata?.Error;
      const outcome = v.error ?? (res ? `${res.Code} (${res.CodeN}): ${res.Message}` : v.response?.Result?.Message ?? '');
      return [k, `${v.action} → ${v.status ?? 'failed'} ${outcome}`.trim()];
    }
    return [k, v];
  });
}

function updateWho() {
  const u = loggedIn ? $('userId').value.trim() : null;
  $('who').textContent = [u ? `user ${u}` : 'not logged in', room ? `room ${room}` : null].filter(Boolean).join(' · ');
}

function renderMembers() {
  const el = $('members');
  el.replaceChildren();
  $('memberList').replaceChildren();
  if (!members.size) {
    const none = document.createElement('span');
    none.className = 'muted';
    none.textContent = room ? 'nobody yet' : '(join the room to see who is here)';
    el.append(none);
  }
  for (const [id, extra] of members) {
    const chip = document.createElement('button');
    chip.className = 'chip';
    chip.dataset.user = id;
    chip.textContent = id;
    chip.title = `${extra ? `${extra} · ` : ''}click to message ${id}`;
    chip.addEventListener('click', () => { $('peerId').value = id; });
    el.append(chip);
    const opt = document.createElement('option');
    opt.value = id;
    $('memberList').append(opt);
  }
}

function renderParams(status, text) {
  $('paramsStatus').dataset.status = status;
  $('paramsStatus').className = `status ${status === 'set' ? 'good' : status === 'failed' ? 'bad' : 'muted'}`;
  $('paramsStatus').textContent = text;
}

/** Enables exactly the controls that can work now. */
function refresh() {
  const session = loggedIn || room !== null;
  const can = {
    login: !loggedIn,
    logout: loggedIn,
    join: room === null,
    leave: room !== null,
    setParams: loggedIn,
    sendText: loggedIn && params !== null,
    sendHex: loggedIn && params !== null,
    sendPeerOutside: loggedIn,
    peerStatus: loggedIn,
    sendPeerRoom: room !== null,
    sendRoom: room !== null,
    apiSend: Boolean(demo.consoleUrl),
  };
  for (const [id, ok] of Object.entries(can)) $(id).disabled = !ok || busy.has(id);
  const fileOk = can.sendText && !busy.has('srvFile');
  $('srvFile').disabled = !fileOk;
  $('srvFileLabel').classList.toggle('disabled', !fileOk);
  // The engine is bound to these while it has a session.
  for (const id of ['serverUrl', 'appId', 'userId']) $(id).disabled = session;
  $('roomId').disabled = room !== null;
  const why = !loggedIn ? 'log in first' : params === null ? 'set the server params first' : '';
  for (const id of ['sendText', 'sendHex']) $(id).title = why;
  $('srvFileLabel').title = why;
  if (!demo.consoleUrl) $('apiSend').title = 'no demo business server configured';
  // Console fields that the chosen Action does not take.
  const action = $('action').value;
  $('apiSendAction').textContent = action;
  $('apiTo').disabled = action === 'SendBroadcast';
  $('apiRoom').disabled = action === 'SendUnicast';
  $('apiToLabel').textContent = action === 'BatchSendRoomUnicast' ? 'To (comma-separated)' : 'To';
}

function sessionGone() {
  loggedIn = false;
  room = null;
  params = null;
  members.clear();
  renderMembers();
  renderParams('unset', 'not set');
  updateWho();
  refresh();
}

// ----- the engine ----------------------------------------------------------------------------

function engineOrCreate() {
  const serverUrl = $('serverUrl').value.trim() || undefined;
  const appId = $('appId').value.trim();
  const key = `${serverUrl ?? ''}|${appId}`;
  if (engine && engineKey === key) return engine;
  // Only reachable without a session (the settings are locked during one).
  if (engine) VERTC.destroyEngine(engine);
  engine = VERTC.createEngine(appId, { serverUrl });
  engineKey = key;
  for (const name of [E.onUserMessageReceived, E.onUserBinaryMessageReceived, E.onRoomMessageReceived,
    E.onRoomBinaryMessageReceived, E.onUserMessageReceivedOutsideRoom, E.onUserBinaryMessageReceivedOutsideRoom]) {
    engine.on(name, (e) => log(name, `from ${e.userId}: ${show(e.message)}`, 'ok'));
  }
  engine.on(E.onConnectionStateChanged, (e) => {
    const name = STATE_NAMES[e.state] ?? String(e.state);
    $('state').textContent = shortState(name);
    $('state').className = `state s${e.state}`;
    $('state').dataset.state = name;
    log('onConnectionStateChanged', name, e.state === VERTC.ConnectionState.CONNECTION_STATE_LOST ? 'err' : 'info');
    // A dropped connection ends the session (login and room).
    if (e.state === VERTC.ConnectionState.CONNECTION_STATE_DISCONNECTED && (loggedIn || room)) sessionGone();
  });
  engine.on(E.onError, (e) => {
    log('onError', describeError(e.errorCode), 'err', e.errorCode);
    showError('onError', e.errorCode, describeError(e.errorCode));
    if (e.errorCode === 'RTM_DUPLICATE_LOGIN') { loggedIn = false; params = null; renderParams('unset', 'not set'); }
    if (e.errorCode === 'DUPLICATE_LOGIN') { room = null; members.clear(); renderMembers(); }
    updateWho();
    refresh();
  });
  engine.on(E.onServerParamsSetResult, (code) => log('onServerParamsSetResult', code ? '' : 'ok', code ? 'err' : 'ok', code || null));
  engine.on(E.onServerMessageSendResult, (e) => log('onServerMessageSendResult',
    `msgid ${e.msgid}, error ${e.error}`, e.error ? 'err' : 'info', e.errorCode || null));
  engine.on(E.onUserJoined, (e) => {
    members.set(e.userInfo.userId, e.userInfo.extraInfo);
    renderMembers();
    log('onUserJoined', `${e.userInfo.userId}${e.userInfo.extraInfo ? ` (${e.userInfo.extraInfo})` : ''}`, 'ok');
  });
  engine.on(E.onUserLeave, (e) => {
    members.delete(e.userInfo.userId);
    renderMembers();
    const reason = Object.keys(VERTC.UserOfflineReason).find((k) => VERTC.UserOfflineReason[k] === e.reason) ?? e.reason;
    log('onUserLeave', `${e.userInfo.userId}, reason ${reason}`, 'info');
  });
  return engine;
}

const HINTS = {
  NOT_LOGIN: 'log in first',
  USER_MESSAGE_NOT_JOIN: 'join the room first',
  USER_MESSAGE_NO_RECEIVER: 'that user is not online (or not in the room)',
  USER_MESSAGE_SERVER_PARAMS_NOTSET: 'set the server params first',
  CALLBACK_URL_NOT_ALLOWED: "the URL is not on the server's callback allow-list",
  USER_MESSAGE_SEND_TO_SERVER_ERROR: 'the business server could not be reached',
  USER_MESSAGE_SERVER_RESPONSE_ERROR: 'the business server answered with an error status',
  USER_MESSAGE_TIMEOUT: 'no answer in time',
  RTM_DUPLICATE_LOGIN: 'this user logged in elsewhere',
  DUPLICATE_LOGIN: 'this user joined the room elsewhere',
  ALREADY_LOGIN: 'already logged in',
  REPEAT_JOIN: 'already in a room',
  INVALID_PARAMS: 'check the fields (ids: letters, digits, @ . _ -)',
  INVALID_TOKEN: 'the token was refused',
};
/** The SDK's message, else a hint for the code. */
const describeError = (code, message) => message || HINTS[code] || 'failed';

/** Wires a button to a call: logs its result or its error (with the code), keeps it disabled meanwhile. */
function action(button, name, fn) {
  $(button).addEventListener('click', () => run(button, name, fn));
}
async function run(button, name, fn) {
  busy.add(button);
  clearError();
  refresh();
  try {
    const result = await fn();
    if (result !== null) log(`${name}()`, result === undefined ? 'ok' : String(result), 'ok');
  } catch (e) {
    const code = e?.code ?? null;
    const text = code ? describeError(code, e.message && e.message !== code ? e.message : '') : String(e?.message ?? e);
    log(`${name}()`, text, 'err', code);
    showError(`${name}()`, code, text);
  } finally {
    busy.delete(button);
    updateWho();
    refresh();
  }
}

async function demoToken(user, roomId = '') {
  const r = await fetch(`/demo/token?user=${encodeURIComponent(user)}&room=${encodeURIComponent(roomId)}`);
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg = (await r.json()).error ?? msg; } catch { /* not JSON */ }
    throw new Error(`demo token endpoint: ${msg}`);
  }
  return (await r.json()).token;
}

// ----- calls ---------------------------------------------------------------------------------

action('login', 'login', async () => {
  const user = $('userId').value.trim();
  await engineOrCreate().login(await demoToken(user), user);
  loggedIn = true;
  sessionStorage.setItem('rtm-demo-user', user);
});
action('logout', 'logout', async () => {
  await engineOrCreate().logout();
  loggedIn = false;
  params = null;
  renderParams('unset', 'not set');
});
action('join', 'joinRoom', async () => {
  const user = $('userId').value.trim();
  const roomId = $('roomId').value.trim();
  await engineOrCreate().joinRoom(await demoToken(user, roomId), roomId, { userId: user, extraInfo: `tab at ${location.host}` }, {});
  room = roomId;
  renderMembers();
  return `joined ${roomId}`;
});
action('leave', 'leaveRoom', async () => {
  await engineOrCreate().leaveRoom();
  room = null;
  members.clear();
  renderMembers();
});

$('visible').addEventListener('change', () => run('visible', 'setUserVisibility', async () => {
  const visible = $('visible').checked;
  await engineOrCreate().setUserVisibility(visible);
  return visible ? 'visible to the others' : 'invisible to the others';
}));

const peer = () => $('peerId').value.trim();
action('sendPeerOutside', 'sendUserMessageOutsideRoom', async () => `to ${peer()}, msgId ${await engineOrCreate().sendUserMessageOutsideRoom(peer(), $('peerText').value)}`);
action('sendPeerRoom', 'sendUserMessage', async () => `to ${peer()}, msgId ${await engineOrCreate().sendUserMessage(peer(), $('peerText').value)}`);
action('sendRoom', 'sendRoomMessage', async () => `to ${room}, msgId ${await engineOrCreate().sendRoomMessage($('peerText').value)}`);
action('peerStatus', 'getPeerOnlineStatus', async () => {
  const who = peer();
  $('peerStatusResult').textContent = '';
  const status = ONLINE[await engineOrCreate().getPeerOnlineStatus(who)] ?? 'UNKNOWN';
  $('peerStatusResult').textContent = `${who} is ${status}`;
  $('peerStatusResult').className = `status ${status === 'ONLINE' ? 'good' : 'muted'}`;
  $('peerStatusResult').dataset.status = status;
  return `${who}: ${status}`;
});

action('setParams', 'setServerParams', async () => {
  const url = $('cbUrl').value.trim();
  try {
    await engineOrCreate().setServerParams($('cbSig').value, url);
  } catch (e) {
    params = null;
    renderParams('failed', `failed: ${e.code ?? e.message}`);
    throw e;
  }
  params = url;
  renderParams('set', `set: ${url}`);
  return `callback ${url}`;
});

/** Sends to the business server and shows its reply in the panel. */
async function toServer(what, send) {
  try {
    const { msgId, response } = await send();
    const rows = replyRows(response);
    renderReply('srvReply', 'ok', `Reply to msgId ${msgId} (${what})`, rows);
    return `msgId ${msgId}, reply: ${rows.map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')}`;
  } catch (e) {
    renderReply('srvReply', 'err', `No reply (${what})`, [['error', e.code ?? String(e.message ?? e)]]);
    throw e;
  }
}
action('sendText', 'sendServerMessage', () => {
  const text = $('srvText').value;
  return toServer(`text ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)}`,
    () => engineOrCreate().sendServerMessage(text));
});
action('sendHex', 'sendServerBinaryMessage', () => {
  const bytes = fromHex($('srvHex').value);
  return toServer(`${bytes.length} bytes`, () => engineOrCreate().sendServerBinaryMessage(bytes.buffer));
});
$('srvFile').addEventListener('change', () => {
  const f = $('srvFile').files[0];
  if (!f) return;
  run('srvFile', 'sendServerBinaryMessage', async () => {
    try {
      const bytes = await f.arrayBuffer();
      return `${f.name}: ${await toServer(`file ${f.name}, ${size(bytes.byteLength)}`, () => engineOrCreate().sendServerBinaryMessage(bytes))}`;
    } finally {
      $('srvFile').value = '';
    }
  });
});

// The business-server console: the demo business server signs and forwards to the OpenAPI.
action('apiSend', 'OpenAPI', async () => {
  const binary = $('apiBinary').checked;
  const raw = $('apiMsg').value;
  const act = $('action').value;
  const body = {
    Action: act,
    From: $('apiFrom').value.trim(),
    Binary: binary,
    Message: binary ? hex(fromHex(raw)) : raw,
  };
  if (act !== 'SendBroadcast') body.To = $('apiTo').value.trim();
  if (act !== 'SendUnicast') body.RoomId = $('apiRoom').value.trim();
  let r;
  try {
    r = await fetch(demo.consoleUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (e) {
    renderReply('apiReply', 'err', `${act}: business server unreachable`, [['error', String(e.message ?? e)]]);
    throw new Error(`${act}: the demo business server is unreachable`);
  }
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  const meta = json?.ResponseMetadata;
  const err = meta?.Error;
  const target = act === 'SendBroadcast' ? `room ${body.RoomId}` : act === 'SendUnicast' ? body.To : `${body.To} in ${body.RoomId}`;
  if (r.ok && !err) {
    renderReply('apiReply', 'ok', `${act} → HTTP ${r.status}`, [
      ['Result', json?.Result?.Message ?? json?.Result ?? text],
      ['to', target],
      ['RequestId', meta?.RequestId ?? '—'],
    ]);
    return `${act} to ${target}: ${r.status} ${json?.Result?.Message ?? ''}`.trim();
  }
  if (err) {
    renderReply('apiReply', 'err', `${act} → HTTP ${r.status}`, [
      ['Code', `${err.Code} (${err.CodeN})`], ['Message', err.Message], ['RequestId', meta?.RequestId ?? '—'],
    ]);
    const e = new Error(`${act} → HTTP ${r.status}: ${err.Message}`);
    e.code = err.Code;
    throw e;
  }
  renderReply('apiReply', 'err', `${act} → HTTP ${r.status}`, [['error', json?.error ?? text]]);
  throw new Error(`${act} → HTTP ${r.status}: ${json?.error ?? text}`);
});

$('action').addEventListener('change', refresh);
$('clear').addEventListener('click', () => $('log').replaceChildren());
$('errorClose').addEventListener('click', clearError);
for (const [input, button] of [['srvText', 'sendText'], ['srvHex', 'sendHex'], ['peerText', 'sendRoom'], ['apiMsg', 'apiSend']]) {
  $(input).addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && !$(button).disabled) $(button).click(); });
}

// The console's To follows the user id until it is edited.
let lastUser = '';
$('userId').addEventListener('input', () => {
  if ($('apiTo').value === lastUser) $('apiTo').value = $('userId').value.trim();
  lastUser = $('userId').value.trim();
});

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
  $('apiTo').value = lastUser = $('userId').value;
  renderMembers();
  refresh();
  document.body.dataset.ready = 'true';
  log('ready', `rtm SDK ${VERTC.getSdkVersion()}${demo.consoleUrl ? '' : ' (no demo business server: the console is off)'}`);
})();
