//! The engine driven with a fake clock: frames in, transmits, completions and events out.

use rtm_core::{
    ws_url, Code, Completion, Config, ConnectionState, Engine, Error, Event, Payload, PushKind,
    Transmit, Value,
};
use rtm_protocol::frame::{
    decode_client, encode_server, BatchWriter, ClientFrame, Push, ServerFrame,
};

mod common;
use common::text_push;

const APP: &str = "0123456789abcdef01234567";

struct H {
    e: Engine,
    now: u64,
}

/// The defaults, without heartbeats (tests of other behaviour advance the clock by minutes
/// without any server traffic); `tests/reconnect.rs` covers the heartbeat.
fn quiet() -> Config {
    let mut c = Config::default();
    c.heartbeat_interval_ms = 1 << 40;
    c.heartbeat_timeout_ms = 1 << 41;
    c
}

impl H {
    fn new() -> H {
        H {
            e: Engine::new(APP, "http://127.0.0.1:8080", quiet()).unwrap(),
            now: 1_000,
        }
    }

    /// A logged-in engine with every output drained.
    fn logged_in(user: &str) -> H {
        let mut h = H::new();
        h.e.login(h.now, Some("tok"), user);
        h.open();
        let req = h.sent_reqs()[0];
        h.reply(req, Code::Ok, b"");
        h.drain();
        h
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.e.handle_timeout(self.now);
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.e.poll_transmit()).collect()
    }

    fn completions(&mut self) -> Vec<Completion> {
        std::iter::from_fn(|| self.e.poll_completion()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.e.poll_event()).collect()
    }

    fn drain(&mut self) {
        self.transmits();
        self.completions();
        self.events();
    }

    /// Expects a Connect, then reports the connection open.
    fn open(&mut self) {
        let t = self.e.poll_transmit();
        assert_eq!(
            t,
            Some(Transmit::Connect {
                url: "ws://127.0.0.1:8080/rtm?appId=0123456789abcdef01234567&batch=1".into()
            })
        );
        self.e.handle_connected(self.now);
    }

    /// The frames sent so far, as (type byte, req id); other transmits are an error.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        self.transmits()
            .into_iter()
            .map(|t| match t {
                Transmit::Send(b) => b,
                other => panic!("expected a Send, got {other:?}"),
            })
            .collect()
    }

    fn sent_reqs(&mut self) -> Vec<u32> {
        self.sent().iter().map(|b| req_of(b)).collect()
    }

    fn reply(&mut self, req: u32, code: Code, data: &[u8]) {
        let f = encode_server(&ServerFrame::Reply {
            req,
            code: code.as_u16(),
            data,
        });
        self.e.handle_frame(self.now, &f);
    }

    fn frame(&mut self, f: ServerFrame<'_>) {
        let b = encode_server(&f);
        self.e.handle_frame(self.now, &b);
    }

    fn result(&mut self, call: u64) -> Result<Value, Error> {
        let all = self.completions();
        let c = all
            .iter()
            .find(|c| c.call == call)
            .unwrap_or_else(|| panic!("call {call} not completed: {all:?}"));
        c.result.clone()
    }
}

fn req_of(b: &[u8]) -> u32 {
    decode_client(b).unwrap().req()
}

fn err(c: Code) -> Result<Value, Error> {
    Err(Error::Code(c))
}

fn states(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionStateChanged { state } => Some(state.as_u8()),
            _ => None,
        })
        .collect()
}

#[test]
fn login_opens_the_connection_and_waits_for_it() {
    let mut h = H::new();
    assert_eq!(h.e.connection_state(), ConnectionState::Start);
    let call = h.e.login(h.now, Some("tok"), "alice");
    h.open();
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::Login {
            req: 1,
            token: "tok",
            user: "alice"
        }
    );
    assert!(h.completions().is_empty());
    h.now += 42;
    h.reply(1, Code::Ok, b"");
    assert_eq!(h.result(call), Ok(Value::None));
    let ev = h.events();
    assert_eq!(states(&ev), vec![2, 3]);
    assert!(ev.contains(&Event::LoginResult {
        user_id: "alice".into(),
        error: None,
        elapsed_ms: 42
    }));
    assert_eq!(h.e.logged_in_user(), Some("alice"));
    assert_eq!(h.e.connection_state(), ConnectionState::Connected);
}

#[test]
fn requests_made_while_connecting_go_out_in_order_once_open() {
    let mut h = H::new();
    h.e.login(h.now, Some("t1"), "alice");
    h.e.join_room(h.now, Some("t2"), "room1", "alice", "hi");
    h.e.set_server_params(h.now, "sig", "http://biz/");
    assert!(matches!(
        h.e.poll_transmit(),
        Some(Transmit::Connect { .. })
    ));
    assert_eq!(h.e.poll_transmit(), None, "nothing is sent before the open");
    h.e.handle_connected(h.now);
    let sent = h.sent();
    let types: Vec<u8> = sent.iter().map(|b| b[0]).collect();
    assert_eq!(types, vec![0x01, 0x03, 0x05]);
    assert_eq!(
        decode_client(&sent[1]).unwrap(),
        ClientFrame::Join {
            req: 2,
            token: "t2",
            room: "room1",
            user: "alice",
            extra: "hi",
            visible: true,
        }
    );
}

