//! A session's mailbox: the one place the hub, other nodes and new connections (resumes) hand
//! things to a session task.
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
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::hub::{Control, Outbound};
use crate::resume::Takeover;

/// Above this many slots, an emptied frame buffer is given back to the allocator.
const KEEP_CAPACITY: usize = 256;

/// What [`Inbox::poll_recv`] hands the session.
pub(crate) enum Received {
    /// A control event (taken before frames).
    Control(Control),
    /// Frames were moved to the caller's buffer.
    Frames,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outbound>,
    control: VecDeque<Control>,
    waker: Option<Waker>,
    /// An overflow was reported and not yet taken.
    overflowed: bool,
    /// The session ended: every push is refused.
    closed: bool,
}

/// A session's mailbox (see the module docs). Shared behind an `Arc`.
pub(crate) struct Inbox {
    state: Mutex<State>,
    cap: usize,
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
    /// An empty inbox holding at most `cap` frames (at least 1).
    pub(crate) fn new(cap: usize) -> Self {
        Inbox {
            state: Mutex::default(),
            cap: cap.max(1),
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
        st.frames.push_back(out);
        let w = st.waker.take();
        drop(st);
        wake(w);
        Ok(())
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

    /// The next control event, or (when `frames` is given) every queued frame moved to the
    /// end of `frames`; pending (and woken later) when there is neither.
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
            if !st.frames.is_empty() {
                if out.is_empty() {
                    std::mem::swap(out, &mut st.frames);
                } else {
                    out.append(&mut st.frames);
                }
                if st.frames.capacity() > KEEP_CAPACITY {
                    st.frames = VecDeque::new();
                }
                return Poll::Ready(Received::Frames);
            }
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Ends the inbox: later pushes are refused. Returns the control events still queued
    /// (a takeover among them carries a connection to give back).
    pub(crate) fn close(&self) -> Vec<Control> {
        let mut st = self.lock();
        st.closed = true;
        st.frames = VecDeque::new();
        st.waker = None;
        std::mem::take(&mut st.control).into()
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
        let inbox = Inbox::new(8);
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
    fn control_comes_first_and_frames_wait_while_not_wanted() {
        let inbox = Inbox::new(8);
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
        let inbox = Inbox::new(2);
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
        let inbox = Inbox::new(2);
        assert!(inbox.control(Control::RoomTaken("r".into())).is_ok());
        let left = inbox.close();
        assert!(matches!(left.as_slice(), [Control::RoomTaken(r)] if r == "r"));
        assert_eq!(inbox.push(frame(1)), Err(Refused::Closed));
        assert!(inbox.control(Control::LoginTaken).is_err());
    }
}
