//! Property tests for the frame decoder: it never panics and never allocates, on arbitrary bytes
//! and on valid frames mutated in many ways; encode → decode round-trips every frame.
//!
//! This test binary installs a counting global allocator. The counter is per thread, so the
//! allocations of proptest and of the other test threads never count: only what the measured
//! call itself allocates on the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use proptest::prelude::*;
use proptest::sample::Index;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{
    decode_client, decode_server, encode_client, encode_push_body, encode_push_frame,
    encode_server, peek_req, server_frames, ty, BatchWriter, ClientFrame, DecodeError, Push,
    PushKind, ServerFrame, Writer,
};

// ---------------------------------------------------------------------------------------------
// Counting allocator

struct Counting;

thread_local! {
    /// Allocation calls (alloc, alloc_zeroed, realloc) made by this thread.
    static CALLS: Cell<u64> = const { Cell::new(0) };
    /// Bytes requested by those calls (the new size, for realloc).
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the thread-locals may be gone while a thread is being torn down.
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the (calls, bytes) this thread allocated meanwhile.
fn measure<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let calls = CALLS.with(Cell::get);
    let bytes = BYTES.with(Cell::get);
    let r = black_box(f());
    (
        r,
        CALLS.with(Cell::get) - calls,
        BYTES.with(Cell::get) - bytes,
    )
}

/// Decodes `buf` both ways and with `peek_req`, asserting that none of it allocates.
/// Returns the results so callers can check more.
fn decode_without_allocating(
    buf: &[u8],
) -> (
    Result<ClientFrame<'_>, DecodeError>,
    Result<ServerFrame<'_>, DecodeError>,
) {
    let (c, calls, bytes) = measure(|| decode_client(black_box(buf)));
    assert_eq!(
        (calls, bytes),
        (0, 0),
        "decode_client allocated on {buf:02x?}"
    );
    let (s, calls, bytes) = measure(|| decode_server(black_box(buf)));
    assert_eq!(
        (calls, bytes),
        (0, 0),
        "decode_server allocated on {buf:02x?}"
    );
    let (p, calls, bytes) = measure(|| peek_req(black_box(buf)));
    assert_eq!((calls, bytes), (0, 0), "peek_req allocated on {buf:02x?}");
    // As a message that may be a batch: split and decoded without allocating either, and
    // nothing follows an error in the batch itself.
    let (_, calls, bytes) = measure(|| {
        let mut failed = false;
        for f in server_frames(black_box(buf)) {
            assert!(!failed, "a frame after a split error in {buf:02x?}");
            failed = f.is_err();
            let _ = black_box(f.and_then(decode_server));
        }
    });
    assert_eq!(
        (calls, bytes),
        (0, 0),
        "server_frames allocated on {buf:02x?}"
    );
    // A frame that decodes has its req visible to peek_req.
    if let Ok(f) = &c {
        assert_eq!(p, Some(client_req(f)));
    }
    (c, s)
}

/// If a mutated input still decodes, its canonical re-encoding decodes to the same frame and
/// is never longer than the input (the input may only differ by padded varints).
fn check_reencode(buf: &[u8]) {
    let (c, s) = decode_without_allocating(buf);
    assert!(c.is_err() || s.is_err(), "a frame decoded on both sides");
    if let Ok(f) = c {
        let again = encode_client(&f);
        assert!(again.len() <= buf.len());
        assert_eq!(decode_client(&again), Ok(f));
    }
    if let Ok(f) = s {
        let again = encode_server(&f);
        assert!(again.len() <= buf.len());
        assert_eq!(decode_server(&again), Ok(f));
    }
}

#[test]
fn the_counter_sees_allocations_on_this_thread_only() {
    let (v, calls, bytes) = measure(|| vec![0u8; 1000]);
    assert_eq!(v.len(), 1000);
    assert!(calls >= 1 && bytes >= 1000, "{calls} {bytes}");
    // Spawning allocates here, but the 1 MiB vector is allocated on the other thread.
    let (_, _, bytes) = measure(|| {
        std::thread::spawn(|| drop(black_box(vec![0u8; 1 << 20])))
            .join()
            .unwrap()
    });
    assert!(bytes < 1 << 20, "{bytes}");
    // And encoding allocates (so zero for decoding means something).
    let (_, calls, _) = measure(|| encode_client(&ClientFrame::Ping { req: 1 }));
    assert!(calls >= 1);
}

// ---------------------------------------------------------------------------------------------
// Generated frames

