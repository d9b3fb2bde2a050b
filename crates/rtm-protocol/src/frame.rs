//! Binary WebSocket frames. `PROTOCOL.md` describes every frame byte by byte.
//!
//! A frame is one binary WebSocket message: a type byte, then the frame's fields in order.
//! Field encodings:
//!
//! * `uN`: an unsigned LEB128 varint (at most 5 bytes for `u32`, 10 for `u64`);
//! * `bool`: one byte, `0` or `1`;
//! * `str`: a varint byte length, then that many bytes of UTF-8;
//! * `bytes`: a varint byte length, then that many raw bytes.
//!
//! Decoding borrows strings and payloads from the input: it never allocates, never panics,
//! and rejects unknown types, truncated fields, bad UTF-8 and trailing bytes.

use thiserror::Error;

/// Frame type bytes. Client frames are below `0x80`, server frames from `0x80` on.
pub mod ty {
    /// Client: log in with a login token.
    pub const LOGIN: u8 = 0x01;
    /// Client: log out.
    pub const LOGOUT: u8 = 0x02;
    /// Client: join a room with a room token.
    pub const JOIN: u8 = 0x03;
    /// Client: leave a room.
    pub const LEAVE: u8 = 0x04;
    /// Client: set the business-server parameters.
    pub const SET_SERVER_PARAMS: u8 = 0x05;
    /// Client: send a message to the business server.
    pub const SEND_SERVER: u8 = 0x06;
    /// Client: send a message to one user (outside rooms, or in a room).
    pub const SEND_USER: u8 = 0x07;
    /// Client: send a message to everyone else in a room.
    pub const SEND_ROOM: u8 = 0x08;
    /// Client: ask whether a user is online.
    pub const PEER_STATUS: u8 = 0x09;
    /// Client: heartbeat.
    pub const PING: u8 = 0x0A;
    /// Client: renew a login or room token.
    pub const UPDATE_TOKEN: u8 = 0x0B;
    /// Client: take over a session kept by the server after a lost connection.
    pub const RESUME: u8 = 0x0C;
    /// Client: become visible or invisible to the other members of a room.
    pub const SET_VISIBILITY: u8 = 0x0D;
    /// Server: the answer to a client request.
    pub const REPLY: u8 = 0x80;
    /// Server: a message pushed to this session.
    pub const PUSH: u8 = 0x81;
    /// Server: something happened to this session (kicked, shutting down, ...).
    pub const NOTICE: u8 = 0x82;
    /// Server: a user joined or left a room this session is in.
    pub const MEMBER: u8 = 0x83;
    /// Server: the first frame of every connection (session key, heartbeat, resume window).
    pub const WELCOME: u8 = 0x84;
    /// Server: several server frames in one WebSocket message, for a client that asked for
    /// them (`&batch=1` in the connection URL).
    pub const BATCH: u8 = 0x85;
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame has no bytes.
    #[error("empty frame")]
    Empty,
    /// The type byte is not one this side understands.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A field runs past the end of the frame.
    #[error("truncated frame")]
    Truncated,
    /// A varint is too long for its field.
    #[error("varint overflow")]
    VarintOverflow,
    /// A string field is not UTF-8.
    #[error("string is not UTF-8")]
    InvalidUtf8,
    /// A boolean or enum byte has a value outside its range.
    #[error("invalid value {0} for an enumerated field")]
    InvalidEnum(u64),
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// A frame sent by the client. Every request carries a `req` id echoed by its [`ServerFrame::Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Log in as `user` with a login token (room "").
    Login {
        /// Request id.
        req: u32,
        /// The "001" login token.
        token: &'a str,
        /// The user id.
        user: &'a str,
    },
    /// Log out; the session stays open while it is in a room.
    Logout {
        /// Request id.
        req: u32,
    },
    /// Join `room` as `user` with a room token.
    Join {
        /// Request id.
        req: u32,
        /// The "001" room token.
        token: &'a str,
        /// The room id.
        room: &'a str,
        /// The user id.
        user: &'a str,
        /// The user's extra info shown to others (at most 200 bytes).
        extra: &'a str,
        /// Whether the other members are told about this user (its joins and leaves).
        visible: bool,
    },
    /// Leave `room`.
    Leave {
        /// Request id.
        req: u32,
        /// The room id.
        room: &'a str,
    },
    /// Set where `SendServer` messages go.
    SetServerParams {
        /// Request id.
        req: u32,
        /// The opaque signature the business server issued.
        signature: &'a str,
        /// The business server's URL.
        url: &'a str,
    },
    /// Send a message to the business server; the reply carries its response body.
    SendServer {
        /// Request id.
        req: u32,
        /// The engine's message id (stable across resends).
        msg_id: u64,
        /// Whether `payload` is binary (else UTF-8 text).
        binary: bool,
        /// The message.
        payload: &'a [u8],
    },
    /// Send a message to one user: outside rooms when `room` is empty, else in `room`.
    SendUser {
        /// Request id.
        req: u32,
        /// The engine's message id.
        msg_id: u64,
        /// The room, or "" for a message outside rooms.
        room: &'a str,
        /// The receiving user.
        to: &'a str,
        /// Whether `payload` is binary.
        binary: bool,
        /// The message.
        payload: &'a [u8],
    },
    /// Send a message to everyone else in `room`.
    SendRoom {
        /// Request id.
        req: u32,
        /// The engine's message id.
        msg_id: u64,
        /// The room.
        room: &'a str,
        /// Whether `payload` is binary.
        binary: bool,
        /// The message.
        payload: &'a [u8],
    },
    /// Ask for a user's online status; the reply's data is one byte (0 offline, 1 online).
    PeerStatus {
        /// Request id.
        req: u32,
        /// The user asked about.
        user: &'a str,
    },
    /// Heartbeat; answered by an empty `Ok` reply.
    Ping {
        /// Request id.
        req: u32,
    },
    /// Renew the login token (`room` empty) or a room token.
    UpdateToken {
        /// Request id.
        req: u32,
        /// The room, or "" for the login token.
        room: &'a str,
        /// The new token.
        token: &'a str,
    },
    /// Take over the session `session` (the key of an earlier connection's
    /// [`ServerFrame::Welcome`]), having received its pushes up to `last_seq`.
    Resume {
        /// Request id.
        req: u32,
        /// The session key.
        session: &'a [u8],
        /// The `seq` of the last push the client received on that session (0 for none).
        last_seq: u64,
    },
    /// Become visible (announced to the other members as a join) or invisible (announced as
    /// a leave with reason SWITCH_TO_INVISIBLE) in `room`.
    SetVisibility {
        /// Request id.
        req: u32,
        /// The room id.
        room: &'a str,
        /// The new visibility.
        visible: bool,
    },
}

