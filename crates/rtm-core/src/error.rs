//! The one error type of the client core, and the SDK's `ErrorCode` strings.

use rtm_protocol::code::Code;

/// Why a call failed. Converted once, at the JS boundary, into an `SDKError` whose `code` is
/// [`Error::error_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A result code: from the server's reply, or found by the client before sending
    /// (for example [`Code::InvalidParams`]).
    #[error("{}", describe(*.0))]
    Code(Code),
    /// The connection closed (or could not be opened) before the answer arrived.
    #[error("the connection to the server is not open")]
    NotConnected,
    /// A signaling request got no answer in time.
    #[error("the server did not answer in time")]
    Timeout,
    /// The engine was destroyed while the call was pending.
    #[error("the engine was destroyed")]
    Destroyed,
    /// The message would wait for a connection, but the queue of waiting messages is full.
    #[error("too many messages are waiting for the connection")]
    QueueFull,
}

impl Error {
    /// The SDK's `ErrorCode` string (`"INVALID_PARAMS"`, `"TIME_OUT"`, ...).
    pub fn error_code(&self) -> &'static str {
        match self {
            Error::Code(c) => c.error_code(),
            Error::NotConnected => NOT_CONNECTED_YET,
            Error::Timeout => TIME_OUT,
            Error::Destroyed => UNEXPECTED_ERROR,
            Error::QueueFull => SEND_QUEUE_FULL,
        }
    }

    /// A human-readable sentence describing the error, without formatting machinery.
    pub fn message(&self) -> &'static str {
        match self {
            Error::Code(c) => describe(*c),
            Error::NotConnected => "the connection to the server is not open",
            Error::Timeout => "the server did not answer in time",
            Error::Destroyed => "the engine was destroyed",
            Error::QueueFull => "too many messages are waiting for the connection",
        }
    }

    /// The numeric code in the style of the vendor's native send-result callbacks
    /// (`0` success, `1` timeout, `2` broken, `17`, `18`, `106`, ...; `1000` unknown).
    pub fn wire_code(&self) -> u16 {
        match self {
            Error::Code(c) => c.as_u16(),
            Error::NotConnected => Code::Broken.as_u16(),
            Error::Timeout => Code::Timeout.as_u16(),
            Error::Destroyed => Code::Unknown.as_u16(),
            Error::QueueFull => Code::Broken.as_u16(),
        }
    }
}

impl From<Code> for Error {
    fn from(c: Code) -> Self {
        Error::Code(c)
    }
}

/// `ErrorCode` of a call made before the connection could be used, or cut by its loss.
pub const NOT_CONNECTED_YET: &str = "NOT_CONNECTED_YET";
/// `ErrorCode` of a signaling request that timed out (60 s).
pub const TIME_OUT: &str = "TIME_OUT";
/// `ErrorCode` of an unclassified client-side failure.
pub const UNEXPECTED_ERROR: &str = "UNEXPECTED_ERROR";
/// `ErrorCode` of a message refused because too many wait for the connection already.
pub const SEND_QUEUE_FULL: &str = "SEND_QUEUE_FULL";

/// `ErrorCode` strings that do not come from a wire [`Code`]: client-side failures and
/// vendor `onError` codes kept for compatibility.
pub const CLIENT_ERROR_CODES: &[&str] = &[
    NOT_CONNECTED_YET,
    TIME_OUT,
    UNEXPECTED_ERROR,
    SEND_QUEUE_FULL,
    "RTM_TOKEN_ERROR",
    "RECONNECT_FAILED",
    "ROOM_DISMISS",
];

/// Every `ErrorCode` string the SDK exports: the wire codes (except success) then
/// [`CLIENT_ERROR_CODES`].
pub fn all_error_codes() -> impl Iterator<Item = &'static str> {
    Code::ALL
        .iter()
        .filter(|c| **c != Code::Ok)
        .map(|c| c.error_code())
        .chain(CLIENT_ERROR_CODES.iter().copied())
}

/// A short description of a result code.
pub fn describe(code: Code) -> &'static str {
    match code {
        Code::Ok => "success",
        Code::Timeout => "the message was not confirmed in time",
        Code::Broken => "the connection broke before the message was confirmed",
        Code::NoReceiver => "the receiver is not online",
        Code::ExceedQps => "too many messages",
        Code::SendToServerError => "the business server could not be reached",
        Code::ServerResponseError => "the business server answered with an error status",
        Code::NotJoin => "not in the room",
        Code::NotLogin => "not logged in",
        Code::ServerParamsNotSet => "setServerParams was not called",
        Code::InvalidParams => "invalid parameters",
        Code::InvalidToken => "invalid token",
        Code::TokenExpired => "the token has expired",
        Code::AlreadyLogin => "already logged in",
        Code::LoginFailed => "login failed",
        Code::RepeatJoin => "already in a room",
        Code::JoinRoomFailed => "joining the room failed",
        Code::DuplicateLogin => "the same user joined the room elsewhere",
        Code::RtmDuplicateLogin => "the same user logged in elsewhere",
        Code::NotLoginSession => "not logged in",
        Code::CallbackNotAllowed => "the callback URL is not allowed",
        Code::ProtocolError => "protocol error",
        Code::ServerShutdown => "the server is shutting down",
        Code::UnknownApp => "unknown app id",
        Code::KickedOut => "removed by the server",
        Code::RecoveryFailed => "the session could not be resumed; messages may be missing",
        _ => "unknown error",
    }
}