#[test]
fn invalid_ids_fail_without_a_request() {
    let mut h = H::new();
    for bad in ["", "a b", "ü", &"x".repeat(129)] {
        let c = h.e.login(h.now, Some("t"), bad);
        assert_eq!(h.result(c), err(Code::InvalidParams));
        let c = h.e.join_room(h.now, Some("t"), bad, "alice", "");
        assert_eq!(h.result(c), err(Code::InvalidParams));
        let c = h.e.join_room(h.now, Some("t"), "room", bad, "");
        assert_eq!(h.result(c), err(Code::InvalidParams));
    }
    let c =
        h.e.join_room(h.now, Some("t"), "room", "alice", &"e".repeat(201));
    assert_eq!(h.result(c), err(Code::InvalidParams));
    assert!(h.transmits().is_empty());
    assert_eq!(h.e.connection_state(), ConnectionState::Start);
}

#[test]
fn second_login_and_other_user_are_refused() {
    let mut h = H::logged_in("alice");
    let c = h.e.login(h.now, Some("t"), "alice");
    assert_eq!(h.result(c), err(Code::AlreadyLogin));
    let c = h.e.join_room(h.now, Some("t"), "room", "bob", "");
    assert_eq!(h.result(c), err(Code::InvalidParams));
    assert!(h.transmits().is_empty());
}

#[test]
fn failed_login_closes_the_idle_connection() {
    let mut h = H::new();
    let c = h.e.login(h.now, Some("bad"), "alice");
    h.open();
    h.sent();
    h.reply(1, Code::InvalidToken, b"");
    assert_eq!(h.result(c), err(Code::InvalidToken));
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    let ev = h.events();
    assert_eq!(states(&ev), vec![2, 3, 1]);
    assert!(ev.contains(&Event::LoginResult {
        user_id: "alice".into(),
        error: Some(Error::Code(Code::InvalidToken)),
        elapsed_ms: 0
    }));
    assert_eq!(h.e.logged_in_user(), None);
    // A new login opens a new connection.
    h.e.login(h.now, Some("good"), "alice");
    h.open();
    assert_eq!(h.sent_reqs(), vec![2]);
}

#[test]
fn pushes_become_the_six_message_events() {
    let mut h = H::logged_in("alice");
    let bin: Vec<u8> = (0..=255).collect();
    let cases = [
        (
            PushKind::OutsideRoom,
            "",
            false,
            "onUserMessageReceivedOutsideRoom",
        ),
        (
            PushKind::OutsideRoom,
            "",
            true,
            "onUserBinaryMessageReceivedOutsideRoom",
        ),
        (PushKind::RoomUser, "r1", false, "onUserMessageReceived"),
        (
            PushKind::RoomUser,
            "r1",
            true,
            "onUserBinaryMessageReceived",
        ),
        (PushKind::Room, "r1", false, "onRoomMessageReceived"),
        (PushKind::Room, "r1", true, "onRoomBinaryMessageReceived"),
    ];
    for (i, (kind, room, binary, name)) in cases.into_iter().enumerate() {
        let payload: &[u8] = if binary { &bin } else { "héllo".as_bytes() };
        h.frame(ServerFrame::Push {
            seq: i as u64 + 1,
            push: Push {
                kind,
                room,
                from: "server",
                binary,
                payload,
            },
        });
        let ev = h.events();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].name(), name);
        let want = if binary {
            Payload::Binary(bin.clone())
        } else {
            Payload::Text("héllo".into())
        };
        assert_eq!(
            ev[0],
            Event::Message {
                kind,
                room: room.into(),
                user_id: "server".into(),
                payload: want
            }
        );
        assert_eq!(h.e.last_push_seq(), i as u64 + 1);
    }
}

#[test]
fn a_full_size_push_arrives_intact() {
    let mut h = H::logged_in("alice");
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 7) as u8).collect();
    h.frame(ServerFrame::Push {
        seq: 1,
        push: Push {
            kind: PushKind::Room,
            room: "r",
            from: "srv",
            binary: true,
            payload: &big,
        },
    });
    match &h.events()[0] {
        Event::Message {
            payload: Payload::Binary(b),
            ..
        } => assert_eq!(b, &big),
        other => panic!("{other:?}"),
    }
}

