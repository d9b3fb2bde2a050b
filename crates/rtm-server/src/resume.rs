//! What lets a session outlive its connection (PROTOCOL.md §9): the registry that finds a
//! session by its key, the ring of recently written pushes, and the cache of recent replies.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocket;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::hub::{Body, Control};
use crate::inbox::Inbox;

/// The opaque key of a session, sent in its Welcome frame.
pub(crate) type SessionKey = [u8; 16];

/// A new connection asking an existing session to take it over.
pub(crate) struct Takeover {
    /// The new connection.
    pub(crate) socket: WebSocket,
    /// The new connection's client reads Batch messages.
    pub(crate) batch: bool,
    /// The id of the Resume request, answered by the session that takes the connection.
    pub(crate) req: u32,
    /// The last push `seq` the client received.
    pub(crate) last_seq: u64,
    /// Where a session that refuses gives the connection back. Dropped unused on success.
    pub(crate) back: oneshot::Sender<WebSocket>,
}

/// Where to reach a session: its app, and its inbox (takeovers are control events).
type Entry = (String, Arc<Inbox>);

/// Every live session, by key: where a resume finds the session it continues, and how a
/// shutdown reaches them all. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Resumes {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<SessionKey, Entry>,
    /// The server is shutting down: sessions registered from now on are told at once.
    shutting_down: bool,
}

impl Resumes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the session `key` of `app_id` reachable (and, during a shutdown, tells it).
    pub(crate) fn register(&self, key: SessionKey, app_id: &str, inbox: Arc<Inbox>) {
        let mut r = self.lock();
        if r.shutting_down {
            let _ = inbox.control(Control::Shutdown);
        }
        r.sessions.insert(key, (app_id.to_owned(), inbox));
    }

    /// Forgets the session `key`.
    pub(crate) fn unregister(&self, key: &SessionKey) {
        self.lock().sessions.remove(key);
    }

    /// The session of `app_id` with this key.
    pub(crate) fn find(&self, key: &[u8], app_id: &str) -> Option<Arc<Inbox>> {
        let key: SessionKey = key.try_into().ok()?;
        let r = self.lock();
        let (app, inbox) = r.sessions.get(&key)?;
        (app == app_id).then(|| inbox.clone())
    }

    /// Tells every session, registered now or later, that the server is shutting down.
    ///
    /// Each session hears it through its own inbox, so a session's turn waits on nothing
    /// shared with every other session.
    pub(crate) fn shut_down_all(&self) {
        let mut r = self.lock();
        r.shutting_down = true;
        for (_, inbox) in r.sessions.values() {
            let _ = inbox.control(Control::Shutdown);
        }
    }

    /// How many sessions are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().sessions.len()
    }
}

