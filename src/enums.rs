//! The exported enums. `ConnectionState` is numeric (a frozen object). `events` and `ErrorCode`
//! (string enums whose value equals the key) are written as plain frozen objects in
//! `pkg-template/index.js`, not exported from the wasm module: each wasm export costs a getter in
//! the module and a class in the glue. The lists below are the Rust side of those objects; the
//! tests check them against rtm-core, `pkg-template/index.js` and `pkg-template/index.d.ts`.

use wasm_bindgen::prelude::*;

/// The vendor's connection states (`onConnectionStateChanged({state})`).
#[wasm_bindgen]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The engine has not connected yet.
    CONNECTION_START = 0,
    /// Not connected.
    CONNECTION_STATE_DISCONNECTED = 1,
    /// Opening the connection.
    CONNECTION_STATE_CONNECTING = 2,
    /// Connected.
    CONNECTION_STATE_CONNECTED = 3,
    /// Re-opening a lost connection.
    CONNECTION_STATE_RECONNECTING = 4,
    /// A lost connection was re-opened.
    CONNECTION_STATE_RECONNECTED = 5,
    /// Disconnected for more than 10 s; retries go on.
    CONNECTION_STATE_LOST = 6,
}

/// The event names (`engine.on(events.onRoomMessageReceived, ...)`), in declaration order.
#[cfg(test)]
pub(crate) const EVENT_NAMES: &[&str] = &[
    "onUserMessageReceived",
    "onUserBinaryMessageReceived",
    "onRoomMessageReceived",
    "onRoomBinaryMessageReceived",
    "onUserMessageReceivedOutsideRoom",
    "onUserBinaryMessageReceivedOutsideRoom",
    "onConnectionStateChanged",
    "onError",
    "onLoginResult",
    "onServerParamsSetResult",
    "onServerMessageSendResult",
    "onUserJoined",
    "onUserLeave",
    "onTokenWillExpire",
    "onUserMessageSendResult",
    "onRoomMessageSendResult",
    "onUserMessageSendResultOutsideRoom",
];

/// The `code` strings of `SDKError` and `onError`, in declaration order.
#[cfg(test)]
pub(crate) const ERROR_CODES: &[&str] = &[
    "USER_MESSAGE_TIMEOUT",
    "USER_MESSAGE_BROKEN",
    "USER_MESSAGE_NO_RECEIVER",
    "USER_MESSAGE_EXCEED_QPS",
    "USER_MESSAGE_SEND_TO_SERVER_ERROR",
    "USER_MESSAGE_SERVER_RESPONSE_ERROR",
    "USER_MESSAGE_NOT_JOIN",
    "USER_MESSAGE_NOT_LOGIN",
    "USER_MESSAGE_SERVER_PARAMS_NOTSET",
    "USER_MESSAGE_UNKNOWN",
    "INVALID_PARAMS",
    "INVALID_TOKEN",
    "TOKEN_EXPIRED",
    "ALREADY_LOGIN",
    "LOGIN_FAILED",
    "REPEAT_JOIN",
    "JOIN_ROOM_FAILED",
    "DUPLICATE_LOGIN",
    "RTM_DUPLICATE_LOGIN",
    "NOT_LOGIN",
    "CALLBACK_URL_NOT_ALLOWED",
    "PROTOCOL_ERROR",
    "SERVER_SHUTDOWN",
    "INVALID_APP_ID",
    "KICKED_OUT",
    "RECOVERY_FAILED",
    "NOT_CONNECTED_YET",
    "TIME_OUT",
    "UNEXPECTED_ERROR",
    "SEND_QUEUE_FULL",
    "RTM_TOKEN_ERROR",
    "RECONNECT_FAILED",
    "ROOM_DISMISS",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_match_the_core() {
        assert_eq!(EVENT_NAMES, rtm_core::EVENT_NAMES);
        let core: Vec<&str> = rtm_core::all_error_codes().collect();
        assert_eq!(ERROR_CODES, core.as_slice());
        for s in rtm_core::ConnectionState::ALL {
            let n = *s as u8;
            let ours = [
                ConnectionState::CONNECTION_START,
                ConnectionState::CONNECTION_STATE_DISCONNECTED,
                ConnectionState::CONNECTION_STATE_CONNECTING,
                ConnectionState::CONNECTION_STATE_CONNECTED,
                ConnectionState::CONNECTION_STATE_RECONNECTING,
                ConnectionState::CONNECTION_STATE_RECONNECTED,
                ConnectionState::CONNECTION_STATE_LOST,
            ][usize::from(n)];
            assert_eq!(ours as u8, n);
            assert_eq!(format!("{ours:?}"), s.name());
        }
    }

    /// The words of the string passed to `strings(...)` after `export const <name> =` in
    /// `pkg-template/index.js` (string literals joined with `+`).
    #[cfg(not(target_arch = "wasm32"))]
    fn index_js_list(js: &str, name: &str) -> Vec<String> {
        let start = format!("export const {name} = strings(");
        let rest = &js[js
            .find(&start)
            .unwrap_or_else(|| panic!("no {start} in index.js"))
            + start.len()..];
        let call = &rest[..rest.find(");").expect("strings(...) is closed")];
        let mut words = String::new();
        for (i, part) in call.split('\'').enumerate() {
            if i % 2 == 1 {
                words.push_str(part);
            }
        }
        words.split_whitespace().map(str::to_owned).collect()
    }

    /// The quoted names in the block of `pkg-template/index.d.ts` that starts at `start` and ends at
    /// `end`: keys of `events` (`readonly onX: 'onX';`) or members of `ErrorCodeName`.
    #[cfg(not(target_arch = "wasm32"))]
    fn index_dts_list(dts: &str, start: &str, end: &str) -> Vec<String> {
        let rest = &dts[dts
            .find(start)
            .unwrap_or_else(|| panic!("no {start} in index.d.ts"))
            + start.len()..];
        let block = &rest[..rest.find(end).expect("block is closed")];
        block
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn enums_match_index_js_and_index_d_ts() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/pkg-template/");
        let js = std::fs::read_to_string(format!("{dir}index.js")).expect("read index.js");
        let dts = std::fs::read_to_string(format!("{dir}index.d.ts")).expect("read index.d.ts");
        assert_eq!(
            index_js_list(&js, "events"),
            EVENT_NAMES,
            "events in index.js"
        );
        assert_eq!(
            index_js_list(&js, "ErrorCode"),
            ERROR_CODES,
            "ErrorCode in index.js"
        );
        // `readonly onX: 'onX';`: every quoted value appears once and equals its key.
        let events = index_dts_list(&dts, "export declare const events: {", "};");
        for line in dts[dts.find("export declare const events: {").unwrap()..]
            .lines()
            .skip(1)
        {
            if line.starts_with('}') {
                break;
            }
            let (key, value) = line
                .trim()
                .trim_start_matches("readonly ")
                .split_once(": ")
                .expect("key: value");
            assert_eq!(value, format!("'{key}';"), "index.d.ts events: {line}");
        }
        assert_eq!(events, EVENT_NAMES, "events in index.d.ts");
        let codes = index_dts_list(&dts, "export type ErrorCodeName =", ";");
        assert_eq!(codes, ERROR_CODES, "ErrorCodeName in index.d.ts");
    }
}