#[test]
fn text_pushes_are_utf8_with_invalid_bytes_replaced() {
    let mut h = H::logged_in("alice");
    let cases: [(&[u8], &str); 4] = [
        (b"plain ascii", "plain ascii"),
        (
            "h\u{e9}llo \u{4e16}\u{754c} \u{1f600}".as_bytes(),
            "h\u{e9}llo \u{4e16}\u{754c} \u{1f600}",
        ),
        (b"bad \xff byte", "bad \u{fffd} byte"),
        (b"cut \xe4\xb8", "cut \u{fffd}"),
    ];
    for (i, (bytes, text)) in cases.into_iter().enumerate() {
        h.frame(ServerFrame::Push {
            seq: i as u64 + 1,
            push: Push {
                kind: PushKind::OutsideRoom,
                room: "",
                from: "bob",
                binary: false,
                payload: bytes,
            },
        });
        match &h.events()[..] {
            [Event::Message {
                payload: Payload::Text(t),
                ..
            }] => assert_eq!(t, text),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn rtm_duplicate_login_ends_the_login_and_the_idle_connection() {
    let mut h = H::logged_in("alice");
    h.frame(ServerFrame::Notice {
        code: Code::RtmDuplicateLogin.as_u16(),
        room: "",
        detail: "elsewhere",
    });
    let ev = h.events();
    assert!(ev.contains(&Event::Error {
        error_code: "RTM_DUPLICATE_LOGIN",
        room: String::new()
    }));
    assert_eq!(states(&ev), vec![1]);
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    assert_eq!(h.e.logged_in_user(), None);
    // The server's 4002 close after that is not reported again.
    h.e.handle_closed(h.now, 4002);
    assert!(h.events().is_empty());
}

#[test]
fn rtm_duplicate_login_keeps_the_room() {
    let mut h = H::logged_in("alice");
    h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let req = h.sent_reqs()[0];
    h.reply(req, Code::Ok, b"");
    h.drain();
    h.frame(ServerFrame::Notice {
        code: Code::RtmDuplicateLogin.as_u16(),
        room: "",
        detail: "",
    });
    assert!(h.transmits().is_empty());
    assert_eq!(h.e.room_id(), Some("r1"));
    assert_eq!(h.e.logged_in_user(), None);
}

#[test]
fn duplicate_login_in_a_room_leaves_it() {
    let mut h = H::logged_in("alice");
    h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let req = h.sent_reqs()[0];
    h.reply(req, Code::Ok, b"");
    h.drain();
    h.frame(ServerFrame::Notice {
        code: Code::DuplicateLogin.as_u16(),
        room: "r1",
        detail: "",
    });
    assert_eq!(
        h.events(),
        vec![Event::Error {
            error_code: "DUPLICATE_LOGIN",
            room: "r1".into()
        }]
    );
    assert_eq!(h.e.room_id(), None);
    // Still logged in: the connection stays.
    assert!(h.transmits().is_empty());
    // And a new join is possible.
    let c = h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let req = h.sent_reqs()[0];
    h.reply(req, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
}

#[test]
fn join_repeat_and_leave() {
    let mut h = H::new();
    let c = h.e.join_room(h.now, Some("t"), "r1", "alice", "x");
    h.open();
    h.sent();
    h.reply(1, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
    assert_eq!(h.e.room_id(), Some("r1"));
    let c = h.e.join_room(h.now, Some("t"), "r2", "alice", "");
    assert_eq!(h.result(c), err(Code::RepeatJoin));
    let c = h.e.leave_room(h.now);
    let sent = h.sent();
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::Leave { req: 2, room: "r1" }
    );
    h.reply(2, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
    // Neither logged in nor in a room: the client closes.
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    // Leave again is a no-op success.
    let c = h.e.leave_room(h.now);
    assert_eq!(h.result(c), Ok(Value::None));
    assert!(h.transmits().is_empty());
}

#[test]
fn user_visibility_goes_with_every_join_and_changes_in_the_room() {
    let mut h = H::new();
    // Before a join: kept, nothing sent, no connection opened.
    let c = h.e.set_user_visibility(h.now, false);
    assert_eq!(h.result(c), Ok(Value::None));
    assert!(h.transmits().is_empty());
    let j = h.e.join_room(h.now, Some("t"), "r1", "alice", "x");
    h.open();
    let sent = h.sent();
    assert!(matches!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::Join { visible: false, .. }
    ));
    h.reply(1, Code::Ok, b"");
    assert_eq!(h.result(j), Ok(Value::None));
    // In the room: a request, resolved by its reply.
    let c = h.e.set_user_visibility(h.now, true);
    let sent = h.sent();
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::SetVisibility {
            req: 2,
            room: "r1",
            visible: true
        }
    );
    assert!(h.completions().is_empty());
    h.reply(2, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
    let c = h.e.set_user_visibility(h.now, false);
    h.sent();
    h.reply(3, Code::NotJoin, b"");
    assert_eq!(h.result(c), err(Code::NotJoin));
    // The next join carries the last setting.
    h.e.leave_room(h.now);
    h.sent();
    h.reply(4, Code::Ok, b"");
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    h.e.join_room(h.now, Some("t"), "r2", "alice", "");
    h.open();
    let sent = h.sent();
    assert!(matches!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::Join {
            visible: false,
            room: "r2",
            ..
        }
    ));
}

#[test]
fn failed_join_clears_the_room() {
    let mut h = H::logged_in("alice");
    let c = h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let req = h.sent_reqs()[0];
    h.reply(req, Code::TokenExpired, b"");
    assert_eq!(h.result(c), err(Code::TokenExpired));
    assert_eq!(h.e.room_id(), None);
    assert!(h.transmits().is_empty(), "still logged in");
}

#[test]
fn logout() {
    let mut h = H::new();
    let c = h.e.logout(h.now);
    assert_eq!(h.result(c), err(Code::NotLoginSession));
    assert_eq!(Error::Code(Code::NotLoginSession).error_code(), "NOT_LOGIN");
    let mut h = H::logged_in("alice");
    let c = h.e.logout(h.now);
    assert_eq!(
        decode_client(&h.sent()[0]).unwrap(),
        ClientFrame::Logout { req: 2 }
    );
    h.reply(2, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    assert_eq!(states(&h.events()), vec![1]);
}

#[test]
fn unexpected_close_keeps_the_session_and_reconnects() {
    let mut h = H::logged_in("alice");
    let _j = h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let _m = h.e.send_server_message(h.now, &Payload::Text("hi".into()));
    h.sent();
    h.e.handle_closed(h.now, 1006);
    // Nothing fails: the calls wait for the reconnect (tests/reconnect.rs).
    assert!(h.completions().is_empty());
    assert_eq!(states(&h.events()), vec![4]);
    assert_eq!(h.e.logged_in_user(), Some("alice"));
    assert_eq!(h.e.room_id(), Some("r1"));
    assert!(h.e.poll_timeout().is_some());
    assert_eq!(Error::NotConnected.error_code(), "NOT_CONNECTED_YET");
}

#[test]
fn connection_that_never_opens_fails_the_login() {
    let mut h = H::new();
    let c = h.e.login(h.now, Some("t"), "alice");
    assert!(matches!(
        h.e.poll_transmit(),
        Some(Transmit::Connect { .. })
    ));
    h.e.handle_closed(h.now, 1006);
    assert_eq!(h.result(c), Err(Error::NotConnected));
    assert_eq!(states(&h.events()), vec![2, 1]);
}

#[test]
fn signaling_times_out_after_60_s() {
    let mut h = H::new();
    let c = h.e.login(h.now, Some("t"), "alice");
    h.open();
    h.sent();
    assert_eq!(h.e.poll_timeout(), Some(h.now + 60_000));
    h.advance(59_999);
    assert!(h.completions().is_empty());
    h.advance(1);
    assert_eq!(h.result(c), Err(Error::Timeout));
    assert_eq!(Error::Timeout.error_code(), "TIME_OUT");
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    // A late reply is ignored.
    h.reply(1, Code::Ok, b"");
    assert!(h.completions().is_empty());
}

#[test]
fn server_messages() {
    let mut h = H::new();
    let c = h.e.send_server_message(h.now, &Payload::Text("hi".into()));
    assert_eq!(h.result(c), err(Code::NotLoginSession));
    let mut h = H::logged_in("alice");
    for bad in [
        Payload::Text(String::new()),
        Payload::Binary(vec![0; 65_537]),
    ] {
        let c = h.e.send_server_message(h.now, &bad);
        assert_eq!(h.result(c), err(Code::InvalidParams));
    }
    assert!(h.transmits().is_empty());
    let c1 =
        h.e.send_server_message(h.now, &Payload::Binary(vec![7; 65_536]));
    let c2 = h.e.send_server_message(h.now, &Payload::Text("two".into()));
    let sent = h.sent();
    match decode_client(&sent[0]).unwrap() {
        ClientFrame::SendServer {
            msg_id,
            binary,
            payload,
            ..
        } => assert_eq!((msg_id, binary, payload.len()), (1, true, 65_536)),
        f => panic!("{f:?}"),
    }
    match decode_client(&sent[1]).unwrap() {
        ClientFrame::SendServer {
            msg_id,
            binary,
            payload,
            ..
        } => assert_eq!((msg_id, binary, payload), (2, false, &b"two"[..])),
        f => panic!("{f:?}"),
    }
    let (r1, r2) = (req_of(&sent[0]), req_of(&sent[1]));
    h.reply(r2, Code::ServerResponseError, b"oops");
    h.reply(r1, Code::Ok, b"ack");
    let done = h.completions();
    assert_eq!(done[0].call, c2);
    assert_eq!(done[0].result, err(Code::ServerResponseError));
    assert_eq!(done[1].call, c1);
    assert_eq!(
        done[1].result,
        Ok(Value::ServerMessage {
            msg_id: 1,
            response: b"ack".to_vec()
        })
    );
    assert_eq!(
        h.events(),
        vec![
            Event::ServerMessageSendResult {
                msg_id: 2,
                error: Some(Error::Code(Code::ServerResponseError)),
                response: b"oops".to_vec()
            },
            Event::ServerMessageSendResult {
                msg_id: 1,
                error: None,
                response: b"ack".to_vec()
            },
        ]
    );
    // The counter is shared and keeps going.
    assert_eq!(h.e.next_msg_id(), 3);
}

#[test]
fn server_message_times_out_with_user_message_timeout() {
    let mut h = H::logged_in("alice");
    let c = h.e.send_server_message(h.now, &Payload::Text("x".into()));
    h.sent();
    h.advance(60_000);
    assert_eq!(h.result(c), err(Code::Timeout));
    assert_eq!(
        Error::Code(Code::Timeout).error_code(),
        "USER_MESSAGE_TIMEOUT"
    );
}

#[test]
fn set_server_params() {
    let mut h = H::new();
    let c = h.e.set_server_params(h.now, "sig", "http://biz/");
    assert_eq!(h.result(c), err(Code::NotLoginSession));
    let mut h = H::logged_in("alice");
    for (sig, url) in [("", "http://biz/"), ("sig", "")] {
        let c = h.e.set_server_params(h.now, sig, url);
        assert_eq!(h.result(c), err(Code::InvalidParams));
        assert_eq!(
            h.events(),
            vec![Event::ServerParamsSetResult {
                error: Some(Error::Code(Code::InvalidParams))
            }]
        );
    }
    let c = h.e.set_server_params(h.now, "sig", "http://biz/");
    let sent = h.sent();
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::SetServerParams {
            req: 2,
            signature: "sig",
            url: "http://biz/"
        }
    );
    h.reply(2, Code::Ok, b"");
    assert_eq!(h.result(c), Ok(Value::None));
    assert_eq!(
        h.events(),
        vec![Event::ServerParamsSetResult { error: None }]
    );
    assert_eq!(h.e.server_params(), Some(("sig", "http://biz/")));
    let c = h.e.set_server_params(h.now, "sig2", "http://evil/");
    h.sent();
    h.reply(3, Code::CallbackNotAllowed, b"");
    assert_eq!(h.result(c), err(Code::CallbackNotAllowed));
    // Refused: the server cleared its params, and so does the engine.
    assert_eq!(h.e.server_params(), None);
}

#[test]
fn peer_status() {
    let mut h = H::logged_in("alice");
    let c = h.e.get_peer_online_status(h.now, "bob");
    h.sent();
    h.reply(2, Code::Ok, &[1]);
    assert_eq!(h.result(c), Ok(Value::PeerStatus(1)));
    let c = h.e.get_peer_online_status(h.now, "b b");
    assert_eq!(h.result(c), err(Code::InvalidParams));
}

#[test]
fn undecodable_frame_closes_with_4000() {
    let mut h = H::logged_in("alice");
    let c = h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    h.sent();
    h.e.handle_frame(h.now, &[0xff, 1, 2]);
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 4000 }]);
    // The session is kept for a reconnect; the join waits.
    assert!(h.completions().is_empty());
    let _ = c;
    assert_eq!(h.e.connection_state(), ConnectionState::Reconnecting);
    // The transport's own close event afterwards changes nothing.
    h.e.handle_closed(h.now, 4000);
    assert!(h.events().iter().all(|e| !matches!(e, Event::Error { .. })));
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                payload: Payload::Text(t),
                ..
            } => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_batch_is_read_frame_by_frame_in_order() {
    let mut h = H::logged_in("alice");
    let c = h.e.get_peer_online_status(h.now, "bob");
    let req = req_of(&h.sent()[0]);
    let mut b = BatchWriter::with_capacity(64);
    b.frame(&text_push(1, "a"));
    b.frame(&encode_server(&ServerFrame::Reply {
        req,
        code: 0,
        data: &[1],
    }));
    b.frame(&text_push(2, "b"));
    h.e.handle_frame(h.now, &b.finish());
    assert_eq!(texts(&h.events()), ["a", "b"]);
    assert!(h.result(c).is_ok());
    assert_eq!(h.e.last_push_seq(), 2);
    assert!(h.transmits().is_empty());
}

