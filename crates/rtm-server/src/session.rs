//! One task per session: decodes requests, answers them, and writes what the hub queues for
//! it.
//!
//! A session outlives its connection (PROTOCOL.md §9): when the connection of a session that
//! is logged in or in a room is lost, the task keeps running without one for the resume
//! window, still registered in the hub, leaving pushes in its bounded queue. A new connection
//! whose first request is `Resume` with the session's key hands its socket to this task
//! ([`Takeover`]), which replays the pushes the client missed and carries on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rtm_protocol::code::Code;
use rtm_protocol::frame::{
    decode_client, decode_server, encode_members, encode_push_frame, encode_server, peek_req,
    BatchWriter, ClientFrame, PushKind, ServerFrame,
};
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::token::{self, TokenError};
use rtm_protocol::MAX_MESSAGE_BYTES;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Config;
use crate::hub::{
    push_body, App, Body, Control, Hub, LeaveReason, Outbound, RateLimiter, SessionHandle,
};
use crate::inbox::{Inbox, Received};
use crate::relay::{PendingQueue, Relays, SessionRelay};
use crate::resume::{ReplayRing, ReplyCache, Resumes, SessionKey, Takeover};

/// Close codes the server uses.
pub mod close {
    /// The client sent something undecodable (or a text frame).
    pub const PROTOCOL_ERROR: u16 = 4000;
    /// No login or join within the auth timeout.
    pub const AUTH_TIMEOUT: u16 = 4001;
    /// The server ended the session (taken over elsewhere and nothing left; resumed on
    /// another connection; or too slow: its outbound queue overflowed).
    pub const SESSION_ENDED: u16 = 4002;
    /// The server is shutting down.
    pub const SHUTDOWN: u16 = 4003;
    /// The `appId` of the connection URL is unknown.
    pub const UNKNOWN_APP: u16 = 4004;
    /// Nothing arrived from the client for 3 heartbeat intervals; the session is kept for
    /// a resume.
    pub const IDLE: u16 = 4005;
    /// A message over the size limit (the standard WebSocket code).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// The longest `extra` of a Join, in bytes.
const MAX_EXTRA_BYTES: usize = 200;

/// A write that takes longer than this means the connection is dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new connection waits for the session it resumes to take it over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(15);

/// A deadline far enough away to mean "none".
const ONE_DAY: Duration = Duration::from_secs(86_400);

/// At most this many notices wait for a session without a connection.
const MAX_HELD_NOTICES: usize = 16;

/// At most this many queued frames are written with one flush.
pub(crate) const BATCH_FRAMES: usize = 64;
/// A batch is flushed once it holds this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// The first allocation of a Batch message (it grows as needed): a full batch of small
/// pushes (64 of ~120 bytes) fits.
const BATCH_START_BYTES: usize = 8 * 1024;

/// The session limits of [`Config`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// The heartbeat interval announced to clients; 3 of them without a frame close the
    /// connection.
    pub(crate) heartbeat: Duration,
    /// How long a session without a connection is kept.
    pub(crate) resume_window: Duration,
    /// The replay ring's bounds.
    pub(crate) ring_items: usize,
    pub(crate) ring_bytes: usize,
}

impl SessionLimits {
    pub(crate) fn from_config(c: &Config) -> Self {
        SessionLimits {
            heartbeat: Duration::from_millis(c.heartbeat_ms.max(1)),
            resume_window: Duration::from_millis(c.resume_window_ms),
            ring_items: c.replay_ring,
            ring_bytes: c.replay_ring_bytes,
        }
    }
}

