//! rtm-sdk: the VERTC real-time messaging API for browsers, Workers and Electron renderers,
//! in WebAssembly.
//!
//! This crate is a thin binding: the protocol and state machine live in `rtm-core` (no I/O);
//! this crate owns the `WebSocket`, the timers and the listeners, and converts values at the
//! JS boundary.
//!
//! ```js
//! import { createEngine, events, ErrorCode } from 'rtm-sdk';
//! const engine = createEngine(appId, { serverUrl: 'https://rtm.example.com' });
//! engine.on(events.onRoomMessageReceived, ({ userId, message }) => console.log(userId, message));
//! await engine.login(loginToken, 'alice');
//! await engine.joinRoom(roomToken, 'room1', { userId: 'alice' });
//! ```
//!
//! Calls return Promises that reject with an `SDKError`: a JS `Error` whose `name` is
//! `"SDKError"` and whose `code` is an `ErrorCode` string.
#![deny(missing_docs)]

mod driver;
mod emitter;
mod enums;
mod network;
mod socket;
mod timer;

use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Promise, Reflect, Uint8Array};
use rtm_core::{Code, Config, Engine, Error, Payload};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::driver::Driver;

pub use crate::enums::ConnectionState;

// Talc in place of the default dlmalloc: ~1.6 KB smaller (gzip) and as fast for this module's
// small, short-lived allocations.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
// SAFETY: the module is single-threaded wasm (built without atomics; a Worker gets its own
// instance), which is what `TalckWasm` requires.
static ALLOCATOR: talc::TalckWasm = unsafe { talc::TalckWasm::new_global() };

/// Milliseconds for the engine's clock.
fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// The `SDKError` for `e`: a real `Error` with `name = "SDKError"` and `code`.
fn sdk_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(e.message());
    err.set_name("SDKError");
    err.unchecked_ref::<driver::Props>().set(
        &JsValue::from_str("code"),
        &JsValue::from_str(e.error_code()),
    );
    err.into()
}

fn invalid_params() -> JsValue {
    sdk_error(Error::Code(Code::InvalidParams))
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The page's or worker's own origin (`globalThis.location.origin`).
fn own_origin() -> Option<String> {
    get(&get(&js_sys::global(), "location"), "origin").as_string()
}

/// A non-negative number option of `config`, when given.
fn number_option(config: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    match get(config, key) {
        v if v.is_undefined() || v.is_null() => Ok(None),
        v => match v.as_f64() {
            Some(n) if n >= 0.0 && n.is_finite() => Ok(Some(n as u64)),
            _ => Err(invalid_params()),
        },
    }
}

/// Creates an engine for `appId`. `config.serverUrl` is the server's base URL
/// (`http(s)://` or `ws(s)://`); without it, the page's own origin. Optional limits:
/// `maxQueuedMessages` (default 100) and `maxQueuedAgeMs` (default 30,000) bound the messages
/// that wait while the connection is re-established; `heartbeatTimeoutMs` (default 25,000) is
/// how long a silent connection is trusted. Throws an `SDKError` (`INVALID_PARAMS`) for an
/// empty app id, an unusable URL or a bad limit.
#[wasm_bindgen(js_name = createEngine)]
pub fn create_engine(
    #[wasm_bindgen(js_name = "appId", unchecked_param_type = "string")] app_id: JsValue,
    #[wasm_bindgen(
        unchecked_optional_param_type = "{ serverUrl?: string; maxQueuedMessages?: number; maxQueuedAgeMs?: number; heartbeatTimeoutMs?: number }"
    )]
    config: JsValue,
) -> Result<RtcEngine, JsValue> {
    let app_id = app_id.as_string().ok_or_else(invalid_params)?;
    let server_url = match get(&config, "serverUrl") {
        v if v.is_undefined() || v.is_null() => own_origin().ok_or_else(invalid_params)?,
        v => v.as_string().ok_or_else(invalid_params)?,
    };
    let mut settings = Config::default();
    if let Some(n) = number_option(&config, "maxQueuedMessages")? {
        settings.max_queued_messages = n as usize;
    }
    if let Some(n) = number_option(&config, "maxQueuedAgeMs")? {
        settings.max_queued_age_ms = n;
    }
    if let Some(n) = number_option(&config, "heartbeatTimeoutMs")? {
        settings.heartbeat_timeout_ms = n.max(1_000);
    }
    let mut core = Engine::new(&app_id, &server_url, settings).map_err(sdk_error)?;
    core.seed_random((js_sys::Math::random() * 9_007_199_254_740_992.0) as u64);
    Ok(RtcEngine {
        inner: Driver::new(core),
    })
}

