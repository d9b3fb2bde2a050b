//! A session's mailbox: the one place the hub, other nodes and new connections (resumes) hand
//! things to a session task. It also holds the session's readers of its rooms' broadcast
//! logs ([`crate::roomlog`]) and merges what they read with the queued frames in stamp order.
//!
//! One small mutex-guarded struct per session instead of channels: a push is a lock, a
//! `VecDeque::push_back` and, only when the task is waiting, one wake. The task takes every
//! queued frame at once (swapping buffers, so the steady state allocates nothing), and the
//! queue's memory grows only with what is actually queued: an idle session holds no buffer.
//!
//! Frames are bounded ([`Inbox::new`]'s `cap`): a push to a full inbox is refused and the
//! session is told once ([`Control::Overflow`]) that it lost a frame, so it ends (slow
//! consumer) rather than slowing the sender down. Control events are unbounded (they are
//! rare: at most a few per login or membership).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::hub::{Control, Outbound, SessionId};
use crate::resume::Takeover;
use crate::roomlog::{Lost, Read, Reader, Stamps};

/// Above this many slots, an emptied frame buffer is given back to the allocator.
const KEEP_CAPACITY: usize = 256;
/// Above this many slots, the buffer a turn reads room logs into is not kept.
const KEEP_LOGGED: usize = 64;
/// A session reading one room log takes at most this many entries at a time (one batch);
/// the rest stay in the log, which holds them anyway, instead of in the session's memory.
const READ_AHEAD: usize = crate::session::BATCH_FRAMES;

/// What [`Inbox::poll_recv`] hands the session.
pub(crate) enum Received {
    /// A control event (taken before frames).
    Control(Control),
    /// Frames were moved to the caller's buffer.
    Frames,
}

#[derive(Default)]
struct State {
    /// Queued frames with their stamps, in stamp order (stamped under this lock).
    frames: VecDeque<(u64, Outbound)>,
    control: VecDeque<Control>,
    waker: Option<Waker>,
    /// An overflow was reported and not yet taken.
    overflowed: bool,
    /// The session ended: every push is refused.
    closed: bool,
    /// The room logs this session reads.
    readers: Vec<Reader>,
    /// What the readers read in one turn, reused.
    logged: Vec<(u64, Outbound)>,
}

/// A session's mailbox (see the module docs). Shared behind an `Arc`.
///
/// It is also the waker of what a session waits on besides its inbox, its connection and its
/// timer ([`Inbox::take_side_wake`]): a session turn that only writes what the inbox handed
/// it then leaves them alone.
#[repr(C)]
pub(crate) struct Inbox {
    /// The connection or the timer woke the session. First, on the cache line of the lock
    /// word (a `Mutex` starts with it), which every turn touches anyway.
    side: AtomicBool,
    state: Mutex<State>,
    cap: usize,
    /// The session's id: it does not get back its own room messages.
    id: SessionId,
    /// The stamps of the session's app.
    stamps: Arc<Stamps>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("cap", &self.cap).finish()
    }
}

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The inbox holds `cap` frames (the session was told).
    Full,
    /// The session ended.
    Closed,
}

