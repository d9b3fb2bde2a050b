//! Who is online where: per app, the logged-in users and the rooms with their members.
//!
//! The [`Hub`] is a cheap-to-clone handle. Each app keeps its logins and rooms behind one
//! mutex held only for map operations and non-blocking queue pushes, never across an
//! `.await`. Each session owns a bounded queue of pre-encoded frames; a session whose queue
//! is full is disconnected rather than slowing down the sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use rtm_protocol::frame::{encode_push_body, encode_server, Push, PushKind, ServerFrame};
use tokio::sync::mpsc;

use crate::config::{AppConfig, Config};

/// Identifies one WebSocket session for the lifetime of the server.
pub(crate) type SessionId = u64;

/// Why a member left a room, as carried in Member frames (`UserOfflineReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaveReason {
    /// The user left.
    Quit = 0,
    /// The user's connection dropped.
    Dropped = 1,
}

/// What the hub queues for a session.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A complete frame, written as is.
    Frame(Bytes),
    /// A push body from [`encode_push_body`]; the session prefixes its sequence number.
    Push(Bytes),
}

/// Events that change a session's own state, sent on an unbounded queue (they are rare).
#[derive(Debug)]
pub(crate) enum Control {
    /// The same user logged in on another connection.
    LoginTaken,
    /// The same user joined this room on another connection.
    RoomTaken(String),
    /// The session's outbound queue overflowed.
    Overflow,
}

/// The sending side of a session, held by the hub.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) id: SessionId,
    tx: mpsc::Sender<Outbound>,
    ctl: mpsc::UnboundedSender<Control>,
}

impl SessionHandle {
    /// Queues `out` without waiting. A full queue disconnects the session (slow consumer).
    pub(crate) fn deliver(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = self.ctl.send(Control::Overflow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn control(&self, c: Control) {
        let _ = self.ctl.send(c);
    }
}

/// The receiving side of a session's queues.
pub(crate) struct SessionQueues {
    pub(crate) rx: mpsc::Receiver<Outbound>,
    pub(crate) ctl: mpsc::UnboundedReceiver<Control>,
}

struct Member {
    session: SessionHandle,
    extra: String,
}

/// One room: its members by user id. The fan-out structure of a broadcast.
#[derive(Default)]
struct Room {
    members: HashMap<String, Member>,
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent maps (every operation is a single
    // insert or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn member_frame(room: &str, user: &str, extra: &str, joined: bool, reason: u8) -> Bytes {
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

    /// Records `user` as logged in on `session`. An older login of the same user on another
    /// session is told it lost its login.
    pub(crate) fn login(&self, user: &str, session: &SessionHandle) {
        let old = self.state().logins.insert(user.to_owned(), session.clone());
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
        }
    }

    /// Whether `user` is logged in anywhere.
    pub(crate) fn is_logged_in(&self, user: &str) -> bool {
        self.state().logins.contains_key(user)
    }

    /// Adds `user` to `room` on `session`. An older membership of the same user on another
    /// session is ended (told through its control queue); the other members are told about a
    /// new user. Returns Member frames describing the users already in the room.
    pub(crate) fn join(
        &self,
        room: &str,
        user: &str,
        extra: &str,
        session: &SessionHandle,
    ) -> Vec<Bytes> {
        let mut st = self.state();
        let r = st.rooms.entry(room.to_owned()).or_default();
        let old = r.members.insert(
            user.to_owned(),
            Member {
                session: session.clone(),
                extra: extra.to_owned(),
            },
        );
        let replaced = match old {
            Some(old) if old.session.id != session.id => {
                old.session.control(Control::RoomTaken(room.to_owned()));
                true
            }
            Some(_) => true,
            None => false,
        };
        if !replaced {
            let f = member_frame(room, user, extra, true, 0);
            for (u, m) in &r.members {
                if u != user {
                    m.session.deliver(Outbound::Frame(f.clone()));
                }
            }
        }
        r.members
            .iter()
            .filter(|(u, _)| *u != user)
            .map(|(u, m)| member_frame(room, u, &m.extra, true, 0))
            .collect()
    }

    /// Removes `user` from `room` if its membership belongs to `session`; the other members
    /// are told why it left.
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
        if r.members.is_empty() {
            st.rooms.remove(room);
            return;
        }
        let f = member_frame(room, user, &left.extra, false, reason as u8);
        for m in r.members.values() {
            m.session.deliver(Outbound::Frame(f.clone()));
        }
    }

    /// Delivers a push to the session where `to` is logged in. Returns whether it was queued.
    ///
    /// User messages of clients and OpenAPI pushes share this routing (and the two below).
    pub(crate) fn push_to_login(&self, to: &str, body: Bytes) -> bool {
        let session = self.state().logins.get(to).cloned();
        session.is_some_and(|s| s.deliver(Outbound::Push(body)))
    }

    /// Delivers a push to each of `to` that is in `room`. Returns how many were queued.
    pub(crate) fn push_to_members<'a>(
        &self,
        room: &str,
        to: impl IntoIterator<Item = &'a str>,
        body: &Bytes,
    ) -> usize {
        let st = self.state();
        let Some(r) = st.rooms.get(room) else {
            return 0;
        };
        to.into_iter()
            .filter_map(|u| r.members.get(u))
            .filter(|m| m.session.deliver(Outbound::Push(body.clone())))
            .count()
    }

    /// Delivers a push to every member of `room` except `except`. Returns how many were queued.
    pub(crate) fn push_to_room(&self, room: &str, except: Option<&str>, body: &Bytes) -> usize {
        let st = self.state();
        let Some(r) = st.rooms.get(room) else {
            return 0;
        };
        r.members
            .iter()
            .filter(|(u, _)| Some(u.as_str()) != except)
            .filter(|(_, m)| m.session.deliver(Outbound::Push(body.clone())))
            .count()
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
) -> Bytes {
    Bytes::from(encode_push_body(&Push {
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
        for a in &config.apps {
            let app = Arc::new(App {
                config: a.clone(),
                state: Mutex::default(),
                rate: Mutex::new(RateLimiter::new(config.openapi_rate)),
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
            }),
        }
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

    /// A new session handle and the queues its task reads.
    pub(crate) fn new_session(&self) -> (SessionHandle, SessionQueues) {
        let (tx, rx) = mpsc::channel(self.inner.session_queue);
        let (ctl_tx, ctl) = mpsc::unbounded_channel();
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        (
            SessionHandle {
                id,
                tx,
                ctl: ctl_tx,
            },
            SessionQueues { rx, ctl },
        )
    }

    /// A fresh per-connection budget for user and room messages.
    pub(crate) fn message_limiter(&self) -> RateLimiter {
        RateLimiter::new(self.inner.message_rate)
    }

    /// Whether `user` of `app_id` is logged in on some connection.
    pub fn is_online(&self, app_id: &str, user: &str) -> bool {
        self.app(app_id).is_some_and(|a| a.is_logged_in(user))
    }

    /// The number of logged-in users and of non-empty rooms of `app_id`.
    pub fn counts(&self, app_id: &str) -> Option<(usize, usize)> {
        self.app(app_id).map(|a| a.counts())
    }
}