/// Destroys `engine`: pending calls reject, the connection closes, listeners are removed.
#[wasm_bindgen(js_name = destroyEngine)]
pub fn destroy_engine(engine: &RtcEngine) {
    engine.inner.destroy();
}

/// The SDK version.
#[wasm_bindgen(js_name = getSdkVersion)]
pub fn get_sdk_version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// One messaging engine: one connection, one user, at most one room.
#[wasm_bindgen(js_name = RTCEngine)]
pub struct RtcEngine {
    inner: Rc<Driver>,
}

fn listener(f: JsValue) -> Result<js_sys::Function, JsValue> {
    f.dyn_into()
        .map_err(|_| js_sys::TypeError::new("The listener must be a function").into())
}

fn opt_str(v: &JsValue) -> Option<String> {
    v.as_string()
}

#[wasm_bindgen(js_class = RTCEngine)]
impl RtcEngine {
    /// Adds `listener` for `event`.
    #[wasm_bindgen(js_name = on)]
    pub fn on(
        &self,
        event: String,
        #[wasm_bindgen(
            js_name = "listener",
            unchecked_param_type = "(...args: any[]) => void"
        )]
        listener_fn: JsValue,
    ) -> Result<(), JsValue> {
        self.inner.emitter.add(event, listener(listener_fn)?, false);
        Ok(())
    }

    /// Adds `listener` for `event`. Same as `on`.
    #[wasm_bindgen(js_name = addListener)]
    pub fn add_listener(
        &self,
        event: String,
        #[wasm_bindgen(
            js_name = "listener",
            unchecked_param_type = "(...args: any[]) => void"
        )]
        listener_fn: JsValue,
    ) -> Result<(), JsValue> {
        self.on(event, listener_fn)
    }

    /// Adds `listener` for the next emission of `event` only.
    #[wasm_bindgen(js_name = once)]
    pub fn once(
        &self,
        event: String,
        #[wasm_bindgen(
            js_name = "listener",
            unchecked_param_type = "(...args: any[]) => void"
        )]
        listener_fn: JsValue,
    ) -> Result<(), JsValue> {
        self.inner.emitter.add(event, listener(listener_fn)?, true);
        Ok(())
    }

    /// Removes `listener` from `event`; every listener of `event` without one.
    #[wasm_bindgen(js_name = off)]
    pub fn off(
        &self,
        event: String,
        #[wasm_bindgen(
            js_name = "listener",
            unchecked_optional_param_type = "(...args: any[]) => void"
        )]
        listener_fn: JsValue,
    ) {
        self.inner
            .emitter
            .remove(&event, listener_fn.dyn_ref::<js_sys::Function>());
    }

    /// Same as `off`.
    #[wasm_bindgen(js_name = removeListener)]
    pub fn remove_listener(
        &self,
        event: String,
        #[wasm_bindgen(
            js_name = "listener",
            unchecked_optional_param_type = "(...args: any[]) => void"
        )]
        listener_fn: JsValue,
    ) {
        self.off(event, listener_fn);
    }

    /// Removes every listener of `event`, or of every event without one.
    #[wasm_bindgen(js_name = removeAllListeners)]
    pub fn remove_all_listeners(&self, event: Option<String>) {
        self.inner.emitter.remove_all(event.as_deref());
    }

    /// The number of listeners of `event`.
    #[wasm_bindgen(js_name = listenerCount)]
    pub fn listener_count(&self, event: String) -> usize {
        self.inner.emitter.count(&event)
    }

    /// The listeners of `event`.
    #[wasm_bindgen(js_name = listeners, unchecked_return_type = "Function[]")]
    pub fn listeners(&self, event: String) -> Array {
        self.inner.emitter.listeners(&event)
    }

    /// The events that have listeners.
    #[wasm_bindgen(js_name = eventNames, unchecked_return_type = "string[]")]
    pub fn event_names(&self) -> Array {
        self.inner.emitter.event_names()
    }

    /// Calls the listeners of `event` with `payload` (with no argument when it is
    /// `undefined`); whether there were any.
    #[wasm_bindgen(js_name = emit)]
    pub fn emit(
        &self,
        event: String,
        #[wasm_bindgen(unchecked_optional_param_type = "any")] payload: JsValue,
    ) -> bool {
        if payload.is_undefined() {
            self.inner.emit(&event, None)
        } else {
            self.inner.emit(&event, Some(&payload))
        }
    }

    /// Logs in as `userId` with a login token. Opens the connection when needed.
    /// Rejects with `INVALID_PARAMS`, `ALREADY_LOGIN`, `INVALID_TOKEN`, `TOKEN_EXPIRED`, ...
    #[wasm_bindgen(js_name = login, unchecked_return_type = "Promise<void>")]
    pub fn login(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | null")] token: JsValue,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
    ) -> Promise {
        let token = opt_str(&token);
        let user = opt_str(&user_id).unwrap_or_default();
        self.inner
            .call(|e, now| e.login(now, token.as_deref(), &user))
    }

    /// Renews the login token (kept for automatic re-logins). When the last login failed on
    /// its token (for example `TOKEN_EXPIRED` after a reconnect), logs in again with it.
    #[wasm_bindgen(js_name = updateLoginToken, unchecked_return_type = "Promise<void>")]
    pub fn update_login_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    ) -> Promise {
        let token = opt_str(&token).unwrap_or_default();
        self.inner.call(|e, now| e.update_login_token(now, &token))
    }

    /// Renews the room token (kept for automatic re-joins; `onTokenWillExpire` fires 30 s
    /// before it expires). When the last re-join failed on its token, joins again with it.
    #[wasm_bindgen(js_name = updateToken, unchecked_return_type = "Promise<void>")]
    pub fn update_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    ) -> Promise {
        let token = opt_str(&token).unwrap_or_default();
        self.inner.call(|e, now| e.update_token(now, &token))
    }

    /// Logs out. Rejects with `NOT_LOGIN` when not logged in.
    #[wasm_bindgen(js_name = logout, unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        self.inner.call(|e, now| e.logout(now))
    }

    /// Joins `roomId` as `userInfo.userId` (with optional `userInfo.extraInfo`) with a room
    /// token. `roomConfig` is accepted for compatibility and ignored.
    #[wasm_bindgen(js_name = joinRoom, unchecked_return_type = "Promise<void>")]
    pub fn join_room(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | null")] token: JsValue,
        #[wasm_bindgen(js_name = "roomId", unchecked_param_type = "string")] room_id: JsValue,
        #[wasm_bindgen(
            js_name = "userInfo",
            unchecked_param_type = "{ userId: string; extraInfo?: string }"
        )]
        user_info: JsValue,
        #[wasm_bindgen(js_name = "roomConfig", unchecked_optional_param_type = "object")]
        _room_config: JsValue,
    ) -> Promise {
        let token = opt_str(&token);
        let room = opt_str(&room_id).unwrap_or_default();
        let user = get(&user_info, "userId").as_string().unwrap_or_default();
        let extra = get(&user_info, "extraInfo").as_string().unwrap_or_default();
        self.inner
            .call(|e, now| e.join_room(now, token.as_deref(), &room, &user, &extra))
    }

    /// Leaves the room; resolves at once when not in one.
    #[wasm_bindgen(js_name = leaveRoom, unchecked_return_type = "Promise<void>")]
    pub fn leave_room(&self) -> Promise {
        self.inner.call(|e, now| e.leave_room(now))
    }

    /// Makes this user visible (the default) or invisible to the other members of the room:
    /// they get `onUserJoined` / `onUserLeave` (reason `SWITCH_TO_INVISIBLE`) on a change, and
    /// nothing about an invisible user's joins and leaves. Kept for later joins. Rejects
    /// with `INVALID_PARAMS` unless `enable` is a boolean.
    #[wasm_bindgen(js_name = setUserVisibility, unchecked_return_type = "Promise<void>")]
    pub fn set_user_visibility(
        &self,
        #[wasm_bindgen(unchecked_param_type = "boolean")] enable: JsValue,
    ) -> Promise {
        match enable.as_bool() {
            Some(enable) => self.inner.call(|e, now| e.set_user_visibility(now, enable)),
            None => Promise::reject(&invalid_params()),
        }
    }

    /// Sets where `sendServerMessage` messages go. Result also on `onServerParamsSetResult`.
    #[wasm_bindgen(js_name = setServerParams, unchecked_return_type = "Promise<void>")]
    pub fn set_server_params(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] signature: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] url: JsValue,
    ) -> Promise {
        let signature = opt_str(&signature).unwrap_or_default();
        let url = opt_str(&url).unwrap_or_default();
        self.inner
            .call(|e, now| e.set_server_params(now, &signature, &url))
    }

    /// Sends text to the business server; resolves to `{msgId, response}`.
    #[wasm_bindgen(
        js_name = sendServerMessage,
        unchecked_return_type = "Promise<{ msgId: number; response: string }>"
    )]
    pub fn send_server_message(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
    ) -> Promise {
        let Some(text) = message.as_string() else {
            return Promise::reject(&invalid_params());
        };
        let payload = Payload::Text(text);
        self.inner
            .call(|e, now| e.send_server_message(now, &payload))
    }

    /// Sends an `ArrayBuffer` or `Uint8Array` to the business server; resolves to
    /// `{msgId, response}`.
    #[wasm_bindgen(
        js_name = sendServerBinaryMessage,
        unchecked_return_type = "Promise<{ msgId: number; response: string }>"
    )]
    pub fn send_server_binary_message(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ArrayBuffer | Uint8Array")] message: JsValue,
    ) -> Promise {
        let Some(bytes) = bytes_of(&message) else {
            return Promise::reject(&invalid_params());
        };
        let payload = Payload::Binary(bytes);
        self.inner
            .call(|e, now| e.send_server_message(now, &payload))
    }

    /// Sends text to the logged-in user `userId`, outside rooms. Resolves to the message id
    /// once the server has queued it for the receiver; rejects with `INVALID_PARAMS` (bad id,
    /// empty or over 65,536 bytes, or `userId` is this engine's own user), `NOT_LOGIN`,
    /// `USER_MESSAGE_NO_RECEIVER` (not logged in anywhere), `USER_MESSAGE_EXCEED_QPS`,
    /// `USER_MESSAGE_TIMEOUT` (no confirmation within 12 s), `USER_MESSAGE_BROKEN`. The result
    /// also goes to `onUserMessageSendResultOutsideRoom`.
    #[wasm_bindgen(js_name = sendUserMessageOutsideRoom, unchecked_return_type = "Promise<number>")]
    pub fn send_user_message_outside_room(
        &self,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
    ) -> Promise {
        self.send_to_user(true, &user_id, text_of(&message))
    }

    /// Sends an `ArrayBuffer` or `Uint8Array` to the logged-in user `userId`, outside rooms;
    /// as `sendUserMessageOutsideRoom`.
    #[wasm_bindgen(
        js_name = sendUserBinaryMessageOutsideRoom,
        unchecked_return_type = "Promise<number>"
    )]
    pub fn send_user_binary_message_outside_room(
        &self,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ArrayBuffer | Uint8Array")] message: JsValue,
    ) -> Promise {
        self.send_to_user(true, &user_id, bytes_of(&message).map(Payload::Binary))
    }

    /// Sends text to `userId` in this engine's room. Resolves to the message id; rejects
    /// with `INVALID_PARAMS`, `USER_MESSAGE_NOT_JOIN` (this engine is not in a room),
    /// `USER_MESSAGE_NO_RECEIVER` (`userId` is not in the room), `USER_MESSAGE_EXCEED_QPS`,
    /// `USER_MESSAGE_TIMEOUT`, `USER_MESSAGE_BROKEN`. The result also goes to
    /// `onUserMessageSendResult`.
    #[wasm_bindgen(js_name = sendUserMessage, unchecked_return_type = "Promise<number>")]
    pub fn send_user_message(
        &self,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
    ) -> Promise {
        self.send_to_user(false, &user_id, text_of(&message))
    }

    /// Sends an `ArrayBuffer` or `Uint8Array` to `userId` in this engine's room; as
    /// `sendUserMessage`.
    #[wasm_bindgen(js_name = sendUserBinaryMessage, unchecked_return_type = "Promise<number>")]
    pub fn send_user_binary_message(
        &self,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ArrayBuffer | Uint8Array")] message: JsValue,
    ) -> Promise {
        self.send_to_user(false, &user_id, bytes_of(&message).map(Payload::Binary))
    }

    /// Sends text to everyone else in this engine's room. Resolves to the message id (also
    /// when nobody else is there); rejects with `INVALID_PARAMS`, `USER_MESSAGE_NOT_JOIN`,
    /// `USER_MESSAGE_EXCEED_QPS`, `USER_MESSAGE_TIMEOUT`, `USER_MESSAGE_BROKEN`. The result
    /// also goes to `onRoomMessageSendResult`.
    #[wasm_bindgen(js_name = sendRoomMessage, unchecked_return_type = "Promise<number>")]
    pub fn send_room_message(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] message: JsValue,
    ) -> Promise {
        self.send_to_room(text_of(&message))
    }

    /// Sends an `ArrayBuffer` or `Uint8Array` to everyone else in this engine's room; as
    /// `sendRoomMessage`.
    #[wasm_bindgen(js_name = sendRoomBinaryMessage, unchecked_return_type = "Promise<number>")]
    pub fn send_room_binary_message(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ArrayBuffer | Uint8Array")] message: JsValue,
    ) -> Promise {
        self.send_to_room(bytes_of(&message).map(Payload::Binary))
    }

    /// Asks whether `userId` is online: resolves to 0 (offline) or 1 (online).
    #[wasm_bindgen(js_name = getPeerOnlineStatus, unchecked_return_type = "Promise<0 | 1>")]
    pub fn get_peer_online_status(
        &self,
        #[wasm_bindgen(js_name = "userId", unchecked_param_type = "string")] user_id: JsValue,
    ) -> Promise {
        let user = opt_str(&user_id).unwrap_or_default();
        self.inner
            .call(|e, now| e.get_peer_online_status(now, &user))
    }
}

impl RtcEngine {
    fn send_to_user(&self, outside: bool, user_id: &JsValue, payload: Option<Payload>) -> Promise {
        let (Some(user), Some(payload)) = (user_id.as_string(), payload) else {
            return Promise::reject(&invalid_params());
        };
        self.inner.call(|e, now| {
            if outside {
                e.send_user_message_outside_room(now, &user, &payload)
            } else {
                e.send_user_message(now, &user, &payload)
            }
        })
    }

    fn send_to_room(&self, payload: Option<Payload>) -> Promise {
        let Some(payload) = payload else {
            return Promise::reject(&invalid_params());
        };
        self.inner.call(|e, now| e.send_room_message(now, &payload))
    }
}

/// A string message as a text payload.
fn text_of(v: &JsValue) -> Option<Payload> {
    v.as_string().map(Payload::Text)
}

/// The bytes of an `ArrayBuffer` or a `Uint8Array`.
fn bytes_of(v: &JsValue) -> Option<Vec<u8>> {
    if let Some(buf) = v.dyn_ref::<ArrayBuffer>() {
        Some(Uint8Array::new(buf).to_vec())
    } else {
        v.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
    }
}
