//! One task per WebSocket connection: decodes requests, answers them, and writes what the hub
//! queues for it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{
    decode_client, encode_push_frame, encode_server, peek_req, ClientFrame, PushKind, ServerFrame,
};
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::token::{self, TokenError};
use rtm_protocol::MAX_MESSAGE_BYTES;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::hub::{
    push_body, App, Control, Hub, LeaveReason, Outbound, RateLimiter, SessionHandle, SessionQueues,
};
use futures::StreamExt;

use crate::relay::{PendingQueue, Relays, SessionRelay};

/// Close codes the server uses.
pub mod close {
    /// The client sent something undecodable (or a text frame).
    pub const PROTOCOL_ERROR: u16 = 4000;
    /// No login or join within the auth timeout.
    pub const AUTH_TIMEOUT: u16 = 4001;
    /// The server ended the session (taken over elsewhere, nothing left; or too slow).
    pub const SESSION_ENDED: u16 = 4002;
    /// The server is shutting down.
    pub const SHUTDOWN: u16 = 4003;
    /// The `appId` of the connection URL is unknown.
    pub const UNKNOWN_APP: u16 = 4004;
    /// A message over the size limit (the standard WebSocket code).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// The longest `extra` of a Join, in bytes.
const MAX_EXTRA_BYTES: usize = 200;

/// What a session task needs from the server.
#[derive(Clone)]
pub(crate) struct SessionEnv {
    pub(crate) hub: Hub,
    pub(crate) auth_timeout: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Held while the task runs, so the server can wait for every session to end.
    pub(crate) alive: mpsc::Sender<()>,
    /// The business-server relays of every app.
    pub(crate) relays: Relays,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn reply(req: u32, code: Code, data: &[u8]) -> Bytes {
    Bytes::from(encode_server(&ServerFrame::Reply {
        req,
        code: code.as_u16(),
        data,
    }))
}

fn notice(code: Code, room: &str, detail: &str) -> Bytes {
    Bytes::from(encode_server(&ServerFrame::Notice {
        code: code.as_u16(),
        room,
        detail,
    }))
}

fn token_code(e: TokenError) -> Code {
    match e {
        TokenError::Expired => Code::TokenExpired,
        _ => Code::InvalidToken,
    }
}

/// What the loop does after handling an event.
enum Flow {
    Continue,
    Close(u16, &'static str),
}

/// Runs a connection whose `?appId=` names no hosted app: a notice, then close 4004.
pub(crate) async fn run_unknown_app(mut socket: WebSocket, app_id: String, env: SessionEnv) {
    let _alive = env.alive;
    let detail = format!("unknown app id {app_id:?}");
    tracing::debug!(%app_id, "connection for an unknown app");
    let _ = socket
        .send(Message::Binary(notice(Code::UnknownApp, "", &detail)))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close::UNKNOWN_APP,
            reason: "unknown app id".into(),
        })))
        .await;
}

/// Runs one session until the client leaves, the server ends it, or the server shuts down.
pub(crate) async fn run(socket: WebSocket, app: Arc<App>, env: SessionEnv) {
    let (handle, queues) = env.hub.new_session();
    let app_id = app.config.app_id.clone();
    let mut s = Session {
        app,
        handle,
        user: None,
        logged_in: false,
        rooms: HashSet::new(),
        seq: 0,
        relay: env.relays.session(&app_id),
        relayed: PendingQueue::new(),
        socket,
        messages: env.hub.message_limiter(),
    };
    tracing::debug!(session = s.handle.id, app = %s.app.config.app_id, "session open");
    let end = s.drive(queues, &env).await;
    s.cleanup();
    tracing::debug!(session = s.handle.id, ?end, "session closed");
}

struct Session {
    app: Arc<App>,
    handle: SessionHandle,
    /// The user bound by the first Login or Join.
    user: Option<String>,
    logged_in: bool,
    rooms: HashSet<String>,
    /// The sequence number of the last push written.
    seq: u64,
    /// Where `SendServer` messages go.
    relay: SessionRelay,
    /// Business-server outcomes not yet answered, in the order the messages were sent.
    relayed: PendingQueue,
    socket: WebSocket,
    /// The budget of user and room messages (`Config::max_messages_per_sec`).
    messages: RateLimiter,
}

