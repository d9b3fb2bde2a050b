//! Golden tests for the wire codec: the bytes of every example in `PROTOCOL.md`, round trips,
//! every `DecodeError` reached by a crafted input, and `peek_req`.

use rtm_protocol::code::Code;
use rtm_protocol::frame::{
    decode_client, decode_server, encode_client, encode_push_body, encode_push_frame,
    encode_server, peek_req, server_frames, ty, BatchWriter, ClientFrame, DecodeError, Push,
    PushKind, Reader, ServerFrame, Writer,
};

/// The protocol document; its `hex` blocks and its code table are checked against the codec.
const DOC: &str = include_str!("../../../PROTOCOL.md");

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex byte {b:?}")))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every client example of `PROTOCOL.md`, in document order.
fn client_examples() -> Vec<(&'static str, ClientFrame<'static>)> {
    vec![
        (
            "01 01 03 74 6f 6b 05 61 6c 69 63 65",
            ClientFrame::Login {
                req: 1,
                token: "tok",
                user: "alice",
            },
        ),
        ("02 02", ClientFrame::Logout { req: 2 }),
        (
            "03 03 03 74 6f 6b 02 72 31 05 61 6c 69 63 65 02 68 69 01",
            ClientFrame::Join {
                req: 3,
                token: "tok",
                room: "r1",
                user: "alice",
                extra: "hi",
                visible: true,
            },
        ),
        ("04 04 02 72 31", ClientFrame::Leave { req: 4, room: "r1" }),
        (
            "05 05 03 73 69 67 09 68 74 74 70 3a 2f 2f 62 2f",
            ClientFrame::SetServerParams {
                req: 5,
                signature: "sig",
                url: "http://b/",
            },
        ),
        (
            "06 06 01 00 02 68 69",
            ClientFrame::SendServer {
                req: 6,
                msg_id: 1,
                binary: false,
                payload: b"hi",
            },
        ),
        (
            "07 07 02 00 03 62 6f 62 01 02 00 ff",
            ClientFrame::SendUser {
                req: 7,
                msg_id: 2,
                room: "",
                to: "bob",
                binary: true,
                payload: &[0x00, 0xff],
            },
        ),
        (
            "08 08 03 02 72 31 00 03 68 65 79",
            ClientFrame::SendRoom {
                req: 8,
                msg_id: 3,
                room: "r1",
                binary: false,
                payload: b"hey",
            },
        ),
        (
            "09 09 03 62 6f 62",
            ClientFrame::PeerStatus {
                req: 9,
                user: "bob",
            },
        ),
        ("0a 0a", ClientFrame::Ping { req: 10 }),
        ("0a ac 02", ClientFrame::Ping { req: 300 }),
        (
            "0b 0b 02 72 31 04 74 6f 6b 32",
            ClientFrame::UpdateToken {
                req: 11,
                room: "r1",
                token: "tok2",
            },
        ),
        (
            "0c 0c 04 a1 b2 c3 d4 ac 02",
            ClientFrame::Resume {
                req: 12,
                session: &[0xa1, 0xb2, 0xc3, 0xd4],
                last_seq: 300,
            },
        ),
        (
            "0d 0d 02 72 31 00",
            ClientFrame::SetVisibility {
                req: 13,
                room: "r1",
                visible: false,
            },
        ),
    ]
}

const BROADCAST: Push<'static> = Push {
    kind: PushKind::Room,
    room: "r1",
    from: "bob",
    binary: false,
    payload: b"hey",
};

/// The push body example of `PROTOCOL.md` §8.
const BROADCAST_BODY: &str = "02 02 72 31 03 62 6f 62 00 03 68 65 79";
/// PROTOCOL.md's Batch example: the reply to request 7, then the broadcast pushed with seq 1.
const BATCH_EXAMPLE: &str = "85 04 80 07 00 00 0f 81 01 02 02 72 31 03 62 6f 62 00 03 68 65 79";

