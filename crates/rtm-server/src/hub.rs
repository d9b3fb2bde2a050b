//! Who is online where: per app, the logged-in users and the rooms with their members.
//!
//! The [`Hub`] is a cheap-to-clone handle. Each app keeps its logins and rooms behind one
//! mutex held only for map operations and non-blocking queue pushes, never across an
//! `.await`. Each session owns a bounded queue of pre-encoded frames, and each room a bounded
//! log of its broadcasts that its members read from their own positions ([`crate::roomlog`]);
//! a session whose queue is full, or that falls behind what a room log keeps, is disconnected
//! rather than slowing down the sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use rtm_protocol::frame::{encode_push_body, encode_server, Push, PushKind, ServerFrame};
use tokio::runtime::Handle;

use crate::cluster::{Cluster, Event};
use crate::config::{AppConfig, Config};
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::resume::Takeover;
use crate::roomlog::{RoomLog, Stamps};

/// Identifies one WebSocket session for the lifetime of the server.
pub(crate) type SessionId = u64;

/// Why a member left a room, as carried in Member frames (`UserOfflineReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaveReason {
    /// The user left.
    Quit = 0,
    /// The user's connection dropped.
    Dropped = 1,
    /// The user became invisible (it is still in the room).
    SwitchToInvisible = 2,
}

/// A push body from [`encode_push_body`], encoded once and shared by every recipient. One
/// pointer wide: a queued push, and a push kept for a resume, take 16 and 12 bytes of the
/// session's memory, and every delivery writes that much.
pub(crate) type Body = Arc<Payload>;

/// The bytes of a [`Body`], aligned to a cache line so that the `Vec` header (pointer and
/// length) sits apart from the `Arc`'s reference counts: every recipient's session reads
/// the header while the others change the counts.
#[derive(Debug, Default, PartialEq, Eq)]
#[repr(align(64))]
pub(crate) struct Payload(Vec<u8>);

impl Payload {
    /// A shared body holding `bytes`.
    pub(crate) fn shared(bytes: Vec<u8>) -> Body {
        Arc::new(Payload(bytes))
    }
}

impl std::ops::Deref for Payload {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

/// What the hub queues for a session.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A complete frame, written as is (boxed, so that the common case, a push, stays small).
    Frame(Box<Bytes>),
    /// A push; the session prefixes its sequence number.
    Push(Body),
}

/// Events that change a session's own state (rare, so never refused for space).
pub(crate) enum Control {
    /// The same user logged in on another connection.
    LoginTaken,
    /// The same user joined this room on another connection.
    RoomTaken(String),
    /// The session's outbound queue overflowed.
    Overflow,
    /// A new connection asks to become this session (a resume).
    Takeover(Box<Takeover>),
    /// The server is shutting down.
    Shutdown,
}

/// The sending side of a session, held by the hub: its id and its [`Inbox`].
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) id: SessionId,
    inbox: Arc<Inbox>,
}

impl SessionHandle {
    /// The session's inbox, read by its task.
    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// Queues `out` without waiting. A full queue disconnects the session (slow consumer).
    pub(crate) fn deliver(&self, out: Outbound) -> bool {
        self.inbox.push(out).is_ok()
    }

    fn control(&self, c: Control) {
        let _ = self.inbox.control(c);
    }
}

struct Member {
    session: SessionHandle,
    extra: String,
    /// Whether the other members are told about this one.
    visible: bool,
    /// The session's reader of the room log, ended when the membership ends.
    reader: u64,
}

impl Member {
    /// Ends the session's reading of the room log (under the app's lock, as appends are).
    fn end(&self, stamps: &Stamps) {
        self.session.inbox.end_reading(self.reader, stamps);
    }
}

/// One room: its members by user id, and the log its broadcasts are written to once.
struct Room {
    members: HashMap<String, Member>,
    log: Arc<RoomLog>,
}

impl Room {
    fn new(log_cap: usize) -> Self {
        Room {
            members: HashMap::new(),
            log: RoomLog::new(log_cap),
        }
    }

