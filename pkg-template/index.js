// The rtm-sdk entry module: instantiates the WebAssembly module (streaming, from its own
// file) once, then exports an object shaped like VERTC, plus named exports.
import init, * as wasm from './rtm_sdk.js';

await init({ module_or_path: new URL('./rtm_sdk_bg.wasm', import.meta.url) });

// The enums are plain frozen objects, as VERTC's are, written here rather than exported from
// the wasm module (every wasm export costs bytes in the module and in the glue). The lists
// must match rtm-core's EVENT_NAMES and all_error_codes(); the packaging tests check them
// against index.d.ts and the wasm module.
const strings = (names) => Object.freeze(Object.fromEntries(names.split(' ').map((k) => [k, k])));

export const events = strings(
  'onUserMessageReceived onUserBinaryMessageReceived onRoomMessageReceived ' +
    'onRoomBinaryMessageReceived onUserMessageReceivedOutsideRoom ' +
    'onUserBinaryMessageReceivedOutsideRoom onConnectionStateChanged onError onLoginResult ' +
    'onServerParamsSetResult onServerMessageSendResult onUserJoined onUserLeave ' +
    'onTokenWillExpire onUserMessageSendResult onRoomMessageSendResult ' +
    'onUserMessageSendResultOutsideRoom',
);
export const ErrorCode = strings(
  'USER_MESSAGE_TIMEOUT USER_MESSAGE_BROKEN USER_MESSAGE_NO_RECEIVER USER_MESSAGE_EXCEED_QPS ' +
    'USER_MESSAGE_SEND_TO_SERVER_ERROR USER_MESSAGE_SERVER_RESPONSE_ERROR USER_MESSAGE_NOT_JOIN ' +
    'USER_MESSAGE_NOT_LOGIN USER_MESSAGE_SERVER_PARAMS_NOTSET USER_MESSAGE_UNKNOWN ' +
    'INVALID_PARAMS INVALID_TOKEN TOKEN_EXPIRED ALREADY_LOGIN LOGIN_FAILED REPEAT_JOIN ' +
    'JOIN_ROOM_FAILED DUPLICATE_LOGIN RTM_DUPLICATE_LOGIN NOT_LOGIN CALLBACK_URL_NOT_ALLOWED ' +
    'PROTOCOL_ERROR SERVER_SHUTDOWN INVALID_APP_ID KICKED_OUT RECOVERY_FAILED ' +
    'NOT_CONNECTED_YET TIME_OUT UNEXPECTED_ERROR SEND_QUEUE_FULL RTM_TOKEN_ERROR ' +
    'RECONNECT_FAILED ROOM_DISMISS',
);
export const ConnectionState = Object.freeze({
  CONNECTION_START: 0,
  CONNECTION_STATE_DISCONNECTED: 1,
  CONNECTION_STATE_CONNECTING: 2,
  CONNECTION_STATE_CONNECTED: 3,
  CONNECTION_STATE_RECONNECTING: 4,
  CONNECTION_STATE_RECONNECTED: 5,
  CONNECTION_STATE_LOST: 6,
});
export const UserOfflineReason = Object.freeze({ QUIT: 0, DROPPED: 1, SWITCH_TO_INVISIBLE: 2, KICKED_BY_ADMIN: 3 });
export const createEngine = wasm.createEngine;
export const destroyEngine = wasm.destroyEngine;
export const getSdkVersion = wasm.getSdkVersion;

const VERTC = Object.freeze({
  createEngine,
  destroyEngine,
  getSdkVersion,
  events,
  ErrorCode,
  ConnectionState,
  UserOfflineReason,
});
export default VERTC;