/// Owned values for every field of every frame; `client()`/`server()` borrow a frame from them.
#[derive(Debug, Clone)]
struct Fields {
    variant: usize,
    req: u32,
    id: u64,
    code: u16,
    strs: [String; 4],
    binary: bool,
    kind: PushKind,
    reason: u8,
    payload: Vec<u8>,
}

impl Fields {
    fn client(&self) -> ClientFrame<'_> {
        let Fields {
            req,
            id: msg_id,
            binary,
            ..
        } = *self;
        let [a, b, c, d] = &self.strs;
        let payload = &self.payload[..];
        match self.variant % 13 {
            0 => ClientFrame::Login {
                req,
                token: a,
                user: b,
            },
            1 => ClientFrame::Logout { req },
            2 => ClientFrame::Join {
                req,
                token: a,
                room: b,
                user: c,
                extra: d,
                visible: binary,
            },
            3 => ClientFrame::Leave { req, room: a },
            4 => ClientFrame::SetServerParams {
                req,
                signature: a,
                url: b,
            },
            5 => ClientFrame::SendServer {
                req,
                msg_id,
                binary,
                payload,
            },
            6 => ClientFrame::SendUser {
                req,
                msg_id,
                room: a,
                to: b,
                binary,
                payload,
            },
            7 => ClientFrame::SendRoom {
                req,
                msg_id,
                room: a,
                binary,
                payload,
            },
            8 => ClientFrame::PeerStatus { req, user: a },
            9 => ClientFrame::Ping { req },
            10 => ClientFrame::UpdateToken {
                req,
                room: a,
                token: b,
            },
            11 => ClientFrame::Resume {
                req,
                session: &self.payload,
                last_seq: msg_id,
            },
            _ => ClientFrame::SetVisibility {
                req,
                room: a,
                visible: binary,
            },
        }
    }

    fn push(&self) -> Push<'_> {
        Push {
            kind: self.kind,
            room: &self.strs[0],
            from: &self.strs[1],
            binary: self.binary,
            payload: &self.payload,
        }
    }

    fn server(&self) -> ServerFrame<'_> {
        let [a, b, c, _] = &self.strs;
        match self.variant % 5 {
            0 => ServerFrame::Reply {
                req: self.req,
                code: self.code,
                data: &self.payload,
            },
            1 => ServerFrame::Push {
                seq: self.id,
                push: self.push(),
            },
            2 => ServerFrame::Notice {
                code: self.code,
                room: a,
                detail: b,
            },
            3 => ServerFrame::Member {
                room: a,
                user: b,
                extra: c,
                joined: self.binary,
                reason: self.reason,
            },
            _ => ServerFrame::Welcome {
                session: &self.payload,
                heartbeat_ms: self.req,
                resume_window_ms: self.req.rotate_left(7),
            },
        }
    }

    /// The encoded server frame when `server`, else the client frame.
    fn encode(&self, server: bool) -> Vec<u8> {
        if server {
            encode_server(&self.server())
        } else {
            encode_client(&self.client())
        }
    }
}

fn client_req(f: &ClientFrame<'_>) -> u32 {
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
        | ClientFrame::UpdateToken { req, .. }
        | ClientFrame::Resume { req, .. }
        | ClientFrame::SetVisibility { req, .. } => req,
    }
}

fn a_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9@._-]{1,24}",
        any::<String>(),
        // Long enough for a two-byte length prefix.
        "[a-z]{120,140}",
        "[\\x{80}-\\x{10FFFF}]{30,50}",
    ]
}

fn a_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0..300u32, any::<u32>(), Just(u32::MAX)]
}

fn a_u64() -> impl Strategy<Value = u64> {
    prop_oneof![0..300u64, any::<u64>(), Just(u64::MAX)]
}