impl ClientFrame<'_> {
    /// The request id.
    pub fn req(&self) -> u32 {
        match *self {
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
}

/// Which client event a [`Push`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushKind {
    /// To a logged-in user, outside rooms (`onUser[Binary]MessageReceivedOutsideRoom`).
    OutsideRoom = 0,
    /// To one user in a room (`onUser[Binary]MessageReceived`).
    RoomUser = 1,
    /// To everyone in a room (`onRoom[Binary]MessageReceived`).
    Room = 2,
}

impl PushKind {
    fn from_u8(n: u8) -> Result<Self, DecodeError> {
        match n {
            0 => Ok(PushKind::OutsideRoom),
            1 => Ok(PushKind::RoomUser),
            2 => Ok(PushKind::Room),
            n => Err(DecodeError::InvalidEnum(n.into())),
        }
    }
}

/// A message pushed to a session: the part of a [`ServerFrame::Push`] after its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push<'a> {
    /// Which event this becomes.
    pub kind: PushKind,
    /// The room ("" for [`PushKind::OutsideRoom`]).
    pub room: &'a str,
    /// The sender: a user id, or the OpenAPI `From`.
    pub from: &'a str,
    /// Whether `payload` is binary.
    pub binary: bool,
    /// The message.
    pub payload: &'a [u8],
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// The answer to request `req`.
    Reply {
        /// The request id being answered.
        req: u32,
        /// A [`Code`](crate::code::Code) number; 0 is success.
        code: u16,
        /// Request-specific data (the business server's body, a status byte, or empty).
        data: &'a [u8],
    },
    /// A message for this session, numbered per session from 1.
    Push {
        /// The per-session sequence number.
        seq: u64,
        /// The message.
        push: Push<'a>,
    },
    /// Something happened to this session; `room` is "" when it is about the login.
    Notice {
        /// A [`Code`](crate::code::Code) number.
        code: u16,
        /// The room concerned, or "".
        room: &'a str,
        /// Human-readable detail.
        detail: &'a str,
    },
    /// A user joined (`joined`) or left a room this session is in.
    Member {
        /// The room.
        room: &'a str,
        /// The user.
        user: &'a str,
        /// The user's extra info.
        extra: &'a str,
        /// True when the user joined, false when it left.
        joined: bool,
        /// Why it left (`UserOfflineReason`); 0 when it joined.
        reason: u8,
    },
    /// The first frame of every connection.
    Welcome {
        /// This connection's session key, for a later [`ClientFrame::Resume`].
        session: &'a [u8],
        /// How often the client should send a `Ping`, in ms.
        heartbeat_ms: u32,
        /// How long the server keeps the session after the connection is lost, in ms.
        resume_window_ms: u32,
    },
}

