//! Room broadcasts written once: each room's log of recent broadcasts, read by every member's
//! session from its own position, and the per-app stamps that keep a session's pushes in the
//! order the server accepted them.
//!
//! A broadcast to a room of N members is one append to the room's [`RoomLog`], whatever N:
//! the sender touches no member. Each session copies what it has not read yet on its own
//! turn, without a lock: the log is a chain of fixed-size chunks whose slots are written
//! once, so a reader only loads what the writer published. A session that has read
//! everything leaves its waker with the log ([`Reader::wait`]) and the next append wakes it;
//! a session that is busy costs the sender nothing.
//!
//! **Bounded.** The writer keeps the chunks holding the last `cap` entries (and at most
//! [`MAX_LOG_BYTES`] of bodies); readers hold only a weak reference between turns, so a
//! reader that fell further behind finds its chunk gone ([`Lost`]): a slow consumer, ended as
//! one whose queue is full.
//!
//! **Order.** A session gets pushes from its inbox (unicasts, member events) and from the
//! logs of its rooms. Every item of either kind carries a stamp ([`Stamps`]), taken when the
//! server accepts it, under the lock that orders it in its queue. A session first reads the
//! next stamp `S` and then hands out, in stamp order, every item it finds stamped below `S`.
//! If a sender waited for the answer to item X before sending item Y, X was in place before
//! Y was stamped; a session that finds Y below `S` also finds X, and hands X out first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::Waker;

use slab::Slab;
use tokio::runtime::Handle;

use crate::hub::{Body, Outbound, SessionId};

/// Entries per chunk.
const CHUNK: usize = 64;

/// A room log keeps at most this many bytes of message bodies (besides its entry count).
const MAX_LOG_BYTES: usize = 16 << 20;

/// Up to this many readers an append wakes where it runs; more are woken on the sessions'
/// runtime ([`Wakes::wake_on`]).
const WAKE_IN_PLACE: usize = 32;

/// The stamp numbers of one app (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Stamps {
    next: AtomicU64,
}

impl Stamps {
    /// A new stamp, taken when an item is accepted (under the lock of its queue).
    pub(crate) fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::AcqRel)
    }

    /// The stamp the next item will get: everything handed out now is stamped below it.
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }
}

/// One broadcast in a log.
struct Entry {
    stamp: u64,
    /// The member that sent it, which does not get it back.
    except: Option<SessionId>,
    body: Body,
}

/// [`CHUNK`] consecutive entries, each written once.
struct Chunk {
    /// The position of `slots[0]`.
    start: u64,
    slots: [OnceLock<Entry>; CHUNK],
    next: OnceLock<Arc<Chunk>>,
}

impl Chunk {
    fn new(start: u64) -> Arc<Chunk> {
        Arc::new(Chunk {
            start,
            slots: std::array::from_fn(|_| OnceLock::new()),
            next: OnceLock::new(),
        })
    }

    fn bytes(&self) -> usize {
        self.slots
            .iter()
            .filter_map(OnceLock::get)
            .map(|e| e.body.len())
            .sum()
    }
}

struct Writer {
    /// The chunks holding the kept entries, oldest first; entries go into the last.
    chunks: VecDeque<Arc<Chunk>>,
    /// The position of the next entry.
    end: u64,
    /// The body bytes in `chunks`.
    bytes: usize,
}

/// Readers waiting for the next entry. A reader keeps the key of its waker (valid while the
/// log's `wakes` has not moved on): a slab takes a waker without hashing, and the wakers of a
/// room sit side by side.
#[derive(Default)]
struct Waiters {
    wakers: Slab<Waker>,
}

/// The id of the next reader, unique in the process: a session tells its readers apart by it
/// ([`crate::inbox::Inbox::end_reading`]).
static NEXT_READER: AtomicU64 = AtomicU64::new(1);

/// A room's recent broadcasts (see the module docs).
pub(crate) struct RoomLog {
    writer: Mutex<Writer>,
    waiters: Mutex<Waiters>,
    /// Bumped each time the waiters are woken: a reader registered at an older value is
    /// no longer registered.
    wakes: AtomicU64,
    cap: usize,
}

impl std::fmt::Debug for RoomLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomLog").field("cap", &self.cap).finish()
    }
}