fn a_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(Code::ALL).prop_map(Code::as_u16),
        any::<u16>(),
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (0..44usize, a_u32(), a_u64(), a_code()),
        [a_string(), a_string(), a_string(), a_string()],
        (
            any::<bool>(),
            prop::sample::select(&[PushKind::OutsideRoom, PushKind::RoomUser, PushKind::Room][..]),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..400),
        ),
    )
        .prop_map(
            |((variant, req, id, code), strs, (binary, kind, reason, payload))| Fields {
                variant,
                req,
                id,
                code,
                strs,
                binary,
                kind,
                reason,
                payload,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Mutations

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    /// Insert a multi-byte varint (continuation bits set), to stress varint fields.
    InsertVarint(Index, u64),
}

fn a_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(&[0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0x81, 0xc3, 0xed, 0xff][..]),
        any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), a_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), a_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u64>()).prop_map(|(i, v)| Mutation::InsertVarint(i, v)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let len = buf.len();
    match m {
        Mutation::Flip(i, mask) if len > 0 => buf[i.index(len)] ^= mask,
        Mutation::Set(i, b) if len > 0 => buf[i.index(len)] = *b,
        Mutation::Insert(i, b) => buf.insert(i.index(len + 1), *b),
        Mutation::Remove(i) if len > 0 => {
            buf.remove(i.index(len));
        }
        Mutation::Truncate(i) => buf.truncate(i.index(len + 1)),
        Mutation::InsertVarint(i, v) => {
            let mut w = Writer::default();
            w.varint(*v);
            let at = i.index(len + 1);
            buf.splice(at..at, w.finish());
        }
        _ => {}
    }
}

/// Where the varint length prefixes of a valid frame are: (offset, varint length, value).
/// Walks the frame by its field layout (checked against the codec by the round-trip property).
fn length_fields(frame: &[u8]) -> Vec<(usize, usize, u64)> {
    #[derive(Clone, Copy)]
    enum F {
        Var,
        Byte,
        Len,
    }
    use F::*;
    let layout: &[F] = match frame[0] {
        ty::LOGIN => &[Var, Len, Len],
        ty::LOGOUT | ty::PING => &[Var],
        ty::JOIN => &[Var, Len, Len, Len, Len, Byte],
        ty::SET_VISIBILITY => &[Var, Len, Byte],
        ty::LEAVE | ty::PEER_STATUS => &[Var, Len],
        ty::SET_SERVER_PARAMS | ty::UPDATE_TOKEN => &[Var, Len, Len],
        ty::SEND_SERVER => &[Var, Var, Byte, Len],
        ty::SEND_USER => &[Var, Var, Len, Len, Byte, Len],
        ty::SEND_ROOM => &[Var, Var, Len, Byte, Len],
        ty::REPLY => &[Var, Var, Len],
        ty::PUSH => &[Var, Byte, Len, Len, Byte, Len],
        ty::NOTICE => &[Var, Len, Len],
        ty::MEMBER => &[Len, Len, Len, Byte, Byte],
        ty::RESUME => &[Var, Len, Var],
        ty::WELCOME => &[Len, Var, Var],
        t => panic!("not a frame type {t:#04x}"),
    };
    let varint = |at: usize| -> (usize, u64) {
        let mut v = 0u64;
        let mut n = 0;
        loop {
            let b = frame[at + n];
            v |= u64::from(b & 0x7f) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                return (n, v);
            }
        }
    };
    let mut out = Vec::new();
    let mut at = 1;
    for f in layout {
        match f {
            Var => at += varint(at).0,
            Byte => at += 1,
            Len => {
                let (n, v) = varint(at);
                out.push((at, n, v));
                at += n + v as usize;
            }
        }
    }
    assert_eq!(at, frame.len(), "layout walk of {frame:02x?}");
    out
}

/// Valid frames of either side, as bytes.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (fields(), any::<bool>()).prop_map(|(f, side)| f.encode(side))
}

