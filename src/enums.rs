//! The exported enums: `ConnectionState` (numeric, a frozen object), and `events` and
//! `ErrorCode` (string enums whose value equals the key, as static properties).

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

macro_rules! string_enum {
    ($(#[$m:meta])* $ty:ident as $js:ident, $list:ident { $($name:ident,)* }) => {
        $(#[$m])*
        #[wasm_bindgen(js_name = $js)]
        pub struct $ty {
            _private: (),
        }

        #[wasm_bindgen(js_class = $js)]
        #[allow(non_snake_case)]
        impl $ty {
            $(
                #[doc = concat!("`\"", stringify!($name), "\"`")]
                #[wasm_bindgen(getter)]
                pub fn $name() -> JsValue {
                    JsValue::from_str(stringify!($name))
                }
            )*
        }

        /// Every value of this enum, in declaration order.
        #[cfg(test)]
        pub(crate) const $list: &[&str] = &[$(stringify!($name),)*];
    };
}

string_enum! {
    /// The event names (`engine.on(events.onRoomMessageReceived, ...)`).
    Events as events, EVENT_NAMES {
        onUserMessageReceived,
        onUserBinaryMessageReceived,
        onRoomMessageReceived,
        onRoomBinaryMessageReceived,
        onUserMessageReceivedOutsideRoom,
        onUserBinaryMessageReceivedOutsideRoom,
        onConnectionStateChanged,
        onError,
        onLoginResult,
        onServerParamsSetResult,
        onServerMessageSendResult,
        onUserJoined,
        onUserLeave,
        onTokenWillExpire,
        onUserMessageSendResult,
        onRoomMessageSendResult,
        onUserMessageSendResultOutsideRoom,
    }
}

string_enum! {
    /// The `code` strings of `SDKError` and `onError`.
    ErrorCode as ErrorCode, ERROR_CODES {
        USER_MESSAGE_TIMEOUT,
        USER_MESSAGE_BROKEN,
        USER_MESSAGE_NO_RECEIVER,
        USER_MESSAGE_EXCEED_QPS,
        USER_MESSAGE_SEND_TO_SERVER_ERROR,
        USER_MESSAGE_SERVER_RESPONSE_ERROR,
        USER_MESSAGE_NOT_JOIN,
        USER_MESSAGE_NOT_LOGIN,
        USER_MESSAGE_SERVER_PARAMS_NOTSET,
        USER_MESSAGE_UNKNOWN,
        INVALID_PARAMS,
        INVALID_TOKEN,
        TOKEN_EXPIRED,
        ALREADY_LOGIN,
        LOGIN_FAILED,
        REPEAT_JOIN,
        JOIN_ROOM_FAILED,
        DUPLICATE_LOGIN,
        RTM_DUPLICATE_LOGIN,
        NOT_LOGIN,
        CALLBACK_URL_NOT_ALLOWED,
        PROTOCOL_ERROR,
        SERVER_SHUTDOWN,
        INVALID_APP_ID,
        KICKED_OUT,
        RECOVERY_FAILED,
        NOT_CONNECTED_YET,
        TIME_OUT,
        UNEXPECTED_ERROR,
        SEND_QUEUE_FULL,
        RTM_TOKEN_ERROR,
        RECONNECT_FAILED,
        ROOM_DISMISS,
    }
}

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
}