/// A reader fell behind what the log keeps: it lost entries (a slow consumer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Lost;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single queue or map operation: a poisoned lock is
    // consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RoomLog {
    /// An empty log keeping at least the last `cap` entries (at least 1).
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(RoomLog {
            writer: Mutex::new(Writer {
                chunks: VecDeque::from([Chunk::new(0)]),
                end: 0,
                bytes: 0,
            }),
            waiters: Mutex::default(),
            wakes: AtomicU64::new(0),
            cap: cap.max(1),
        })
    }

    /// A reader for a new member: it reads what is appended from now on, until it is
    /// ended ([`Reader::end`]).
    pub(crate) fn reader(self: &Arc<Self>) -> Reader {
        let id = NEXT_READER.fetch_add(1, Ordering::Relaxed);
        let w = lock(&self.writer);
        let tail = w.chunks.back().expect("a log has a chunk");
        Reader {
            id,
            log: self.clone(),
            chunk: Arc::downgrade(tail),
            pos: w.end,
            until: u64::MAX,
            registered: None,
        }
    }

    /// Appends a broadcast (stamped `stamp`, not for session `except`) and returns the
    /// sessions waiting for it, which are woken when the [`Wakes`] is dropped or handed on.
    /// The oldest chunks go once they hold none of the last `cap` entries, or the bodies
    /// exceed [`MAX_LOG_BYTES`].
    pub(crate) fn append(&self, stamp: u64, except: Option<SessionId>, body: Body) -> Wakes {
        {
            let mut w = lock(&self.writer);
            let pos = w.end;
            let mut tail = w.chunks.back().expect("a log has a chunk").clone();
            if pos == tail.start + CHUNK as u64 {
                let next = Chunk::new(pos);
                let _ = tail.next.set(next.clone());
                w.chunks.push_back(next.clone());
                tail = next;
            }
            w.bytes += body.len();
            let entry = Entry {
                stamp,
                except,
                body,
            };
            let _ = tail.slots[(pos - tail.start) as usize].set(entry);
            w.end = pos + 1;
            let keep_from = w.end.saturating_sub(self.cap as u64);
            while w.chunks.len() > 1 {
                let front = &w.chunks[0];
                let old = front.start + CHUNK as u64 <= keep_from;
                if !old && w.bytes <= MAX_LOG_BYTES {
                    break;
                }
                let gone = front.bytes();
                w.bytes -= gone;
                w.chunks.pop_front();
            }
        }
        let mut ws = lock(&self.waiters);
        if ws.wakers.is_empty() {
            return Wakes(Vec::new());
        }
        self.wakes.fetch_add(1, Ordering::AcqRel);
        Wakes(ws.wakers.drain().collect())
    }
}

/// The sessions an append has to wake. Dropping it wakes them where it is dropped: after the
/// locks held around the append, so no lock is held for thousands of wakes.
pub(crate) struct Wakes(Vec<Waker>);

impl Wakes {
    /// Wakes the readers, many of them from a task on `sessions`, the runtime their sessions
    /// run on. A wake from one of its worker threads goes to that worker's own run queue
    /// (the other worker steals half); a wake from any other thread, such as the thread
    /// answering the OpenAPI, takes the runtime's shared queue lock once per session.
    pub(crate) fn wake_on(mut self, sessions: Option<&Handle>) {
        if let Some(rt) = sessions.filter(|_| self.0.len() > WAKE_IN_PLACE) {
            let wakers = std::mem::take(&mut self.0);
            rt.spawn(async move { wakers.into_iter().for_each(Waker::wake) });
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.0.drain(..).for_each(Waker::wake);
    }
}

/// How far a [`Reader::read`] got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Everything appended so far was read, and the waker was left with the log.
    CaughtUp,
    /// It stopped at an entry stamped at or after the limit, or an entry arrived as it
    /// caught up: read again soon.
    More,
    /// It handed out as many entries as it was allowed: read on once they are written.
    Paused,
    /// The membership ended and everything before its end was read: drop the reader.
    Done,
}

/// A session's reading of one room log (see the module docs).
pub(crate) struct Reader {
    /// Unique among the log's readers (a session that left and joined again has two).
    id: u64,
    log: Arc<RoomLog>,
    /// The chunk holding `pos` (or ending just before it).
    chunk: Weak<Chunk>,
    pos: u64,
    /// The stamp at which the member left the room (`u64::MAX` while it is a member): it
    /// reads nothing stamped from there on. Kept here, beside what a read loads anyway, and
    /// set under the session's inbox lock, which every read holds.
    until: u64,
    /// The log's `wakes` when this reader left its waker there, and the waker's key.
    registered: Option<(u64, usize)>,
}