impl Inbox {
    /// An empty inbox of session `id` holding at most `cap` frames (at least 1), stamping
    /// them with its app's `stamps`.
    pub(crate) fn new(cap: usize, id: SessionId, stamps: Arc<Stamps>) -> Self {
        Inbox {
            side: AtomicBool::new(false),
            state: Mutex::default(),
            cap: cap.max(1),
            id,
            stamps,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a single queue operation: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting.
    pub(crate) fn push(&self, out: Outbound) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        if st.frames.len() >= self.cap {
            if !st.overflowed {
                st.overflowed = true;
                Self::signal(st, Control::Overflow);
            }
            return Err(Refused::Full);
        }
        st.frames.push_back((self.stamps.take(), out));
        let w = st.waker.take();
        drop(st);
        wake(w);
        Ok(())
    }

    /// Whether the session's connection or timer woke it (or may have more) since the last
    /// call; they are polled only then, with this inbox as their waker.
    pub(crate) fn take_side_wake(&self) -> bool {
        // Read first: the usual answer, false, leaves the line clean.
        self.side.load(Ordering::Acquire) && self.side.swap(false, Ordering::AcqRel)
    }

    /// Has the session poll its connection and timer on its next turn (its first turn, a new
    /// connection, or one that may have more to read).
    pub(crate) fn wake_side_later(&self) {
        self.side.store(true, Ordering::Release);
    }

    /// Starts reading a room log (the session joined its room).
    pub(crate) fn subscribe(&self, reader: Reader) {
        let mut st = self.lock();
        if !st.closed {
            st.readers.push(reader);
        }
    }

    /// Ends the session's reading of a room log by reader `id` (its membership ended, under
    /// the app's lock): it reads nothing accepted from here on.
    pub(crate) fn end_reading(&self, id: u64, stamps: &Stamps) {
        let mut st = self.lock();
        if let Some(r) = st.readers.iter_mut().find(|r| r.id() == id) {
            r.end(stamps);
        }
    }

    /// Whether a room log dropped entries this session had not read (it cannot resume).
    pub(crate) fn lost_entries(&self) -> bool {
        self.lock().readers.iter().any(Reader::lost)
    }

    /// Queues a control event; gives it back when the session has ended.
    pub(crate) fn control(&self, c: Control) -> Result<(), Control> {
        let st = self.lock();
        if st.closed {
            return Err(c);
        }
        Self::signal(st, c);
        Ok(())
    }

    /// Hands a new connection to the session (a resume); gives it back when the session has
    /// ended.
    pub(crate) fn take_over(&self, t: Box<Takeover>) -> Result<(), Box<Takeover>> {
        let st = self.lock();
        if st.closed {
            return Err(t);
        }
        Self::signal(st, Control::Takeover(t));
        Ok(())
    }

    fn signal(mut st: MutexGuard<'_, State>, c: Control) {
        st.control.push_back(c);
        let w = st.waker.take();
        drop(st);
        wake(w);
    }

    /// The next control event, or (when `frames` is given) every queued frame and room-log
    /// entry that can be handed out, moved in stamp order to the end of `frames`; pending
    /// (and woken later) when there is neither. A reader that fell behind what a room log
    /// keeps is reported as [`Control::Overflow`].
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        frames: Option<&mut VecDeque<Outbound>>,
    ) -> Poll<Received> {
        let mut st = self.lock();
        if let Some(c) = st.control.pop_front() {
            if matches!(c, Control::Overflow) {
                st.overflowed = false;
            }
            return Poll::Ready(Received::Control(c));
        }
        if let Some(out) = frames {
            match self.collect(&mut st, out, cx.waker()) {
                Err(Lost) => return Poll::Ready(Received::Control(Control::Overflow)),
                Ok(true) => return Poll::Ready(Received::Frames),
                Ok(false) => {}
            }
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        // A side wake that found no waker to take (the session was already woken, and may
        // have looked at the flag before it was set) is seen here, under the lock it takes.
        if self.side.load(Ordering::Acquire) {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Moves what can be handed out to `out` (see [`Inbox::poll_recv`]); true when it moved
    /// anything. Readers that caught up leave `waker` with their logs.
    fn collect(
        &self,
        st: &mut State,
        out: &mut VecDeque<Outbound>,
        waker: &Waker,
    ) -> Result<bool, Lost> {
        // Every queued frame is stamped below it: frames are stamped under our lock.
        let limit = self.stamps.next();
        let before = out.len();
        // A single source is in order already: what it reads goes straight to `out`, a batch
        // at a time (the session comes back for more once `out` is written).
        let direct = st.frames.is_empty() && st.readers.len() == 1;
        let mut logged = if direct {
            Vec::new()
        } else {
            std::mem::take(&mut st.logged)
        };
        let (mut lost, mut again, mut sources) = (false, false, 0);
        let id = self.id;
        st.readers.retain_mut(|r| {
            let read = if direct {
                r.read(limit, id, READ_AHEAD, &mut |_, o| out.push_back(o), waker)
            } else {
                let n = logged.len();
                let read = r.read(
                    limit,
                    id,
                    usize::MAX,
                    &mut |s, o| logged.push((s, o)),
                    waker,
                );
                sources += usize::from(logged.len() > n);
                read
            };
            let keep = match read {
                // Paused: it reads on when the session has written what it took.
                Ok(Read::CaughtUp | Read::Paused) => true,
                Ok(Read::More) => {
                    again = true;
                    true
                }
                Ok(Read::Done) => false,
                Err(Lost) => {
                    lost = true;
                    false
                }
            };
            if !keep {
                r.forget();
            }
            keep
        });
        if lost {
            return Err(Lost);
        }
        if again {
            waker.wake_by_ref();
        }
        if !direct {
            if logged.is_empty() {
                out.extend(st.frames.drain(..).map(|(_, o)| o));
            } else {
                if sources > 1 || !st.frames.is_empty() {
                    logged.extend(st.frames.drain(..));
                    logged.sort_by_key(|(s, _)| *s);
                }
                out.extend(logged.drain(..).map(|(_, o)| o));
            }
            if logged.capacity() <= KEEP_LOGGED {
                st.logged = logged;
            }
        }
        if st.frames.capacity() > KEEP_CAPACITY {
            st.frames = VecDeque::new();
        }
        Ok(out.len() > before)
    }

    /// Ends the inbox: later pushes are refused. Returns the control events still queued
    /// (a takeover among them carries a connection to give back).
    pub(crate) fn close(&self) -> Vec<Control> {
        let mut st = self.lock();
        st.closed = true;
        st.frames = VecDeque::new();
        st.readers.iter_mut().for_each(Reader::forget);
        st.readers = Vec::new();
        st.waker = None;
        std::mem::take(&mut st.control).into()
    }
}

/// The waker of a session's connection and timer: it flags the wake and wakes the session.
impl Wake for Inbox {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.side.store(true, Ordering::Release);
        let w = self.lock().waker.take();
        wake(w);
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(n: u8) -> Outbound {
        Outbound::Frame(Box::new(Bytes::from(vec![n])))
    }

    fn bytes(o: &Outbound) -> u8 {
        match o {
            Outbound::Frame(b) => b[0],
            Outbound::Push(b) => b[0],
        }
    }

    #[test]
    fn a_queued_frame_is_two_words() {
        // Every delivery writes one into the inbox: keep it small.
        assert_eq!(std::mem::size_of::<Outbound>(), 16);
    }

    #[test]
    fn frames_arrive_in_order_and_wake_a_waiting_task() {
        let inbox = Inbox::new(8, 1, Arc::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut got = VecDeque::new();
        assert!(inbox.poll_recv(&mut cx, Some(&mut got)).is_pending());
        inbox.push(frame(1)).unwrap();
        inbox.push(frame(2)).unwrap();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "woken once, not per frame"
        );
        assert!(matches!(
            inbox.poll_recv(&mut cx, Some(&mut got)),
            Poll::Ready(Received::Frames)
        ));
        inbox.push(frame(3)).unwrap();
        assert!(matches!(
            inbox.poll_recv(&mut cx, Some(&mut got)),
            Poll::Ready(Received::Frames)
        ));
        assert_eq!(got.iter().map(bytes).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_side_wake_wakes_the_waiting_session_and_is_never_lost() {
        let inbox = Arc::new(Inbox::new(8, 1, Arc::default()));
        let side = Waker::from(inbox.clone());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(Ordering::SeqCst);
        // The session waits; its connection wakes it once.
        assert!(inbox.poll_recv(&mut cx, None).is_pending());
        side.wake_by_ref();
        assert_eq!(woken(), 1);
        assert!(inbox.take_side_wake());
        assert!(!inbox.take_side_wake(), "taken once");
        assert!(inbox.poll_recv(&mut cx, None).is_pending());
        // A side wake that comes while the session's waker is taken (the session is already
        // woken, and may have looked at the flag before it was set): its next wait does not
        // sleep on it.
        inbox.push(frame(1)).unwrap();
        assert_eq!(woken(), 2);
        side.wake_by_ref();
        assert_eq!(woken(), 2, "no waker to take");
        let mut got = VecDeque::new();
        assert!(inbox.poll_recv(&mut cx, Some(&mut got)).is_ready());
        assert!(inbox.poll_recv(&mut cx, Some(&mut got)).is_pending());
        assert_eq!(woken(), 3, "the wait wakes the session at once");
        assert!(inbox.take_side_wake());
        // Taken, it no longer wakes a wait.
        assert!(inbox.poll_recv(&mut cx, Some(&mut got)).is_pending());
        assert_eq!(woken(), 3);
    }

    #[test]
    fn control_comes_first_and_frames_wait_while_not_wanted() {
        let inbox = Inbox::new(8, 1, Arc::default());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        inbox.push(frame(1)).unwrap();
        assert!(inbox.control(Control::LoginTaken).is_ok());
        assert!(matches!(
            inbox.poll_recv(&mut cx, None),
            Poll::Ready(Received::Control(Control::LoginTaken))
        ));
        assert!(inbox.poll_recv(&mut cx, None).is_pending(), "frames kept");
        let mut got = VecDeque::new();
        assert!(inbox.poll_recv(&mut cx, Some(&mut got)).is_ready());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_full_inbox_refuses_and_reports_one_overflow() {
        let inbox = Inbox::new(2, 1, Arc::default());
        let mut cx = Context::from_waker(Waker::noop());
        inbox.push(frame(1)).unwrap();
        inbox.push(frame(2)).unwrap();
        assert_eq!(inbox.push(frame(3)), Err(Refused::Full));
        assert_eq!(inbox.push(frame(4)), Err(Refused::Full));
        assert!(matches!(
            inbox.poll_recv(&mut cx, None),
            Poll::Ready(Received::Control(Control::Overflow))
        ));
        assert!(inbox.poll_recv(&mut cx, None).is_pending(), "reported once");
    }

    #[test]
    fn a_closed_inbox_refuses_and_gives_back_its_control_events() {
        let inbox = Inbox::new(2, 1, Arc::default());
        assert!(inbox.control(Control::RoomTaken("r".into())).is_ok());
        let left = inbox.close();
        assert!(matches!(left.as_slice(), [Control::RoomTaken(r)] if r == "r"));
        assert_eq!(inbox.push(frame(1)), Err(Refused::Closed));
        assert!(inbox.control(Control::LoginTaken).is_err());
    }
}
