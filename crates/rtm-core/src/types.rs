//! Values the engine takes and hands back.

use rtm_protocol::frame::PushKind;

use crate::Error;

/// Identifies one command call; its [`Completion`] carries the same id.
pub type CallId = u64;

/// The vendor's `ConnectionState` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectionState {
    /// The engine has not connected yet.
    Start = 0,
    /// Not connected.
    Disconnected = 1,
    /// Opening the connection.
    Connecting = 2,
    /// Connected.
    Connected = 3,
    /// Re-opening a lost connection.
    Reconnecting = 4,
    /// A lost connection was re-opened.
    Reconnected = 5,
    /// Disconnected for more than 10 s; retries go on.
    Lost = 6,
}

impl ConnectionState {
    /// Every state, in numeric order.
    pub const ALL: &'static [ConnectionState] = &[
        ConnectionState::Start,
        ConnectionState::Disconnected,
        ConnectionState::Connecting,
        ConnectionState::Connected,
        ConnectionState::Reconnecting,
        ConnectionState::Reconnected,
        ConnectionState::Lost,
    ];

    /// The vendor's number for this state.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The vendor's name (`CONNECTION_START`, `CONNECTION_STATE_CONNECTED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ConnectionState::Start => "CONNECTION_START",
            ConnectionState::Disconnected => "CONNECTION_STATE_DISCONNECTED",
            ConnectionState::Connecting => "CONNECTION_STATE_CONNECTING",
            ConnectionState::Connected => "CONNECTION_STATE_CONNECTED",
            ConnectionState::Reconnecting => "CONNECTION_STATE_RECONNECTING",
            ConnectionState::Reconnected => "CONNECTION_STATE_RECONNECTED",
            ConnectionState::Lost => "CONNECTION_STATE_LOST",
        }
    }
}

/// What the engine asks the transport to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Open a WebSocket to `url` with subprotocol [`rtm_protocol::SUBPROTOCOL`], replacing any
    /// previous one. Report [`Engine::handle_connected`](crate::Engine::handle_connected) or
    /// [`Engine::handle_closed`](crate::Engine::handle_closed).
    Connect {
        /// The `ws://` or `wss://` URL.
        url: String,
    },
    /// Send one binary frame on the open connection.
    Send(Vec<u8>),
    /// Close the connection with this close code. The engine already considers it closed:
    /// do not report its close event.
    Close {
        /// The WebSocket close code (1000: normal closure).
        code: u16,
    },
}

/// A message body: text or binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Binary(Vec<u8>),
}

impl Payload {
    /// The bytes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(s) => s.as_bytes(),
            Payload::Binary(b) => b,
        }
    }

    /// Whether this is a binary payload.
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }
}

/// What a successful call resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// Nothing (`Promise<void>`).
    None,
    /// A peer's online status: 0 offline, 1 online (logged in). The vendor's 2
    /// (`UNREACHABLE`) is never produced: the server always knows.
    PeerStatus(u8),
    /// A user or room message was accepted by the server: its message id.
    MessageId(u64),
    /// A server message was delivered; `response` is the business server's reply body.
    ServerMessage {
        /// The engine's message id.
        msg_id: u64,
        /// The business server's response body.
        response: Vec<u8>,
    },
}

/// The outcome of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The call this completes.
    pub call: CallId,
    /// Its result.
    pub result: Result<Value, Error>,
}

/// Something to tell the application's listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message pushed by the server: one of the six message events.
    Message {
        /// Which event family (outside room, to this user in a room, to the room).
        kind: PushKind,
        /// The room ("" outside rooms).
        room: String,
        /// The sender: a user id or the OpenAPI `From`.
        user_id: String,
        /// The message.
        payload: Payload,
    },
    /// `onConnectionStateChanged`.
    ConnectionStateChanged {
        /// The new state.
        state: ConnectionState,
    },
    /// `onError` with an `ErrorCode` string (`RTM_DUPLICATE_LOGIN`, `DUPLICATE_LOGIN`, ...).
    Error {
        /// The `ErrorCode` string.
        error_code: &'static str,
        /// The room concerned, or "".
        room: String,
    },
    /// `onLoginResult`: a login finished.
    LoginResult {
        /// The user id.
        user_id: String,
        /// `None` on success.
        error: Option<Error>,
        /// Milliseconds from the call to its answer.
        elapsed_ms: u64,
    },
    /// `onServerParamsSetResult`: `None` on success.
    ServerParamsSetResult {
        /// `None` on success.
        error: Option<Error>,
    },
    /// `onServerMessageSendResult`.
    ServerMessageSendResult {
        /// The engine's message id.
        msg_id: u64,
        /// `None` on success.
        error: Option<Error>,
        /// The business server's response body (may be empty).
        response: Vec<u8>,
    },
    /// The result of a user or room message: `onUserMessageSendResultOutsideRoom`
    /// (`kind` OutsideRoom), `onUserMessageSendResult` (RoomUser) or `onRoomMessageSendResult`
    /// (Room). Emitted for every message that was sent (got a message id), not for calls that
    /// failed their local checks.
    MessageSendResult {
        /// Which call sent it.
        kind: PushKind,
        /// The engine's message id.
        msg_id: u64,
        /// `None` on success.
        error: Option<Error>,
    },
    /// `onUserJoined`: a user joined the room.
    UserJoined {
        /// The room.
        room: String,
        /// The user.
        user_id: String,
        /// The user's extra info.
        extra_info: String,
    },
    /// `onUserLeave`: a user left the room.
    UserLeave {
        /// The room.
        room: String,
        /// The user.
        user_id: String,
        /// The user's extra info.
        extra_info: String,
        /// `UserOfflineReason`: 0 quit, 1 dropped, ...
        reason: u8,
    },
    /// `onTokenWillExpire`: the room token expires soon (30 s by default); call
    /// `updateToken`.
    TokenWillExpire {
        /// The room.
        room: String,
    },
}

/// Every event name of the SDK's `events` enum.
pub const EVENT_NAMES: &[&str] = &[
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

impl Event {
    /// The name of the SDK event this becomes (one of [`EVENT_NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Message { kind, payload, .. } => match (kind, payload.is_binary()) {
                (PushKind::RoomUser, false) => "onUserMessageReceived",
                (PushKind::RoomUser, true) => "onUserBinaryMessageReceived",
                (PushKind::Room, false) => "onRoomMessageReceived",
                (PushKind::Room, true) => "onRoomBinaryMessageReceived",
                (PushKind::OutsideRoom, false) => "onUserMessageReceivedOutsideRoom",
                (PushKind::OutsideRoom, true) => "onUserBinaryMessageReceivedOutsideRoom",
            },
            Event::ConnectionStateChanged { .. } => "onConnectionStateChanged",
            Event::Error { .. } => "onError",
            Event::LoginResult { .. } => "onLoginResult",
            Event::ServerParamsSetResult { .. } => "onServerParamsSetResult",
            Event::ServerMessageSendResult { .. } => "onServerMessageSendResult",
            Event::MessageSendResult { kind, .. } => match kind {
                PushKind::OutsideRoom => "onUserMessageSendResultOutsideRoom",
                PushKind::RoomUser => "onUserMessageSendResult",
                PushKind::Room => "onRoomMessageSendResult",
            },
            Event::UserJoined { .. } => "onUserJoined",
            Event::UserLeave { .. } => "onUserLeave",
            Event::TokenWillExpire { .. } => "onTokenWillExpire",
        }
    }
}