impl Reader {
    /// Reads, for session `me`, the entries stamped below `limit` (skipping those `me` sent),
    /// handing at most `max` of them to `out` with their stamps, and moves past them. When it
    /// caught up, it leaves `waker` with the log, to be woken by the next append.
    pub(crate) fn read(
        &mut self,
        limit: u64,
        me: SessionId,
        max: usize,
        out: &mut impl FnMut(u64, Outbound),
        waker: &Waker,
    ) -> Result<Read, Lost> {
        let until = self.until;
        // Still waiting, and no append has woken the waiters since: there is nothing to read
        // (an append on its way wakes this reader), and the shared chunk is left alone.
        if until == u64::MAX
            && self
                .registered
                .is_some_and(|(at, _)| at == self.log.wakes.load(Ordering::Acquire))
        {
            return Ok(Read::CaughtUp);
        }
        let limit = limit.min(until);
        let Some(mut c) = self.chunk.upgrade() else {
            return Err(Lost);
        };
        let start = c.start;
        let mut handed = 0;
        let read = loop {
            let i = (self.pos - c.start) as usize;
            if i == CHUNK {
                match c.next.get() {
                    Some(n) => {
                        c = n.clone();
                        continue;
                    }
                    None => break Read::CaughtUp,
                }
            }
            match c.slots[i].get() {
                None => break Read::CaughtUp,
                Some(e) if e.stamp >= until => break Read::Done,
                Some(e) if e.stamp >= limit => break Read::More,
                Some(e) => {
                    if e.except != Some(me) {
                        if handed == max {
                            break Read::Paused;
                        }
                        out(e.stamp, Outbound::Push(e.body.clone()));
                        handed += 1;
                    }
                    self.pos += 1;
                }
            }
        };
        if c.start != start {
            self.chunk = Arc::downgrade(&c);
        }
        // Entries appended after the membership ended are stamped after its end.
        Ok(match read {
            Read::CaughtUp if until != u64::MAX => Read::Done,
            Read::CaughtUp if !self.wait(&c, waker) => Read::More,
            r => r,
        })
    }

    /// After a read that caught up in chunk `c`: leaves `waker` with the log, to be woken by
    /// the next append. False when an entry arrived meanwhile (read again now).
    fn wait(&mut self, c: &Chunk, waker: &Waker) -> bool {
        let mut ws = lock(&self.log.waiters);
        // Checked under the lock an append takes to wake: no entry slips between.
        let arrived = match c.slots.get((self.pos - c.start) as usize) {
            Some(s) => s.get().is_some(),
            None => c.next.get().is_some(),
        };
        if arrived {
            return false;
        }
        let key = ws.wakers.insert(waker.clone());
        self.registered = Some((self.log.wakes.load(Ordering::Acquire), key));
        true
    }

    /// This reader's id (see [`NEXT_READER`]).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Ends the membership now (under the app's lock, as appends are): the member reads
    /// nothing accepted from here on.
    pub(crate) fn end(&mut self, stamps: &Stamps) {
        self.until = stamps.take();
    }

    /// Whether entries this reader had not read were dropped (it cannot resume).
    pub(crate) fn lost(&self) -> bool {
        self.chunk.strong_count() == 0
    }