/// What a session task needs from the server.
#[derive(Clone)]
pub(crate) struct SessionEnv {
    pub(crate) hub: Hub,
    pub(crate) auth_timeout: Duration,
    /// Held while the task runs, so the server can wait for every session to end.
    pub(crate) alive: mpsc::Sender<()>,
    /// The business-server relays of every app.
    pub(crate) relays: Relays,
    /// The sessions that can be resumed.
    pub(crate) resumes: Resumes,
    pub(crate) limits: SessionLimits,
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
    /// Close the connection with this code and end the session.
    Close(u16, &'static str),
    /// The connection is gone (or is closed with this code): keep the session for a resume
    /// when it has a user, else end it.
    Lost(Option<(u16, &'static str)>),
    /// End the session (it has no connection to close).
    End,
    /// The server is shutting down: finish what is in progress, then close.
    ShutDown,
    /// The session took over a new connection.
    Resumed,
    /// A resume this session refuses: it ends, then gives the connection back.
    Refuse(Box<Takeover>),
    /// This connection now belongs to another session: end this one quietly.
    Handed,
}

/// How a session ended.
enum Exit {
    Ended,
    Refused(Box<Takeover>),
    Handed,
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

/// Runs one session until the client leaves, the server ends it, its resume window expires,
/// or the server shuts down.
///
/// The session is built before the returned future, which therefore holds it once (an async
/// fn would also keep its arguments, the connection among them, beside it): this future is
/// resident memory for every connection.
pub(crate) fn run(
    socket: WebSocket,
    batch: bool,
    app: Arc<App>,
    env: SessionEnv,
) -> impl Future<Output = ()> + Send + 'static {
    let open = app.metrics().connection();
    let handle = env.hub.new_session(&app);
    let key: SessionKey = rand::random();
    let app_id = app.config.app_id.clone();
    env.resumes.register(key, &app_id, handle.inbox().clone());
    let limits = env.limits;
    let mut s = Session {
        app,
        handle,
        key,
        resumes: env.resumes.clone(),
        limits,
        user: None,
        logged_in: false,
        rooms: HashSet::new(),
        seq: 0,
        relay: env.relays.session(&app_id),
        relayed: PendingQueue::new(),
        socket: Some(socket),
        batch,
        messages: env.hub.message_limiter(),
        ring: ReplayRing::new(limits.ring_items, limits.ring_bytes),
        replies: ReplyCache::new(),
        in_progress: HashMap::new(),
        epoch: 0,
        held: Vec::new(),
        relogin: false,
        rejoin: HashSet::new(),
        lost_login: false,
        lost_rooms: HashSet::new(),
        last_rx: Instant::now(),
        last_ping: ping_base(Instant::now(), limits.heartbeat),
        ping_due: false,
        members_after_reply: Vec::new(),
        pending: VecDeque::new(),
    };
    tracing::debug!(session = s.handle.id, app = %app_id, "session open");
    let welcome = Bytes::from(encode_server(&ServerFrame::Welcome {
        session: &key,
        heartbeat_ms: u32::try_from(limits.heartbeat.as_millis()).unwrap_or(u32::MAX),
        resume_window_ms: u32::try_from(limits.resume_window.as_millis()).unwrap_or(u32::MAX),
    }));
    let SessionEnv {
        alive,
        auth_timeout,
        ..
    } = env;
    async move {
        let (_open, _alive) = (open, alive);
        let exit = match s.write(welcome).await {
            Flow::Continue => s.drive(auth_timeout).await,
            _ => Exit::Ended,
        };
        s.end(exit);
    }
}

impl Session {
    /// Unregisters the ended session and gives back connections that asked for it.
    fn end(&mut self, exit: Exit) {
        self.resumes.unregister(&self.key);
        let left = self.handle.inbox().close();
        if !matches!(exit, Exit::Handed) {
            self.cleanup();
        }
        // Connections that asked for this session get it back (they go on as new sessions).
        if let Exit::Refused(t) = exit {
            let _ = t.back.send(t.socket);
        }
        for c in left {
            if let Control::Takeover(t) = c {
                let _ = t.back.send(t.socket);
            }
        }
        tracing::debug!(session = self.handle.id, "session ended");
    }
}

/// A session's state. The fields a turn that writes pushes touches come first, together
/// (`repr(C)` keeps the order): such turns are most turns, and a session's state is out of
/// the cache by its next one.
#[repr(C)]
struct Session {
    /// The connection; `None` while the session waits for a resume.
    socket: Option<WebSocket>,
    /// Frames taken from the inbox and not yet written.
    pending: VecDeque<Outbound>,
    /// The pushes written last, for a resume.
    ring: ReplayRing,
    /// The sequence number of the last push written.
    seq: u64,
    /// When the last frame arrived.
    last_rx: Instant,
    /// When the last WebSocket ping went out (or was queued to go with the next pushes), or
    /// the session opened, plus a random delay ([`ping_base`]): the next ping falls due a
    /// heartbeat after this or after the last frame from the client, whichever is later.
    last_ping: Instant,
    limits: SessionLimits,
    /// Business-server outcomes not yet answered, in the order the messages were sent.
    relayed: PendingQueue,
    /// The connection's client reads Batch messages (`&batch=1`).
    batch: bool,
    /// A WebSocket ping goes out in the next write of pushes.
    ping_due: bool,
    app: Arc<App>,
    handle: SessionHandle,
    /// The key of this session's Welcome.
    key: SessionKey,
    resumes: Resumes,
    /// The user bound by the first Login or Join.
    user: Option<String>,
    logged_in: bool,
    rooms: HashSet<String>,
    /// Where `SendServer` messages go.
    relay: SessionRelay,
    /// The budget of user and room messages (`Config::max_messages_per_sec`).
    messages: RateLimiter,
    /// The replies written last, for requests re-sent after a resume.
    replies: ReplyCache,
    /// Requests still being executed (business-server POSTs), with the epoch they arrived in.
    in_progress: HashMap<u32, u32>,
    /// Which connection of the session this is: +1 at every resume.
    epoch: u32,
    /// Notices for the client while it has no connection.
    held: Vec<Bytes>,
    /// After a resume: the first Login may re-confirm the login.
    relogin: bool,
    /// After a resume: a Join of these rooms re-confirms the membership.
    rejoin: HashSet<String>,
    /// The login was taken by another connection (since the last successful Login).
    lost_login: bool,
    /// These memberships were taken by another connection (since their last Join).
    lost_rooms: HashSet<String>,
    /// Member frames of a first Join, written right after its reply.
    members_after_reply: Vec<Bytes>,
}

/// A frame to write: encoded, or a push to number.
enum Out {
    /// A complete frame.
    Frame(Bytes),
    /// A push: its `seq` and its body.
    Push(u64, Body),
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Frame(f) => f.len(),
            Out::Push(_, body) => body.len() + 4,
        }
    }

    fn encode(&self) -> Bytes {
        match self {
            Out::Frame(f) => f.clone(),
            Out::Push(seq, body) => Bytes::from(encode_push_frame(*seq, body)),
        }
    }

    fn add_to(&self, b: &mut BatchWriter) {
        match self {
            Out::Frame(f) => b.frame(f),
            Out::Push(seq, body) => b.push(*seq, body),
        }
    }
}

/// Writes frames taken from `frames`, at most [`BATCH_FRAMES`] or until [`BATCH_BYTES`], and
/// flushes them with one write: each frame as a message of its own, or, for a client that
/// reads batches (`batch`), every frame of the write in one Batch message when there is more
/// than one. Pushes are kept in `ring` (when given) before the write: a write to a dead
/// connection can still succeed. Returns how many frames were written.
async fn write_some(
    socket: &mut WebSocket,
    batch: bool,
    frames: &mut impl Iterator<Item = Out>,
    mut ring: Option<&mut ReplayRing>,
) -> Result<usize, axum::Error> {
    let (mut n, mut bytes) = (0, 0);
    let (mut first, mut group) = (None::<Out>, None::<BatchWriter>);
    for out in frames.by_ref() {
        n += 1;
        bytes += out.len();
        if !batch {
            let m = out.encode();
            keep(&mut ring, out);
            socket.feed(Message::Binary(m)).await?;
        } else {
            match (group.as_mut(), first.take()) {
                (None, None) => first = Some(out),
                (Some(g), _) => {
                    out.add_to(g);
                    keep(&mut ring, out);
                }
                (None, Some(f)) => {
                    let mut g = BatchWriter::with_capacity(BATCH_START_BYTES);
                    f.add_to(&mut g);
                    out.add_to(&mut g);
                    keep(&mut ring, f);
                    keep(&mut ring, out);
                    group = Some(g);
                }
            }
        }
        if n >= BATCH_FRAMES || bytes >= BATCH_BYTES {
            break;
        }
    }
    if let Some(f) = first {
        let m = f.encode();
        keep(&mut ring, f);
        socket.feed(Message::Binary(m)).await?;
    }
    if let Some(g) = group {
        socket.feed(Message::Binary(g.finish().into())).await?;
    }
    if n > 0 {
        socket.flush().await?;
    }
    Ok(n)
}

/// A write to the connection that fails after [`WRITE_TIMEOUT`] (the connection is dead).
/// The timer is armed only when the write does not complete at once, so the usual write,
/// which the socket takes at once, costs no timer entry.
fn timed<F>(write: F) -> Timed<F> {
    Timed { write, timer: None }
}

pin_project_lite::pin_project! {
    /// See [`timed`]: `None` when the write failed or timed out.
    struct Timed<F> {
        #[pin]
        write: F,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future<Output = Result<T, axum::Error>>, T> Future for Timed<F> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        if let Poll::Ready(r) = this.write.poll(cx) {
            return Poll::Ready(r.ok());
        }
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        timer.as_mut().poll(cx).map(|()| None)
    }
}

/// Keeps a written push in the replay ring, when there is one.
fn keep(ring: &mut Option<&mut ReplayRing>, out: Out) {
    if let (Some(ring), Out::Push(seq, body)) = (ring, out) {
        ring.push(seq, body);
    }
}

/// Where the count towards the next ping starts: `now` plus a random delay of up to half a
/// `heartbeat`. Connections opened together (a server restart, a load test) would otherwise
/// ping together, every heartbeat, as one burst of thousands of writes; spread, the pings
/// cost the same but a burst of pushes no longer meets them all at once.
fn ping_base(now: Instant, heartbeat: Duration) -> Instant {
    now + heartbeat.mul_f64(rand::random::<f64>() / 2.0)
}

/// What woke a session besides its inbox.
enum Side {
    /// The connection's next message (`None`: the connection ended).
    Message(Option<Result<Message, axum::Error>>),
    /// The timer fired.
    Timer,
}

/// The timer's firing or the connection's next message. Both are polled with the session's
/// inbox as their waker, and only once it was woken by either (or either may have more):
/// a turn that only writes pushes does not touch the connection's read state (a read attempt
/// zero-fills the read buffer) or the timer.
async fn side_event(
    socket: &mut Option<WebSocket>,
    mut timer: Pin<&mut tokio::time::Sleep>,
    inbox: &Inbox,
    side: &Waker,
) -> Side {
    std::future::poll_fn(|_| {
        if !inbox.take_side_wake() {
            return Poll::Pending;
        }
        let mut cx = Context::from_waker(side);
        let event = if timer.as_mut().poll(&mut cx).is_ready() {
            Poll::Ready(Side::Timer)
        } else if let Some(s) = socket.as_mut() {
            s.poll_next_unpin(&mut cx).map(Side::Message)
        } else {
            Poll::Pending
        };
        if event.is_ready() {
            inbox.wake_side_later();
        }
        event
    })
    .await
}

/// The next thing from the session's inbox: a control event, or (while `pending` is wanted)
/// frames to write, which are ready at once while some are still pending.
async fn next_from(inbox: &Inbox, pending: Option<&mut VecDeque<Outbound>>) -> Received {
    let mut pending = pending;
    std::future::poll_fn(|cx| match pending.as_deref_mut() {
        Some(p) if !p.is_empty() => Poll::Ready(Received::Frames),
        p => inbox.poll_recv(cx, p),
    })
    .await
}

impl Session {
    async fn drive(&mut self, auth_timeout: Duration) -> Exit {
        let inbox = self.handle.inbox().clone();
        // The connection and the timer are polled on the first turn, and then when they wake.
        let side = Waker::from(inbox.clone());
        inbox.wake_side_later();
        let mut auth_deadline = Some(Instant::now() + auth_timeout);
        let mut window: Option<Instant> = None;
        // One timer for every deadline (auth, idle, ping, resume window), set to the earliest.
        // It is moved earlier at once but never later: firing early only means looking again.
        let timer = tokio::time::sleep_until(Instant::now() + auth_timeout);
        tokio::pin!(timer);
        let mut fired = false;
        loop {
            let connected = self.socket.is_some();
            let idle_deadline = self.last_rx + self.limits.heartbeat * 3;
            // A quiet client is asked for a sign of life with a WebSocket ping, which
            // browsers and other WebSocket stacks answer by themselves.
            let ping_at = self.last_rx.max(self.last_ping) + self.limits.heartbeat;
            let next = if connected {
                auth_deadline
                    .map_or(ping_at, |a| a.min(ping_at))
                    .min(idle_deadline)
            } else {
                window.unwrap_or_else(|| Instant::now() + ONE_DAY)
            };
            if fired || next < timer.deadline() {
                timer.as_mut().reset(next);
                fired = false;
            }
            let mut wrote = false;
            // Every handler but the writing of queued frames runs boxed (allocated only while
            // it runs), so the session's future, resident for every connection, stays small.
            let flow = tokio::select! {
                got = next_from(&inbox, connected.then_some(&mut self.pending)) => match got {
                    Received::Frames => {
                        wrote = true;
                        self.on_outbound().await
                    }
                    Received::Control(c) => Box::pin(self.on_control(c)).await,
                },
                Some((req, out)) = self.relayed.next(), if !self.relayed.is_empty() => {
                    Box::pin(self.on_relayed(req, out.code, &out.body)).await
                }
                event = side_event(&mut self.socket, timer.as_mut(), &inbox, &side) => match event {
                    Side::Message(msg) => Box::pin(self.on_message(msg)).await,
                    Side::Timer => {
                        fired = true;
                        let now = Instant::now();
                        match window {
                            _ if connected && auth_deadline.is_some_and(|d| d <= now) => {
                                Flow::Close(close::AUTH_TIMEOUT, "no login or join in time")
                            }
                            _ if connected && idle_deadline <= now => {
                                Flow::Lost(Some((close::IDLE, "no heartbeat")))
                            }
                            _ if connected && ping_at <= now => {
                                self.last_ping = ping_base(now, self.limits.heartbeat);
                                if self.pending.is_empty() {
                                    self.write_message(Message::Ping(Bytes::new())).await
                                } else {
                                    // Pushes are written next: the ping goes in the same write.
                                    self.ping_due = true;
                                    Flow::Continue
                                }
                            }
                            Some(w) if !connected && w <= now => {
                                tracing::debug!(session = self.handle.id, "resume window expired");
                                Flow::End
                            }
                            _ => Flow::Continue,
                        }
                    }
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(code, reason) => {
                    Box::pin(self.close(code, reason)).await;
                    return Exit::Ended;
                }
                Flow::End => return Exit::Ended,
                Flow::ShutDown => {
                    Box::pin(self.shut_down()).await;
                    return Exit::Ended;
                }
                Flow::Refuse(t) => return Exit::Refused(t),
                Flow::Handed => return Exit::Handed,
                Flow::Resumed => {
                    window = None;
                    auth_deadline = None;
                }
                Flow::Lost(close) => {
                    if let Some((code, reason)) = close {
                        Box::pin(self.close(code, reason)).await;
                    }
                    self.socket = None;
                    if self.user.is_none() || self.limits.resume_window.is_zero() {
                        return Exit::Ended;
                    }
                    tracing::debug!(session = self.handle.id, "connection lost; kept for resume");
                    window = Some(Instant::now() + self.limits.resume_window);
                }
            }
            // While neither logged in nor in a room, a connection must bind soon (writing
            // pushes changes neither).
            if !wrote && self.socket.is_some() {
                if self.logged_in || !self.rooms.is_empty() {
                    auth_deadline = None;
                } else if auth_deadline.is_none() {
                    auth_deadline = Some(Instant::now() + auth_timeout);
                }
            }
        }
    }

    /// Closes the connection (if any) with `code`.
    async fn close(&mut self, code: u16, reason: &'static str) {
        if let Some(mut s) = self.socket.take() {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = timed(s.send(frame)).await;
        }
    }

    /// Writes a frame; a no-op without a connection.
    async fn write(&mut self, frame: Bytes) -> Flow {
        self.write_message(Message::Binary(frame)).await
    }

    async fn write_message(&mut self, m: Message) -> Flow {
        let Some(s) = self.socket.as_mut() else {
            return Flow::Continue;
        };
        match timed(s.send(m)).await {
            Some(()) => Flow::Continue,
            None => Flow::Lost(None),
        }
    }

    /// Writes the reply to `req`, remembering it for a re-sent request.
    async fn answer(&mut self, req: u32, code: Code, data: &[u8]) -> Flow {
        let r = reply(req, code, data);
        self.replies.insert(req, self.epoch, r.clone());
        self.write(r).await
    }

    /// Tells the client something about its session, now or after a resume.
    async fn tell(&mut self, frame: Bytes) -> Flow {
        if self.socket.is_some() {
            self.write(frame).await
        } else {
            if self.held.len() < MAX_HELD_NOTICES {
                self.held.push(frame);
            }
            Flow::Continue
        }
    }

    async fn on_message(&mut self, msg: Option<Result<Message, axum::Error>>) -> Flow {
        match msg {
            None => Flow::Lost(None),
            Some(Err(e)) => {
                tracing::debug!(session = self.handle.id, error = %e, "read failed");
                // An oversize message is the only read error worth telling the peer.
                if e.to_string().contains("too long") {
                    return Flow::Close(close::MESSAGE_TOO_BIG, "message too big");
                }
                Flow::Lost(None)
            }
            // A normal close ends the session; any other keeps it for a resume.
            Some(Ok(Message::Close(c))) => match c.map(|c| c.code) {
                None | Some(1000) | Some(1001) => Flow::End,
                Some(_) => Flow::Lost(None),
            },
            Some(Ok(Message::Binary(b))) => {
                self.last_rx = Instant::now();
                self.on_frame(&b).await
            }
            Some(Ok(Message::Text(_))) => {
                Flow::Close(close::PROTOCOL_ERROR, "text frames are not allowed")
            }
            Some(Ok(_)) => {
                self.last_rx = Instant::now();
                Flow::Continue
            }
        }
    }

    /// Writes pending frames (up to [`BATCH_FRAMES`] frames or [`BATCH_BYTES`]) with one
    /// flush: one write to the socket per batch, not per frame.
    async fn on_outbound(&mut self) -> Flow {
        let Some(socket) = self.socket.as_mut() else {
            return Flow::Continue;
        };
        let (seq, pending) = (&mut self.seq, &mut self.pending);
        let mut frames = std::iter::from_fn(|| {
            pending.pop_front().map(|out| match out {
                Outbound::Frame(f) => Out::Frame(*f),
                Outbound::Push(body) => {
                    *seq += 1;
                    Out::Push(*seq, body)
                }
            })
        });
        let (ping, ring) = (std::mem::take(&mut self.ping_due), &mut self.ring);
        let batch = async {
            if ping {
                // Flushed with the frames below: there is at least one (they are pending).
                socket.feed(Message::Ping(Bytes::new())).await?;
            }
            write_some(socket, self.batch, &mut frames, Some(ring)).await
        };
        let written = timed(batch).await;
        // After a burst, an emptied buffer is not kept at its largest.
        if self.pending.is_empty() && self.pending.capacity() > BATCH_FRAMES * 4 {
            self.pending = VecDeque::new();
        }
        match written {
            Some(_) => Flow::Continue,
            None => Flow::Lost(None),
        }
    }

    /// Writes `frames` in order with one flush per [`BATCH_FRAMES`] frames or
    /// [`BATCH_BYTES`]; a no-op without a connection.
    async fn write_all(&mut self, frames: impl IntoIterator<Item = Out>) -> Flow {
        let Some(socket) = self.socket.as_mut() else {
            return Flow::Continue;
        };
        let mut frames = frames.into_iter();
        loop {
            match timed(write_some(socket, self.batch, &mut frames, None)).await {
                Some(0) => return Flow::Continue,
                Some(_) => {}
                None => return Flow::Lost(None),
            }
        }
    }

    async fn on_relayed(&mut self, req: u32, code: Code, body: &[u8]) -> Flow {
        let epoch = self.in_progress.remove(&req).unwrap_or(self.epoch);
        let r = reply(req, code, body);
        self.replies.insert(req, epoch, r.clone());
        self.write(r).await
    }

    async fn on_control(&mut self, c: Control) -> Flow {
        let connected = self.socket.is_some();
        match c {
            Control::LoginTaken => {
                if !self.logged_in {
                    return Flow::Continue;
                }
                self.logged_in = false;
                self.lost_login = true;
                let n = notice(
                    Code::RtmDuplicateLogin,
                    "",
                    "logged in on another connection",
                );
                if let f @ Flow::Lost(_) = self.tell(n).await {
                    return f;
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
                self.lost_rooms.insert(room);
                if let f @ Flow::Lost(_) = self.tell(n).await {
                    return f;
                }
            }
            Control::Takeover(t) => return self.on_takeover(t).await,
            Control::Shutdown => return Flow::ShutDown,
            Control::Overflow => {
                tracing::debug!(session = self.handle.id, "send queue full");
                self.app.metrics().slow_consumer();
                return if connected {
                    Flow::Close(close::SESSION_ENDED, "too slow: send queue full")
                } else {
                    Flow::End
                };
            }
        }
        if self.logged_in || !self.rooms.is_empty() {
            Flow::Continue
        } else if connected {
            Flow::Close(close::SESSION_ENDED, "session taken over")
        } else {
            Flow::End
        }
    }

    /// A new connection asks to become this session.
    async fn on_takeover(&mut self, t: Box<Takeover>) -> Flow {
        let replay = match self.user {
            // Broadcasts it missed are gone from a room log: nothing to resume.
            Some(_) if self.handle.inbox().lost_entries() => None,
            Some(_) => self.ring.after(t.last_seq, self.seq),
            None => None,
        };
        let Some(replay) = replay else {
            tracing::debug!(
                session = self.handle.id,
                last_seq = t.last_seq,
                seq = self.seq,
                "resume refused"
            );
            return Flow::Refuse(t);
        };
        // A previous connection that still looks alive is half-open: the client left it.
        self.close(close::SESSION_ENDED, "resumed on another connection")
            .await;
        self.socket = Some(t.socket);
        self.handle.inbox().wake_side_later();
        self.batch = t.batch;
        drop(t.back);
        self.epoch += 1;
        self.last_rx = Instant::now();
        self.relogin = self.logged_in || self.lost_login;
        self.rejoin = self.rooms.union(&self.lost_rooms).cloned().collect();
        tracing::debug!(
            session = self.handle.id,
            replay = replay.len(),
            "session resumed"
        );
        let replay = replay.into_iter().map(|(seq, body)| Out::Push(seq, body));
        // The held notices are dropped only once written.
        let frames = std::iter::once(Out::Frame(reply(t.req, Code::Ok, &[])))
            .chain(replay)
            .chain(self.held.clone().into_iter().map(Out::Frame));
        if let f @ Flow::Lost(_) = self.write_all(frames).await {
            return f;
        }
        self.held.clear();
        Flow::Resumed
    }

    /// `Resume` on this (new) connection: hand it to the session with that key.
    async fn resume(&mut self, req: u32, key: &[u8], last_seq: u64) -> Flow {
        let target = match self.user {
            None if key != self.key => self.resumes.find(key, &self.app.config.app_id),
            _ => None,
        };
        let Some(inbox) = target else {
            return self.answer(req, Code::RecoveryFailed, &[]).await;
        };
        let Some(socket) = self.socket.take() else {
            return Flow::Continue;
        };
        let (back, back_rx) = oneshot::channel();
        let takeover = Box::new(Takeover {
            socket,
            batch: self.batch,
            req,
            last_seq,
            back,
        });
        let handed = match inbox.take_over(takeover) {
            // The session has ended: the connection comes straight back.
            Err(t) => Ok(Some(t.socket)),
            Ok(()) => tokio::time::timeout(TAKEOVER_TIMEOUT, back_rx)
                .await
                .map(Result::ok),
        };
        match handed {
            Ok(Some(socket)) => {
                self.socket = Some(socket);
                self.handle.inbox().wake_side_later();
                self.last_rx = Instant::now();
                self.answer(req, Code::RecoveryFailed, &[]).await
            }
            Ok(None) => Flow::Handed,
            // The connection is stuck with a session that does not answer.
            Err(_) => Flow::End,
        }
    }

    /// Shutdown: business-server messages in flight finish (bounded) and are answered, then
    /// the client is told to reconnect and the connection closes with 4003.
    async fn shut_down(&mut self) {
        if self.socket.is_none() {
            return;
        }
        let limit =
            Duration::from_millis(self.app.config.callback_timeout_ms) + Duration::from_secs(1);
        let deadline = Instant::now() + limit;
        while !self.relayed.is_empty() {
            match tokio::time::timeout_at(deadline, self.relayed.next()).await {
                Ok(Some((req, out))) => {
                    if let Flow::Lost(_) = self.on_relayed(req, out.code, &out.body).await {
                        return;
                    }
                }
                _ => break,
            }
        }
        let unanswered: Vec<u32> = self.in_progress.keys().copied().collect();
        for req in unanswered {
            self.in_progress.remove(&req);
            if let Flow::Lost(_) = self.answer(req, Code::SendToServerError, &[]).await {
                return;
            }
        }
        let n = notice(Code::ServerShutdown, "", "server shutting down; reconnect");
        if let Flow::Continue = self.write(n).await {
            self.close(close::SHUTDOWN, "server shutting down").await;
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
        let req = frame.req();
        if !matches!(frame, ClientFrame::Ping { .. } | ClientFrame::Resume { .. }) {
            // A request re-sent after a resume is answered once.
            if self.in_progress.get(&req).is_some_and(|&e| e < self.epoch) {
                return Flow::Continue;
            }
            if let Some(r) = self.replies.earlier(req, self.epoch) {
                return self.write(r).await;
            }
        }
        let (code, data) = match frame {
            ClientFrame::Ping { req } => return self.write(reply(req, Code::Ok, &[])).await,
            ClientFrame::Resume {
                req,
                session,
                last_seq,
            } => return self.resume(req, session, last_seq).await,
            ClientFrame::SetServerParams { signature, url, .. } if self.user.is_some() => {
                (self.relay.set_params(signature, url).await, Vec::new())
            }
            ClientFrame::SendServer {
                req,
                msg_id,
                binary,
                payload,
            } if self.user.is_some() => {
                if !self.logged_in {
                    (Code::NotLogin, Vec::new())
                } else {
                    let user = self.user_id().to_owned();
                    let app_id = &self.app.config.app_id;
                    match self.relay.send(req, app_id, &user, msg_id, binary, payload) {
                        Ok(pending) => {
                            self.in_progress.insert(req, self.epoch);
                            self.relayed.push_back(pending);
                            return Flow::Continue;
                        }
                        Err(code) => (code, Vec::new()),
                    }
                }
            }
            frame => self.handle_request(frame).await,
        };
        let flow = self.answer(req, code, &data).await;
        if self.members_after_reply.is_empty() || !matches!(flow, Flow::Continue) {
            self.members_after_reply.clear();
            return flow;
        }
        // A first Join: the members already there, right after the reply and before
        // anything queued since, written here rather than through the bounded queue (a room
        // larger than the queue is not a slow consumer).
        let members = std::mem::take(&mut self.members_after_reply);
        self.write_all(members.into_iter().map(Out::Frame)).await
    }

    /// Answers one request: the result code and the reply data.
    async fn handle_request(&mut self, frame: ClientFrame<'_>) -> (Code, Vec<u8>) {
        let none = Vec::new();
        match frame {
            ClientFrame::Login { token, user, .. } => (self.login(token, user), none),
            ClientFrame::Join {
                token,
                room,
                user,
                extra,
                visible,
                ..
            } => self.join(token, room, user, extra, visible),
            _ if self.user.is_none() => (Code::NotLoginSession, none),
            ClientFrame::Logout { .. } => {
                if !self.logged_in {
                    return (Code::NotLoginSession, none);
                }
                self.logged_in = false;
                self.relogin = false;
                self.app.logout(self.user_id(), self.handle.id);
                (Code::Ok, none)
            }
            ClientFrame::Leave { room, .. } => {
                self.rejoin.remove(room);
                self.lost_rooms.remove(room);
                if self.rooms.remove(room) {
                    self.app
                        .leave(room, self.user_id(), self.handle.id, LeaveReason::Quit);
                }
                (Code::Ok, none)
            }
            ClientFrame::SendUser {
                room,
                to,
                binary,
                payload,
                ..
            } => (self.send_user(room, to, binary, payload).await, none),
            ClientFrame::SendRoom {
                room,
                binary,
                payload,
                ..
            } => (self.send_room(room, binary, payload), none),
            ClientFrame::PeerStatus { user, .. } => {
                if !is_valid_id(user) {
                    return (Code::InvalidParams, none);
                }
                // In a cluster, a user logged in on another node counts.
                let online = self.app.is_online(user).await;
                (Code::Ok, vec![u8::from(online)])
            }
            ClientFrame::UpdateToken { room, token, .. } => (self.update_token(room, token), none),
            ClientFrame::SetVisibility { room, visible, .. } => {
                let member = self.rooms.contains(room)
                    && self
                        .app
                        .set_visibility(room, self.user_id(), self.handle.id, visible);
                (if member { Code::Ok } else { Code::NotJoin }, none)
            }
            // Answered by `on_frame`.
            ClientFrame::SetServerParams { .. }
            | ClientFrame::SendServer { .. }
            | ClientFrame::Ping { .. }
            | ClientFrame::Resume { .. } => (Code::ProtocolError, none),
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
        // The first Login after a resume re-confirms the login the session had.
        if std::mem::take(&mut self.relogin) {
            if !self.logged_in {
                return Code::RtmDuplicateLogin;
            }
            return match self.verify(token, "", user) {
                Ok(()) => Code::Ok,
                Err(c) => {
                    self.logged_in = false;
                    self.app.logout(user, self.handle.id);
                    c
                }
            };
        }
        if self.logged_in {
            return Code::AlreadyLogin;
        }
        if let Err(c) = self.verify(token, "", user) {
            return c;
        }
        self.user = Some(user.to_owned());
        self.logged_in = true;
        self.lost_login = false;
        self.app.login(user, &self.handle);
        tracing::debug!(session = self.handle.id, user, "login");
        Code::Ok
    }

    /// A Join: the code and, on success, the member list of the room.
    fn join(
        &mut self,
        token: &str,
        room: &str,
        user: &str,
        extra: &str,
        visible: bool,
    ) -> (Code, Vec<u8>) {
        if let Err(c) = self.check_user(user) {
            return (c, Vec::new());
        }
        if !is_valid_id(room) || extra.len() > MAX_EXTRA_BYTES {
            return (Code::InvalidParams, Vec::new());
        }
        // The first Join of a room after a resume re-confirms the membership.
        let rejoin = self.rejoin.remove(room);
        if rejoin && !self.rooms.contains(room) {
            return (Code::DuplicateLogin, Vec::new());
        }
        if self.rooms.contains(room) && !rejoin {
            return (Code::RepeatJoin, Vec::new());
        }
        if let Err(c) = self.verify(token, room, user) {
            if rejoin {
                self.rooms.remove(room);
                self.app
                    .leave(room, user, self.handle.id, LeaveReason::Dropped);
            }
            return (c, Vec::new());
        }
        self.user = Some(user.to_owned());
        self.rooms.insert(room.to_owned());
        self.lost_rooms.remove(room);
        let existing = self.app.join(room, user, extra, visible, &self.handle);
        let members: Vec<(String, String)> = existing
            .iter()
            .filter_map(|f| match decode_server(f) {
                Ok(ServerFrame::Member { user, extra, .. }) => {
                    Some((user.to_owned(), extra.to_owned()))
                }
                _ => None,
            })
            .collect();
        let data = encode_members(members.iter().map(|(u, e)| (u.as_str(), e.as_str())));
        // On a first join, describe the members already there after the reply too
        // (written by `on_frame`).
        if !rejoin {
            self.members_after_reply = existing;
        }
        tracing::debug!(session = self.handle.id, user, room, rejoin, "join");
        (Code::Ok, data)
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
    async fn send_user(&mut self, room: &str, to: &str, binary: bool, payload: &[u8]) -> Code {
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
            self.app.send_to_login(to, body).await
        } else {
            if !self.rooms.contains(room) {
                return Code::NotJoin;
            }
            let body = push_body(PushKind::RoomUser, room, from, binary, payload);
            self.app.send_to_member(room, to, body).await
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