#[test]
fn a_broken_frame_in_a_batch_closes_with_4000_after_the_frames_before_it() {
    for bad in [&[0xff, 1][..], &[], &[0x85, 0x01, 0x80]] {
        let mut h = H::logged_in("alice");
        let mut b = BatchWriter::with_capacity(64);
        b.frame(&text_push(1, "a"));
        b.frame(bad);
        b.frame(&text_push(2, "b"));
        h.e.handle_frame(h.now, &b.finish());
        assert_eq!(texts(&h.events()), ["a"], "{bad:?}");
        assert_eq!(
            h.transmits(),
            vec![Transmit::Close { code: 4000 }],
            "{bad:?}"
        );
        assert_eq!(h.e.connection_state(), ConnectionState::Reconnecting);
    }
    // A batch of nothing is broken too.
    let mut h = H::logged_in("alice");
    h.e.handle_frame(h.now, &[0x85]);
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 4000 }]);
}

#[test]
fn unknown_app_notice_explains_the_close() {
    let mut h = H::new();
    let c = h.e.login(h.now, Some("t"), "alice");
    h.open();
    h.sent();
    h.frame(ServerFrame::Notice {
        code: Code::UnknownApp.as_u16(),
        room: "",
        detail: "unknown app",
    });
    h.e.handle_closed(h.now, 4004);
    assert_eq!(h.result(c), err(Code::UnknownApp));
    let ev = h.events();
    assert!(ev.contains(&Event::Error {
        error_code: "INVALID_APP_ID",
        room: String::new()
    }));
}