/// Every server frame example of `PROTOCOL.md`, in document order.
fn server_examples() -> Vec<(&'static str, ServerFrame<'static>)> {
    vec![
        (
            "80 01 00 00",
            ServerFrame::Reply {
                req: 1,
                code: 0,
                data: &[],
            },
        ),
        (
            "80 09 00 01 01",
            ServerFrame::Reply {
                req: 9,
                code: 0,
                data: &[1],
            },
        ),
        (
            "80 01 d4 0f 00",
            ServerFrame::Reply {
                req: 1,
                code: Code::AlreadyLogin.as_u16(),
                data: &[],
            },
        ),
        (
            "80 03 00 07 03 62 6f 62 02 68 69",
            ServerFrame::Reply {
                req: 3,
                code: 0,
                data: &[0x03, 0x62, 0x6f, 0x62, 0x02, 0x68, 0x69],
            },
        ),
        (
            "80 0c e0 0f 00",
            ServerFrame::Reply {
                req: 12,
                code: Code::RecoveryFailed.as_u16(),
                data: &[],
            },
        ),
        (
            "81 01 02 02 72 31 03 62 6f 62 00 03 68 65 79",
            ServerFrame::Push {
                seq: 1,
                push: BROADCAST,
            },
        ),
        (
            "81 01 00 00 03 73 76 63 01 02 ca fe",
            ServerFrame::Push {
                seq: 1,
                push: Push {
                    kind: PushKind::OutsideRoom,
                    room: "",
                    from: "svc",
                    binary: true,
                    payload: &[0xca, 0xfe],
                },
            },
        ),
        (
            "82 d9 0f 00 09 65 6c 73 65 77 68 65 72 65",
            ServerFrame::Notice {
                code: Code::RtmDuplicateLogin.as_u16(),
                room: "",
                detail: "elsewhere",
            },
        ),
        (
            "83 02 72 31 03 62 6f 62 02 68 69 01 00",
            ServerFrame::Member {
                room: "r1",
                user: "bob",
                extra: "hi",
                joined: true,
                reason: 0,
            },
        ),
        (
            "83 02 72 31 03 62 6f 62 00 00 01",
            ServerFrame::Member {
                room: "r1",
                user: "bob",
                extra: "",
                joined: false,
                reason: 1,
            },
        ),
        (
            "84 04 a1 b2 c3 d4 90 4e b0 ea 01",
            ServerFrame::Welcome {
                session: &[0xa1, 0xb2, 0xc3, 0xd4],
                heartbeat_ms: 10_000,
                resume_window_ms: 30_000,
            },
        ),
        (
            "81 c8 01 02 02 72 31 03 62 6f 62 00 03 68 65 79",
            ServerFrame::Push {
                seq: 200,
                push: BROADCAST,
            },
        ),
    ]
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

fn all_example_bytes() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = client_examples().iter().map(|(h, _)| hex(h)).collect();
    v.extend(server_examples().iter().map(|(h, _)| hex(h)));
    v
}

// ---------------------------------------------------------------------------------------------
// Golden bytes

#[test]
fn client_examples_encode_and_decode_exactly() {
    let mut types = std::collections::BTreeSet::new();
    for (h, frame) in client_examples() {
        let bytes = hex(h);
        assert_eq!(to_hex(&encode_client(&frame)), h, "encode {frame:?}");
        assert_eq!(decode_client(&bytes), Ok(frame.clone()), "decode {h}");
        assert_eq!(peek_req(&bytes), Some(client_req(&frame)), "peek_req {h}");
        types.insert(bytes[0]);
    }
    // Every client frame type has at least one example.
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        (ty::LOGIN..=ty::SET_VISIBILITY).collect::<Vec<_>>()
    );
}

#[test]
fn server_examples_encode_and_decode_exactly() {
    let mut types = std::collections::BTreeSet::new();
    for (h, frame) in server_examples() {
        let bytes = hex(h);
        assert_eq!(to_hex(&encode_server(&frame)), h, "encode {frame:?}");
        assert_eq!(decode_server(&bytes), Ok(frame.clone()), "decode {h}");
        assert_eq!(peek_req(&bytes), None, "peek_req of a server frame {h}");
        types.insert(bytes[0]);
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        vec![ty::REPLY, ty::PUSH, ty::NOTICE, ty::MEMBER, ty::WELCOME]
    );
}