    /// Queues the Member frame `f` (about `user`) for every other member.
    fn tell_others(&self, user: &str, f: &Bytes) {
        for (u, m) in &self.members {
            if u != user {
                m.session.deliver(Outbound::Frame(Box::new(f.clone())));
            }
        }
    }

    /// Member frames describing the visible members but `user`.
    fn visible_members(&self, room: &str, user: &str) -> Vec<Bytes> {
        self.members
            .iter()
            .filter(|(u, m)| *u != user && m.visible)
            .map(|(u, m)| member_frame(room, u, &m.extra, true, 0))
            .collect()
    }
}

/// The Member frame announcing that `user` became visible (joined) or invisible (left with
/// reason SWITCH_TO_INVISIBLE).
fn visibility_frame(room: &str, user: &str, extra: &str, visible: bool) -> Bytes {
    let reason = if visible {
        0
    } else {
        LeaveReason::SwitchToInvisible as u8
    };
    member_frame(room, user, extra, visible, reason)
}

#[derive(Default)]
struct AppState {
    logins: HashMap<String, SessionHandle>,
    rooms: HashMap<String, Room>,
}

/// A token bucket: `rate` requests per second, bursts up to `rate`. A rate of 0 allows
/// everything.
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes one request from the budget; false when it is spent.
    pub(crate) fn try_acquire(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One hosted app: its configuration and who is online in it.
pub(crate) struct App {
    pub(crate) config: AppConfig,
    state: Mutex<AppState>,
    rate: Mutex<RateLimiter>,
    /// The app id, shared with cluster events.
    id: Arc<str>,
    /// The server's metrics.
    metrics: Arc<Metrics>,
    /// Set when the server runs as a node of a cluster (`--redis-url`).
    cluster: OnceLock<Arc<Cluster>>,
    /// Orders every push to this app's sessions (see `roomlog`).
    stamps: Arc<Stamps>,
    /// How many broadcasts a room log keeps (`Config::session_queue`).
    log_cap: usize,
    /// The runtime the sessions run on, once the server runs.
    sessions: Arc<OnceLock<Handle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent maps (every operation is a single
    // insert or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn member_frame(room: &str, user: &str, extra: &str, joined: bool, reason: u8) -> Bytes {
    Bytes::from(encode_server(&ServerFrame::Member {
        room,
        user,
        extra,
        joined,
        reason,
    }))
}

impl App {
    fn state(&self) -> MutexGuard<'_, AppState> {
        lock(&self.state)
    }

    /// Takes one OpenAPI request from the app's rate budget.
    pub(crate) fn try_acquire_rate(&self) -> bool {
        lock(&self.rate).try_acquire()
    }

    fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// The server's metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records `user` as logged in on `session`. An older login of the same user on another
    /// session is told it lost its login; in a cluster, so is one on another node.
    pub(crate) fn login(&self, user: &str, session: &SessionHandle) {
        let old = {
            let mut st = self.state();
            let old = st.logins.insert(user.to_owned(), session.clone());
            // Sent under the lock, so the cluster sees changes in the order they happened.
            if let Some(c) = self.cluster() {
                c.event(Event::Login {
                    app: self.id.clone(),
                    user: user.to_owned(),
                    session: session.id,
                });
            }
            old
        };
        if let Some(old) = old {
            if old.id != session.id {
                old.control(Control::LoginTaken);
            }
        }
    }

    /// Removes the login of `user` if it belongs to `session`.
    pub(crate) fn logout(&self, user: &str, session: SessionId) {
        let mut st = self.state();
        if st.logins.get(user).is_some_and(|s| s.id == session) {
            st.logins.remove(user);
            if let Some(c) = self.cluster() {
                c.event(Event::Logout {
                    app: self.id.clone(),
                    user: user.to_owned(),
                });
            }
        }
    }

    /// Whether `user` is logged in on this node.
    pub(crate) fn is_logged_in(&self, user: &str) -> bool {
        self.state().logins.contains_key(user)
    }

    /// Whether `user` is logged in on this node or, in a cluster, on any live node.
    pub(crate) async fn is_online(&self, user: &str) -> bool {
        if self.is_logged_in(user) {
            return true;
        }
        match self.cluster() {
            Some(c) => c.is_online(&self.id, user).await,
            None => false,
        }
    }

    /// Adds `user` to `room` on `session`, visible or not. An older membership of the same
    /// user on another session is ended (told through its control queue; in a cluster, also
    /// on other nodes); the other members are told about a new visible user, or about the
    /// visibility change when an older membership had the other one. Returns Member frames
    /// describing the visible users already in the room on this node (in a cluster, those on
    /// other nodes follow through the session's queue).
    pub(crate) fn join(
        &self,
        room: &str,
        user: &str,
        extra: &str,
        visible: bool,
        session: &SessionHandle,
    ) -> Vec<Bytes> {
        let mut st = self.state();
        let r = st
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| Room::new(self.log_cap));
        let reader = r.log.reader();
        let reader_id = reader.id();
        session.inbox.subscribe(reader);
        let old = r.members.insert(
            user.to_owned(),
            Member {
                session: session.clone(),
                extra: extra.to_owned(),
                visible,
                reader: reader_id,
            },
        );
        if let Some(c) = self.cluster() {
            c.event(Event::Join {
                app: self.id.clone(),
                room: room.to_owned(),
                user: user.to_owned(),
                extra: extra.to_owned(),
                visible,
                session: session.clone(),
            });
        }
        let was_visible = old.map(|old| {
            old.end(&self.stamps);
            if old.session.id != session.id {
                old.session.control(Control::RoomTaken(room.to_owned()));
            }
            old.visible
        });
        // A new member is announced as a join; a membership taken over only when its
        // visibility changed.
        if was_visible.unwrap_or(false) != visible {
            r.tell_others(user, &visibility_frame(room, user, extra, visible));
        }
        r.visible_members(room, user)
    }

    /// Makes the membership of `user` in `room` on `session` visible or invisible, telling
    /// the other members (on every node) when it changes. False when there is no such
    /// membership.
    pub(crate) fn set_visibility(
        &self,
        room: &str,
        user: &str,
        session: SessionId,
        visible: bool,
    ) -> bool {
        let mut st = self.state();
        let Some(r) = st.rooms.get_mut(room) else {
            return false;
        };
        let Some(m) = r.members.get_mut(user).filter(|m| m.session.id == session) else {
            return false;
        };
        if m.visible == visible {
            return true;
        }
        m.visible = visible;
        let extra = m.extra.clone();
        if let Some(c) = self.cluster() {
            c.event(Event::Visibility {
                app: self.id.clone(),
                room: room.to_owned(),
                user: user.to_owned(),
                extra: extra.clone(),
                visible,
            });
        }
        r.tell_others(user, &visibility_frame(room, user, &extra, visible));
        true
    }

    /// Removes `user` from `room` if its membership belongs to `session`; the other members
    /// (on every node) are told why it left.
    pub(crate) fn leave(&self, room: &str, user: &str, session: SessionId, reason: LeaveReason) {
        let mut st = self.state();
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        if r.members.get(user).is_none_or(|m| m.session.id != session) {
            return;
        }
        let Some(left) = r.members.remove(user) else {
            return;
        };
        left.end(&self.stamps);
        if let Some(c) = self.cluster() {
            c.event(Event::Leave {
                app: self.id.clone(),
                room: room.to_owned(),
                user: user.to_owned(),
                extra: left.extra.clone(),
                // An invisible member leaves unannounced.
                reason: left.visible.then_some(reason),
            });
        }
        if r.members.is_empty() {
            st.rooms.remove(room);
            return;
        }
        if left.visible {
            r.tell_others(
                user,
                &member_frame(room, user, &left.extra, false, reason as u8),
            );
        }
    }

    /// Queues `body` for the local session where `to` is logged in.
    fn deliver_login(&self, to: &str, body: Body, kind: PushKind) -> bool {
        let session = self.state().logins.get(to).cloned();
        let Some(s) = session else {
            return false;
        };
        let ok = s.deliver(Outbound::Push(body));
        self.count_out(kind, usize::from(ok), usize::from(!ok));
        ok
    }

    fn count_out(&self, kind: PushKind, delivered: usize, dropped: usize) {
        self.metrics.messages_out(kind, delivered);
        self.metrics.push_dropped(dropped);
    }

    /// Delivers a push to the session where `to` is logged in. Returns whether it was queued
    /// on this node; in a cluster, when `to` is not logged in here, the push is also
    /// published for the other nodes (without waiting).
    ///
    /// User messages of clients and OpenAPI pushes share this routing (and the two below).
    pub(crate) fn push_to_login(&self, to: &str, body: Body) -> bool {
        self.metrics.message_in(PushKind::OutsideRoom);
        if self.deliver_login(to, body.clone(), PushKind::OutsideRoom) {
            return true;
        }
        if let Some(c) = self.cluster() {
            c.publish_user(&self.id, to, PushKind::OutsideRoom, &body);
        }
        false
    }

    /// Like [`push_to_login`](Self::push_to_login), but in a cluster waits to know whether
    /// some node has `to` logged in (the `NO_RECEIVER` check of a user message).
    pub(crate) async fn send_to_login(&self, to: &str, body: Body) -> bool {
        self.metrics.message_in(PushKind::OutsideRoom);
        if self.deliver_login(to, body.clone(), PushKind::OutsideRoom) {
            return true;
        }
        match self.cluster() {
            Some(c) => {
                c.send_user(&self.id, to, PushKind::OutsideRoom, &body)
                    .await
            }
            None => false,
        }
    }

    /// Delivers a push to `to` in `room`, on whichever node it is a member, and tells whether
    /// it was queued (on another node: published to it).
    pub(crate) async fn send_to_member(&self, room: &str, to: &str, body: Body) -> bool {
        self.metrics.message_in(PushKind::RoomUser);
        let local = {
            let st = self.state();
            st.rooms
                .get(room)
                .and_then(|r| r.members.get(to))
                .map(|m| m.session.deliver(Outbound::Push(body.clone())))
        };
        if let Some(ok) = local {
            self.count_out(PushKind::RoomUser, usize::from(ok), usize::from(!ok));
            return ok;
        }
        match self.cluster() {
            Some(c) => {
                c.send_room_user(&self.id, room, to, PushKind::RoomUser, &body)
                    .await
            }
            None => false,
        }
    }

    /// Delivers a push to each of `to` that is in `room`. Returns how many were queued on
    /// this node; in a cluster, the others are published for the other nodes.
    pub(crate) fn push_to_members<'a>(
        &self,
        room: &str,
        to: impl IntoIterator<Item = &'a str>,
        body: &Body,
    ) -> usize {
        self.metrics.message_in(PushKind::RoomUser);
        let clustered = self.cluster().is_some();
        let mut remote = Vec::new();
        let (mut n, mut dropped) = (0, 0);
        {
            let st = self.state();
            let r = st.rooms.get(room);
            for u in to {
                match r.and_then(|r| r.members.get(u)) {
                    Some(m) if m.session.deliver(Outbound::Push(body.clone())) => n += 1,
                    Some(_) => dropped += 1,
                    None if clustered => remote.push(u),
                    None => {}
                }
            }
        }
        self.count_out(PushKind::RoomUser, n, dropped);
        if let (Some(c), false) = (self.cluster(), remote.is_empty()) {
            c.publish_room(&self.id, room, PushKind::RoomUser, &remote, None, body);
        }
        n
    }

    /// Delivers a push to every member of `room` except `except`. Returns how many were
    /// queued on this node; in a cluster, the push is also published for the other nodes.
    pub(crate) fn push_to_room(&self, room: &str, except: Option<&str>, body: &Body) -> usize {
        self.metrics.message_in(PushKind::Room);
        let n = self.deliver_room(room, &[], except, body.clone(), PushKind::Room);
        if let Some(c) = self.cluster() {
            c.publish_room(&self.id, room, PushKind::Room, &[], except, body);
        }
        n
    }

    /// Queues `body` for the local members of `room`: those in `to`, each in its inbox, or
    /// when `to` is empty all but `except`, with one append to the room log.
    fn deliver_room(
        &self,
        room: &str,
        to: &[&str],
        except: Option<&str>,
        body: Body,
        kind: PushKind,
    ) -> usize {
        let (mut n, mut dropped) = (0, 0);
        let mut wakes = None;
        {
            let st = self.state();
            let Some(r) = st.rooms.get(room) else {
                return 0;
            };
            if to.is_empty() {
                let except = except.and_then(|u| r.members.get(u)).map(|m| m.session.id);
                n = r.members.len() - usize::from(except.is_some());
                wakes = Some(r.log.append(self.stamps.take(), except, body));
            } else {
                for m in to.iter().filter_map(|u| r.members.get(*u)) {
                    if m.session.deliver(Outbound::Push(body.clone())) {
                        n += 1;
                    } else {
                        dropped += 1;
                    }
                }
            }
        }
        if let Some(w) = wakes {
            w.wake_on(self.sessions.get());
        }
        self.count_out(kind, n, dropped);
        n
    }

    /// From another node: a push for `user` if it is logged in here.
    pub(crate) fn cluster_push_login(&self, user: &str, kind: PushKind, body: Body) {
        self.deliver_login(user, body, kind);
    }

    /// From another node: a push for local members of `room`.
    pub(crate) fn cluster_push_room(
        &self,
        room: &str,
        kind: PushKind,
        to: &[&str],
        except: Option<&str>,
        body: Body,
    ) {
        self.deliver_room(room, to, except, body, kind);
    }

    /// From another node: `user` logged in there, so its login here ends.
    pub(crate) fn cluster_login_taken(&self, user: &str) {
        let old = {
            let mut st = self.state();
            let old = st.logins.remove(user);
            if let (Some(c), true) = (self.cluster(), old.is_some()) {
                c.event(Event::Logout {
                    app: self.id.clone(),
                    user: user.to_owned(),
                });
            }
            old
        };
        if let Some(old) = old {
            old.control(Control::LoginTaken);
        }
    }

    /// From another node: `user` joined `room` there, or became visible there. Its
    /// membership here ends (without a leave event: it is still in the room); otherwise the
    /// local members are told when it is visible.
    pub(crate) fn cluster_joined(&self, room: &str, user: &str, extra: &str, visible: bool) {
        let mut st = self.state();
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        if let Some(old) = r.members.remove(user) {
            old.end(&self.stamps);
            if r.members.is_empty() {
                st.rooms.remove(room);
            }
            if let Some(c) = self.cluster() {
                // A visible member that went on invisibly elsewhere leaves for the members on
                // third nodes, who knew it as visible; otherwise its membership moves silently.
                let hidden = old.visible && !visible;
                c.event(Event::Leave {
                    app: self.id.clone(),
                    room: room.to_owned(),
                    user: user.to_owned(),
                    extra: old.extra.clone(),
                    reason: hidden.then_some(LeaveReason::SwitchToInvisible),
                });
            }
            old.session.control(Control::RoomTaken(room.to_owned()));
            if old.visible != visible {
                if let Some(r) = st.rooms.get(room) {
                    r.tell_others(user, &visibility_frame(room, user, extra, visible));
                }
            }
            return;
        }
        if visible {
            r.tell_others(user, &member_frame(room, user, extra, true, 0));
        }
    }

    /// From another node: `user` left `room` there; the local members are told (unless the
    /// user is a member here).
    pub(crate) fn cluster_left(&self, room: &str, user: &str, extra: &str, reason: u8) {
        let st = self.state();
        let Some(r) = st.rooms.get(room) else {
            return;
        };
        if r.members.contains_key(user) {
            return;
        }
        r.tell_others(user, &member_frame(room, user, extra, false, reason));
    }

    /// The number of users logged in and the number of non-empty rooms.
    fn counts(&self) -> (usize, usize) {
        let st = self.state();
        (st.logins.len(), st.rooms.len())
    }
}