    /// Takes back a waker left with the log (the reader is being dropped).
    pub(crate) fn forget(&mut self) {
        if let Some((at, key)) = self.registered.take() {
            let mut ws = lock(&self.log.waiters);
            // Woken since (`wakes` moves on under this lock): the key is no longer ours.
            if at == self.log.wakes.load(Ordering::Acquire) {
                ws.wakers.try_remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Payload;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::{Duration, Instant};

    fn body(n: u8) -> Body {
        Payload::shared(vec![n])
    }

    fn entries(r: &mut Reader, limit: u64, me: SessionId) -> Result<(Read, Vec<u8>), Lost> {
        read_entries(r, limit, me, usize::MAX, Waker::noop())
    }

    fn entries_at_most(r: &mut Reader, max: usize, me: SessionId) -> Result<(Read, Vec<u8>), Lost> {
        read_entries(r, u64::MAX, me, max, Waker::noop())
    }

    fn entries_waking(
        r: &mut Reader,
        limit: u64,
        me: SessionId,
        waker: &Waker,
    ) -> Result<(Read, Vec<u8>), Lost> {
        read_entries(r, limit, me, usize::MAX, waker)
    }

    /// What `r.read` hands out, as the first byte of each body.
    fn read_entries(
        r: &mut Reader,
        limit: u64,
        me: SessionId,
        max: usize,
        waker: &Waker,
    ) -> Result<(Read, Vec<u8>), Lost> {
        let mut got = Vec::new();
        let read = r.read(limit, me, max, &mut |_, o| got.push(o), waker)?;
        let first_byte = |o: &Outbound| match o {
            Outbound::Push(b) => b[0],
            Outbound::Frame(f) => f[0],
        };
        Ok((read, got.iter().map(first_byte).collect()))
    }

    #[test]
    fn readers_see_entries_below_the_limit_once_and_skip_their_own() {
        let log = RoomLog::new(8);
        let mut r = log.reader();
        log.append(1, None, body(1));
        log.append(2, Some(7), body(2));
        log.append(5, None, body(5));
        assert_eq!(entries(&mut r, 5, 7), Ok((Read::More, vec![1])));
        assert_eq!(entries(&mut r, 6, 7), Ok((Read::CaughtUp, vec![5])));
        assert_eq!(entries(&mut r, 100, 7), Ok((Read::CaughtUp, vec![])));
        let mut late = log.reader();
        log.append(6, None, body(6));
        assert_eq!(entries(&mut late, 100, 7), Ok((Read::CaughtUp, vec![6])));
    }

    #[test]
    fn a_reader_hands_out_at_most_what_it_is_allowed_and_reads_on_later() {
        let log = RoomLog::new(8);
        let mut r = log.reader();
        for s in 0..5 {
            log.append(s, (s == 1).then_some(7), body(s as u8));
        }
        // Its own entry (1) is skipped and not counted.
        assert_eq!(
            entries_at_most(&mut r, 2, 7),
            Ok((Read::Paused, vec![0, 2]))
        );
        // Two left: it hands them out and has read everything.
        assert_eq!(
            entries_at_most(&mut r, 2, 7),
            Ok((Read::CaughtUp, vec![3, 4]))
        );
    }

    #[test]
    fn reading_crosses_chunks() {
        let log = RoomLog::new(1000);
        let mut r = log.reader();
        let n = CHUNK as u64 * 3 + 5;
        for s in 0..n {
            log.append(s, None, body(s as u8));
        }
        let (read, got) = entries(&mut r, n, 1).unwrap();
        assert_eq!(read, Read::CaughtUp);
        assert_eq!(got, (0..n).map(|s| s as u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_reader_that_left_is_done_once_it_read_what_came_before() {
        let log = RoomLog::new(8);
        let stamps = Stamps::default();
        let mut r = log.reader();
        log.append(stamps.take(), None, body(0));
        r.end(&stamps);
        log.append(stamps.take(), None, body(2));
        assert_eq!(entries(&mut r, 1, 9), Ok((Read::Done, vec![0])));
        // Still a member: it stops at the limit and reads on later.
        let mut member = log.reader();
        log.append(stamps.take(), None, body(3));
        log.append(stamps.take(), None, body(4));
        assert_eq!(entries(&mut member, 4, 9), Ok((Read::More, vec![3])));
        assert_eq!(entries(&mut member, 5, 9), Ok((Read::CaughtUp, vec![4])));
        // Left with nothing after its end appended yet: done as well.
        let mut r = log.reader();
        r.end(&stamps);
        assert_eq!(entries(&mut r, stamps.next(), 9), Ok((Read::Done, vec![])));
    }

    #[test]
    fn a_reader_behind_what_the_log_keeps_lost_entries() {
        let log = RoomLog::new(2);
        let mut r = log.reader();
        let mut keeps_up = log.reader();
        for s in 0..CHUNK as u64 + 2 {
            log.append(s, None, body(s as u8));
            entries(&mut keeps_up, u64::MAX, 1).unwrap();
        }
        assert!(r.lost());
        assert_eq!(entries(&mut r, u64::MAX, 1), Err(Lost));
        assert!(!keeps_up.lost());
    }

    #[test]
    fn the_log_is_bounded_in_bytes_too() {
        let log = RoomLog::new(1 << 20);
        let mut r = log.reader();
        let big = Payload::shared(vec![0u8; MAX_LOG_BYTES / (CHUNK + 1)]);
        for s in 0..3 * CHUNK as u64 {
            log.append(s, None, big.clone());
        }
        assert_eq!(entries(&mut r, u64::MAX, 1), Err(Lost));
        assert!(lock(&log.writer).bytes <= MAX_LOG_BYTES);
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_reader_is_woken_once_by_the_next_append() {
        let log = RoomLog::new(8);
        let mut r = log.reader();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let caught_up = Ok((Read::CaughtUp, vec![]));
        assert_eq!(entries_waking(&mut r, u64::MAX, 1, &waker), caught_up);
        assert_eq!(entries_waking(&mut r, u64::MAX, 1, &waker), caught_up);
        log.append(0, None, body(0));
        log.append(1, None, body(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert_eq!(
            entries_waking(&mut r, u64::MAX, 1, &waker),
            Ok((Read::CaughtUp, vec![0, 1]))
        );
        // Each later append wakes it once more, across the chunk boundary too.
        for s in 2..CHUNK as u64 + 1 {
            log.append(s, None, body(s as u8));
            entries_waking(&mut r, u64::MAX, 1, &waker).unwrap();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), CHUNK);
        r.forget();
        log.append(100, None, body(100));
        assert_eq!(count.0.load(Ordering::SeqCst), CHUNK, "forgotten");
    }

    /// Records the thread each wake ran on.
    struct Where(Mutex<Vec<Option<String>>>);
    impl Wake for Where {
        fn wake(self: Arc<Self>) {
            let name = std::thread::current().name().map(str::to_owned);
            lock(&self.0).push(name);
        }
    }

    #[test]
    fn many_waiting_readers_are_woken_on_the_sessions_runtime_and_a_few_in_place() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sessions")
            .build()
            .unwrap();
        for (n, want) in [(WAKE_IN_PLACE + 8, "sessions"), (WAKE_IN_PLACE, "here")] {
            let log = RoomLog::new(8);
            let seen = Arc::new(Where(Mutex::default()));
            let waker = Waker::from(seen.clone());
            let mut readers: Vec<Reader> = (0..n).map(|_| log.reader()).collect();
            for r in &mut readers {
                assert_eq!(
                    entries_waking(r, u64::MAX, 1, &waker).unwrap().0,
                    Read::CaughtUp
                );
            }
            std::thread::Builder::new()
                .name("here".into())
                .spawn({
                    let (log, rt) = (log.clone(), rt.handle().clone());
                    move || log.append(0, None, body(0)).wake_on(Some(&rt))
                })
                .unwrap()
                .join()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while lock(&seen.0).len() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let seen = lock(&seen.0);
            assert_eq!(seen.len(), n, "every reader is woken once");
            assert!(
                seen.iter().all(|t| t.as_deref() == Some(want)),
                "{n} woken on {want}"
            );
        }
    }

    #[test]
    fn forgetting_one_reader_of_a_session_keeps_its_other_one_waiting() {
        // A session that left a room and joined it again reads the log twice for a while.
        let log = RoomLog::new(8);
        let (mut left, mut joined) = (log.reader(), log.reader());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        for r in [&mut left, &mut joined] {
            assert_eq!(
                entries_waking(r, u64::MAX, 1, &waker),
                Ok((Read::CaughtUp, vec![]))
            );
        }
        left.forget();
        log.append(0, None, body(0));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the other reader is woken"
        );
    }

    #[test]
    fn a_reader_woken_and_forgotten_leaves_the_waker_that_took_its_place() {
        // The first reader's waker is taken by an append; the second reader's waker then gets
        // the same place in the log. Forgetting the first must not take the second's.
        let log = RoomLog::new(8);
        let (mut first, mut second) = (log.reader(), log.reader());
        let (one, two) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (w1, w2) = (Waker::from(one.clone()), Waker::from(two.clone()));
        assert_eq!(
            entries_waking(&mut first, u64::MAX, 1, &w1).unwrap().0,
            Read::CaughtUp
        );
        log.append(0, None, body(0));
        assert_eq!(one.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            entries_waking(&mut second, u64::MAX, 1, &w2),
            Ok((Read::CaughtUp, vec![0]))
        );
        first.forget();
        log.append(1, None, body(1));
        assert_eq!(
            two.0.load(Ordering::SeqCst),
            1,
            "the second reader is still woken"
        );
        assert_eq!(one.0.load(Ordering::SeqCst), 1);
    }
}