impl Session {
    async fn drive(&mut self, mut q: SessionQueues, env: &SessionEnv) -> Option<u16> {
        let mut shutdown = env.shutdown.clone();
        if *shutdown.borrow_and_update() {
            return self.close(close::SHUTDOWN, "server shutting down").await;
        }
        let mut deadline = Some(Instant::now() + env.auth_timeout);
        loop {
            let flow = tokio::select! {
                msg = self.socket.recv() => match msg {
                    None | Some(Ok(Message::Close(_))) => return None,
                    Some(Err(e)) => {
                        tracing::debug!(session = self.handle.id, error = %e, "read failed");
                        // An oversize message is the only read error worth telling the peer.
                        if e.to_string().contains("too long") {
                            return self.close(close::MESSAGE_TOO_BIG, "message too big").await;
                        }
                        return None;
                    }
                    Some(Ok(Message::Binary(b))) => self.on_frame(&b).await,
                    Some(Ok(Message::Text(_))) => Flow::Close(close::PROTOCOL_ERROR, "text frames are not allowed"),
                    Some(Ok(_)) => Flow::Continue,
                },
                Some(out) = q.rx.recv() => self.on_outbound(out).await,
                Some(c) = q.ctl.recv() => self.on_control(c).await,
                Some((req, out)) = self.relayed.next(), if !self.relayed.is_empty() => {
                    self.write(reply(req, out.code, &out.body)).await
                }
                () = sleep_until(deadline) => Flow::Close(close::AUTH_TIMEOUT, "no login or join in time"),
                _ = shutdown.changed() => Flow::Close(close::SHUTDOWN, "server shutting down"),
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(code, reason) => return self.close(code, reason).await,
            }
            // Deadline: while neither logged in nor in a room, the connection must bind soon.
            if self.logged_in || !self.rooms.is_empty() {
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(Instant::now() + env.auth_timeout);
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Option<u16> {
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
        Some(code)
    }

    async fn write(&mut self, frame: Bytes) -> Flow {
        match self.socket.send(Message::Binary(frame)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close(close::SESSION_ENDED, "write failed"),
        }
    }

    async fn on_outbound(&mut self, out: Outbound) -> Flow {
        match out {
            Outbound::Frame(f) => self.write(f).await,
            Outbound::Push(body) => {
                self.seq += 1;
                let f = Bytes::from(encode_push_frame(self.seq, &body));
                self.write(f).await
            }
        }
    }

    async fn on_control(&mut self, c: Control) -> Flow {
        match c {
            Control::LoginTaken => {
                if !self.logged_in {
                    return Flow::Continue;
                }
                self.logged_in = false;
                let n = notice(
                    Code::RtmDuplicateLogin,
                    "",
                    "logged in on another connection",
                );
                if let Flow::Close(c, r) = self.write(n).await {
                    return Flow::Close(c, r);
                }
            }
            Control::RoomTaken(room) => {
                if !self.rooms.remove(&room) {
                    return Flow::Continue;
                }
                let n = notice(
                    Code::DuplicateLogin,
                    &room,
                    "joined the room on another connection",
                );
                if let Flow::Close(c, r) = self.write(n).await {
                    return Flow::Close(c, r);
                }
            }
            Control::Overflow => {
                return Flow::Close(close::SESSION_ENDED, "too slow: send queue full");
            }
        }
        if !self.logged_in && self.rooms.is_empty() {
            Flow::Close(close::SESSION_ENDED, "session taken over")
        } else {
            Flow::Continue
        }
    }

    async fn on_frame(&mut self, buf: &[u8]) -> Flow {
        let frame = match decode_client(buf) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(session = self.handle.id, error = %e, "undecodable frame");
                if let Some(req) = peek_req(buf) {
                    let _ = self.write(reply(req, Code::ProtocolError, &[])).await;
                }
                return Flow::Close(close::PROTOCOL_ERROR, "undecodable frame");
            }
        };
        let (req, code, data) = match frame {
            ClientFrame::SetServerParams {
                req,
                signature,
                url,
            } if self.user.is_some() => {
                (req, self.relay.set_params(signature, url).await, Vec::new())
            }
            ClientFrame::SendServer {
                req,
                msg_id,
                binary,
                payload,
            } if self.user.is_some() => {
                if !self.logged_in {
                    (req, Code::NotLogin, Vec::new())
                } else {
                    let user = self.user_id().to_owned();
                    let app_id = &self.app.config.app_id;
                    match self.relay.send(req, app_id, &user, msg_id, binary, payload) {
                        Ok(pending) => {
                            self.relayed.push_back(pending);
                            return Flow::Continue;
                        }
                        Err(code) => (req, code, Vec::new()),
                    }
                }
            }
            frame => self.handle_request(frame),
        };
        self.write(reply(req, code, &data)).await
    }

    /// Answers one request: its id, the result code and the reply data.
    fn handle_request(&mut self, frame: ClientFrame<'_>) -> (u32, Code, Vec<u8>) {
        match frame {
            ClientFrame::Login { req, token, user } => (req, self.login(token, user), Vec::new()),
            ClientFrame::Join {
                req,
                token,
                room,
                user,
                extra,
            } => (req, self.join(token, room, user, extra), Vec::new()),
            ClientFrame::Ping { req } => (req, Code::Ok, Vec::new()),
            f if self.user.is_none() => (req_of(&f), Code::NotLoginSession, Vec::new()),
            ClientFrame::Logout { req } => {
                if !self.logged_in {
                    return (req, Code::NotLoginSession, Vec::new());
                }
                self.logged_in = false;
                self.app.logout(self.user_id(), self.handle.id);
                (req, Code::Ok, Vec::new())
            }
            ClientFrame::Leave { req, room } => {
                if self.rooms.remove(room) {
                    self.app
                        .leave(room, self.user_id(), self.handle.id, LeaveReason::Quit);
                }
                (req, Code::Ok, Vec::new())
            }
            // Answered by `on_frame`, which awaits the relay.
            ClientFrame::SetServerParams { req, .. } | ClientFrame::SendServer { req, .. } => {
                (req, Code::ProtocolError, Vec::new())
            }
            ClientFrame::SendUser {
                req,
                room,
                to,
                binary,
                payload,
                ..
            } => (req, self.send_user(room, to, binary, payload), Vec::new()),
            ClientFrame::SendRoom {
                req,
                room,
                binary,
                payload,
                ..
            } => (req, self.send_room(room, binary, payload), Vec::new()),
            ClientFrame::PeerStatus { req, user } => {
                if !is_valid_id(user) {
                    return (req, Code::InvalidParams, Vec::new());
                }
                let online = self.app.is_logged_in(user);
                (req, Code::Ok, vec![u8::from(online)])
            }
            ClientFrame::UpdateToken { req, room, token } => {
                (req, self.update_token(room, token), Vec::new())
            }
        }
    }

    fn user_id(&self) -> &str {
        self.user.as_deref().unwrap_or_default()
    }

    /// Checks that `user` may be this connection's user: a valid id, and the one already
    /// bound if any.
    fn check_user(&self, user: &str) -> Result<(), Code> {
        if !is_valid_id(user) || self.user.as_deref().is_some_and(|u| u != user) {
            return Err(Code::InvalidParams);
        }
        Ok(())
    }

    fn verify(&self, token: &str, room: &str, user: &str) -> Result<(), Code> {
        let cfg = &self.app.config;
        token::verify(token, &cfg.app_id, &cfg.app_key, room, user, now_unix())
            .map(|_| ())
            .map_err(token_code)
    }

    fn login(&mut self, token: &str, user: &str) -> Code {
        if let Err(c) = self.check_user(user) {
            return c;
        }
        if self.logged_in {
            return Code::AlreadyLogin;
        }
        if let Err(c) = self.verify(token, "", user) {
            return c;
        }
        self.user = Some(user.to_owned());
        self.logged_in = true;
        self.app.login(user, &self.handle);
        tracing::debug!(session = self.handle.id, user, "login");
        Code::Ok
    }

    fn join(&mut self, token: &str, room: &str, user: &str, extra: &str) -> Code {
        if let Err(c) = self.check_user(user) {
            return c;
        }
        if !is_valid_id(room) || extra.len() > MAX_EXTRA_BYTES {
            return Code::InvalidParams;
        }
        if self.rooms.contains(room) {
            return Code::RepeatJoin;
        }
        if let Err(c) = self.verify(token, room, user) {
            return c;
        }
        self.user = Some(user.to_owned());
        self.rooms.insert(room.to_owned());
        let existing = self.app.join(room, user, extra, &self.handle);
        // Describe the members already there after the reply: queue them behind it.
        for f in existing {
            self.handle.deliver(Outbound::Frame(f));
        }
        tracing::debug!(session = self.handle.id, user, room, "join");
        Code::Ok
    }

    fn update_token(&mut self, room: &str, token: &str) -> Code {
        let user = self.user_id().to_owned();
        if room.is_empty() {
            if !self.logged_in {
                return Code::NotLoginSession;
            }
        } else if !self.rooms.contains(room) {
            return Code::NotJoin;
        }
        match self.verify(token, room, &user) {
            Ok(()) => Code::Ok,
            Err(c) => c,
        }
    }

    fn check_payload(payload: &[u8]) -> Result<(), Code> {
        if payload.is_empty() || payload.len() > MAX_MESSAGE_BYTES {
            return Err(Code::InvalidParams);
        }
        Ok(())
    }

    /// A user message: to `to` where it is logged in (`room` empty), else to `to` in `room`.
    /// `OK` once the push is queued for the receiver's session. Checked in this order:
    /// `INVALID_PARAMS` (ids, payload size, a message to oneself), `EXCEED_QPS`, then
    /// `NOT_LOGIN` (outside rooms) or `NOT_JOIN` (the sender is not in `room`), then
    /// `NO_RECEIVER` (`to` is not logged in, or not in `room`).
    fn send_user(&mut self, room: &str, to: &str, binary: bool, payload: &[u8]) -> Code {
        if !is_valid_id(to) || (!room.is_empty() && !is_valid_id(room)) || to == self.user_id() {
            return Code::InvalidParams;
        }
        if let Err(c) = Self::check_payload(payload) {
            return c;
        }
        if !self.messages.try_acquire() {
            return Code::ExceedQps;
        }
        let from = self.user_id();
        let delivered = if room.is_empty() {
            if !self.logged_in {
                return Code::NotLoginSession;
            }
            let body = push_body(PushKind::OutsideRoom, "", from, binary, payload);
            self.app.push_to_login(to, body)
        } else {
            if !self.rooms.contains(room) {
                return Code::NotJoin;
            }
            let body = push_body(PushKind::RoomUser, room, from, binary, payload);
            self.app.push_to_members(room, [to], &body) > 0
        };
        if delivered {
            Code::Ok
        } else {
            Code::NoReceiver
        }
    }

    /// A room message to every other member of `room` (`OK` also when there is none).
    /// `INVALID_PARAMS`, `EXCEED_QPS`, `NOT_JOIN` as for [`send_user`](Self::send_user).
    fn send_room(&mut self, room: &str, binary: bool, payload: &[u8]) -> Code {
        if !is_valid_id(room) {
            return Code::InvalidParams;
        }
        if let Err(c) = Self::check_payload(payload) {
            return c;
        }
        if !self.messages.try_acquire() {
            return Code::ExceedQps;
        }
        if !self.rooms.contains(room) {
            return Code::NotJoin;
        }
        let from = self.user_id();
        let body = push_body(PushKind::Room, room, from, binary, payload);
        self.app.push_to_room(room, Some(from), &body);
        Code::Ok
    }

    /// Removes this session from the hub.
    fn cleanup(&mut self) {
        let Some(user) = self.user.clone() else {
            return;
        };
        for room in self.rooms.drain() {
            self.app
                .leave(&room, &user, self.handle.id, LeaveReason::Dropped);
        }
        if self.logged_in {
            self.logged_in = false;
            self.app.logout(&user, self.handle.id);
        }
    }
}

fn req_of(f: &ClientFrame<'_>) -> u32 {
    match *f {
        ClientFrame::Login { req, .. }
        | ClientFrame::Logout { req }
        | ClientFrame::Join { req, .. }
        | ClientFrame::Leave { req, .. }
        | ClientFrame::SetServerParams { req, .. }
        | ClientFrame::SendServer { req, .. }
        | ClientFrame::SendUser { req, .. }
        | ClientFrame::SendRoom { req, .. }
        | ClientFrame::PeerStatus { req, .. }
        | ClientFrame::Ping { req }
        | ClientFrame::UpdateToken { req, .. } => req,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
