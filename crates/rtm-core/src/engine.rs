//! The client state machine.

use std::collections::VecDeque;

use rtm_protocol::code::Code;
use rtm_protocol::frame::{decode_server, encode_client, ClientFrame, PushKind, ServerFrame};
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::MAX_MESSAGE_BYTES;

use crate::types::{CallId, Completion, ConnectionState, Event, Payload, Transmit, Value};
use crate::{ws_url, Error};

/// The longest `extraInfo` a user may attach when joining a room, in bytes.
pub const MAX_EXTRA_INFO_BYTES: usize = 200;

/// WebSocket close code for a normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code the client uses after an undecodable server frame.
pub const CLOSE_PROTOCOL_ERROR: u16 = 4000;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout_ms: 60_000,
            message_timeout_ms: 60_000,
            peer_message_timeout_ms: 12_000,
        }
    }
}

/// Why the connection ended without the engine asking for it. The reconnect policy of a later
/// version decides from this whether and when to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostCause {
    /// The transport closed, with this WebSocket close code.
    Closed(u16),
    /// The server sent a frame this client cannot decode.
    ProtocolError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Idle,
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
}

#[derive(Debug)]
enum ReqKind {
    Login {
        user: String,
        started: u64,
    },
    Logout,
    Join {
        room: String,
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
}

#[derive(Debug)]
struct Pending {
    req: u32,
    call: CallId,
    kind: ReqKind,
    deadline: u64,
    /// The encoded frame while the connection is not open yet.
    unsent: Option<Vec<u8>>,
}

/// The client state machine: commands and transport events in, transmits, completions,
/// events and a timer deadline out. It performs no I/O and reads no clock: every input that
/// depends on time takes `now`, in milliseconds on any monotonic scale.
///
/// After every input, drain [`poll_transmit`](Engine::poll_transmit),
/// [`poll_completion`](Engine::poll_completion) and [`poll_event`](Engine::poll_event), and
/// (re)arm a timer for [`poll_timeout`](Engine::poll_timeout).
#[derive(Debug)]
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
    room: Option<Room>,
    server_params: Option<(String, String)>,
    last_seq: u64,
    /// A notice that explains the close that follows it (unknown app, shutdown).
    close_error: Option<Error>,
    destroyed: bool,
    transmits: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    events: VecDeque<Event>,
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
            config,
            conn: Conn::Idle,
            state: ConnectionState::Start,
            next_call: 1,
            next_req: 1,
            next_msg_id: 1,
            pending: Vec::new(),
            login: Login::None,
            room: None,
            server_params: None,
            last_seq: 0,
            close_error: None,
            destroyed: false,
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            events: VecDeque::new(),
        })
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

    /// The sequence number of the last push received on this connection.
    pub fn last_push_seq(&self) -> u64 {
        self.last_seq
    }

    // ----- commands -------------------------------------------------------------------------

    /// `login(token, userId)`. Opens the connection when needed.
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
        let kind = ReqKind::Login {
            user: user_id.to_owned(),
            started: now,
        };
        let token = token.unwrap_or("");
        self.request(now, call, kind, |req| ClientFrame::Login {
            req,
            token,
            user: user_id,
        });
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
        self.room = Some(Room {
            id: room_id.to_owned(),
            user: user_id.to_owned(),
            joined: false,
        });
        let kind = ReqKind::Join {
            room: room_id.to_owned(),
        };
        let token = token.unwrap_or("");
        self.request(now, call, kind, |req| ClientFrame::Join {
            req,
            token,
            room: room_id,
            user: user_id,
            extra: extra_info,
        });
        call
    }

    /// `leaveRoom()`: idempotent, resolves at once when not in a room.
    pub fn leave_room(&mut self, now: u64) -> CallId {
        let call = self.new_call();
        let Some(room) = self.room.take() else {
            self.complete(call, Ok(Value::None));
            return call;
        };
        if self.conn == Conn::Idle {
            self.complete(call, Ok(Value::None));
            return call;
        }
        self.request(now, call, ReqKind::Leave, |req| ClientFrame::Leave {
            req,
            room: &room.id,
        });
        call
    }

    /// `setServerParams(signature, url)`: both non-empty; needs a login. The result also goes
    /// to `onServerParamsSetResult`.
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
        let kind = ReqKind::SetServerParams {
            signature: signature.to_owned(),
            url: url.to_owned(),
        };
        self.request(now, call, kind, |req| ClientFrame::SetServerParams {
            req,
            signature,
            url,
        });
        call
    }

    /// `sendServerMessage` / `sendServerBinaryMessage`: non-empty, at most
    /// [`MAX_MESSAGE_BYTES`], needs a login. Resolves to [`Value::ServerMessage`]; the result
    /// also goes to `onServerMessageSendResult`.
    pub fn send_server_message(&mut self, now: u64, payload: &Payload) -> CallId {
        let call = self.new_call();
        let bytes = payload.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_MESSAGE_BYTES {
            return self.fail(call, Code::InvalidParams.into());
        }
        if self.login == Login::None {
            return self.fail(call, Code::NotLoginSession.into());
        }
        if let Err(e) = self.check_alive() {
            return self.fail(call, e);
        }
        let msg_id = self.next_msg_id();
        let binary = payload.is_binary();
        let deadline = now.saturating_add(self.config.message_timeout_ms);
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
        self.fail_all_pending(0, Error::Destroyed);
        self.login = Login::None;
        self.room = None;
        self.close(CLOSE_NORMAL);
    }

    // ----- transport events -----------------------------------------------------------------

    /// The connection asked for by [`Transmit::Connect`] is open.
    pub fn handle_connected(&mut self, _now: u64) {
        if self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Open;
        self.last_seq = 0;
        self.set_state(ConnectionState::Connected);
        for p in self.pending.iter_mut() {
            if let Some(frame) = p.unsent.take() {
                self.transmits.push_back(Transmit::Send(frame));
            }
        }
    }

    /// One binary frame arrived.
    pub fn handle_frame(&mut self, now: u64, bytes: &[u8]) {
        if self.conn != Conn::Open {
            return;
        }
        match decode_server(bytes) {
            Ok(frame) => self.on_frame(now, frame),
            Err(_) => {
                self.transmits.push_back(Transmit::Close {
                    code: CLOSE_PROTOCOL_ERROR,
                });
                self.connection_lost(now, LostCause::ProtocolError);
            }
        }
    }

    /// The connection closed (or failed to open) with this WebSocket close code, without the
    /// engine asking for it.
    pub fn handle_closed(&mut self, now: u64, code: u16) {
        if self.conn == Conn::Idle {
            return;
        }
        self.connection_lost(now, LostCause::Closed(code));
    }

    // ----- time -----------------------------------------------------------------------------

    /// The earliest time at which [`handle_timeout`](Engine::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    /// Expires the requests whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: u64) {
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

    fn check_alive(&self) -> Result<(), Error> {
        if self.destroyed {
            Err(Error::Destroyed)
        } else {
            Ok(())
        }
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
        let msg_id = self.next_msg_id();
        let binary = payload.is_binary();
        let bytes = payload.as_bytes();
        let room = match kind {
            PushKind::OutsideRoom => String::new(),
            _ => self.room.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        };
        let deadline = now.saturating_add(self.config.peer_message_timeout_ms);
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
        let req = self.next_req;
        // Request ids wrap; 0 is never used.
        self.next_req = self.next_req.checked_add(1).unwrap_or(1);
        let bytes = encode_client(&frame(req));
        let unsent = match self.conn {
            Conn::Open => {
                self.transmits.push_back(Transmit::Send(bytes));
                None
            }
            Conn::Connecting => Some(bytes),
            Conn::Idle => {
                self.conn = Conn::Connecting;
                self.close_error = None;
                self.transmits.push_back(Transmit::Connect {
                    url: self.url.clone(),
                });
                self.set_state(ConnectionState::Connecting);
                Some(bytes)
            }
        };
        self.pending.push(Pending {
            req,
            call,
            kind,
            deadline,
            unsent,
        });
    }

    fn on_frame(&mut self, now: u64, frame: ServerFrame<'_>) {
        match frame {
            ServerFrame::Reply { req, code, data } => {
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
                self.last_seq = seq;
                let payload = if push.binary {
                    Payload::Binary(push.payload.to_vec())
                } else {
                    Payload::Text(String::from_utf8_lossy(push.payload).into_owned())
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
                let (room, user_id, extra_info) =
                    (room.to_owned(), user.to_owned(), extra.to_owned());
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
        }
    }

    fn on_notice(&mut self, code: Code, room: &str) {
        match code {
            Code::RtmDuplicateLogin => self.login = Login::None,
            Code::DuplicateLogin => self.drop_room(room),
            Code::KickedOut if room.is_empty() => self.login = Login::None,
            Code::KickedOut => self.drop_room(room),
            Code::UnknownApp => self.close_error = Some(Error::Code(code)),
            // The close that follows says the rest; a later version reconnects.
            Code::ServerShutdown => {
                self.close_error = Some(Error::NotConnected);
                return;
            }
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
        }
    }

    /// Settles a pending request: state changes, completion, and the events the call implies.
    fn finish(&mut self, now: u64, p: Pending, result: Result<(), Error>, data: &[u8]) {
        let err = result.err();
        let value = match p.kind {
            ReqKind::Login { user, started } => {
                if self.login == Login::Pending(user.clone()) {
                    self.login = match err {
                        None => Login::In(user.clone()),
                        Some(_) => Login::None,
                    };
                }
                self.events.push_back(Event::LoginResult {
                    user_id: user,
                    error: err,
                    elapsed_ms: now.saturating_sub(started),
                });
                Value::None
            }
            ReqKind::Join { room } => {
                if let Some(r) = self.room.as_mut().filter(|r| r.id == room) {
                    match err {
                        None => r.joined = true,
                        Some(_) => self.room = None,
                    }
                }
                Value::None
            }
            ReqKind::Logout | ReqKind::Leave => Value::None,
            ReqKind::SetServerParams { signature, url } => {
                if err.is_none() {
                    self.server_params = Some((signature, url));
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

    /// The connection ended without the engine asking. Every pending call fails, the session
    /// (login and room) is gone. Reconnecting, driven by a policy on [`LostCause`], belongs
    /// here in a later version; for now the engine reports DISCONNECTED.
    fn connection_lost(&mut self, now: u64, _cause: LostCause) {
        self.conn = Conn::Idle;
        let err = self.close_error.take().unwrap_or(Error::NotConnected);
        self.fail_all_pending(now, err);
        self.login = Login::None;
        self.room = None;
        self.set_state(ConnectionState::Disconnected);
    }

    /// Closes the connection once nothing needs it: not logged in, in no room, no request
    /// waiting.
    fn close_if_idle(&mut self) {
        if self.conn != Conn::Idle
            && self.login == Login::None
            && self.room.is_none()
            && self.pending.is_empty()
        {
            self.close(CLOSE_NORMAL);
        }
    }

    fn close(&mut self, code: u16) {
        if self.conn != Conn::Idle {
            self.conn = Conn::Idle;
            self.transmits.push_back(Transmit::Close { code });
            self.set_state(ConnectionState::Disconnected);
        }
    }
}