#[test]
fn member_frames() {
    let mut h = H::logged_in("alice");
    h.frame(ServerFrame::Member {
        room: "r1",
        user: "bob",
        extra: "x",
        joined: true,
        reason: 0,
    });
    h.frame(ServerFrame::Member {
        room: "r1",
        user: "bob",
        extra: "x",
        joined: false,
        reason: 1,
    });
    let ev = h.events();
    assert_eq!(ev[0].name(), "onUserJoined");
    assert_eq!(
        ev[1],
        Event::UserLeave {
            room: "r1".into(),
            user_id: "bob".into(),
            extra_info: "x".into(),
            reason: 1
        }
    );
}

#[test]
fn destroy_fails_everything() {
    let mut h = H::logged_in("alice");
    let c = h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    h.sent();
    h.e.destroy();
    assert_eq!(h.result(c), Err(Error::Destroyed));
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    let c = h.e.login(h.now, Some("t"), "bob");
    assert_eq!(h.result(c), Err(Error::Destroyed));
    assert!(h.transmits().is_empty());
}

#[test]
fn frames_for_unknown_requests_and_before_open_are_ignored() {
    let mut h = H::new();
    h.reply(9, Code::Ok, b"");
    let mut h2 = H::logged_in("alice");
    h2.reply(99, Code::Ok, b"");
    assert!(h.completions().is_empty() && h2.completions().is_empty());
    assert!(h.events().is_empty() && h2.events().is_empty());
}