#[test]
fn broadcast_body_is_encoded_once_and_prefixed_per_recipient() {
    let body = encode_push_body(&BROADCAST);
    assert_eq!(to_hex(&body), BROADCAST_BODY);
    assert_eq!(
        to_hex(&encode_push_frame(1, &body)),
        "81 01 02 02 72 31 03 62 6f 62 00 03 68 65 79"
    );
    assert_eq!(
        to_hex(&encode_push_frame(200, &body)),
        "81 c8 01 02 02 72 31 03 62 6f 62 00 03 68 65 79"
    );
    for seq in [0, 1, 127, 128, 200, 1 << 20, u64::MAX] {
        let frame = encode_push_frame(seq, &body);
        assert_eq!(
            frame,
            encode_server(&ServerFrame::Push {
                seq,
                push: BROADCAST
            })
        );
        assert_eq!(
            decode_server(&frame),
            Ok(ServerFrame::Push {
                seq,
                push: BROADCAST
            })
        );
        assert!(frame.ends_with(&body));
    }
}

#[test]
fn batch_example_and_broken_batches() {
    let reply = ServerFrame::Reply {
        req: 7,
        code: 0,
        data: &[],
    };
    let mut b = BatchWriter::with_capacity(0);
    b.frame(&encode_server(&reply));
    b.push(1, &encode_push_body(&BROADCAST));
    assert_eq!(b.frames(), 2);
    assert_eq!(to_hex(&b.finish()), BATCH_EXAMPLE);
    let msg = hex(BATCH_EXAMPLE);
    let frames: Vec<ServerFrame<'_>> = server_frames(&msg)
        .map(|f| decode_server(f.unwrap()).unwrap())
        .collect();
    let push = ServerFrame::Push {
        seq: 1,
        push: BROADCAST,
    };
    assert_eq!(frames, [reply, push]);
    // A message that is not a batch is one frame, decoded (or rejected) as such.
    let one: Vec<_> = server_frames(&[0x80, 0x01]).collect();
    assert_eq!(one, [Ok(&[0x80, 0x01][..])]);
    assert_eq!(server_frames(&[]).collect::<Vec<_>>(), [Ok(&[][..])]);
    // Broken batches: the frames before the error, then the error, then nothing.
    let ff: &[u8] = &[0xff];
    type Split<'a> = Vec<Result<&'a [u8], DecodeError>>;
    let cases: [(&str, Split<'_>); 6] = [
        ("85", vec![Err(DecodeError::Truncated)]),
        ("85 00", vec![Err(DecodeError::Empty)]),
        ("85 02 80", vec![Err(DecodeError::Truncated)]),
        ("85 80", vec![Err(DecodeError::Truncated)]),
        ("85 02 85 00", vec![Err(DecodeError::UnknownType(0x85))]),
        (
            "85 01 ff 03 80 01",
            vec![Ok(ff), Err(DecodeError::Truncated)],
        ),
    ];
    for (h, want) in cases {
        let msg = hex(h);
        assert_eq!(server_frames(&msg).collect::<Vec<_>>(), want, "{h}");
    }
    // decode_server alone does not read batches.
    assert_eq!(decode_server(&msg), Err(DecodeError::UnknownType(0x85)));
}

#[test]
fn doc_hex_blocks_are_exactly_the_golden_examples() {
    let mut in_doc = Vec::new();
    let mut block: Option<String> = None;
    for line in DOC.lines() {
        match (&mut block, line.trim()) {
            (None, "```hex") => block = Some(String::new()),
            (Some(b), "```") => {
                in_doc.push(hex(b));
                block = None;
            }
            (Some(b), l) => {
                b.push(' ');
                b.push_str(l);
            }
            (None, _) => {}
        }
    }
    assert!(block.is_none(), "unterminated hex block in PROTOCOL.md");

    let mut golden = all_example_bytes();
    golden.push(hex(BROADCAST_BODY));
    golden.push(hex(BATCH_EXAMPLE));
    for g in &golden {
        assert!(
            in_doc.contains(g),
            "golden example missing from PROTOCOL.md: {}",
            to_hex(g)
        );
    }
    for d in &in_doc {
        assert!(
            golden.contains(d),
            "PROTOCOL.md example without a golden test: {}",
            to_hex(d)
        );
    }
}

#[test]
fn doc_code_table_matches_code_rs() {
    // Rows of §7: | 2012 | `ProtocolError` | `PROTOCOL_ERROR` | meaning |
    let section = DOC
        .split("## 7. Result codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("PROTOCOL.md has a section 7");
    let mut rows = Vec::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 {
            continue;
        }
        if let Ok(n) = cells[1].parse::<u16>() {
            rows.push((
                n,
                cells[2].trim_matches('`').to_string(),
                cells[3].trim_matches('`').to_string(),
            ));
        }
    }
    let expected: Vec<(u16, String, String)> = Code::ALL
        .iter()
        .map(|&c| (c.as_u16(), format!("{c:?}"), c.error_code().to_string()))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn doc_varint_examples() {
    let cases: [(u64, &str); 8] = [
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (300, "ac 02"),
        (2012, "dc 0f"),
        (65_535, "ff ff 03"),
        (u32::MAX.into(), "ff ff ff ff 0f"),
        (u64::MAX, "ff ff ff ff ff ff ff ff ff 01"),
    ];
    for (v, h) in cases {
        let mut w = Writer::default();
        w.varint(v);
        assert_eq!(to_hex(&w.finish()), h, "{v}");
        assert!(DOC.contains(&format!("`{h}`")), "PROTOCOL.md lacks {h}");
        let bytes = hex(h);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u64(), Ok(v));
        assert_eq!(r.end(), Ok(()));
    }
    // Max lengths: u16 3 bytes, u32 5, u64 10.
    for (v, len) in [(65_535u64, 3), (u32::MAX.into(), 5), (u64::MAX, 10)] {
        let mut w = Writer::default();
        w.varint(v);
        assert_eq!(w.finish().len(), len);
    }
}

#[test]
fn doc_names_transport_facts() {
    assert_eq!(rtm_protocol::SUBPROTOCOL, "rtm.v1");
    assert!(DOC.contains("`rtm.v1`"));
    assert!(DOC.contains("/rtm?appId="));
    for close in 4000..=4004 {
        assert!(DOC.contains(&format!("| {close} |")), "close code {close}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn client_round_trip(f: ClientFrame<'_>) {
    let bytes = encode_client(&f);
    assert_eq!(decode_client(&bytes), Ok(f.clone()));
    assert_eq!(peek_req(&bytes), Some(client_req(&f)));
    assert!(matches!(
        decode_server(&bytes),
        Err(DecodeError::UnknownType(_))
    ));
}

fn server_round_trip(f: ServerFrame<'_>) {
    let bytes = encode_server(&f);
    assert_eq!(decode_server(&bytes), Ok(f.clone()));
    assert_eq!(peek_req(&bytes), None);
    assert!(matches!(
        decode_client(&bytes),
        Err(DecodeError::UnknownType(_))
    ));
}

#[test]
fn round_trip_edge_values() {
    let long = "x".repeat(200);
    let big = vec![0xa5u8; 70_000];
    let unicode = "zoë 日本 🎉";
    for req in [0, 1, 127, 128, 16_383, 16_384, u32::MAX] {
        client_round_trip(ClientFrame::Ping { req });
        client_round_trip(ClientFrame::Logout { req });
        server_round_trip(ServerFrame::Reply {
            req,
            code: 0,
            data: &[],
        });
    }
    for msg_id in [0, 1, u64::from(u32::MAX) + 1, u64::MAX] {
        for payload in [&b""[..], b"x", long.as_bytes(), &big] {
            for binary in [false, true] {
                client_round_trip(ClientFrame::SendServer {
                    req: 1,
                    msg_id,
                    binary,
                    payload,
                });
                client_round_trip(ClientFrame::SendUser {
                    req: 2,
                    msg_id,
                    room: unicode,
                    to: &long,
                    binary,
                    payload,
                });
                client_round_trip(ClientFrame::SendRoom {
                    req: 3,
                    msg_id,
                    room: "",
                    binary,
                    payload,
                });
            }
        }
    }
    client_round_trip(ClientFrame::Login {
        req: 1,
        token: &long,
        user: unicode,
    });
    client_round_trip(ClientFrame::Join {
        req: 1,
        token: "",
        room: &long,
        user: "",
        extra: unicode,
        visible: false,
    });
    client_round_trip(ClientFrame::SetVisibility {
        req: u32::MAX,
        room: unicode,
        visible: true,
    });
    client_round_trip(ClientFrame::Leave { req: 1, room: "" });
    client_round_trip(ClientFrame::SetServerParams {
        req: 1,
        signature: unicode,
        url: &long,
    });
    client_round_trip(ClientFrame::PeerStatus {
        req: 1,
        user: unicode,
    });
    client_round_trip(ClientFrame::UpdateToken {
        req: 1,
        room: "",
        token: &long,
    });
    for &c in Code::ALL {
        server_round_trip(ServerFrame::Reply {
            req: 9,
            code: c.as_u16(),
            data: &big,
        });
        server_round_trip(ServerFrame::Notice {
            code: c.as_u16(),
            room: unicode,
            detail: &long,
        });
    }
    for code in [u16::MAX, 9999] {
        server_round_trip(ServerFrame::Notice {
            code,
            room: "",
            detail: "",
        });
    }
    for kind in [PushKind::OutsideRoom, PushKind::RoomUser, PushKind::Room] {
        server_round_trip(ServerFrame::Push {
            seq: u64::MAX,
            push: Push {
                kind,
                room: unicode,
                from: &long,
                binary: true,
                payload: &big,
            },
        });
    }
    for reason in 0..=u8::MAX {
        for joined in [false, true] {
            server_round_trip(ServerFrame::Member {
                room: "r",
                user: unicode,
                extra: &long,
                joined,
                reason,
            });
        }
    }
}

#[test]
fn length_prefixes_take_as_many_varint_bytes_as_needed() {
    for (len, prefix) in [
        (127usize, "7f"),
        (128, "80 01"),
        (200, "c8 01"),
        (70_000, "f0 a2 04"),
    ] {
        let payload = vec![7u8; len];
        let bytes = encode_client(&ClientFrame::SendServer {
            req: 1,
            msg_id: 1,
            binary: true,
            payload: &payload,
        });
        let p = hex(prefix);
        assert_eq!(&bytes[4..4 + p.len()], &p[..], "{len}");
        assert_eq!(bytes.len(), 4 + p.len() + len);
    }
}

// ---------------------------------------------------------------------------------------------
// Decode errors

/// The field layout of each frame type, to craft frames with one field replaced.
#[derive(Debug, Clone, Copy, PartialEq)]
enum F {
    U16,
    U32,
    U64,
    Bool,
    Kind,
    Byte,
    Str,
    Bytes,
}

fn schema(t: u8) -> &'static [F] {
    use F::*;
    match t {
        ty::LOGIN => &[U32, Str, Str],
        ty::LOGOUT => &[U32],
        ty::JOIN => &[U32, Str, Str, Str, Str, Bool],
        ty::LEAVE => &[U32, Str],
        ty::SET_SERVER_PARAMS => &[U32, Str, Str],
        ty::SEND_SERVER => &[U32, U64, Bool, Bytes],
        ty::SEND_USER => &[U32, U64, Str, Str, Bool, Bytes],
        ty::SEND_ROOM => &[U32, U64, Str, Bool, Bytes],
        ty::PEER_STATUS => &[U32, Str],
        ty::PING => &[U32],
        ty::UPDATE_TOKEN => &[U32, Str, Str],
        ty::RESUME => &[U32, Bytes, U64],
        ty::SET_VISIBILITY => &[U32, Str, Bool],
        ty::REPLY => &[U32, U16, Bytes],
        ty::PUSH => &[U64, Kind, Str, Str, Bool, Bytes],
        ty::NOTICE => &[U16, Str, Str],
        ty::MEMBER => &[Str, Str, Str, Bool, Byte],
        ty::WELCOME => &[Bytes, U32, U32],
        _ => unreachable!("not a frame type: {t:#04x}"),
    }
}

const ALL_TYPES: [u8; 18] = [
    ty::LOGIN,
    ty::LOGOUT,
    ty::JOIN,
    ty::LEAVE,
    ty::SET_SERVER_PARAMS,
    ty::SEND_SERVER,
    ty::SEND_USER,
    ty::SEND_ROOM,
    ty::PEER_STATUS,
    ty::PING,
    ty::UPDATE_TOKEN,
    ty::RESUME,
    ty::SET_VISIBILITY,
    ty::REPLY,
    ty::PUSH,
    ty::NOTICE,
    ty::MEMBER,
    ty::WELCOME,
];

/// A frame of type `t` with valid default fields, except field `at` written as `raw`.
fn craft(t: u8, at: Option<usize>, raw: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(t);
    for (i, f) in schema(t).iter().enumerate() {
        if Some(i) == at {
            w.raw(raw);
            continue;
        }
        match f {
            F::U16 | F::U32 | F::U64 => w.varint(300),
            F::Bool => w.bool(true),
            F::Kind => w.u8(PushKind::RoomUser as u8),
            F::Byte => w.u8(3),
            F::Str => w.str("ok"),
            F::Bytes => w.bytes(&[0, 1, 0xff]),
        };
    }
    w.finish()
}

fn decode_any(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.first().is_some_and(|&t| t >= 0x80) {
        decode_server(bytes).map(|_| ())
    } else {
        decode_client(bytes).map(|_| ())
    }
}

#[test]
fn crafted_frames_follow_the_schema() {
    for t in ALL_TYPES {
        assert_eq!(decode_any(&craft(t, None, &[])), Ok(()), "type {t:#04x}");
    }
}

#[test]
fn empty_frame() {
    assert_eq!(decode_client(&[]), Err(DecodeError::Empty));
    assert_eq!(decode_server(&[]), Err(DecodeError::Empty));
    assert_eq!(peek_req(&[]), None);
}

#[test]
fn unknown_type_for_every_byte_outside_each_side() {
    for t in 0..=u8::MAX {
        let client = (ty::LOGIN..=ty::SET_VISIBILITY).contains(&t);
        let server = (ty::REPLY..=ty::WELCOME).contains(&t);
        // A lone type byte: known types are truncated, the rest unknown.
        let expect_client = if client {
            DecodeError::Truncated
        } else {
            DecodeError::UnknownType(t)
        };
        let expect_server = if server {
            DecodeError::Truncated
        } else {
            DecodeError::UnknownType(t)
        };
        assert_eq!(decode_client(&[t]), Err(expect_client), "{t:#04x}");
        assert_eq!(decode_server(&[t]), Err(expect_server), "{t:#04x}");
        // Unknown types are rejected whatever follows.
        if !client {
            assert_eq!(
                decode_client(&[t, 1, 0, 0, 0]),
                Err(DecodeError::UnknownType(t))
            );
        }
        if !server {
            assert_eq!(
                decode_server(&[t, 1, 0, 0, 0]),
                Err(DecodeError::UnknownType(t))
            );
        }
    }
    assert_eq!(
        DecodeError::UnknownType(0x0e).to_string(),
        "unknown frame type 0x0e"
    );
}

#[test]
fn every_proper_prefix_of_every_example_is_truncated() {
    let mut crafted: Vec<Vec<u8>> = ALL_TYPES.iter().map(|&t| craft(t, None, &[])).collect();
    crafted.extend(all_example_bytes());
    for bytes in crafted {
        assert_eq!(decode_any(&bytes), Ok(()));
        for n in 1..bytes.len() {
            assert_eq!(
                decode_any(&bytes[..n]),
                Err(DecodeError::Truncated),
                "{} cut at {n}",
                to_hex(&bytes)
            );
        }
        assert_eq!(decode_any(&bytes[..0]), Err(DecodeError::Empty));
    }
}

#[test]
fn trailing_bytes() {
    for bytes in all_example_bytes() {
        for extra in [&[0u8][..], &[0xff, 0xff, 0xff], &bytes] {
            let mut b = bytes.clone();
            b.extend_from_slice(extra);
            assert_eq!(
                decode_any(&b),
                Err(DecodeError::TrailingBytes(extra.len())),
                "{}",
                to_hex(&b)
            );
        }
    }
}

/// Overflowing and boundary varints for every integer field of every frame type.
#[test]
fn varint_overflow_for_every_integer_field() {
    const U16_MAX: &[u8] = &[0xff, 0xff, 0x03];
    const U32_MAX: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f];
    const U64_MAX: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    // One past the maximum, and a zero padded one byte past the maximum length.
    const U16_OVER: &[&[u8]] = &[&[0x80, 0x80, 0x04], &[0x80, 0x80, 0x80, 0x00], &[0xff; 4]];
    const U32_OVER: &[&[u8]] = &[
        &[0x80, 0x80, 0x80, 0x80, 0x10],
        &[0xff, 0xff, 0xff, 0xff, 0x1f],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
    ];
    const U64_OVER: &[&[u8]] = &[
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        &[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ],
    ];
    let mut seen = [false; 3];
    for t in ALL_TYPES {
        for (i, &f) in schema(t).iter().enumerate() {
            let (max, over, k) = match f {
                F::U16 => (U16_MAX, U16_OVER, 0),
                F::U32 => (U32_MAX, U32_OVER, 1),
                F::U64 => (U64_MAX, U64_OVER, 2),
                _ => continue,
            };
            seen[k] = true;
            assert_eq!(decode_any(&craft(t, Some(i), max)), Ok(()), "{t:#04x}/{i}");
            for o in over {
                assert_eq!(
                    decode_any(&craft(t, Some(i), o)),
                    Err(DecodeError::VarintOverflow),
                    "type {t:#04x} field {i}: {}",
                    to_hex(o)
                );
            }
        }
    }
    assert_eq!(seen, [true; 3]);

    // The decoded values of the boundary cases.
    let reply = craft(ty::REPLY, Some(1), U16_MAX);
    assert!(matches!(
        decode_server(&reply),
        Ok(ServerFrame::Reply { code: 65_535, .. })
    ));
    let ping = [&[ty::PING][..], U32_MAX].concat();
    assert_eq!(
        decode_client(&ping),
        Ok(ClientFrame::Ping { req: u32::MAX })
    );
    let push = craft(ty::PUSH, Some(0), U64_MAX);
    assert!(matches!(
        decode_server(&push),
        Ok(ServerFrame::Push { seq: u64::MAX, .. })
    ));
}

/// Length prefixes are `u64` varints checked against what remains.
#[test]
fn length_prefix_overflow_and_overrun() {
    const OVERFLOW: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
    const HUGE: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    for t in ALL_TYPES {
        for (i, &f) in schema(t).iter().enumerate() {
            if !matches!(f, F::Str | F::Bytes) {
                continue;
            }
            let at = Some(i);
            assert_eq!(
                decode_any(&craft(t, at, OVERFLOW)),
                Err(DecodeError::VarintOverflow),
                "{t:#04x}/{i}"
            );
            assert_eq!(
                decode_any(&craft(t, at, HUGE)),
                Err(DecodeError::Truncated),
                "{t:#04x}/{i}"
            );
            // A length one past the end of the frame.
            let whole = craft(t, None, &[]);
            let mut w = Writer::default();
            w.varint(whole.len() as u64);
            assert_eq!(
                decode_any(&craft(t, at, &w.finish())),
                Err(DecodeError::Truncated),
                "{t:#04x}/{i}"
            );
        }
    }
}

/// The last length field of each example, one longer and one shorter.
#[test]
fn last_payload_length_off_by_one() {
    // SendServer example: 06 06 01 00 [02] 68 69
    let mut b = hex("06 06 01 00 02 68 69");
    b[4] = 3;
    assert_eq!(decode_client(&b), Err(DecodeError::Truncated));
    b[4] = 1;
    assert_eq!(decode_client(&b), Err(DecodeError::TrailingBytes(1)));
    // Reply example: 80 09 00 [01] 01
    let mut b = hex("80 09 00 01 01");
    b[3] = 2;
    assert_eq!(decode_server(&b), Err(DecodeError::Truncated));
    b[3] = 0;
    assert_eq!(decode_server(&b), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn invalid_utf8_in_every_string_field() {
    let bad: [&[u8]; 5] = [
        &[0x01, 0xff],             // never valid
        &[0x01, 0x80],             // lone continuation byte
        &[0x02, 0xc3, 0x28],       // bad continuation
        &[0x03, 0xed, 0xa0, 0x80], // UTF-16 surrogate
        &[0x02, 0xe6, 0x97],       // a 3-byte sequence cut short
    ];
    let mut fields = 0;
    for t in ALL_TYPES {
        for (i, &f) in schema(t).iter().enumerate() {
            match f {
                F::Str => {
                    fields += 1;
                    for b in bad {
                        assert_eq!(
                            decode_any(&craft(t, Some(i), b)),
                            Err(DecodeError::InvalidUtf8),
                            "type {t:#04x} field {i}: {}",
                            to_hex(b)
                        );
                    }
                }
                // `bytes` fields carry anything.
                F::Bytes => {
                    for b in bad {
                        assert_eq!(decode_any(&craft(t, Some(i), b)), Ok(()));
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(fields, 23);
}

#[test]
fn invalid_bool_and_push_kind() {
    let mut bools = 0;
    for t in ALL_TYPES {
        for (i, &f) in schema(t).iter().enumerate() {
            match f {
                F::Bool => {
                    bools += 1;
                    for v in [0u8, 1] {
                        assert_eq!(decode_any(&craft(t, Some(i), &[v])), Ok(()));
                    }
                    for v in [2u8, 0x7f, 0x80, 0xff] {
                        assert_eq!(
                            decode_any(&craft(t, Some(i), &[v])),
                            Err(DecodeError::InvalidEnum(v.into())),
                            "type {t:#04x} field {i}: {v}"
                        );
                    }
                }
                F::Kind => {
                    for v in 0u8..=2 {
                        assert_eq!(decode_any(&craft(t, Some(i), &[v])), Ok(()));
                    }
                    for v in 3u8..=u8::MAX {
                        assert_eq!(
                            decode_any(&craft(t, Some(i), &[v])),
                            Err(DecodeError::InvalidEnum(v.into())),
                            "push kind {v}"
                        );
                    }
                }
                // Member's reason is any byte.
                F::Byte => {
                    for v in 0..=u8::MAX {
                        assert_eq!(decode_any(&craft(t, Some(i), &[v])), Ok(()));
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(bools, 7);
    // The push kind byte of the PROTOCOL.md example.
    let mut b = hex("81 01 02 02 72 31 03 62 6f 62 00 03 68 65 79");
    b[2] = 3;
    assert_eq!(decode_server(&b), Err(DecodeError::InvalidEnum(3)));
}

// ---------------------------------------------------------------------------------------------
// peek_req

#[test]
fn peek_req_finds_the_request_id_of_broken_client_frames() {
    // Every client type with a valid req and a broken rest.
    for t in ty::LOGIN..=ty::SET_VISIBILITY {
        assert_eq!(peek_req(&[t]), None, "no req at all");
        assert_eq!(peek_req(&[t, 0x80]), None, "req cut short");
        assert_eq!(peek_req(&[t, 42]), Some(42));
        assert_eq!(peek_req(&[t, 0xac, 0x02, 0xff, 0xff]), Some(300));
        assert_eq!(peek_req(&[t, 0xff, 0xff, 0xff, 0xff, 0x0f]), Some(u32::MAX));
        assert_eq!(
            peek_req(&[t, 0x80, 0x80, 0x80, 0x80, 0x10]),
            None,
            "req overflows u32"
        );
        // With trailing garbage the frame fails to decode but keeps its req.
        let mut b = craft(t, None, &[]);
        b.push(0);
        assert!(decode_client(&b).is_err());
        assert_eq!(peek_req(&b), Some(300));
    }
    // Truncated login: the server can still answer request 7.
    let login = hex("01 07 03 74 6f");
    assert_eq!(decode_client(&login), Err(DecodeError::Truncated));
    assert_eq!(peek_req(&login), Some(7));
}

#[test]
fn peek_req_ignores_non_client_types() {
    for t in (0..=u8::MAX).filter(|t| !(ty::LOGIN..=ty::SET_VISIBILITY).contains(t)) {
        assert_eq!(peek_req(&[t]), None);
        assert_eq!(peek_req(&[t, 5, 0, 0]), None, "{t:#04x}");
    }
}