/// Encodes the shared body of a push once.
pub(crate) fn push_body(
    kind: PushKind,
    room: &str,
    from: &str,
    binary: bool,
    payload: &[u8],
) -> Body {
    Payload::shared(encode_push_body(&Push {
        kind,
        room,
        from,
        binary,
        payload,
    }))
}

struct HubInner {
    apps: HashMap<String, Arc<App>>,
    /// Access key → (the app it belongs to, its secret key).
    keys: HashMap<String, (Arc<App>, String)>,
    next_session: AtomicU64,
    session_queue: usize,
    /// `Config::max_messages_per_sec`.
    message_rate: u32,
    metrics: Arc<Metrics>,
    cluster: OnceLock<Arc<Cluster>>,
    /// Shared with every app (see [`Hub::run_sessions_on`]).
    sessions: Arc<OnceLock<Handle>>,
}

/// The server's shared state: the apps, their logins and rooms. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("apps", &self.inner.apps.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for the apps of `config`, with nobody online.
    pub fn new(config: &Config) -> Self {
        let mut apps = HashMap::new();
        let mut keys = HashMap::new();
        let metrics = Arc::new(Metrics::new());
        let sessions = Arc::new(OnceLock::new());
        for a in &config.apps {
            let app = Arc::new(App {
                config: a.clone(),
                state: Mutex::default(),
                rate: Mutex::new(RateLimiter::new(config.openapi_rate)),
                id: Arc::from(a.app_id.as_str()),
                metrics: metrics.clone(),
                cluster: OnceLock::new(),
                stamps: Arc::default(),
                log_cap: config.session_queue.max(1),
                sessions: sessions.clone(),
            });
            for k in &a.keys {
                keys.insert(k.access_key.clone(), (app.clone(), k.secret_key.clone()));
            }
            apps.insert(a.app_id.clone(), app);
        }
        Hub {
            inner: Arc::new(HubInner {
                apps,
                keys,
                next_session: AtomicU64::new(1),
                session_queue: config.session_queue.max(1),
                message_rate: config.max_messages_per_sec,
                metrics,
                cluster: OnceLock::new(),
                sessions,
            }),
        }
    }

    /// Sets the runtime the sessions run on, once: an append that wakes many of them wakes
    /// them from there (see [`crate::roomlog::Wakes::wake_on`]).
    pub(crate) fn run_sessions_on(&self, sessions: Handle) {
        let _ = self.inner.sessions.set(sessions);
    }

    pub(crate) fn app(&self, app_id: &str) -> Option<Arc<App>> {
        self.inner.apps.get(app_id).cloned()
    }

    /// The app and secret key of an access key.
    pub(crate) fn key(&self, access_key: &str) -> Option<&(Arc<App>, String)> {
        self.inner.keys.get(access_key)
    }

    /// The secret key of an access key, whichever app it belongs to.
    pub(crate) fn secret_key(&self, access_key: &str) -> Option<&str> {
        self.key(access_key).map(|(_, sk)| sk.as_str())
    }

    /// A new session handle of `app`; the session task reads its inbox.
    pub(crate) fn new_session(&self, app: &App) -> SessionHandle {
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        SessionHandle {
            id,
            inbox: Arc::new(Inbox::new(self.inner.session_queue, id, app.stamps.clone())),
        }
    }

    /// A fresh per-connection budget for user and room messages.
    pub(crate) fn message_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.inner.message_rate)
    }

    /// Whether `user` of `app_id` is logged in on some connection of this server (in a
    /// cluster: of this node).
    pub fn is_online(&self, app_id: &str, user: &str) -> bool {
        self.app(app_id).is_some_and(|a| a.is_logged_in(user))
    }

    /// The number of logged-in users and of non-empty rooms of `app_id`.
    pub fn counts(&self, app_id: &str) -> Option<(usize, usize)> {
        self.app(app_id).map(|a| a.counts())
    }

    /// This server's metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The metrics in the Prometheus text format, with this node's per-app counts.
    pub(crate) fn encode_metrics(&self) -> String {
        let counts = self.inner.apps.iter().map(|(id, a)| {
            let (users, rooms) = a.counts();
            (id.clone(), users, rooms)
        });
        self.inner.metrics.encode(counts)
    }

    /// Makes this hub a node of `cluster`: routing and presence go through Redis too.
    pub(crate) fn attach_cluster(&self, cluster: Arc<Cluster>) {
        for app in self.inner.apps.values() {
            let _ = app.cluster.set(cluster.clone());
        }
        let _ = self.inner.cluster.set(cluster);
    }

    /// The cluster link, when this server is a node of one.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.get()
    }
}
