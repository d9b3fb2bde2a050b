// End-to-end tests of the demo page (www-demo/): two Chromium pages in two browser contexts,
// as two users, go through every flow the page offers, asserting on what each page shows (the
// event log, the badges, the reply panels). Run by run.sh, which serves the page:
//   RTM_DEMO_URL (rtm-server serve --demo --static site), RTM_DEMO_BUSINESS_URL (rtm-server
//   business-demo), RTM_APP_ID, RTM_E2E_OUT (where screenshots go).
// The tests share two pages and run in order: each step starts from where the last one ended.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';

const URL_ = process.env.RTM_DEMO_URL;
const BUSINESS = process.env.RTM_DEMO_BUSINESS_URL;
const APP_ID = process.env.RTM_APP_ID ?? '0123456789abcdef01234567';
const OUT = process.env.RTM_E2E_OUT ?? join(import.meta.dirname, '..', 'out', 'e2e');
if (!URL_ || !BUSINESS) throw new Error('RTM_DEMO_URL and RTM_DEMO_BUSINESS_URL must be set: run tests/e2e/run.sh');
const ROOM = 'demo-room';
const WAIT = 5_000;

let browser;
/** @type {Record<'alice'|'bob', {page: import('playwright-core').Page, user: string, errors: string[]}>} */
const u = {};
let shot = 0;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  for (const name of ['alice', 'bob']) {
    // Two contexts: separate sessionStorage, like two browsers; half of a 1920-wide screen each.
    const ctx = await browser.newContext({ viewport: { width: 960, height: 1000 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(WAIT);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // A non-2xx fetch (the console's OpenAPI error) is logged by Chromium as "Failed to load resource".
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
    u[name] = { page, user: `e2e-${name}`, errors };
  }
});
after(async () => {
  await browser?.close();
});

// ----- helpers -------------------------------------------------------------------------------

const logText = async (page) => (await page.locator('#log li').allInnerTexts()).slice(0, 25).join('\n  ');

/** Waits until the page's log shows `event` with `text` (and, if given, the kind ok/err/info). */
async function sees(who, event, text, kind) {
  const sel = `#log li[data-event="${event}"]${kind ? `[data-kind="${kind}"]` : ''}`;
  try {
    await who.page.locator(sel, { hasText: text }).first().waitFor({ timeout: WAIT });
  } catch {
    assert.fail(`${who.user}'s page does not show ${event} ${JSON.stringify(text)}${kind ? ` (${kind})` : ''}; its log:\n  ${await logText(who.page)}`);
  }
}
/** Asserts the page's log has no `event` entry containing `text` (call after a positive wait). */
async function doesNotSee(who, event, text) {
  const n = await who.page.locator(`#log li[data-event="${event}"]`, { hasText: text }).count();
  assert.equal(n, 0, `${who.user}'s page unexpectedly shows ${event} ${JSON.stringify(text)}`);
}
async function text(who, sel) {
  return (await who.page.locator(sel).innerText()).trim();
}
async function waitText(who, sel, want) {
  try {
    await who.page.locator(sel, { hasText: want }).waitFor({ timeout: WAIT });
  } catch {
    assert.fail(`${who.user}'s ${sel} shows ${JSON.stringify(await text(who, sel).catch(() => '?'))}, not ${JSON.stringify(want)}`);
  }
}
async function badge(who, want) {
  await waitText(who, '#state', want);
  assert.equal(await text(who, '#state'), want);
}
async function disabled(who, id) {
  return who.page.locator(`#${id}`).isDisabled();
}
async function screenshots(label) {
  shot += 1;
  const n = String(shot).padStart(2, '0');
  for (const [name, who] of Object.entries(u)) {
    await who.page.screenshot({ path: join(OUT, `${n}-${label}-${name}.png`), fullPage: true });
  }
}
/** The state names the log shows, oldest first. */
async function stateHistory(who) {
  const items = await who.page.locator('#log li[data-event="onConnectionStateChanged"] .body').allInnerTexts();
  return items.reverse().map((s) => s.replace('CONNECTION_STATE_', ''));
}
/** Calls an Action from the page's business-server console and waits for its reply panel. */
async function consoleCall(who, { action, to, room = ROOM, message, binary = false, from = 'server' }) {
  const p = who.page;
  await p.selectOption('#action', action);
  await p.fill('#apiFrom', from);
  if (to !== undefined) await p.fill('#apiTo', to);
  if (action !== 'SendUnicast') await p.fill('#apiRoom', room);
  await p.fill('#apiMsg', message);
  await p.setChecked('#apiBinary', binary);
  const before = await p.locator('#log li[data-event="OpenAPI"]').count();
  await p.click('#apiSend');
  await p.waitForFunction((n) => document.querySelectorAll('#log li[data-event="OpenAPI"]').length > n, before);
}

/** A flow step: once one fails, the later ones (which build on it) are skipped, not failed. */
let broken = null;
function step(name, fn) {
  test(name, async (t) => {
    if (broken) return t.skip(`builds on "${broken}", which failed`);
    try {
      await fn();
    } catch (e) {
      broken = name;
      await screenshots('failure').catch(() => {});
      throw e;
    }
  });
}

// ----- the flows -----------------------------------------------------------------------------

describe('demo page, two users', () => {
  step('loads with demo defaults and only the calls that can work enabled', async () => {
    for (const who of Object.values(u)) {
      await who.page.goto(`${URL_}/`);
      await who.page.locator('body[data-ready="true"]').waitFor();
      await sees(who, 'ready', 'rtm SDK');
      await badge(who, 'START');
      assert.equal(await text(who, '#who'), 'not logged in');
      assert.equal(await who.page.inputValue('#appId'), APP_ID);
      assert.equal(await who.page.inputValue('#cbUrl'), `${BUSINESS}/callback`, 'callback URL auto-filled');
      assert.equal(await disabled(who, 'login'), false);
      assert.equal(await disabled(who, 'join'), false);
      for (const id of ['logout', 'leave', 'setParams', 'sendText', 'sendHex', 'srvFile', 'sendPeerOutside', 'sendPeerRoom', 'sendRoom', 'peerStatus']) {
        assert.equal(await disabled(who, id), true, `#${id} is disabled before login`);
      }
      assert.equal(await disabled(who, 'apiSend'), false, 'the console works without a login');
      assert.equal(await who.page.locator('#error').isVisible(), false);
    }
    // Two tabs get two different random user ids by default.
    assert.notEqual(await u.alice.page.inputValue('#userId'), await u.bob.page.inputValue('#userId'));
  });

  step('log in: badge START → CONNECTING → CONNECTED, #who names the user', async () => {
    for (const who of Object.values(u)) {
      await who.page.fill('#userId', who.user);
      await who.page.click('#login');
      await sees(who, 'login', 'ok', 'ok');
      await badge(who, 'CONNECTED');
      assert.equal(await text(who, '#who'), `user ${who.user}`);
      assert.equal(await who.page.inputValue('#apiTo'), who.user, "the console's To follows the user id");
      assert.deepEqual(await stateHistory(who), ['CONNECTING', 'CONNECTED']);
      assert.equal(await disabled(who, 'login'), true);
      assert.equal(await who.page.locator('#userId').isDisabled(), true, 'user id locked while logged in');
      assert.equal(await disabled(who, 'setParams'), false);
      assert.equal(await disabled(who, 'sendText'), true, 'sending waits for the server params');
    }
  });

  step('join: each page sees the other user join', async () => {
    const { alice, bob } = u;
    await alice.page.click('#join');
    await sees(alice, 'joinRoom', `joined ${ROOM}`, 'ok');
    await bob.page.click('#join');
    await sees(bob, 'joinRoom', `joined ${ROOM}`, 'ok');
    await sees(alice, 'onUserJoined', bob.user, 'ok');
    await sees(bob, 'onUserJoined', alice.user, 'ok');
    for (const [who, other] of [[alice, bob], [bob, alice]]) {
      assert.equal(await text(who, '#who'), `user ${who.user} · room ${ROOM}`);
      await waitText(who, '#members', other.user);
      assert.equal(await disabled(who, 'sendRoom'), false);
      assert.equal(await disabled(who, 'join'), true);
      assert.equal(await disabled(who, 'leave'), false);
    }
    // The member chip fills in the peer id.
    await alice.page.click(`#members .chip[data-user="${bob.user}"]`);
    assert.equal(await alice.page.inputValue('#peerId'), bob.user);
    await screenshots('joined');
  });

  step('an error is shown with its code: callback URL outside the allow-list', async () => {
    const { alice } = u;
    await alice.page.fill('#cbUrl', 'http://127.0.0.1:1/not-allowed');
    await alice.page.click('#setParams');
    await sees(alice, 'setServerParams', 'CALLBACK_URL_NOT_ALLOWED', 'err');
    await sees(alice, 'onServerParamsSetResult', 'CALLBACK_URL_NOT_ALLOWED', 'err');
    await alice.page.locator('#error').waitFor({ state: 'visible' });
    assert.equal(await text(alice, '#errorCode'), 'CALLBACK_URL_NOT_ALLOWED');
    assert.match(await text(alice, '#errorText'), /^setServerParams\(\): .*not allowed/);
    assert.match(await text(alice, '#paramsStatus'), /failed: CALLBACK_URL_NOT_ALLOWED/);
    assert.equal(await disabled(alice, 'sendText'), true);
    await screenshots('error-code');
  });

  step('set server params with the auto-filled callback URL', async () => {
    for (const who of Object.values(u)) {
      await who.page.fill('#cbUrl', `${BUSINESS}/callback`);
      await who.page.click('#setParams');
      await sees(who, 'setServerParams', `callback ${BUSINESS}/callback`, 'ok');
      await sees(who, 'onServerParamsSetResult', 'ok', 'ok');
      await waitText(who, '#paramsStatus', `set: ${BUSINESS}/callback`);
      assert.equal(await who.page.locator('#error').isVisible(), false, 'a new call clears the old error');
      assert.equal(await disabled(who, 'sendText'), false);
      assert.equal(await disabled(who, 'sendHex'), false);
      assert.equal(await disabled(who, 'srvFile'), false);
    }
  });

  step('text to the business server: its reply is shown', async () => {
    const { alice } = u;
    await alice.page.fill('#srvText', 'hello business');
    await alice.page.click('#sendText');
    await sees(alice, 'sendServerMessage', 'echo hello business', 'ok');
    await waitText(alice, '#srvReplyTitle', 'text "hello business"');
    assert.equal(await alice.page.getAttribute('#srvReply', 'data-status'), 'ok');
    const reply = await text(alice, '#srvReplyBody');
    assert.match(reply, /echo\s+hello business/);
    assert.match(reply, /ok\s+true/);
  });

  step('binary to the business server: hex and a file', async () => {
    const { alice } = u;
    await alice.page.fill('#srvHex', '00ff10');
    await alice.page.click('#sendHex');
    await sees(alice, 'sendServerBinaryMessage', 'head 00ff10', 'ok');
    await waitText(alice, '#srvReplyTitle', '3 bytes');
    assert.match(await text(alice, '#srvReplyBody'), /echo\s+3\s+binary\s+true\s+head\s+00ff10/);

    await alice.page.setInputFiles('#srvFile', { name: 'greeting.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('cafe0102030405', 'hex') });
    await sees(alice, 'sendServerBinaryMessage', 'greeting.bin', 'ok');
    await waitText(alice, '#srvReplyTitle', 'file greeting.bin, 7 B');
    assert.match(await text(alice, '#srvReplyBody'), /echo\s+7[\s\S]*head\s+cafe0102030405/);
    assert.equal(await disabled(alice, 'srvFile'), false, 'the picker is usable again');

    // A bad hex string is refused on the page, with a readable error.
    await alice.page.fill('#srvHex', 'abc');
    await alice.page.click('#sendHex');
    await sees(alice, 'sendServerBinaryMessage', 'even number of digits', 'err');
    await waitText(alice, '#errorText', 'even number of digits');
    await screenshots('business-replies');
  });

  step('/echo: the business server pushes back to the sender only (SendUnicast)', async () => {
    const { alice, bob } = u;
    await alice.page.fill('#srvText', '/echo hi from bizdemo');
    await alice.page.click('#sendText');
    await sees(alice, 'onUserMessageReceivedOutsideRoom', 'from bizdemo: "hi from bizdemo"', 'ok');
    await waitText(alice, '#srvReplyBody', 'SendUnicast → 200 success');
    await doesNotSee(bob, 'onUserMessageReceivedOutsideRoom', 'hi from bizdemo');
  });

  step('/announce: the business server broadcasts to the room (SendBroadcast)', async () => {
    const { alice, bob } = u;
    await alice.page.fill('#srvText', `/announce ${ROOM} announced-to-all`);
    await alice.page.click('#sendText');
    await sees(alice, 'onRoomMessageReceived', 'from bizdemo: "announced-to-all"', 'ok');
    await sees(bob, 'onRoomMessageReceived', 'from bizdemo: "announced-to-all"', 'ok');
    await waitText(alice, '#srvReplyBody', 'SendBroadcast → 200 success');
  });

  step('peer messages: outside the room, in the room, to the room', async () => {
    const { alice, bob } = u;
    await alice.page.fill('#peerId', bob.user);
    await alice.page.fill('#peerText', 'psst-outside');
    await alice.page.click('#sendPeerOutside');
    await sees(alice, 'sendUserMessageOutsideRoom', `to ${bob.user}, msgId`, 'ok');
    await sees(bob, 'onUserMessageReceivedOutsideRoom', `from ${alice.user}: "psst-outside"`, 'ok');

    await alice.page.fill('#peerText', 'psst-in-room');
    await alice.page.click('#sendPeerRoom');
    await sees(bob, 'onUserMessageReceived', `from ${alice.user}: "psst-in-room"`, 'ok');

    await alice.page.fill('#peerText', 'hello-room');
    await alice.page.click('#sendRoom');
    await sees(bob, 'onRoomMessageReceived', `from ${alice.user}: "hello-room"`, 'ok');

    // And back: bob picks alice from his member chips.
    await bob.page.click(`#members .chip[data-user="${alice.user}"]`);
    await bob.page.fill('#peerText', 'reply-outside');
    await bob.page.click('#sendPeerOutside');
    await sees(alice, 'onUserMessageReceivedOutsideRoom', `from ${bob.user}: "reply-outside"`, 'ok');
    for (const t of ['psst-outside', 'psst-in-room']) await doesNotSee(alice, 'onUserMessageReceived', t);
  });

  step('online status of a peer', async () => {
    const { alice, bob } = u;
    await alice.page.fill('#peerId', bob.user);
    await alice.page.click('#peerStatus');
    await waitText(alice, '#peerStatusResult', `${bob.user} is ONLINE`);
    await sees(alice, 'getPeerOnlineStatus', `${bob.user}: ONLINE`, 'ok');
    await alice.page.fill('#peerId', 'nobody-here');
    await alice.page.click('#peerStatus');
    await waitText(alice, '#peerStatusResult', 'nobody-here is OFFLINE');
    await alice.page.fill('#peerId', bob.user);
  });

  step('console: SendUnicast reaches the one user, outside the room', async () => {
    const { alice, bob } = u;
    await consoleCall(alice, { action: 'SendUnicast', to: bob.user, message: 'unicast-1' });
    await sees(alice, 'OpenAPI', `SendUnicast to ${bob.user}: 200 success`, 'ok');
    await sees(bob, 'onUserMessageReceivedOutsideRoom', 'from server: "unicast-1"', 'ok');
    await waitText(alice, '#apiReplyTitle', 'SendUnicast → HTTP 200');
    assert.match(await text(alice, '#apiReplyBody'), /Result\s+success/);
    await doesNotSee(alice, 'onUserMessageReceivedOutsideRoom', 'unicast-1');
  });

  step('console: SendRoomUnicast reaches the one user in the room', async () => {
    const { alice, bob } = u;
    await consoleCall(bob, { action: 'SendRoomUnicast', to: alice.user, message: 'room-unicast-1' });
    await sees(bob, 'OpenAPI', 'SendRoomUnicast', 'ok');
    await sees(alice, 'onUserMessageReceived', 'from server: "room-unicast-1"', 'ok');
    await doesNotSee(bob, 'onUserMessageReceived', 'room-unicast-1');
  });

  step('console: BatchSendRoomUnicast reaches both users', async () => {
    const { alice, bob } = u;
    assert.equal(await alice.page.locator('#apiTo').isDisabled(), false);
    await consoleCall(alice, { action: 'BatchSendRoomUnicast', to: `${alice.user}, ${bob.user}`, message: 'batch-1', from: 'batcher' });
    assert.equal(await text(alice, '#apiToLabel'), 'To (comma-separated)');
    await sees(alice, 'OpenAPI', 'BatchSendRoomUnicast', 'ok');
    await sees(alice, 'onUserMessageReceived', 'from batcher: "batch-1"', 'ok');
    await sees(bob, 'onUserMessageReceived', 'from batcher: "batch-1"', 'ok');
  });

  step('console: SendBroadcast, text and binary, reaches the whole room', async () => {
    const { alice, bob } = u;
    await consoleCall(alice, { action: 'SendBroadcast', message: 'broadcast-1' });
    assert.equal(await alice.page.locator('#apiTo').isDisabled(), true, 'SendBroadcast takes no To');
    await sees(alice, 'OpenAPI', `SendBroadcast to room ${ROOM}: 200 success`, 'ok');
    for (const who of [alice, bob]) await sees(who, 'onRoomMessageReceived', 'from server: "broadcast-1"', 'ok');

    await consoleCall(bob, { action: 'SendBroadcast', message: 'cafe00beef', binary: true });
    for (const who of [alice, bob]) await sees(who, 'onRoomBinaryMessageReceived', 'from server: <5 bytes> cafe00beef', 'ok');
    await screenshots('console');
  });

  step('console: an OpenAPI error is shown with its code', async () => {
    const { alice } = u;
    await consoleCall(alice, { action: 'SendUnicast', to: 'not a valid id!', message: 'x' });
    await sees(alice, 'OpenAPI', 'InvalidParameter', 'err');
    await waitText(alice, '#errorCode', 'InvalidParameter');
    assert.equal(await alice.page.getAttribute('#apiReply', 'data-status'), 'err');
    assert.match(await text(alice, '#apiReplyBody'), /Code\s+InvalidParameter \(100004\)/);
    await alice.page.click('#errorClose');
    assert.equal(await alice.page.locator('#error').isVisible(), false, 'the error bar can be dismissed');
  });

  step('visibility: invisible is a leave (SWITCH_TO_INVISIBLE) for the others, visible a join', async () => {
    const { alice, bob } = u;
    const joins = () => alice.page.locator('#log li[data-event="onUserJoined"]', { hasText: bob.user }).count();
    const before = await joins();
    await bob.page.uncheck('#visible');
    await sees(bob, 'setUserVisibility', 'invisible to the others', 'ok');
    await sees(alice, 'onUserLeave', `${bob.user}, reason SWITCH_TO_INVISIBLE`);
    await bob.page.check('#visible');
    await sees(bob, 'setUserVisibility', 'visible to the others', 'ok');
    for (let i = 0; (await joins()) === before; i++) {
      assert.ok(i < 100, `${alice.user}'s page shows no new onUserJoined for ${bob.user}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  step('leave: the other page sees onUserLeave; room calls are disabled again', async () => {
    const { alice, bob } = u;
    await bob.page.click('#leave');
    await sees(bob, 'leaveRoom', 'ok', 'ok');
    await sees(alice, 'onUserLeave', `${bob.user}, reason QUIT`);
    await waitText(alice, '#members', 'nobody yet');
    assert.equal(await text(bob, '#who'), `user ${bob.user}`);
    await badge(bob, 'CONNECTED'); // still logged in
    for (const id of ['sendRoom', 'sendPeerRoom', 'leave']) assert.equal(await disabled(bob, id), true, `#${id}`);
    assert.equal(await disabled(bob, 'sendPeerOutside'), false, 'still logged in');
    // Outside the room the message still reaches him.
    await alice.page.fill('#peerText', 'still-there?');
    await alice.page.click('#sendPeerOutside');
    await sees(bob, 'onUserMessageReceivedOutsideRoom', 'still-there?');
  });

  step('log out: badge goes DISCONNECTED, the peer shows OFFLINE', async () => {
    const { alice, bob } = u;
    await bob.page.click('#logout');
    await sees(bob, 'logout', 'ok', 'ok');
    await badge(bob, 'DISCONNECTED');
    assert.equal(await text(bob, '#who'), 'not logged in');
    assert.deepEqual(await stateHistory(bob), ['CONNECTING', 'CONNECTED', 'DISCONNECTED']);
    assert.equal(await disabled(bob, 'login'), false);
    assert.equal(await disabled(bob, 'sendText'), true, 'sending needs a login again');
    assert.match(await text(bob, '#paramsStatus'), /not set/);

    await alice.page.click('#peerStatus');
    await waitText(alice, '#peerStatusResult', `${bob.user} is OFFLINE`);

    // Alice leaves and logs out too: her connection closes.
    await alice.page.click('#leave');
    await sees(alice, 'leaveRoom', 'ok', 'ok');
    await badge(alice, 'CONNECTED');
    await alice.page.click('#logout');
    await badge(alice, 'DISCONNECTED');
    assert.deepEqual(await stateHistory(alice), ['CONNECTING', 'CONNECTED', 'DISCONNECTED']);
    await screenshots('logged-out');
  });

  test('narrow window: the layout folds to one column', async () => {
    const { alice } = u;
    await alice.page.setViewportSize({ width: 420, height: 900 });
    const widths = await alice.page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(widths[0] <= widths[1], `no horizontal scrolling at 420 px (content ${widths[0]} px)`);
    await alice.page.screenshot({ path: join(OUT, `${String(shot + 1).padStart(2, '0')}-narrow-alice.png`), fullPage: true });
  });

  test('the pages logged no script errors', () => {
    for (const who of Object.values(u)) assert.deepEqual(who.errors, [], `${who.user}'s page`);
  });
});