/// Appends protocol fields to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(cap),
        }
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a varint.
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// Appends a boolean byte.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    /// Appends length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends a length-prefixed string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// Appends raw bytes with no prefix.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads protocol fields from a byte slice, borrowing from it.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }
    /// Reads a varint of at most `max_bits` significant bits.
    fn varint_bits(&mut self, max_bits: u32) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift >= max_bits || (shift > 0 && part >> (max_bits - shift) != 0) {
                return Err(DecodeError::VarintOverflow);
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }
    /// Reads a `u64` varint.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint_bits(64)
    }
    /// Reads a `u32` varint.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.varint_bits(32).map(|v| v as u32)
    }
    /// Reads a `u16` varint.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.varint_bits(16).map(|v| v as u16)
    }
    /// Reads a boolean byte.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(DecodeError::InvalidEnum(n.into())),
        }
    }
    /// Reads length-prefixed bytes. The length is checked against what remains before use.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u64()?;
        if len > self.buf.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        let (v, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(v)
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::InvalidUtf8)
    }
    /// Fails unless every byte was read.
    pub fn end(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// Encodes a client frame.
pub fn encode_client(f: &ClientFrame<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(16 + client_payload_len(f));
    match *f {
        ClientFrame::Login { req, token, user } => {
            w.u8(ty::LOGIN).varint(req.into()).str(token).str(user);
        }
        ClientFrame::Logout { req } => {
            w.u8(ty::LOGOUT).varint(req.into());
        }
        ClientFrame::Join {
            req,
            token,
            room,
            user,
            extra,
            visible,
        } => {
            w.u8(ty::JOIN)
                .varint(req.into())
                .str(token)
                .str(room)
                .str(user)
                .str(extra)
                .bool(visible);
        }
        ClientFrame::Leave { req, room } => {
            w.u8(ty::LEAVE).varint(req.into()).str(room);
        }
        ClientFrame::SetServerParams {
            req,
            signature,
            url,
        } => {
            w.u8(ty::SET_SERVER_PARAMS)
                .varint(req.into())
                .str(signature)
                .str(url);
        }
        ClientFrame::SendServer {
            req,
            msg_id,
            binary,
            payload,
        } => {
            w.u8(ty::SEND_SERVER)
                .varint(req.into())
                .varint(msg_id)
                .bool(binary)
                .bytes(payload);
        }
        ClientFrame::SendUser {
            req,
            msg_id,
            room,
            to,
            binary,
            payload,
        } => {
            w.u8(ty::SEND_USER)
                .varint(req.into())
                .varint(msg_id)
                .str(room)
                .str(to)
                .bool(binary)
                .bytes(payload);
        }
        ClientFrame::SendRoom {
            req,
            msg_id,
            room,
            binary,
            payload,
        } => {
            w.u8(ty::SEND_ROOM)
                .varint(req.into())
                .varint(msg_id)
                .str(room)
                .bool(binary)
                .bytes(payload);
        }
        ClientFrame::PeerStatus { req, user } => {
            w.u8(ty::PEER_STATUS).varint(req.into()).str(user);
        }
        ClientFrame::Ping { req } => {
            w.u8(ty::PING).varint(req.into());
        }
        ClientFrame::UpdateToken { req, room, token } => {
            w.u8(ty::UPDATE_TOKEN)
                .varint(req.into())
                .str(room)
                .str(token);
        }
        ClientFrame::Resume {
            req,
            session,
            last_seq,
        } => {
            w.u8(ty::RESUME)
                .varint(req.into())
                .bytes(session)
                .varint(last_seq);
        }
        ClientFrame::SetVisibility { req, room, visible } => {
            w.u8(ty::SET_VISIBILITY)
                .varint(req.into())
                .str(room)
                .bool(visible);
        }
    }
    w.finish()
}

fn client_payload_len(f: &ClientFrame<'_>) -> usize {
    match f {
        ClientFrame::SendServer { payload, .. }
        | ClientFrame::SendUser { payload, .. }
        | ClientFrame::SendRoom { payload, .. } => payload.len(),
        ClientFrame::Login { token, .. }
        | ClientFrame::Join { token, .. }
        | ClientFrame::UpdateToken { token, .. } => token.len() + 64,
        _ => 0,
    }
}

/// Decodes a client frame, borrowing from `buf`.
pub fn decode_client(buf: &[u8]) -> Result<ClientFrame<'_>, DecodeError> {
    let (&t, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(rest);
    let f = match t {
        ty::LOGIN => ClientFrame::Login {
            req: r.u32()?,
            token: r.str()?,
            user: r.str()?,
        },
        ty::LOGOUT => ClientFrame::Logout { req: r.u32()? },
        ty::JOIN => ClientFrame::Join {
            req: r.u32()?,
            token: r.str()?,
            room: r.str()?,
            user: r.str()?,
            extra: r.str()?,
            visible: r.bool()?,
        },
        ty::LEAVE => ClientFrame::Leave {
            req: r.u32()?,
            room: r.str()?,
        },
        ty::SET_SERVER_PARAMS => ClientFrame::SetServerParams {
            req: r.u32()?,
            signature: r.str()?,
            url: r.str()?,
        },
        ty::SEND_SERVER => ClientFrame::SendServer {
            req: r.u32()?,
            msg_id: r.u64()?,
            binary: r.bool()?,
            payload: r.bytes()?,
        },
        ty::SEND_USER => ClientFrame::SendUser {
            req: r.u32()?,
            msg_id: r.u64()?,
            room: r.str()?,
            to: r.str()?,
            binary: r.bool()?,
            payload: r.bytes()?,
        },
        ty::SEND_ROOM => ClientFrame::SendRoom {
            req: r.u32()?,
            msg_id: r.u64()?,
            room: r.str()?,
            binary: r.bool()?,
            payload: r.bytes()?,
        },
        ty::PEER_STATUS => ClientFrame::PeerStatus {
            req: r.u32()?,
            user: r.str()?,
        },
        ty::PING => ClientFrame::Ping { req: r.u32()? },
        ty::UPDATE_TOKEN => ClientFrame::UpdateToken {
            req: r.u32()?,
            room: r.str()?,
            token: r.str()?,
        },
        ty::RESUME => ClientFrame::Resume {
            req: r.u32()?,
            session: r.bytes()?,
            last_seq: r.u64()?,
        },
        ty::SET_VISIBILITY => ClientFrame::SetVisibility {
            req: r.u32()?,
            room: r.str()?,
            visible: r.bool()?,
        },
        t => return Err(DecodeError::UnknownType(t)),
    };
    r.end()?;
    Ok(f)
}

/// The request id of a client frame that decoded far enough to have one, so a server can
/// answer a malformed request with an error reply instead of dropping it.
pub fn peek_req(buf: &[u8]) -> Option<u32> {
    match buf.first() {
        Some(&t) if (ty::LOGIN..=ty::SET_VISIBILITY).contains(&t) => {
            Reader::new(&buf[1..]).u32().ok()
        }
        _ => None,
    }
}

/// Encodes the shared part of a push (everything after the sequence number), once per message:
/// [`encode_push_frame`] then prefixes each recipient's sequence number.
pub fn encode_push_body(p: &Push<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(12 + p.room.len() + p.from.len() + p.payload.len());
    w.u8(p.kind as u8)
        .str(p.room)
        .str(p.from)
        .bool(p.binary)
        .bytes(p.payload);
    w.finish()
}

/// A complete push frame: type, `seq`, and a body from [`encode_push_body`].
pub fn encode_push_frame(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(11 + body.len());
    w.u8(ty::PUSH).varint(seq).raw(body);
    w.finish()
}

/// Encodes a server frame.
pub fn encode_server(f: &ServerFrame<'_>) -> Vec<u8> {
    match *f {
        ServerFrame::Reply { req, code, data } => {
            let mut w = Writer::with_capacity(12 + data.len());
            w.u8(ty::REPLY)
                .varint(req.into())
                .varint(code.into())
                .bytes(data);
            w.finish()
        }
        ServerFrame::Push { seq, ref push } => encode_push_frame(seq, &encode_push_body(push)),
        ServerFrame::Notice { code, room, detail } => {
            let mut w = Writer::with_capacity(8 + room.len() + detail.len());
            w.u8(ty::NOTICE).varint(code.into()).str(room).str(detail);
            w.finish()
        }
        ServerFrame::Member {
            room,
            user,
            extra,
            joined,
            reason,
        } => {
            let mut w = Writer::with_capacity(8 + room.len() + user.len() + extra.len());
            w.u8(ty::MEMBER)
                .str(room)
                .str(user)
                .str(extra)
                .bool(joined)
                .u8(reason);
            w.finish()
        }
        ServerFrame::Welcome {
            session,
            heartbeat_ms,
            resume_window_ms,
        } => {
            let mut w = Writer::with_capacity(12 + session.len());
            w.u8(ty::WELCOME)
                .bytes(session)
                .varint(heartbeat_ms.into())
                .varint(resume_window_ms.into());
            w.finish()
        }
    }
}

/// Decodes a server frame, borrowing from `buf`.
pub fn decode_server(buf: &[u8]) -> Result<ServerFrame<'_>, DecodeError> {
    let (&t, rest) = buf.split_first().ok_or(DecodeError::Empty)?;
    let mut r = Reader::new(rest);
    let f = match t {
        ty::REPLY => ServerFrame::Reply {
            req: r.u32()?,
            code: r.u16()?,
            data: r.bytes()?,
        },
        ty::PUSH => ServerFrame::Push {
            seq: r.u64()?,
            push: Push {
                kind: PushKind::from_u8(r.u8()?)?,
                room: r.str()?,
                from: r.str()?,
                binary: r.bool()?,
                payload: r.bytes()?,
            },
        },
        ty::NOTICE => ServerFrame::Notice {
            code: r.u16()?,
            room: r.str()?,
            detail: r.str()?,
        },
        ty::MEMBER => ServerFrame::Member {
            room: r.str()?,
            user: r.str()?,
            extra: r.str()?,
            joined: r.bool()?,
            reason: r.u8()?,
        },
        ty::WELCOME => ServerFrame::Welcome {
            session: r.bytes()?,
            heartbeat_ms: r.u32()?,
            resume_window_ms: r.u32()?,
        },
        t => return Err(DecodeError::UnknownType(t)),
    };
    r.end()?;
    Ok(f)
}

