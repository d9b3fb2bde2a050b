// Compiles only if rtm-sdk's types are what REFERENCE §2 says; each `@ts-expect-error` line
// must fail to type-check (tsc reports an unused directive otherwise).
import VERTC, {
  ConnectionState,
  ErrorCode,
  createEngine,
  destroyEngine,
  events,
  getSdkVersion,
  type ConnectionStateValue,
  type ErrorCodeName,
  type IRTCEngine,
  type SDKError,
  type ServerMessageResult,
} from 'rtm-sdk';

const version: string = VERTC.getSdkVersion() + getSdkVersion();
const engine: IRTCEngine = VERTC.createEngine('0123456789abcdef01234567', { serverUrl: 'https://rtm.example.com' });
const other: IRTCEngine = createEngine('0123456789abcdef01234567');
destroyEngine(other);
VERTC.destroyEngine(other);
// @ts-expect-error serverUrl is a string
createEngine('0123456789abcdef01234567', { serverUrl: 1 });

// The enums: value === key for strings, literal numbers for ConnectionState.
const connected: 3 = ConnectionState.CONNECTION_STATE_CONNECTED;
const invalid: 'INVALID_PARAMS' = ErrorCode.INVALID_PARAMS;
const roomMessage: 'onRoomMessageReceived' = VERTC.events.onRoomMessageReceived;
// @ts-expect-error not an event
events.onNoSuchEvent;

// The typed event map.
engine.on(events.onRoomBinaryMessageReceived, (e) => e.message.byteLength);
// @ts-expect-error an ArrayBuffer has no `foo`
engine.on(events.onRoomBinaryMessageReceived, (e) => e.message.foo);
engine.on(events.onRoomMessageReceived, (e) => e.userId.length + e.message.toUpperCase().length);
// @ts-expect-error a text message is a string
engine.on(events.onRoomMessageReceived, (e) => e.message.byteLength);
engine.once(events.onUserBinaryMessageReceivedOutsideRoom, ({ userId, message }) => {
  const bytes = new Uint8Array(message);
  return userId + bytes.length;
});
engine.on(events.onConnectionStateChanged, ({ state }) => {
  const s: ConnectionStateValue = state;
  return s === ConnectionState.CONNECTION_STATE_LOST;
});
engine.on(events.onError, ({ errorCode }) => {
  const c: ErrorCodeName = errorCode;
  return c === ErrorCode.DUPLICATE_LOGIN;
});
engine.on(events.onUserJoined, ({ userInfo }) => userInfo.userId + (userInfo.extraInfo ?? ''));
engine.on(events.onUserLeave, ({ userInfo, reason }) => userInfo.userId + reason.toFixed());
engine.on(events.onServerParamsSetResult, (error) => error === undefined);
engine.on(events.onTokenWillExpire, () => engine.updateToken('new-room-token'));
engine.on(events.onServerMessageSendResult, (e) => e.msgid + e.error + e.message.length);
// @ts-expect-error unknown event names are rejected
engine.on('onNoSuchEvent', () => {});
// @ts-expect-error the listener's payload must match the event
engine.on(events.onUserJoined, (e: { state: number }) => e.state);
const listener = (e: { userId: string; message: string }) => console.log(e.userId, e.message);
engine.addListener(events.onUserMessageReceived, listener);
engine.off(events.onUserMessageReceived, listener);
engine.removeListener(events.onUserMessageReceived, listener);
engine.removeAllListeners();
const count: number = engine.listenerCount(events.onError);
const names: string[] = engine.eventNames();
engine.emit(events.onRoomMessageReceived, { userId: 'u', message: 'm' });

// Every method of REFERENCE §2, with its argument and result types.
async function flows(): Promise<void> {
  const loggedIn: void = await engine.login(null, 'alice');
  await engine.login('login-token', 'alice');
  await engine.updateLoginToken('login-token');
  const online: 0 | 1 | 2 = await engine.getPeerOnlineStatus('bob');
  await engine.setServerParams('signature', 'https://biz.example.com/rtm');
  const r: ServerMessageResult = await engine.sendServerMessage('hello');
  const id: number = r.msgId;
  const body: string = r.response;
  await engine.sendServerBinaryMessage(new Uint8Array([1, 2, 3]));
  await engine.sendServerBinaryMessage(new ArrayBuffer(3));
  // @ts-expect-error binary sends take bytes
  await engine.sendServerBinaryMessage('text');
  const m1: number = await engine.sendUserMessageOutsideRoom('bob', 'hi');
  const m2: number = await engine.sendUserBinaryMessageOutsideRoom('bob', new ArrayBuffer(1));
  await engine.joinRoom('room-token', 'room1', { userId: 'alice', extraInfo: '{}' });
  await engine.joinRoom(null, 'room1', { userId: 'alice' }, {});
  // @ts-expect-error userInfo needs a userId
  await engine.joinRoom(null, 'room1', { extraInfo: '' });
  const m3: number = await engine.sendUserMessage('bob', 'hi');
  const m4: number = await engine.sendUserBinaryMessage('bob', new Uint8Array(1));
  const m5: number = await engine.sendRoomMessage('hi all');
  const m6: number = await engine.sendRoomBinaryMessage(new ArrayBuffer(2));
  await engine.updateToken('room-token');
  await engine.setUserVisibility(false);
  // @ts-expect-error visibility is a boolean
  await engine.setUserVisibility('no');
  await engine.leaveRoom();
  await engine.logout();
  console.log(loggedIn, online, id, body, m1, m2, m3, m4, m5, m6);
}

flows().catch((e: unknown) => {
  const err = e as SDKError;
  const isError: Error = err;
  const code: ErrorCodeName = err.code;
  console.log(isError.message, code === ErrorCode.INVALID_PARAMS);
});
console.log(version, connected, invalid, roomMessage, count, names);