/// The push bodies a session wrote last, numbered on from `first`, bounded in count and
/// bytes. Bodies are shared with every other recipient: a slot is one pointer and the body's
/// length, kept beside it so that dropping the oldest touches nothing of the body but its
/// reference count (its memory is cold by then). A push writes one slot and drops one.
pub(crate) struct ReplayRing {
    /// Each body with its length.
    items: VecDeque<(Body, u32)>,
    /// The `seq` of `items[0]`.
    first: u64,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl ReplayRing {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Self {
        ReplayRing {
            items: VecDeque::new(),
            first: 0,
            bytes: 0,
            max_items,
            max_bytes,
        }
    }

    /// Records the push `seq`, one more than the last recorded (anything else starts the
    /// ring over from `seq`).
    pub(crate) fn push(&mut self, seq: u64, body: Body) {
        if self.max_items == 0 {
            return;
        }
        if self.first + self.items.len() as u64 != seq {
            self.items.clear();
            self.bytes = 0;
            self.first = seq;
        }
        // Bodies are far below 4 GiB (frames are bounded); a saturated length is added and
        // taken away alike.
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        self.bytes += len as usize;
        self.items.push_back((body, len));
        while self.items.len() > self.max_items
            || (self.bytes > self.max_bytes && self.items.len() > 1)
        {
            if let Some((_, len)) = self.items.pop_front() {
                self.bytes -= len as usize;
                self.first += 1;
            }
        }
    }

    /// The pushes after `last_seq`, when the ring still holds all of them up to `latest`
    /// (the last `seq` written); `None` when some are gone or `last_seq` is in the future.
    pub(crate) fn after(&self, last_seq: u64, latest: u64) -> Option<Vec<(u64, Body)>> {
        if last_seq > latest {
            return None;
        }
        if last_seq == latest {
            return Some(Vec::new());
        }
        if self.items.is_empty() || self.first > last_seq + 1 {
            return None;
        }
        let skip = usize::try_from(last_seq + 1 - self.first).ok()?;
        Some(
            (self.first..)
                .zip(self.items.iter())
                .skip(skip)
                .map(|(seq, (b, _))| (seq, b.clone()))
                .collect(),
        )
    }
}

/// The replies a session sent last, by request id and the connection (epoch) the request
/// arrived on; bounded in count and bytes.
pub(crate) struct ReplyCache {
    items: VecDeque<(u32, u32, Bytes)>,
    bytes: usize,
}

/// At most this many replies are remembered per session.
const REPLY_CACHE_ITEMS: usize = 256;
/// At most this many bytes of replies are remembered per session.
const REPLY_CACHE_BYTES: usize = 256 * 1024;

impl ReplyCache {
    pub(crate) fn new() -> Self {
        ReplyCache {
            items: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Remembers the reply to request `req` that arrived during `epoch`.
    pub(crate) fn insert(&mut self, req: u32, epoch: u32, reply: Bytes) {
        self.bytes += reply.len();
        self.items.push_back((req, epoch, reply));
        while self.items.len() > REPLY_CACHE_ITEMS
            || (self.bytes > REPLY_CACHE_BYTES && self.items.len() > 1)
        {
            if let Some((_, _, b)) = self.items.pop_front() {
                self.bytes -= b.len();
            }
        }
    }

    /// The reply to `req` if that request arrived on an earlier connection than `epoch`.
    pub(crate) fn earlier(&self, req: u32, epoch: u32) -> Option<Bytes> {
        self.items
            .iter()
            .rev()
            .find(|(r, e, _)| *r == req && *e < epoch)
            .map(|(_, _, b)| b.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Payload;

    #[test]
    fn ring_replays_what_it_still_holds() {
        let mut r = ReplayRing::new(3, 1 << 20);
        for s in 1..=5u64 {
            r.push(s, Payload::shared(vec![s as u8]));
        }
        let seqs =
            |v: Option<Vec<(u64, Body)>>| v.map(|v| v.iter().map(|x| x.0).collect::<Vec<_>>());
        assert_eq!(seqs(r.after(2, 5)), Some(vec![3, 4, 5]));
        assert_eq!(seqs(r.after(4, 5)), Some(vec![5]));
        assert_eq!(seqs(r.after(5, 5)), Some(vec![]));
        assert_eq!(seqs(r.after(1, 5)), None, "push 2 is gone");
        assert_eq!(seqs(r.after(6, 5)), None, "from the future");
        let empty = ReplayRing::new(0, 0);
        assert_eq!(seqs(empty.after(0, 0)), Some(vec![]));
        assert_eq!(seqs(empty.after(0, 1)), None);
    }

    #[test]
    fn ring_is_bounded_in_bytes() {
        let mut r = ReplayRing::new(100, 10);
        for s in 1..=5u64 {
            r.push(s, Payload::shared(vec![0; 4]));
        }
        assert_eq!(r.items.len(), 2);
        assert!(r.after(3, 5).is_some());
        assert!(r.after(2, 5).is_none());
    }

    #[test]
    fn reply_cache_answers_only_for_earlier_connections() {
        let mut c = ReplyCache::new();
        c.insert(7, 0, Bytes::from_static(b"a"));
        assert_eq!(c.earlier(7, 0), None);
        assert_eq!(c.earlier(7, 1), Some(Bytes::from_static(b"a")));
        assert_eq!(c.earlier(8, 1), None);
        for i in 0..300 {
            c.insert(100 + i, 0, Bytes::from_static(b"x"));
        }
        assert_eq!(c.earlier(7, 1), None, "evicted");
        assert_eq!(c.items.len(), REPLY_CACHE_ITEMS);
    }

    #[test]
    fn a_shutdown_reaches_sessions_registered_before_and_after_it() {
        use crate::inbox::Received;
        use std::task::{Context, Poll, Waker};
        let told = |inbox: &Inbox| {
            let mut cx = Context::from_waker(Waker::noop());
            matches!(
                inbox.poll_recv(&mut cx, None),
                Poll::Ready(Received::Control(Control::Shutdown))
            )
        };
        let r = Resumes::default();
        let (before, after) = (
            Arc::new(Inbox::new(1, 1, Arc::default())),
            Arc::new(Inbox::new(1, 1, Arc::default())),
        );
        r.register([1; 16], "app", before.clone());
        assert!(!told(&before));
        r.shut_down_all();
        r.register([2; 16], "app", after.clone());
        assert!(told(&before) && told(&after));
    }

    #[test]
    fn registry_is_per_app() {
        let r = Resumes::default();
        r.register([1; 16], "app", Arc::new(Inbox::new(1, 1, Arc::default())));
        assert!(r.find(&[1; 16], "app").is_some());
        assert!(r.find(&[1; 16], "other").is_none());
        assert!(r.find(&[1; 15], "app").is_none());
        r.unregister(&[1; 16]);
        assert_eq!(r.len(), 0);
    }
}
