//! Result codes carried by [`Reply`](crate::frame::ServerFrame::Reply) and
//! [`Notice`](crate::frame::ServerFrame::Notice) frames.
//!
//! The low numbers are the vendor's message send-result codes (REFERENCE §2); the 2000 range
//! covers what the vendor reports through other channels (login, rooms, session notices).
//! Each code maps to one string of the SDK's `ErrorCode` enum.

macro_rules! codes {
    ($( $(#[$m:meta])* $name:ident = $n:literal => $s:literal, )*) => {
        /// A result code on the wire (a `u16`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$m])* $name = $n, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code for a wire number; unknown numbers map to [`Code::Unknown`].
            pub fn from_u16(n: u16) -> Code {
                match n {
                    $( $n => Code::$name, )*
                    _ => Code::Unknown,
                }
            }

            /// The SDK's `ErrorCode` string for this code (`"OK"` for success).
            pub fn error_code(self) -> &'static str {
                match self {
                    $( Code::$name => $s, )*
                }
            }
        }
    };
}

codes! {
    /// Success.
    Ok = 0 => "OK",
    /// The peer or server did not answer in time.
    Timeout = 1 => "USER_MESSAGE_TIMEOUT",
    /// The channel broke before the message was confirmed.
    Broken = 2 => "USER_MESSAGE_BROKEN",
    /// The receiver is not online, or not in the room.
    NoReceiver = 3 => "USER_MESSAGE_NO_RECEIVER",
    /// The sender exceeded its message rate.
    ExceedQps = 5 => "USER_MESSAGE_EXCEED_QPS",
    /// The business server could not be reached (refused, timed out).
    SendToServerError = 17 => "USER_MESSAGE_SEND_TO_SERVER_ERROR",
    /// The business server answered with a status other than 200.
    ServerResponseError = 18 => "USER_MESSAGE_SERVER_RESPONSE_ERROR",
    /// The sender is not in the room.
    NotJoin = 100 => "USER_MESSAGE_NOT_JOIN",
    /// The sender is not logged in.
    NotLogin = 105 => "USER_MESSAGE_NOT_LOGIN",
    /// `setServerParams` was never called (or failed).
    ServerParamsNotSet = 106 => "USER_MESSAGE_SERVER_PARAMS_NOTSET",
    /// An unclassified failure.
    Unknown = 1000 => "USER_MESSAGE_UNKNOWN",
    /// A parameter is invalid (bad id, empty or oversize message, ...).
    InvalidParams = 2001 => "INVALID_PARAMS",
    /// The token is malformed, forged, or for another app, user or room.
    InvalidToken = 2002 => "INVALID_TOKEN",
    /// The token has expired.
    TokenExpired = 2003 => "TOKEN_EXPIRED",
    /// This session is already logged in.
    AlreadyLogin = 2004 => "ALREADY_LOGIN",
    /// Login failed for another reason.
    LoginFailed = 2005 => "LOGIN_FAILED",
    /// This session is already in that room.
    RepeatJoin = 2006 => "REPEAT_JOIN",
    /// Joining the room failed for another reason.
    JoinRoomFailed = 2007 => "JOIN_ROOM_FAILED",
    /// The same user joined the same room elsewhere; this membership ended.
    DuplicateLogin = 2008 => "DUPLICATE_LOGIN",
    /// The same user logged in elsewhere; this login ended.
    RtmDuplicateLogin = 2009 => "RTM_DUPLICATE_LOGIN",
    /// The session is not logged in (for requests that need a login).
    NotLoginSession = 2010 => "NOT_LOGIN",
    /// The callback URL is not allowed for this app.
    CallbackNotAllowed = 2011 => "CALLBACK_URL_NOT_ALLOWED",
    /// The frame could not be decoded, or is not allowed in this state.
    ProtocolError = 2012 => "PROTOCOL_ERROR",
    /// The server is shutting down; reconnect.
    ServerShutdown = 2013 => "SERVER_SHUTDOWN",
    /// The app id is unknown to the server.
    UnknownApp = 2014 => "INVALID_APP_ID",
    /// The user was removed by the server.
    KickedOut = 2015 => "KICKED_OUT",
    /// The session could not be resumed (unknown or expired key, overflow, too old a
    /// `last_seq`); the connection continues as a new session and messages may be missing.
    RecoveryFailed = 2016 => "RECOVERY_FAILED",
}

impl Code {
    /// The code as a wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert_eq!(Code::from_u16(c.as_u16()), c);
            assert!(seen.insert(c.error_code()), "{c:?}");
        }
        assert_eq!(Code::from_u16(9999), Code::Unknown);
        assert_eq!(Code::ServerParamsNotSet.as_u16(), 106);
    }
}