#[test]
fn urls() {
    let cases = [
        ("http://h:1", "ws://h:1/rtm?appId=A&batch=1"),
        ("https://h/", "wss://h/rtm?appId=A&batch=1"),
        ("ws://h/p/", "ws://h/p/rtm?appId=A&batch=1"),
        ("WSS://h", "wss://h/rtm?appId=A&batch=1"),
    ];
    for (base, want) in cases {
        assert_eq!(ws_url(base, "A").as_deref(), Some(want), "{base}");
    }
    assert_eq!(
        ws_url("http://h", "a/b&c").as_deref(),
        Some("ws://h/rtm?appId=a%2Fb%26c&batch=1")
    );
    for bad in ["", "h:1", "ftp://h", "http://", "http:///x"] {
        assert_eq!(ws_url(bad, "A"), None, "{bad}");
    }
    assert!(Engine::new("", "http://h", Config::default()).is_err());
    assert!(Engine::new(APP, "nope", Config::default()).is_err());
}

#[test]
fn error_codes_are_unique_strings() {
    let all: Vec<&str> = rtm_core::all_error_codes().collect();
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(all.len(), dedup.len());
    for want in [
        "INVALID_PARAMS",
        "RTM_DUPLICATE_LOGIN",
        "DUPLICATE_LOGIN",
        "NOT_CONNECTED_YET",
        "TIME_OUT",
        "USER_MESSAGE_SERVER_PARAMS_NOTSET",
    ] {
        assert!(all.contains(&want), "{want}");
    }
    assert!(!all.contains(&"OK"));
}

/// A logged-in engine that joined `room`, with every output drained.
fn joined(user: &str, room: &str) -> H {
    let mut h = H::logged_in(user);
    h.e.join_room(h.now, Some("t"), room, user, "");
    let req = h.sent_reqs()[0];
    h.reply(req, Code::Ok, b"");
    h.drain();
    h
}

fn text(s: &str) -> Payload {
    Payload::Text(s.into())
}