/// Builds a [`ty::BATCH`] message: the type byte, then each server frame as `bytes` (a varint
/// length, then the frame).
///
/// ```
/// use rtm_protocol::frame::{server_frames, BatchWriter};
/// let mut b = BatchWriter::with_capacity(64);
/// b.frame(&[0x80, 0x01, 0x00, 0x00]);
/// b.push(7, &[0x00, 0x00, 0x01, 0x61, 0x00, 0x00]);
/// let msg = b.finish();
/// let frames: Vec<&[u8]> = server_frames(&msg).map(Result::unwrap).collect();
/// assert_eq!(frames, [&[0x80, 0x01, 0x00, 0x00][..], &[0x81, 0x07, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00]]);
/// ```
#[derive(Debug, Clone)]
pub struct BatchWriter {
    w: Writer,
    frames: usize,
}

impl BatchWriter {
    /// An empty batch with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        let mut w = Writer::with_capacity(cap.max(1));
        w.u8(ty::BATCH);
        BatchWriter { w, frames: 0 }
    }
    /// Appends an encoded server frame.
    pub fn frame(&mut self, frame: &[u8]) {
        self.w.bytes(frame);
        self.frames += 1;
    }
    /// Appends a push frame for `seq` and a body from [`encode_push_body`], without building
    /// the frame on its own first.
    pub fn push(&mut self, seq: u64, body: &[u8]) {
        self.w
            .varint(1 + varint_len(seq) as u64 + body.len() as u64)
            .u8(ty::PUSH)
            .varint(seq)
            .raw(body);
        self.frames += 1;
    }
    /// How many frames were appended.
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// The message.
    pub fn finish(self) -> Vec<u8> {
        self.w.finish()
    }
}

