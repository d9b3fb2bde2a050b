// The rtm-sdk entry module: instantiates the WebAssembly module (streaming, from its own
// file) once, then exports an object shaped like VERTC, plus named exports.
import init, * as wasm from './rtm_sdk.js';

await init({ module_or_path: new URL('./rtm_sdk_bg.wasm', import.meta.url) });

// wasm-bindgen exposes the string enums as classes with static getters and the numeric enum
// with a reverse mapping; users get plain frozen objects, as VERTC's enums are.
const statics = (cls) =>
  Object.freeze(
    Object.fromEntries(
      Object.getOwnPropertyNames(cls)
        .filter((k) => !['length', 'name', 'prototype'].includes(k))
        .map((k) => [k, cls[k]]),
    ),
  );
const numeric = (obj) => Object.freeze(Object.fromEntries(Object.entries(obj).filter(([k]) => !/^\d+$/.test(k))));

export const events = statics(wasm.events);
export const ErrorCode = statics(wasm.ErrorCode);
export const ConnectionState = numeric(wasm.ConnectionState);
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