#[test]
fn user_messages_outside_rooms() {
    let mut h = H::new();
    let c =
        h.e.send_user_message_outside_room(h.now, "bob", &text("hi"));
    assert_eq!(h.result(c), err(Code::NotLoginSession));
    assert_eq!(Error::Code(Code::NotLoginSession).error_code(), "NOT_LOGIN");
    let mut h = H::logged_in("alice");
    for (to, bad) in [
        ("bob", text("")),
        ("bob", Payload::Binary(vec![])),
        ("bob", Payload::Binary(vec![1; 65_537])),
        ("b b", text("x")),
        ("", text("x")),
        ("alice", text("to myself")),
    ] {
        let c = h.e.send_user_message_outside_room(h.now, to, &bad);
        assert_eq!(h.result(c), err(Code::InvalidParams), "{to:?}");
    }
    assert!(h.transmits().is_empty());
    assert!(h.events().is_empty(), "no result event for local failures");

    let c1 =
        h.e.send_user_message_outside_room(h.now, "bob", &text("hey"));
    let c2 =
        h.e.send_user_message_outside_room(h.now, "carol", &Payload::Binary(vec![0; 65_536]));
    let sent = h.sent();
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::SendUser {
            req: 2,
            msg_id: 1,
            room: "",
            to: "bob",
            binary: false,
            payload: b"hey"
        }
    );
    match decode_client(&sent[1]).unwrap() {
        ClientFrame::SendUser {
            msg_id,
            room,
            to,
            binary,
            payload,
            ..
        } => assert_eq!(
            (msg_id, room, to, binary, payload.len()),
            (2, "", "carol", true, 65_536)
        ),
        f => panic!("{f:?}"),
    }
    h.reply(3, Code::NoReceiver, b"");
    h.reply(2, Code::Ok, b"");
    let done = h.completions();
    assert_eq!(
        (done[0].call, done[0].result.clone()),
        (c2, err(Code::NoReceiver))
    );
    assert_eq!(
        (done[1].call, done[1].result.clone()),
        (c1, Ok(Value::MessageId(1)))
    );
    let ev = h.events();
    assert_eq!(
        ev,
        vec![
            Event::MessageSendResult {
                kind: PushKind::OutsideRoom,
                msg_id: 2,
                error: Some(Error::Code(Code::NoReceiver))
            },
            Event::MessageSendResult {
                kind: PushKind::OutsideRoom,
                msg_id: 1,
                error: None
            },
        ]
    );
    assert_eq!(ev[0].name(), "onUserMessageSendResultOutsideRoom");
    assert_eq!(
        Error::Code(Code::NoReceiver).error_code(),
        "USER_MESSAGE_NO_RECEIVER"
    );
    // Every other failure code of the server comes through as it is.
    for (i, code) in [Code::ExceedQps, Code::NotLoginSession, Code::InvalidParams]
        .into_iter()
        .enumerate()
    {
        let c = h.e.send_user_message_outside_room(h.now, "bob", &text("x"));
        let req = h.sent_reqs()[0];
        h.reply(req, code, b"");
        assert_eq!(h.result(c), err(code));
        assert_eq!(
            h.events(),
            vec![Event::MessageSendResult {
                kind: PushKind::OutsideRoom,
                msg_id: 3 + i as u64,
                error: Some(Error::Code(code))
            }]
        );
    }
    assert_eq!(
        Error::Code(Code::ExceedQps).error_code(),
        "USER_MESSAGE_EXCEED_QPS"
    );
}

#[test]
fn peer_messages_time_out_after_12_s() {
    let mut h = joined("alice", "r1");
    let c1 = h.e.send_user_message_outside_room(h.now, "bob", &text("a"));
    h.advance(1_000);
    let c2 = h.e.send_user_message(h.now, "bob", &text("b"));
    let c3 = h.e.send_room_message(h.now, &text("c"));
    h.sent();
    assert_eq!(h.e.poll_timeout(), Some(h.now - 1_000 + 12_000));
    h.advance(10_999);
    assert!(h.completions().is_empty());
    h.advance(1);
    assert_eq!(h.result(c1), err(Code::Timeout));
    h.advance(999);
    assert!(h.completions().is_empty());
    h.advance(1);
    let done = h.completions();
    assert_eq!(done.len(), 2);
    for d in &done {
        assert!(d.call == c2 || d.call == c3);
        assert_eq!(d.result, err(Code::Timeout));
    }
    let names: Vec<&str> = h
        .events()
        .iter()
        .filter(|e| matches!(e, Event::MessageSendResult { .. }))
        .map(Event::name)
        .collect();
    assert_eq!(
        names,
        vec![
            "onUserMessageSendResultOutsideRoom",
            "onUserMessageSendResult",
            "onRoomMessageSendResult"
        ]
    );
    assert_eq!(Error::Code(Code::Timeout).wire_code(), 1);
    // A late reply changes nothing; the engine is still usable.
    h.reply(2, Code::Ok, b"");
    assert!(h.completions().is_empty());
    assert_eq!(h.e.logged_in_user(), Some("alice"));
    assert_eq!(h.e.room_id(), Some("r1"));
}