/// How many bytes the varint encoding of `v` takes.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The server frames of one WebSocket message, each still encoded (for [`decode_server`]): the
/// message itself, or the frames of a [`ty::BATCH`] message in order. An inner frame that is
/// empty or a batch itself is an error, as is a batch without frames; iteration stops after the
/// first error.
pub fn server_frames(msg: &[u8]) -> ServerFrames<'_> {
    match msg.split_first() {
        Some((&ty::BATCH, [])) => ServerFrames::Failed(Some(DecodeError::Truncated)),
        Some((&ty::BATCH, rest)) => ServerFrames::Batch(Reader::new(rest)),
        _ => ServerFrames::One(Some(msg)),
    }
}

/// The iterator of [`server_frames`].
#[derive(Debug, Clone)]
pub enum ServerFrames<'a> {
    /// A plain message: one frame.
    One(Option<&'a [u8]>),
    /// The frames still to read from a batch.
    Batch(Reader<'a>),
    /// An error to report (once).
    Failed(Option<DecodeError>),
}

impl<'a> Iterator for ServerFrames<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ServerFrames::One(f) => f.take().map(Ok),
            ServerFrames::Failed(e) => e.take().map(Err),
            ServerFrames::Batch(r) => {
                if r.buf.is_empty() {
                    return None;
                }
                let item = match r.bytes() {
                    Ok([]) => Err(DecodeError::Empty),
                    Ok([ty::BATCH, ..]) => Err(DecodeError::UnknownType(ty::BATCH)),
                    other => other,
                };
                if item.is_err() {
                    *self = ServerFrames::Failed(None);
                }
                Some(item)
            }
        }
    }
}

/// Encodes the member list carried in the reply to a Join: for each member already in the
/// room, its user id and extra info (`str`, `str`), one after the other.
pub fn encode_members<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut w = Writer::default();
    for (user, extra) in members {
        w.str(user).str(extra);
    }
    w.finish()
}

/// Decodes the member list of a Join reply (see [`encode_members`]).
pub fn decode_members(buf: &[u8]) -> Result<Vec<(&str, &str)>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.buf.is_empty() {
        out.push((r.str()?, r.str()?));
    }
    Ok(out)
}
