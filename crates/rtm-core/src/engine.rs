//! The client state machine.

use std::collections::VecDeque;

use rtm_protocol::code::Code;
use rtm_protocol::frame::{
    decode_members, decode_server, encode_client, server_frames, ClientFrame, PushKind, ServerFrame,
};
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::MAX_MESSAGE_BYTES;

use crate::reconnect::{Backoff, LostCause, ReconnectPolicy, Rng};
use crate::types::{CallId, Completion, ConnectionState, Event, Payload, Transmit, Value};
use crate::{ws_url, Error};

/// The longest `extraInfo` a user may attach when joining a room, in bytes.
pub const MAX_EXTRA_INFO_BYTES: usize = 200;

/// WebSocket close code for a normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code the client uses after an undecodable server frame.
pub const CLOSE_PROTOCOL_ERROR: u16 = 4000;
/// WebSocket close code the client uses for a connection it believes dead and will resume.
pub const CLOSE_RECONNECT: u16 = 4100;

/// How long a probe (after coming back online or visible) may go unanswered, in ms.
const PROBE_TIMEOUT_MS: u64 = 5_000;

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long a signaling request (login, join, ...) waits for its reply, in ms.
    pub request_timeout_ms: u64,
    /// How long a server message waits for the business server's answer, in ms.
    pub message_timeout_ms: u64,
    /// How long a user or room message waits for the server's confirmation, in ms
    /// (12 s, as the vendor's peer-message feedback).
    pub peer_message_timeout_ms: u64,
    /// How often to send a heartbeat when the server does not say (its Welcome does), in ms.
    pub heartbeat_interval_ms: u64,
    /// A connection from which nothing arrived for this long is dead, in ms (default 25 s).
    pub heartbeat_timeout_ms: u64,
    /// After this long without a connection the state becomes LOST (retries go on), in ms.
    pub lost_after_ms: u64,
    /// At most this many messages wait for a connection; more are refused (`SEND_QUEUE_FULL`).
    pub max_queued_messages: usize,
    /// A message waiting for a connection longer than this fails (`USER_MESSAGE_TIMEOUT`), ms.
    pub max_queued_age_ms: u64,
    /// `onTokenWillExpire` fires this long before the room token expires, in ms.
    pub token_will_expire_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout_ms: 60_000,
            message_timeout_ms: 60_000,
            peer_message_timeout_ms: 12_000,
            heartbeat_interval_ms: 10_000,
            heartbeat_timeout_ms: 25_000,
            lost_after_ms: 10_000,
            max_queued_messages: 100,
            max_queued_age_ms: 30_000,
            token_will_expire_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection and none wanted.
    Idle,
    /// Waiting until `at` before the next reconnect attempt.
    Backoff {
        at: u64,
    },
    Connecting,
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    None,
    Pending(String),
    In(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Room {
    id: String,
    user: String,
    joined: bool,
    /// The room token, for a re-join.
    token: String,
    extra: String,
}

#[derive(Debug)]
enum ReqKind {
    Login {
        user: String,
        started: u64,
        auto: bool,
    },
    Logout,
    Join {
        room: String,
        auto: bool,
    },
    Leave,
    SetServerParams {
        signature: String,
        url: String,
    },
    SendServer {
        msg_id: u64,
    },
    /// A user message (`kind` OutsideRoom or RoomUser) or a room message (`kind` Room).
    SendPeer {
        kind: PushKind,
        msg_id: u64,
    },
    PeerStatus,
    UpdateToken,
    SetVisibility,
}

impl ReqKind {
    fn is_message(&self) -> bool {
        matches!(self, ReqKind::SendServer { .. } | ReqKind::SendPeer { .. })
    }

    /// Requests the engine makes itself to restore a session.
    fn is_auto(&self) -> bool {
        matches!(
            self,
            ReqKind::Login { auto: true, .. } | ReqKind::Join { auto: true, .. }
        )
    }
}

#[derive(Debug)]
struct Pending {
    req: u32,
    call: CallId,
    kind: ReqKind,
    deadline: u64,
    /// The encoded frame, kept until the reply for a re-send after a resume.
    frame: Vec<u8>,
    /// Sent on the current connection.
    sent: bool,
    /// Sent on some connection.
    ever_sent: bool,
    /// Made by the engine to restore the session: dropped with the connection.
    auto: bool,
}

/// A lost connection being re-established.
#[derive(Debug, Clone, Copy)]
struct Reconnect {
    attempt: u32,
    lost_at: u64,
}

/// The client state machine: commands and transport events in, transmits, completions,
/// events and a timer deadline out. It performs no I/O, reads no clock and draws no random
/// numbers: every input that depends on time takes `now`, in milliseconds since the Unix
/// epoch (token expiry is compared with it; any other scale works when tokens never
/// expire), and the reconnect jitter comes from a generator seeded with
/// [`seed_random`](Engine::seed_random).
///
/// After every input, drain [`poll_transmit`](Engine::poll_transmit),
/// [`poll_completion`](Engine::poll_completion) and [`poll_event`](Engine::poll_event), and
/// (re)arm a timer for [`poll_timeout`](Engine::poll_timeout).
///
/// A lost connection is re-established (PROTOCOL.md §9): the engine reconnects after a delay
/// from its [`ReconnectPolicy`], resumes the session, logs in and joins again, sets the
/// server params again, and re-sends what was not answered.
pub struct Engine {
    url: String,
    config: Config,
    conn: Conn,
    state: ConnectionState,
    next_call: CallId,
    next_req: u32,
    next_msg_id: u64,
    /// Requests waiting for their reply, in the order they were made (and sent).
    pending: Vec<Pending>,
    login: Login,
    /// The login token, for a re-login.
    login_token: String,
    /// The user whose login failed on its token: `updateLoginToken` logs in again.
    login_retry: Option<String>,
    room: Option<Room>,
    /// Whether the other members are told about this user (`setUserVisibility`); applies to
    /// every join, re-joins included.
    visible: bool,
    /// The room whose re-join failed on its token: `updateToken` joins again.
    room_retry: Option<Room>,
    /// The other members of the room, as last reported: (user, extra). A plain list: rooms
    /// the SDK follows are small, and a map costs the wasm module kilobytes.
    members: Vec<(String, String)>,
    server_params: Option<(String, String)>,
    last_seq: u64,
    /// The key of the session this engine's state lives in.
    session_key: Option<Vec<u8>>,
    /// The key of the current connection's own session, until a Resume is answered.
    fresh_key: Option<Vec<u8>>,
    /// The Resume request in flight and its deadline.
    resuming: Option<(u32, u64)>,
    reconnect: Option<Reconnect>,
    policy: Box<dyn ReconnectPolicy>,
    rng: Rng,
    heartbeat_ms: u64,
    last_rx: u64,
    next_ping: u64,
    probe_deadline: Option<u64>,
    /// When `onTokenWillExpire` fires for the room token.
    token_warn_at: Option<u64>,
    /// A notice that explains the close that follows it (unknown app, shutdown).
    close_error: Option<Error>,
    destroyed: bool,
    transmits: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.url)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `app_id` talking to the server at `server_url` (`http(s)://` or
    /// `ws(s)://`, see [`ws_url`]). Fails with `INVALID_PARAMS` when the app id is empty or the
    /// URL has no supported scheme.
    pub fn new(app_id: &str, server_url: &str, config: Config) -> Result<Engine, Error> {
        if app_id.is_empty() {
            return Err(Error::Code(Code::InvalidParams));
        }
        let url = ws_url(server_url, app_id).ok_or(Error::Code(Code::InvalidParams))?;
        Ok(Engine {
            url,
            heartbeat_ms: config.heartbeat_interval_ms.max(1),
            config,
            conn: Conn::Idle,
            state: ConnectionState::Start,
            next_call: 1,
            next_req: 1,
            next_msg_id: 1,
            pending: Vec::new(),
            login: Login::None,
            login_token: String::new(),
            login_retry: None,
            room: None,
            visible: true,
            room_retry: None,
            members: Vec::new(),
            server_params: None,
            last_seq: 0,
            session_key: None,
            fresh_key: None,
            resuming: None,
            reconnect: None,
            policy: Box::new(Backoff::default()),
            rng: Rng::new(0x9E37_79B9_7F4A_7C15),
            last_rx: 0,
            next_ping: 0,
            probe_deadline: None,
            token_warn_at: None,
            close_error: None,
            destroyed: false,
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// Replaces the reconnect policy (default: [`Backoff::default`]).
    pub fn set_reconnect_policy(&mut self, policy: Box<dyn ReconnectPolicy>) {
        self.policy = policy;
    }

    /// Seeds the generator of the reconnect jitter (the binding uses `Math.random`).
    pub fn seed_random(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// The WebSocket URL this engine connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The current connection state.
    pub fn connection_state(&self) -> ConnectionState {
        self.state
    }

    /// The logged-in user, once the login succeeded.
    pub fn logged_in_user(&self) -> Option<&str> {
        match &self.login {
            Login::In(u) => Some(u),
            _ => None,
        }
    }

    /// The room joined (or being joined).
    pub fn room_id(&self) -> Option<&str> {
        self.room.as_ref().map(|r| r.id.as_str())
    }

    /// The business-server parameters last set successfully (signature, url).
    pub fn server_params(&self) -> Option<(&str, &str)> {
        self.server_params
            .as_ref()
            .map(|(s, u)| (s.as_str(), u.as_str()))
    }

    /// The sequence number of the last push received in this session.
    pub fn last_push_seq(&self) -> u64 {
        self.last_seq
    }

    // ----- commands -------------------------------------------------------------------------

    /// `login(token, userId)`. Opens the connection when needed. Server params set earlier
    /// are set again right after the login.
    pub fn login(&mut self, now: u64, token: Option<&str>, user_id: &str) -> CallId {
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        if !is_valid_id(user_id) || self.bound_user().is_some_and(|u| u != user_id) {
            return self.fail(call, Code::InvalidParams.into());
        }
        if self.login != Login::None {
            return self.fail(call, Code::AlreadyLogin.into());
        }
        self.login = Login::Pending(user_id.to_owned());
        self.login_retry = None;
        self.login_token = token.unwrap_or("").to_owned();
        let kind = ReqKind::Login {
            user: user_id.to_owned(),
            started: now,
            auto: false,
        };
        let token = token.unwrap_or("");
        self.request(now, call, kind, |req| ClientFrame::Login {
            req,
            token,
            user: user_id,
        });
        self.set_params_again(now);
        call
    }

    /// `logout()`: `NOT_LOGIN` unless logged in (or logging in). The connection closes once
    /// the engine is neither logged in nor in a room.
    pub fn logout(&mut self, now: u64) -> CallId {
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        if self.login == Login::None || self.conn == Conn::Idle {
            return self.fail(call, Code::NotLoginSession.into());
        }
        self.login = Login::None;
        self.login_retry = None;
        if self.is_backoff() && self.room.is_none() && self.pending.is_empty() {
            // Nothing left to restore: stop reconnecting.
            self.complete(call, Ok(Value::None));
            self.close_if_idle();
            return call;
        }
        self.request(now, call, ReqKind::Logout, |req| ClientFrame::Logout {
            req,
        });
        call
    }

    /// `joinRoom(token, roomId, {userId, extraInfo})`. The engine is in at most one room at a
    /// time: a second join before leaving fails with `REPEAT_JOIN`.
    pub fn join_room(
        &mut self,
        now: u64,
        token: Option<&str>,
        room_id: &str,
        user_id: &str,
        extra_info: &str,
    ) -> CallId {
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        if !is_valid_id(room_id)
            || !is_valid_id(user_id)
            || extra_info.len() > MAX_EXTRA_INFO_BYTES
            || self.bound_user().is_some_and(|u| u != user_id)
        {
            return self.fail(call, Code::InvalidParams.into());
        }
        if self.room.is_some() {
            return self.fail(call, Code::RepeatJoin.into());
        }
        let token = token.unwrap_or("");
        self.room_retry = None;
        self.members.clear();
        self.room = Some(Room {
            id: room_id.to_owned(),
            user: user_id.to_owned(),
            joined: false,
            token: token.to_owned(),
            extra: extra_info.to_owned(),
        });
        self.schedule_token_warning(now);
        let kind = ReqKind::Join {
            room: room_id.to_owned(),
            auto: false,
        };
        let visible = self.visible;
        self.request(now, call, kind, |req| ClientFrame::Join {
            req,
            token,
            room: room_id,
            user: user_id,
            extra: extra_info,
            visible,
        });
        call
    }

    /// `setUserVisibility(enable)`: whether the other members of the room are told about this
    /// user (`onUserJoined` / `onUserLeave`). Kept for every later join; in a room (or while
    /// joining), also sent to the server, which tells the others about the change (a leave
    /// with reason SWITCH_TO_INVISIBLE, or a join).
    pub fn set_user_visibility(&mut self, now: u64, enable: bool) -> CallId {
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        self.visible = enable;
        match self.room.as_ref().map(|r| r.id.clone()) {
            Some(room) if self.conn != Conn::Idle => {
                self.request(now, call, ReqKind::SetVisibility, |req| {
                    ClientFrame::SetVisibility {
                        req,
                        room: &room,
                        visible: enable,
                    }
                });
            }
            _ => self.complete(call, Ok(Value::None)),
        }
        call
    }

    /// `leaveRoom()`: idempotent, resolves at once when not in a room.
    pub fn leave_room(&mut self, now: u64) -> CallId {
        let call = self.new_call();
        self.room_retry = None;
        self.token_warn_at = None;
        self.members.clear();
        let Some(room) = self.room.take() else {
            self.complete(call, Ok(Value::None));
            return call;
        };
        if self.conn == Conn::Idle
            || (self.is_backoff() && self.login == Login::None && self.pending.is_empty())
        {
            self.complete(call, Ok(Value::None));
            self.close_if_idle();
            return call;
        }
        self.request(now, call, ReqKind::Leave, |req| ClientFrame::Leave {
            req,
            room: &room.id,
        });
        call
    }

    /// `setServerParams(signature, url)`: both non-empty; needs a login. The result also goes
    /// to `onServerParamsSetResult`. The params are kept by the engine and set again after
    /// every re-login; a refused setServerParams clears them, as on the server.
    pub fn set_server_params(&mut self, now: u64, signature: &str, url: &str) -> CallId {
        let call = self.new_call();
        let check = if signature.is_empty() || url.is_empty() {
            Err(Code::InvalidParams.into())
        } else if self.login == Login::None {
            Err(Code::NotLoginSession.into())
        } else {
            self.check_alive()
        };
        if let Err(e) = check {
            self.events
                .push_back(Event::ServerParamsSetResult { error: Some(e) });
            return self.fail(call, e);
        }
        self.send_params(now, call, signature, url);
        call
    }

    /// `updateLoginToken(token)`: keeps `token` for later re-logins and renews it on the
    /// server when logged in; when the last login failed on its token, logs in again with it.
    pub fn update_login_token(&mut self, now: u64, token: &str) -> CallId {
        if let Some(user) = self.login_retry.take() {
            if self.login == Login::None {
                return self.login(now, Some(token), &user);
            }
        }
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        if self.login == Login::None {
            return self.fail(call, Code::NotLoginSession.into());
        }
        self.login_token = token.to_owned();
        if self.conn == Conn::Open && matches!(self.login, Login::In(_)) {
            self.request(now, call, ReqKind::UpdateToken, |req| {
                ClientFrame::UpdateToken {
                    req,
                    room: "",
                    token,
                }
            });
        } else {
            self.complete(call, Ok(Value::None));
        }
        call
    }

    /// `updateToken(token)`: renews the room token (kept for re-joins; `onTokenWillExpire` is
    /// scheduled for it); when the last re-join failed on its token, joins again with it.
    pub fn update_token(&mut self, now: u64, token: &str) -> CallId {
        if self.room.is_none() {
            if let Some(r) = self.room_retry.take() {
                return self.join_room(now, Some(token), &r.id, &r.user, &r.extra);
            }
        }
        let call = self.new_call();
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        let Some(room) = self.room.as_mut() else {
            return self.fail(call, Code::NotJoin.into());
        };
        room.token = token.to_owned();
        let (id, joined) = (room.id.clone(), room.joined);
        self.schedule_token_warning(now);
        if self.conn == Conn::Open && joined {
            self.request(now, call, ReqKind::UpdateToken, |req| {
                ClientFrame::UpdateToken {
                    req,
                    room: &id,
                    token,
                }
            });
        } else {
            self.complete(call, Ok(Value::None));
        }
        call
    }

    /// `sendServerMessage` / `sendServerBinaryMessage`: non-empty, at most
    /// [`MAX_MESSAGE_BYTES`], needs a login. Resolves to [`Value::ServerMessage`]; the result
    /// also goes to `onServerMessageSendResult`. While there is no connection the message
    /// waits in the bounded queue.
    pub fn send_server_message(&mut self, now: u64, payload: &Payload) -> CallId {
        let call = self.new_call();
        let bytes = payload.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_MESSAGE_BYTES {
            return self.fail(call, Code::InvalidParams.into());
        }
        if self.login == Login::None {
            return self.fail(call, Code::NotLoginSession.into());
        }
        if let Err(e) = self.check_alive().and_then(|()| self.check_queue()) {
            return self.fail(call, e);
        }
        let msg_id = self.next_msg_id();
        let binary = payload.is_binary();
        let deadline = self.message_deadline(now, self.config.message_timeout_ms);
        self.request_until(deadline, call, ReqKind::SendServer { msg_id }, |req| {
            ClientFrame::SendServer {
                req,
                msg_id,
                binary,
                payload: bytes,
            }
        });
        call
    }

    /// `getPeerOnlineStatus(userId)`: resolves to [`Value::PeerStatus`].
    pub fn get_peer_online_status(&mut self, now: u64, user_id: &str) -> CallId {
        let call = self.new_call();
        if !is_valid_id(user_id) {
            return self.fail(call, Code::InvalidParams.into());
        }
        if self.login == Login::None && self.room.is_none() {
            return self.fail(call, Code::NotLoginSession.into());
        }
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        self.request(now, call, ReqKind::PeerStatus, |req| {
            ClientFrame::PeerStatus { req, user: user_id }
        });
        call
    }

    /// `sendUserMessageOutsideRoom` / `sendUserBinaryMessageOutsideRoom`: a message to a
    /// logged-in user, outside rooms. Resolves to [`Value::MessageId`] once the server has
    /// queued it for the receiver's session; the result also goes to
    /// `onUserMessageSendResultOutsideRoom`.
    ///
    /// Checked before sending, in this order (no message id is used, no event emitted):
    /// `INVALID_PARAMS` for an invalid user id, an empty or oversize payload, or a message to
    /// the engine's own user; `NOT_LOGIN` without a login.
    pub fn send_user_message_outside_room(
        &mut self,
        now: u64,
        user_id: &str,
        payload: &Payload,
    ) -> CallId {
        let call = self.new_call();
        let check = self
            .check_peer_message(Some(user_id), payload)
            .and_then(|()| match self.login {
                Login::None => Err(Code::NotLoginSession.into()),
                _ => Ok(()),
            });
        if let Err(e) = check {
            return self.fail(call, e);
        }
        self.send_peer(now, call, PushKind::OutsideRoom, Some(user_id), payload);
        call
    }

    /// `sendUserMessage` / `sendUserBinaryMessage`: a message to one user in the engine's
    /// room. Resolves to [`Value::MessageId`]; the result also goes to
    /// `onUserMessageSendResult`. Fails before sending with `INVALID_PARAMS` (as
    /// [`send_user_message_outside_room`](Engine::send_user_message_outside_room)) or
    /// `USER_MESSAGE_NOT_JOIN` unless a join has succeeded.
    pub fn send_user_message(&mut self, now: u64, user_id: &str, payload: &Payload) -> CallId {
        let call = self.new_call();
        let check = self
            .check_peer_message(Some(user_id), payload)
            .and_then(|()| self.check_joined());
        if let Err(e) = check {
            return self.fail(call, e);
        }
        self.send_peer(now, call, PushKind::RoomUser, Some(user_id), payload);
        call
    }

    /// `sendRoomMessage` / `sendRoomBinaryMessage`: a message to everyone else in the
    /// engine's room (succeeds also when nobody else is there). Resolves to
    /// [`Value::MessageId`]; the result also goes to `onRoomMessageSendResult`. Fails before
    /// sending with `INVALID_PARAMS` (empty or oversize) or `USER_MESSAGE_NOT_JOIN`.
    pub fn send_room_message(&mut self, now: u64, payload: &Payload) -> CallId {
        let call = self.new_call();
        let check = self
            .check_peer_message(None, payload)
            .and_then(|()| self.check_joined());
        if let Err(e) = check {
            return self.fail(call, e);
        }
        self.send_peer(now, call, PushKind::Room, None, payload);
        call
    }

    /// Takes the next message id from the engine's single counter (shared by every kind of
    /// message).
    pub fn next_msg_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    /// `destroyEngine`: fails every pending call, closes the connection, and refuses further
    /// commands.
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        self.reconnect = None;
        self.fail_all_pending(0, Error::Destroyed);
        self.login = Login::None;
        self.room = None;
        self.token_warn_at = None;
        self.close(CLOSE_NORMAL);
    }

    // ----- transport events -----------------------------------------------------------------

    /// The connection asked for by [`Transmit::Connect`] is open.
    pub fn handle_connected(&mut self, now: u64) {
        if self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Open;
        self.last_rx = now;
        self.next_ping = now.saturating_add(self.heartbeat_ms);
        self.probe_deadline = None;
        self.fresh_key = None;
        if self.reconnect.take().is_some() {
            self.set_state(ConnectionState::Reconnected);
            match self.session_key.clone() {
                Some(key) => {
                    let req = self.take_req();
                    let frame = ClientFrame::Resume {
                        req,
                        session: &key,
                        last_seq: self.last_seq,
                    };
                    self.transmits
                        .push_back(Transmit::Send(encode_client(&frame)));
                    let deadline = now.saturating_add(self.config.request_timeout_ms);
                    self.resuming = Some((req, deadline));
                }
                None => self.after_resume(now, false),
            }
        } else {
            self.set_state(ConnectionState::Connected);
            self.flush();
        }
    }

    /// One binary WebSocket message arrived: a server frame, or a batch of them.
    pub fn handle_frame(&mut self, now: u64, bytes: &[u8]) {
        if self.conn != Conn::Open {
            return;
        }
        self.last_rx = now;
        self.probe_deadline = None;
        for frame in server_frames(bytes) {
            match frame.and_then(decode_server) {
                Ok(frame) => self.on_frame(now, frame),
                Err(_) => {
                    self.transmits.push_back(Transmit::Close {
                        code: CLOSE_PROTOCOL_ERROR,
                    });
                    self.connection_lost(now, LostCause::ProtocolError);
                    return;
                }
            }
            // A frame of a batch can end the connection (a kick); the rest is not for us.
            if self.conn != Conn::Open {
                return;
            }
        }
    }

    /// The connection closed (or failed to open) with this WebSocket close code, without the
    /// engine asking for it.
    pub fn handle_closed(&mut self, now: u64, code: u16) {
        if !matches!(self.conn, Conn::Connecting | Conn::Open) {
            return;
        }
        self.connection_lost(now, LostCause::Closed(code));
    }

    /// The page or worker went online (`online: true`: the `online` event, or the page became
    /// visible or was shown again) or offline. Online, a waiting reconnect starts at once and
    /// an open connection is probed (a Ping that must be answered within 5 s); offline, an
    /// open connection is probed.
    pub fn handle_network(&mut self, now: u64, online: bool) {
        match self.conn {
            Conn::Backoff { .. } if online => self.connect_now(),
            Conn::Open if self.probe_deadline.is_none() => {
                self.send_ping(now);
                self.probe_deadline = Some(now.saturating_add(PROBE_TIMEOUT_MS));
            }
            _ => {}
        }
    }

    // ----- time -----------------------------------------------------------------------------

    /// The earliest time at which [`handle_timeout`](Engine::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = self.pending.iter().map(|p| p.deadline).min();
        let mut at = |d: Option<u64>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        at(self.resuming.map(|(_, d)| d));
        at(self.token_warn_at);
        match self.conn {
            Conn::Open => {
                at(Some(self.next_ping));
                at(Some(self.dead_at()));
                at(self.probe_deadline);
            }
            Conn::Backoff { at: a } => at(Some(a)),
            _ => {}
        }
        if let Some(r) = self.reconnect {
            if self.state != ConnectionState::Lost {
                at(Some(r.lost_at.saturating_add(self.config.lost_after_ms)));
            }
        }
        t
    }

    /// Expires requests, sends heartbeats, notices a dead connection, starts reconnect
    /// attempts and fires `onTokenWillExpire`, as due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.token_warn_at.is_some_and(|t| t <= now) {
            self.token_warn_at = None;
            if let Some(r) = &self.room {
                self.events
                    .push_back(Event::TokenWillExpire { room: r.id.clone() });
            }
        }
        if let Some(r) = self.reconnect {
            if self.state != ConnectionState::Lost
                && now >= r.lost_at.saturating_add(self.config.lost_after_ms)
            {
                self.set_state(ConnectionState::Lost);
            }
        }
        match self.conn {
            Conn::Open => {
                let resume_late = self.resuming.is_some_and(|(_, d)| d <= now);
                if resume_late
                    || now >= self.dead_at()
                    || self.probe_deadline.is_some_and(|d| d <= now)
                {
                    self.transmits.push_back(Transmit::Close {
                        code: CLOSE_RECONNECT,
                    });
                    self.connection_lost(now, LostCause::Heartbeat);
                } else if now >= self.next_ping {
                    self.send_ping(now);
                }
            }
            Conn::Backoff { at } if now >= at => self.connect_now(),
            _ => {}
        }
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|p| p.deadline <= now)
            .map(|p| p.req)
            .collect();
        if expired.is_empty() {
            return;
        }
        for req in expired {
            if let Some(p) = self.take_pending(req) {
                let err = match p.kind {
                    ReqKind::SendServer { .. } | ReqKind::SendPeer { .. } => {
                        Error::Code(Code::Timeout)
                    }
                    _ => Error::Timeout,
                };
                self.finish(now, p, Err(err), &[]);
            }
        }
        self.close_if_idle();
    }

    // ----- outputs --------------------------------------------------------------------------

    /// The next transport action.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next finished call.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- internals ------------------------------------------------------------------------

    fn new_call(&mut self) -> CallId {
        let c = self.next_call;
        self.next_call += 1;
        c
    }

    fn take_req(&mut self) -> u32 {
        let req = self.next_req;
        // Request ids wrap; 0 is never used.
        self.next_req = self.next_req.checked_add(1).unwrap_or(1);
        req
    }

    fn check_alive(&self) -> Result<(), Error> {
        if self.destroyed {
            Err(Error::Destroyed)
        } else {
            Ok(())
        }
    }

    /// Whether requests go out now (else they wait for a connection).
    fn can_send(&self) -> bool {
        self.conn == Conn::Open && self.resuming.is_none()
    }

    fn is_backoff(&self) -> bool {
        matches!(self.conn, Conn::Backoff { .. })
    }

    /// A message that would wait for a connection must fit in the queue.
    fn check_queue(&self) -> Result<(), Error> {
        if self.can_send() {
            return Ok(());
        }
        let queued = self
            .pending
            .iter()
            .filter(|p| !p.sent && p.kind.is_message())
            .count();
        if queued >= self.config.max_queued_messages {
            return Err(Error::QueueFull);
        }
        Ok(())
    }

    /// The deadline of a new message: its own timeout when it goes out now, else the queue
    /// age limit.
    fn message_deadline(&self, now: u64, timeout: u64) -> u64 {
        if self.can_send() {
            now.saturating_add(timeout)
        } else {
            now.saturating_add(self.config.max_queued_age_ms)
        }
    }

    fn dead_at(&self) -> u64 {
        let bound = self
            .config
            .heartbeat_timeout_ms
            .max(self.heartbeat_ms.saturating_mul(2));
        self.last_rx.saturating_add(bound)
    }

    fn send_ping(&mut self, now: u64) {
        let req = self.take_req();
        self.transmits
            .push_back(Transmit::Send(encode_client(&ClientFrame::Ping { req })));
        self.next_ping = now.saturating_add(self.heartbeat_ms);
    }

    /// The local checks of a user (`to` given) or room message.
    fn check_peer_message(&self, to: Option<&str>, payload: &Payload) -> Result<(), Error> {
        self.check_alive()?;
        let bytes = payload.as_bytes();
        let bad_to = to.is_some_and(|to| !is_valid_id(to) || self.bound_user() == Some(to));
        if bad_to || bytes.is_empty() || bytes.len() > MAX_MESSAGE_BYTES {
            return Err(Code::InvalidParams.into());
        }
        Ok(())
    }

    fn check_joined(&self) -> Result<(), Error> {
        match &self.room {
            Some(r) if r.joined => Ok(()),
            _ => Err(Code::NotJoin.into()),
        }
    }

    /// Sends a checked user or room message with the next message id.
    fn send_peer(
        &mut self,
        now: u64,
        call: CallId,
        kind: PushKind,
        to: Option<&str>,
        payload: &Payload,
    ) {
        if let Err(e) = self.check_queue() {
            self.fail(call, e);
            return;
        }
        let msg_id = self.next_msg_id();
        let binary = payload.is_binary();
        let bytes = payload.as_bytes();
        let room = match kind {
            PushKind::OutsideRoom => String::new(),
            _ => self.room.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        };
        let deadline = self.message_deadline(now, self.config.peer_message_timeout_ms);
        let req_kind = ReqKind::SendPeer { kind, msg_id };
        self.request_until(deadline, call, req_kind, |req| match to {
            Some(to) => ClientFrame::SendUser {
                req,
                msg_id,
                room: &room,
                to,
                binary,
                payload: bytes,
            },
            None => ClientFrame::SendRoom {
                req,
                msg_id,
                room: &room,
                binary,
                payload: bytes,
            },
        });
    }

    fn send_params(&mut self, now: u64, call: CallId, signature: &str, url: &str) {
        let kind = ReqKind::SetServerParams {
            signature: signature.to_owned(),
            url: url.to_owned(),
        };
        self.request(now, call, kind, |req| ClientFrame::SetServerParams {
            req,
            signature,
            url,
        });
    }

    /// Sets the kept server params again (after a login or a re-login).
    fn set_params_again(&mut self, now: u64) {
        if let Some((signature, url)) = self.server_params.clone() {
            let call = self.new_call();
            self.send_params(now, call, &signature, &url);
        }
    }

    fn fail(&mut self, call: CallId, err: Error) -> CallId {
        self.complete(call, Err(err));
        call
    }

    fn complete(&mut self, call: CallId, result: Result<Value, Error>) {
        self.completions.push_back(Completion { call, result });
    }

    /// The user this connection speaks for: the login's, else the room's.
    fn bound_user(&self) -> Option<&str> {
        match &self.login {
            Login::Pending(u) | Login::In(u) => Some(u),
            Login::None => self.room.as_ref().map(|r| r.user.as_str()),
        }
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state;
            self.events
                .push_back(Event::ConnectionStateChanged { state });
        }
    }

    /// Schedules `onTokenWillExpire` for the room token (when it has an expiry).
    fn schedule_token_warning(&mut self, now: u64) {
        self.token_warn_at = None;
        let Some(room) = &self.room else {
            return;
        };
        let expire_at = match rtm_protocol::token::expire_at(&room.token) {
            Some(0) | None => return,
            Some(t) => t,
        };
        let expire_ms = u64::from(expire_at) * 1000;
        let at = expire_ms.saturating_sub(self.config.token_will_expire_ms);
        self.token_warn_at = Some(at.max(now));
    }

    fn request<'a>(
        &mut self,
        now: u64,
        call: CallId,
        kind: ReqKind,
        frame: impl FnOnce(u32) -> ClientFrame<'a>,
    ) {
        let deadline = now.saturating_add(self.config.request_timeout_ms);
        self.request_until(deadline, call, kind, frame);
    }

    fn request_until<'a>(
        &mut self,
        deadline: u64,
        call: CallId,
        kind: ReqKind,
        frame: impl FnOnce(u32) -> ClientFrame<'a>,
    ) {
        let req = self.take_req();
        let bytes = encode_client(&frame(req));
        let sent = self.can_send();
        if sent {
            self.transmits.push_back(Transmit::Send(bytes.clone()));
        } else if self.conn == Conn::Idle {
            self.close_error = None;
            self.start_connect();
            self.set_state(ConnectionState::Connecting);
        }
        let auto = kind.is_auto();
        self.pending.push(Pending {
            req,
            call,
            kind,
            deadline,
            frame: bytes,
            sent,
            ever_sent: sent,
            auto,
        });
    }

    fn start_connect(&mut self) {
        self.conn = Conn::Connecting;
        self.transmits.push_back(Transmit::Connect {
            url: self.url.clone(),
        });
    }

    /// A reconnect attempt now.
    fn connect_now(&mut self) {
        if self.reconnect.is_some() {
            self.start_connect();
        }
    }

    /// Sends every request that waits for the connection, in order.
    fn flush(&mut self) {
        for p in self.pending.iter_mut().filter(|p| !p.sent) {
            p.sent = true;
            p.ever_sent = true;
            self.transmits.push_back(Transmit::Send(p.frame.clone()));
        }
    }

    /// The Resume was answered (or there was no session to resume): restore the session,
    /// then send what waits.
    fn after_resume(&mut self, now: u64, resumed: bool) {
        if !resumed {
            self.last_seq = 0;
            // Sent on the lost connection, unanswered: they may or may not have arrived.
            let broken: Vec<u32> = self
                .pending
                .iter()
                .filter(|p| p.ever_sent && p.kind.is_message())
                .map(|p| p.req)
                .collect();
            for req in broken {
                if let Some(p) = self.take_pending(req) {
                    self.finish(now, p, Err(Code::Broken.into()), &[]);
                }
            }
            if self.login != Login::None || self.room.is_some() {
                self.events.push_back(Event::Error {
                    error_code: Code::RecoveryFailed.error_code(),
                    room: String::new(),
                });
            }
        }
        // Log in, join and set the params again before anything else goes out.
        if let Login::In(user) = self.login.clone() {
            let call = self.new_call();
            let token = self.login_token.clone();
            let kind = ReqKind::Login {
                user: user.clone(),
                started: now,
                auto: true,
            };
            self.request(now, call, kind, |req| ClientFrame::Login {
                req,
                token: &token,
                user: &user,
            });
        }
        if let Some(room) = self.room.clone().filter(|r| r.joined) {
            let call = self.new_call();
            let kind = ReqKind::Join {
                room: room.id.clone(),
                auto: true,
            };
            let visible = self.visible;
            self.request(now, call, kind, |req| ClientFrame::Join {
                req,
                token: &room.token,
                room: &room.id,
                user: &room.user,
                extra: &room.extra,
                visible,
            });
        }
        if matches!(self.login, Login::In(_)) {
            self.set_params_again(now);
        }
        self.flush();
        self.close_if_idle();
    }

    fn on_frame(&mut self, now: u64, frame: ServerFrame<'_>) {
        match frame {
            ServerFrame::Reply { req, code, data } => {
                if let Some((r, _)) = self.resuming {
                    if r == req {
                        self.resuming = None;
                        let resumed = code == Code::Ok.as_u16();
                        if !resumed {
                            self.session_key = self.fresh_key.take();
                        }
                        self.after_resume(now, resumed);
                        return;
                    }
                }
                let Some(p) = self.take_pending(req) else {
                    return;
                };
                let result = match Code::from_u16(code) {
                    Code::Ok => Ok(()),
                    c => Err(Error::Code(c)),
                };
                self.finish(now, p, result, data);
                self.close_if_idle();
            }
            ServerFrame::Push { seq, push } => {
                // Exactly once: a push replayed after a resume that already arrived.
                if seq <= self.last_seq {
                    return;
                }
                self.last_seq = seq;
                let payload = if push.binary {
                    Payload::Binary(push.payload.to_vec())
                } else {
                    // `from_utf8` first: its ASCII fast path is much quicker than the lossy
                    // conversion's, which only invalid text needs.
                    Payload::Text(match std::str::from_utf8(push.payload) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(push.payload).into_owned(),
                    })
                };
                self.events.push_back(Event::Message {
                    kind: push.kind,
                    room: push.room.to_owned(),
                    user_id: push.from.to_owned(),
                    payload,
                });
            }
            ServerFrame::Notice { code, room, .. } => self.on_notice(Code::from_u16(code), room),
            ServerFrame::Member {
                room,
                user,
                extra,
                joined,
                reason,
            } => {
                let ours = self.room.as_ref().is_some_and(|r| r.id == room);
                if ours {
                    // Idempotent: a member already known (or already gone) is not reported
                    // twice, e.g. after a re-join.
                    let at = self.members.iter().position(|(u, _)| u == user);
                    let known = at.map(|i| self.members[i].1.as_str());
                    if joined && known == Some(extra) || !joined && known.is_none() {
                        return;
                    }
                    match at {
                        Some(i) if joined => self.members[i].1 = extra.to_owned(),
                        None => self.members.push((user.to_owned(), extra.to_owned())),
                        Some(i) => {
                            self.members.swap_remove(i);
                        }
                    }
                }
                self.member_event(room, user, extra, joined, reason);
            }
            ServerFrame::Welcome {
                session,
                heartbeat_ms,
                ..
            } => {
                if heartbeat_ms > 0 {
                    self.heartbeat_ms = u64::from(heartbeat_ms);
                    self.next_ping = now.saturating_add(self.heartbeat_ms);
                }
                if self.resuming.is_some() {
                    self.fresh_key = Some(session.to_vec());
                } else {
                    self.session_key = Some(session.to_vec());
                }
            }
        }
    }

    fn member_event(&mut self, room: &str, user: &str, extra: &str, joined: bool, reason: u8) {
        let (room, user_id, extra_info) = (room.to_owned(), user.to_owned(), extra.to_owned());
        self.events.push_back(if joined {
            Event::UserJoined {
                room,
                user_id,
                extra_info,
            }
        } else {
            Event::UserLeave {
                room,
                user_id,
                extra_info,
                reason,
            }
        });
    }

    /// A re-join succeeded: report how the room changed since the engine last knew it.
    fn sync_members(&mut self, room: &str, data: &[u8]) {
        let Ok(list) = decode_members(data) else {
            return;
        };
        let before = std::mem::take(&mut self.members);
        for (u, e) in &before {
            if !list.iter().any(|(v, _)| v == u) {
                self.member_event(room, u, e, false, 1);
            }
        }
        for &(u, e) in &list {
            if !before.iter().any(|(v, f)| v == u && f == e) {
                self.member_event(room, u, e, true, 0);
            }
            self.members.push((u.to_owned(), e.to_owned()));
        }
    }

    fn on_notice(&mut self, code: Code, room: &str) {
        match code {
            Code::RtmDuplicateLogin => self.login = Login::None,
            Code::DuplicateLogin => self.drop_room(room),
            Code::KickedOut if room.is_empty() => self.login = Login::None,
            Code::KickedOut => self.drop_room(room),
            Code::UnknownApp => self.close_error = Some(Error::Code(code)),
            // The close that follows says the rest: the engine reconnects.
            Code::ServerShutdown => return,
            _ => {}
        }
        self.events.push_back(Event::Error {
            error_code: code.error_code(),
            room: room.to_owned(),
        });
        self.close_if_idle();
    }

    fn drop_room(&mut self, room: &str) {
        if self.room.as_ref().is_some_and(|r| r.id == room) {
            self.room = None;
            self.members.clear();
            self.token_warn_at = None;
        }
    }

    /// Settles a pending request: state changes, completion, and the events the call implies.
    fn finish(&mut self, now: u64, p: Pending, result: Result<(), Error>, data: &[u8]) {
        let err = result.err();
        let token_error = matches!(
            err,
            Some(Error::Code(Code::TokenExpired | Code::InvalidToken))
        );
        let value = match p.kind {
            ReqKind::Login {
                user,
                started,
                auto,
            } => {
                let ours = match &self.login {
                    Login::Pending(u) | Login::In(u) => *u == user,
                    Login::None => false,
                };
                if ours {
                    self.login = match err {
                        None => Login::In(user.clone()),
                        Some(_) => Login::None,
                    };
                }
                if token_error {
                    self.login_retry = Some(user.clone());
                }
                match (auto, err) {
                    (false, _) => self.events.push_back(Event::LoginResult {
                        user_id: user,
                        error: err,
                        elapsed_ms: now.saturating_sub(started),
                    }),
                    (true, Some(e)) if ours => {
                        let error_code = match e {
                            Error::Code(Code::InvalidToken) => RTM_TOKEN_ERROR,
                            e => e.error_code(),
                        };
                        self.events.push_back(Event::Error {
                            error_code,
                            room: String::new(),
                        });
                    }
                    _ => {}
                }
                Value::None
            }
            ReqKind::Join { room, auto } => {
                if let Some(r) = self.room.as_mut().filter(|r| r.id == room) {
                    match err {
                        None => {
                            r.joined = true;
                            if auto {
                                self.sync_members(&room, data);
                            }
                        }
                        Some(e) => {
                            let r = self.room.take();
                            self.members.clear();
                            self.token_warn_at = None;
                            if token_error {
                                self.room_retry = r;
                            }
                            if auto {
                                self.events.push_back(Event::Error {
                                    error_code: e.error_code(),
                                    room: room.clone(),
                                });
                            }
                        }
                    }
                }
                Value::None
            }
            ReqKind::Logout | ReqKind::Leave | ReqKind::UpdateToken | ReqKind::SetVisibility => {
                Value::None
            }
            ReqKind::SetServerParams { signature, url } => {
                match err {
                    None => self.server_params = Some((signature, url)),
                    // Refused by the server (not for want of a login or a connection): the
                    // server cleared them, so does the engine.
                    Some(Error::Code(c)) if c != Code::NotLoginSession => self.server_params = None,
                    Some(_) => {}
                }
                self.events
                    .push_back(Event::ServerParamsSetResult { error: err });
                Value::None
            }
            ReqKind::SendServer { msg_id } => {
                self.events.push_back(Event::ServerMessageSendResult {
                    msg_id,
                    error: err,
                    response: data.to_vec(),
                });
                Value::ServerMessage {
                    msg_id,
                    response: data.to_vec(),
                }
            }
            ReqKind::SendPeer { kind, msg_id } => {
                self.events.push_back(Event::MessageSendResult {
                    kind,
                    msg_id,
                    error: err,
                });
                Value::MessageId(msg_id)
            }
            ReqKind::PeerStatus => Value::PeerStatus(data.first().copied().unwrap_or(0)),
        };
        self.complete(
            p.call,
            match err {
                None => Ok(value),
                Some(e) => Err(e),
            },
        );
    }

    fn take_pending(&mut self, req: u32) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.req == req)?;
        Some(self.pending.remove(i))
    }

    fn fail_all_pending(&mut self, now: u64, err: Error) {
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            let e = match (&p.kind, err) {
                (ReqKind::SendServer { .. } | ReqKind::SendPeer { .. }, Error::NotConnected) => {
                    Error::Code(Code::Broken)
                }
                _ => err,
            };
            self.finish(now, p, Err(e), &[]);
        }
    }

    /// The connection ended without the engine asking. When there is a session to restore
    /// and the cause allows it, the engine keeps everything and reconnects after a delay
    /// from its policy; else every pending call fails, the session (login and room) is gone
    /// and the state is DISCONNECTED.
    fn connection_lost(&mut self, now: u64, cause: LostCause) {
        let was_open = self.conn == Conn::Open;
        self.conn = Conn::Idle;
        self.resuming = None;
        self.fresh_key = None;
        self.probe_deadline = None;
        let fatal = matches!(self.close_error, Some(Error::Code(Code::UnknownApp)))
            || cause == LostCause::Closed(4004);
        let has_session = self.login != Login::None || self.room.is_some();
        if !self.destroyed && !fatal && has_session && (was_open || self.reconnect.is_some()) {
            // Requests the engine made to restore the session are made again next time.
            self.pending.retain(|p| !p.auto);
            for p in self.pending.iter_mut().filter(|p| p.sent) {
                p.sent = false;
                if p.kind.is_message() {
                    p.deadline = p
                        .deadline
                        .max(now.saturating_add(self.config.max_queued_age_ms));
                }
            }
            let r = self.reconnect.get_or_insert(Reconnect {
                attempt: 0,
                lost_at: now,
            });
            r.attempt += 1;
            let (attempt, elapsed) = (r.attempt, now.saturating_sub(r.lost_at));
            let random = self.rng.next_f64();
            if let Some(delay) = self.policy.next_delay(attempt, elapsed, cause, random) {
                self.close_error = None;
                self.conn = Conn::Backoff {
                    at: now.saturating_add(delay),
                };
                if self.state != ConnectionState::Lost {
                    self.set_state(ConnectionState::Reconnecting);
                }
                return;
            }
            self.events.push_back(Event::Error {
                error_code: RECONNECT_FAILED,
                room: String::new(),
            });
        }
        self.reconnect = None;
        let err = self.close_error.take().unwrap_or(Error::NotConnected);
        self.fail_all_pending(now, err);
        self.login = Login::None;
        self.room = None;
        self.members.clear();
        self.token_warn_at = None;
        self.set_state(ConnectionState::Disconnected);
    }

    /// Closes the connection (or stops reconnecting) once nothing needs it: not logged in,
    /// in no room, no request waiting.
    fn close_if_idle(&mut self) {
        if self.conn != Conn::Idle
            && self.login == Login::None
            && self.room.is_none()
            && self.pending.is_empty()
            && self.resuming.is_none()
        {
            self.close(CLOSE_NORMAL);
        }
    }

    fn close(&mut self, code: u16) {
        match self.conn {
            Conn::Idle => {}
            Conn::Backoff { .. } => {
                self.conn = Conn::Idle;
                self.reconnect = None;
                self.set_state(ConnectionState::Disconnected);
            }
            Conn::Connecting | Conn::Open => {
                self.conn = Conn::Idle;
                self.reconnect = None;
                self.resuming = None;
                self.transmits.push_back(Transmit::Close { code });
                self.set_state(ConnectionState::Disconnected);
            }
        }
    }
}

/// `onError` code of a re-login refused for an invalid login token.
const RTM_TOKEN_ERROR: &str = "RTM_TOKEN_ERROR";
/// `onError` code when the reconnect policy gives up.
const RECONNECT_FAILED: &str = "RECONNECT_FAILED";