#[test]
fn messages_in_a_room() {
    let mut h = H::logged_in("alice");
    // Not in a room, and while the join is pending: NOT_JOIN, before sending.
    let c = h.e.send_user_message(h.now, "bob", &text("x"));
    assert_eq!(h.result(c), err(Code::NotJoin));
    let c = h.e.send_room_message(h.now, &text("x"));
    assert_eq!(h.result(c), err(Code::NotJoin));
    h.e.join_room(h.now, Some("t"), "r1", "alice", "");
    let join_req = h.sent_reqs()[0];
    let c = h.e.send_room_message(h.now, &text("x"));
    assert_eq!(h.result(c), err(Code::NotJoin));
    assert_eq!(
        Error::Code(Code::NotJoin).error_code(),
        "USER_MESSAGE_NOT_JOIN"
    );
    h.reply(join_req, Code::Ok, b"");
    h.drain();
    for (to, bad) in [
        ("bob", text("")),
        ("bob", Payload::Binary(vec![1; 65_537])),
        ("b\u{e4}", text("x")),
        ("alice", text("x")),
    ] {
        let c = h.e.send_user_message(h.now, to, &bad);
        assert_eq!(h.result(c), err(Code::InvalidParams), "{to:?}");
    }
    for bad in [Payload::Binary(vec![]), text(&"x".repeat(65_537))] {
        let c = h.e.send_room_message(h.now, &bad);
        assert_eq!(h.result(c), err(Code::InvalidParams));
    }
    assert!(h.transmits().is_empty());

    // Message ids come from the one counter, shared with server messages.
    let c1 =
        h.e.send_user_message(h.now, "bob", &Payload::Binary(vec![1, 2]));
    let c2 = h.e.send_server_message(h.now, &text("srv"));
    let c3 = h.e.send_room_message(h.now, &text("all"));
    let sent = h.sent();
    assert_eq!(
        decode_client(&sent[0]).unwrap(),
        ClientFrame::SendUser {
            req: 3,
            msg_id: 1,
            room: "r1",
            to: "bob",
            binary: true,
            payload: &[1, 2]
        }
    );
    assert_eq!(
        decode_client(&sent[2]).unwrap(),
        ClientFrame::SendRoom {
            req: 5,
            msg_id: 3,
            room: "r1",
            binary: false,
            payload: b"all"
        }
    );
    h.reply(3, Code::Ok, b"");
    h.reply(4, Code::Ok, b"ack");
    h.reply(5, Code::Ok, b"");
    let done: Vec<(u64, Result<Value, Error>)> = h
        .completions()
        .into_iter()
        .map(|c| (c.call, c.result))
        .collect();
    assert_eq!(
        done,
        vec![
            (c1, Ok(Value::MessageId(1))),
            (
                c2,
                Ok(Value::ServerMessage {
                    msg_id: 2,
                    response: b"ack".to_vec()
                })
            ),
            (c3, Ok(Value::MessageId(3))),
        ]
    );
    let c4 = h.e.send_room_message(h.now, &text("again"));
    h.sent();
    h.reply(6, Code::NotJoin, b"");
    assert_eq!(h.result(c4), err(Code::NotJoin));
    let ev: Vec<(&str, u64, Option<Error>)> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::MessageSendResult { msg_id, error, .. } => Some((e.name(), msg_id, error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ev,
        vec![
            ("onUserMessageSendResult", 1, None),
            ("onRoomMessageSendResult", 3, None),
            (
                "onRoomMessageSendResult",
                4,
                Some(Error::Code(Code::NotJoin))
            ),
        ]
    );
    // After leaving, NOT_JOIN again.
    h.e.leave_room(h.now);
    h.drain();
    let c = h.e.send_user_message(h.now, "bob", &text("x"));
    assert_eq!(h.result(c), err(Code::NotJoin));
}

#[test]
fn message_ids_increase_across_every_kind() {
    let mut h = joined("alice", "r1");
    let mut calls = Vec::new();
    for i in 0..6 {
        let c = match i % 3 {
            0 => h.e.send_user_message_outside_room(h.now, "bob", &text("x")),
            1 => h.e.send_user_message(h.now, "bob", &text("x")),
            _ => h.e.send_room_message(h.now, &text("x")),
        };
        calls.push(c);
    }
    for req in h.sent_reqs() {
        h.reply(req, Code::Ok, b"");
    }
    let ids: Vec<Value> = h
        .completions()
        .into_iter()
        .map(|c| c.result.unwrap())
        .collect();
    assert_eq!(ids, (1..=6).map(Value::MessageId).collect::<Vec<_>>());
    // A failed local check does not use an id.
    let c = h.e.send_room_message(h.now, &text(""));
    assert_eq!(h.result(c), err(Code::InvalidParams));
    assert_eq!(h.e.next_msg_id(), 7);
}

#[test]
fn a_connection_that_cannot_be_restored_breaks_pending_peer_messages() {
    let mut h = joined("alice", "r1");
    let c = h.e.send_room_message(h.now, &text("x"));
    h.sent();
    // Kicked: nothing left to restore, so no reconnect.
    h.frame(ServerFrame::Notice {
        code: Code::KickedOut.as_u16(),
        room: "",
        detail: "",
    });
    h.frame(ServerFrame::Notice {
        code: Code::KickedOut.as_u16(),
        room: "r1",
        detail: "",
    });
    h.e.handle_closed(h.now, 4002);
    assert_eq!(h.result(c), err(Code::Broken));
    assert_eq!(h.e.connection_state(), ConnectionState::Disconnected);
    let c = h.e.send_room_message(h.now, &text("x"));
    assert_eq!(h.result(c), err(Code::NotJoin));
    let c = h.e.send_user_message_outside_room(h.now, "bob", &text("x"));
    assert_eq!(h.result(c), err(Code::NotLoginSession));
}