fn any_type_byte() -> impl Strategy<Value = u8> {
    prop_oneof![ty::LOGIN..=ty::RESUME, ty::REPLY..=ty::BATCH, any::<u8>(),]
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes up to 4 KiB: no panic, no allocation.
    #[test]
    fn arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_reencode(&buf);
    }

    /// Arbitrary bytes after a known type byte, so the field decoders get exercised.
    #[test]
    fn arbitrary_bytes_after_a_type(
        t in any_type_byte(),
        rest in prop::collection::vec(a_byte(), 0..512),
    ) {
        let mut buf = vec![t];
        buf.extend(rest);
        check_reencode(&buf);
    }

    /// Every generated frame round-trips exactly, and decoding it allocates nothing.
    #[test]
    fn round_trip(f in fields()) {
        let client = f.client();
        let bytes = encode_client(&client);
        let (c, s) = decode_without_allocating(&bytes);
        prop_assert_eq!(c, Ok(client.clone()));
        prop_assert!(matches!(s, Err(DecodeError::UnknownType(_))));
        prop_assert_eq!(peek_req(&bytes), Some(client_req(&client)));
        length_fields(&bytes);

        let server = f.server();
        let bytes = encode_server(&server);
        let (c, s) = decode_without_allocating(&bytes);
        prop_assert_eq!(s, Ok(server.clone()));
        prop_assert!(matches!(c, Err(DecodeError::UnknownType(_))));
        prop_assert_eq!(peek_req(&bytes), None);
        length_fields(&bytes);
    }

    /// A push encoded through the shared body is the same frame as one encoded directly.
    #[test]
    fn push_body_plus_prefix_is_the_push_frame(f in fields(), seq in a_u64()) {
        let push = f.push();
        let framed = encode_push_frame(seq, &encode_push_body(&push));
        prop_assert_eq!(&framed, &encode_server(&ServerFrame::Push { seq, push: push.clone() }));
        prop_assert_eq!(decode_server(&framed), Ok(ServerFrame::Push { seq, push }));
    }

    /// Server frames put in a Batch come back out of it as the same frames, in order; the
    /// batch of one frame's push built in place is the frame built on its own.
    #[test]
    fn batches_split_into_their_frames(fs in prop::collection::vec(fields(), 1..8), seq in a_u64()) {
        let frames: Vec<Vec<u8>> = fs.iter().map(|f| encode_server(&f.server())).collect();
        let mut b = BatchWriter::with_capacity(0);
        for f in &frames {
            b.frame(f);
        }
        let push = fs[0].push();
        let body = encode_push_body(&push);
        b.push(seq, &body);
        prop_assert_eq!(b.frames(), frames.len() + 1);
        let msg = b.finish();
        let got: Vec<&[u8]> = server_frames(&msg).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), frames.len() + 1);
        for (g, f) in got.iter().zip(&frames) {
            prop_assert_eq!(g, f);
        }
        prop_assert_eq!(got[frames.len()], &encode_push_frame(seq, &body)[..]);
        let _ = decode_without_allocating(&msg);
    }

    /// Valid frames with a few byte flips, overwrites, insertions, removals or a truncation.
    #[test]
    fn mutated_frames(frame in valid_frame(), ms in prop::collection::vec(mutation(), 1..4)) {
        let mut buf = frame;
        for m in &ms {
            apply(&mut buf, m);
        }
        check_reencode(&buf);
    }

    /// Every proper prefix of a valid frame is rejected, without allocating.
    #[test]
    fn truncated_frames(frame in valid_frame()) {
        for n in 0..frame.len() {
            let (c, s) = decode_without_allocating(&frame[..n]);
            let expect = if n == 0 { DecodeError::Empty } else { DecodeError::Truncated };
            let err = if frame[0] < 0x80 { c.map(|_| ()) } else { s.map(|_| ()) };
            prop_assert_eq!(err, Err(expect));
        }
    }

    /// One length prefix replaced by another value (nearby, arbitrary or huge).
    #[test]
    fn corrupted_length_fields(
        frame in valid_frame(),
        which in any::<Index>(),
        delta in prop_oneof![-3i64..=3, Just(i64::MIN), Just(i64::MAX)],
        raw in any::<u64>(),
        use_raw in any::<bool>(),
    ) {
        let lens = length_fields(&frame);
        prop_assume!(!lens.is_empty());
        let k = which.index(lens.len());
        let (at, n, old) = lens[k];
        let new = if use_raw { raw } else { old.saturating_add_signed(delta) };
        let mut w = Writer::default();
        w.varint(new);
        let mut buf = frame.clone();
        buf.splice(at..at + n, w.finish());
        check_reencode(&buf);
        // Only fixed-size fields follow the last length field: changing it breaks the frame.
        // (Resume and Welcome end with varints, which a shifted length may read as valid.)
        if k == lens.len() - 1 && !matches!(frame[0], ty::RESUME | ty::WELCOME) {
            let ok = if frame[0] < 0x80 {
                decode_client(&buf).is_ok()
            } else {
                decode_server(&buf).is_ok()
            };
            prop_assert_eq!(ok, new == old, "length {} -> {}", old, new);
        }
    }

    /// Overlong and overflowing varints inserted right after the type byte (the first integer
    /// or length field of every frame).
    #[test]
    fn overflowing_first_varint(
        t in prop_oneof![ty::LOGIN..=ty::RESUME, ty::REPLY..=ty::WELCOME],
        n in 1usize..16,
        last in any::<u8>(),
        rest in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = vec![t];
        buf.extend(std::iter::repeat_n(0xff, n));
        buf.push(last);
        buf.extend(rest);
        check_reencode(&buf);
    }
}
