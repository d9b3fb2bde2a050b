//! Heartbeat, reconnect, resume and restore, driven with a fake clock (PROTOCOL.md §9).

use rtm_core::{
    Backoff, Code, Config, ConnectionState, Engine, Error, Event, LostCause, Payload,
    ReconnectPolicy, Transmit, Value,
};
use rtm_protocol::frame::{decode_client, encode_members, encode_server, ClientFrame, ServerFrame};
use rtm_protocol::token::AccessToken;

mod common;
use common::text_push;

const APP: &str = "0123456789abcdef01234567";
const KEY1: [u8; 16] = [1; 16];
const KEY2: [u8; 16] = [2; 16];

/// A policy with no jitter, to know when attempts happen: 100 ms, then 200, 400, ...
#[derive(Debug)]
struct Fixed;

impl ReconnectPolicy for Fixed {
    fn next_delay(&self, attempt: u32, _: u64, _: LostCause, _: f64) -> Option<u64> {
        Some(100 << (attempt - 1).min(6))
    }
}

/// Gives up on the third attempt.
#[derive(Debug)]
struct Twice;

impl ReconnectPolicy for Twice {
    fn next_delay(&self, attempt: u32, _: u64, _: LostCause, _: f64) -> Option<u64> {
        (attempt <= 2).then_some(100)
    }
}

struct H {
    e: Engine,
    now: u64,
}

/// A frame the engine sent, owned.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Login(u32, String),
    Join(u32, String),
    Params(u32),
    Resume(u32, Vec<u8>, u64),
    Ping,
    Msg(u32, u64),
    Other(u32),
}

impl H {
    fn with(config: Config) -> H {
        let mut e = Engine::new(APP, "http://127.0.0.1:8080", config).unwrap();
        e.set_reconnect_policy(Box::new(Fixed));
        H { e, now: 1_000_000 }
    }

    fn new() -> H {
        H::with(Config::default())
    }

    /// Logged in as alice on session KEY1, everything drained.
    fn logged_in() -> H {
        let mut h = H::new();
        h.e.login(h.now, Some("tok"), "alice");
        h.expect_connect();
        h.e.handle_connected(h.now);
        h.welcome(&KEY1);
        let s = h.sent();
        let Sent::Login(req, _) = s[0] else {
            panic!("{s:?}")
        };
        h.reply(req, Code::Ok, b"");
        h.drain();
        h
    }

    fn set(&mut self, now: u64) {
        self.now = now;
        self.e.handle_timeout(now);
    }

    fn advance(&mut self, ms: u64) {
        self.set(self.now + ms);
    }

    fn welcome(&mut self, key: &[u8]) {
        self.frame(ServerFrame::Welcome {
            session: key,
            heartbeat_ms: 10_000,
            resume_window_ms: 30_000,
        });
    }

    fn frame(&mut self, f: ServerFrame<'_>) {
        let b = encode_server(&f);
        self.e.handle_frame(self.now, &b);
    }

    fn reply(&mut self, req: u32, code: Code, data: &[u8]) {
        self.frame(ServerFrame::Reply {
            req,
            code: code.as_u16(),
            data,
        });
    }

    fn push(&mut self, seq: u64, text: &str) {
        let b = text_push(seq, text);
        self.e.handle_frame(self.now, &b);
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.e.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.e.poll_event()).collect()
    }

    fn completions(&mut self) -> Vec<(u64, Result<Value, Error>)> {
        std::iter::from_fn(|| self.e.poll_completion())
            .map(|c| (c.call, c.result))
            .collect()
    }

    fn drain(&mut self) {
        self.transmits();
        self.events();
        self.completions();
    }

    fn expect_connect(&mut self) {
        let t = self.transmits();
        assert!(
            matches!(t.as_slice(), [Transmit::Connect { .. }]),
            "expected a Connect: {t:?}"
        );
    }

    /// The frames sent, decoded (other transmits are an error).
    fn sent(&mut self) -> Vec<Sent> {
        self.transmits()
            .into_iter()
            .map(|t| match t {
                Transmit::Send(b) => match decode_client(&b).unwrap() {
                    ClientFrame::Login { req, user, .. } => Sent::Login(req, user.into()),
                    ClientFrame::Join { req, room, .. } => Sent::Join(req, room.into()),
                    ClientFrame::SetServerParams { req, .. } => Sent::Params(req),
                    ClientFrame::Resume {
                        req,
                        session,
                        last_seq,
                    } => Sent::Resume(req, session.to_vec(), last_seq),
                    ClientFrame::Ping { .. } => Sent::Ping,
                    ClientFrame::SendServer { req, msg_id, .. }
                    | ClientFrame::SendUser { req, msg_id, .. }
                    | ClientFrame::SendRoom { req, msg_id, .. } => Sent::Msg(req, msg_id),
                    f => Sent::Other(f.req()),
                },
                other => panic!("expected a Send, got {other:?}"),
            })
            .collect()
    }

    /// Loses the connection and lets the first reconnect attempt open a connection.
    fn lose_and_reopen(&mut self) {
        self.e.handle_closed(self.now, 1006);
        self.advance(100);
        self.expect_connect();
        self.e.handle_connected(self.now);
    }

    fn call_result(&mut self, call: u64) -> Result<Value, Error> {
        let all = self.completions();
        all.iter()
            .find(|(c, _)| *c == call)
            .unwrap_or_else(|| panic!("call {call} not completed: {all:?}"))
            .1
            .clone()
    }
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

fn errors(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { error_code, .. } => Some(*error_code),
            _ => None,
        })
        .collect()
}

fn text(s: &str) -> Payload {
    Payload::Text(s.into())
}

fn room_token(expire_at: u32) -> String {
    let mut t = AccessToken::new(APP, "r1", "alice");
    t.expire_time(expire_at);
    t.serialize("appkey")
}

#[test]
fn backoff_is_exponential_with_full_jitter() {
    let b = Backoff::default();
    let c = LostCause::Closed(1006);
    assert_eq!(b.next_delay(1, 0, c, 0.0), Some(0));
    assert_eq!(b.next_delay(1, 0, c, 0.999_999), Some(499));
    assert_eq!(b.next_delay(2, 0, c, 0.5), Some(500));
    assert_eq!(b.next_delay(3, 0, c, 0.5), Some(1_000));
    // Capped at 30 s, whatever the attempt.
    assert_eq!(b.next_delay(7, 0, c, 0.5), Some(15_000));
    assert_eq!(b.next_delay(8, 0, c, 0.5), Some(15_000));
    assert_eq!(b.next_delay(u32::MAX, 0, c, 1.0), Some(30_000));
    let g = Backoff {
        give_up_after_ms: Some(60_000),
        ..Backoff::default()
    };
    assert_eq!(g.next_delay(3, 59_999, c, 0.5), Some(1_000));
    assert_eq!(g.next_delay(3, 60_000, c, 0.5), None);
}

#[test]
fn the_default_policy_draws_its_jitter_from_the_seed() {
    let delays = |seed: u64| {
        let mut e = Engine::new(APP, "http://h", Config::default()).unwrap();
        e.seed_random(seed);
        let mut now = 1_000_000;
        e.login(now, Some("t"), "alice");
        let _ = e.poll_transmit();
        e.handle_connected(now);
        e.handle_frame(
            now,
            &encode_server(&ServerFrame::Reply {
                req: 1,
                code: 0,
                data: &[],
            }),
        );
        let mut out = Vec::new();
        for _ in 0..5 {
            e.handle_closed(now, 1006);
            let at = e.poll_timeout().unwrap();
            out.push(at - now);
            now = at;
            e.handle_timeout(now);
            while e.poll_transmit().is_some() {}
        }
        out
    };
    let a = delays(42);
    assert_eq!(a, delays(42), "deterministic for a seed");
    assert_ne!(a, delays(43));
    for (i, d) in a.iter().enumerate() {
        assert!(*d < 500 << i, "attempt {} waited {d}", i + 1);
    }
}

#[test]
fn states_follow_the_vendor_order_and_lost_comes_after_10_s() {
    let mut h = H::logged_in();
    h.e.handle_closed(h.now, 1006);
    assert_eq!(states(&h.events()), vec![4], "RECONNECTING");
    // Attempts fail for a while: 100, 200, 400, ... ms apart.
    let lost_at = h.now;
    while h.now < lost_at + 12_000 {
        h.set(h.e.poll_timeout().unwrap());
        if h.transmits().contains(&Transmit::Connect {
            url: h.e.url().into(),
        }) {
            h.e.handle_closed(h.now, 1006);
        }
    }
    let ev = h.events();
    assert_eq!(states(&ev), vec![6], "LOST after 10 s; retries go on");
    assert!(h.e.poll_timeout().is_some());
    // The next attempt succeeds.
    h.set(h.e.poll_timeout().unwrap());
    h.expect_connect();
    h.e.handle_connected(h.now);
    assert_eq!(states(&h.events()), vec![5], "RECONNECTED");
    assert_eq!(h.e.logged_in_user(), Some("alice"));
}

#[test]
fn a_resumed_session_replays_once_and_restores_login_room_and_params() {
    let mut h = H::logged_in();
    let j = h.e.join_room(h.now, Some("rt"), "r1", "alice", "x");
    let Sent::Join(jreq, _) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(jreq, Code::Ok, &encode_members([("bob", "")]));
    h.frame(ServerFrame::Member {
        room: "r1",
        user: "bob",
        extra: "",
        joined: true,
        reason: 0,
    });
    assert_eq!(h.call_result(j), Ok(Value::None));
    let p = h.e.set_server_params(h.now, "sig", "http://biz/");
    let Sent::Params(preq) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(preq, Code::Ok, b"");
    assert_eq!(h.call_result(p), Ok(Value::None));
    h.push(1, "a");
    h.push(2, "b");
    h.events();
    // A message in flight when the connection goes, and one sent while it is away.
    let m1 = h.e.send_room_message(h.now, &text("m1"));
    let s = h.sent();
    let Sent::Msg(m1req, m1id) = s[0] else {
        panic!("{s:?}")
    };
    h.e.handle_closed(h.now, 1006);
    let m2 = h.e.send_room_message(h.now, &text("m2"));
    assert!(h.sent().is_empty(), "m2 waits");
    h.advance(100);
    h.expect_connect();
    h.e.handle_connected(h.now);
    // Resume first, nothing else until it is answered.
    let s = h.sent();
    let [Sent::Resume(rreq, key, 2)] = s.as_slice() else {
        panic!("{s:?}")
    };
    assert_eq!(key.as_slice(), KEY1);
    h.welcome(&KEY2);
    assert!(h.sent().is_empty());
    h.reply(*rreq, Code::Ok, b"");
    // Then re-login, re-join, params, and the waiting requests with their own ids.
    let s = h.sent();
    assert!(matches!(&s[0], Sent::Login(_, u) if u == "alice"), "{s:?}");
    assert!(matches!(&s[1], Sent::Join(_, r) if r == "r1"), "{s:?}");
    assert!(matches!(s[2], Sent::Params(_)), "{s:?}");
    assert_eq!(s[3], Sent::Msg(m1req, m1id), "re-sent as it was");
    assert!(matches!(s[4], Sent::Msg(_, id) if id == m1id + 1));
    assert_eq!(s.len(), 5);
    let (lreq, jreq, preq) = match (&s[0], &s[1], &s[2]) {
        (Sent::Login(a, _), Sent::Join(b, _), Sent::Params(c)) => (*a, *b, *c),
        _ => unreachable!(),
    };
    h.reply(lreq, Code::Ok, b"");
    h.reply(jreq, Code::Ok, &encode_members([("bob", "")]));
    h.reply(preq, Code::Ok, b"");
    h.reply(m1req, Code::Ok, b"");
    let Sent::Msg(m2req, _) = s[4] else { panic!() };
    h.reply(m2req, Code::Ok, b"");
    // The replayed push 2 is dropped; 3 is new.
    h.push(2, "b");
    h.push(3, "c");
    let ev = h.events();
    let msgs: Vec<&Payload> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Message { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, vec![&text("c")]);
    assert!(ev.contains(&Event::ServerParamsSetResult { error: None }));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::UserJoined { .. } | Event::UserLeave { .. })),
        "the room did not change: {ev:?}"
    );
    assert!(errors(&ev).is_empty());
    let done = h.completions();
    assert!(done.contains(&(m1, Ok(Value::MessageId(m1id)))));
    assert!(done.contains(&(m2, Ok(Value::MessageId(m1id + 1)))));
    assert_eq!(h.e.last_push_seq(), 3);
}

#[test]
fn recovery_failed_reports_it_breaks_what_was_in_flight_and_sends_what_waited() {
    let mut h = H::logged_in();
    h.push(1, "a");
    let m1 =
        h.e.send_user_message_outside_room(h.now, "bob", &text("m1"));
    h.sent();
    h.e.handle_closed(h.now, 1006);
    let m2 =
        h.e.send_user_message_outside_room(h.now, "bob", &text("m2"));
    h.advance(100);
    h.expect_connect();
    h.e.handle_connected(h.now);
    h.welcome(&KEY2);
    let s = h.sent();
    let [Sent::Resume(rreq, _, 1)] = s.as_slice() else {
        panic!("{s:?}")
    };
    h.reply(*rreq, Code::RecoveryFailed, b"");
    let ev = h.events();
    assert_eq!(errors(&ev), vec!["RECOVERY_FAILED"]);
    assert_eq!(h.call_result(m1), Err(Error::Code(Code::Broken)));
    let s = h.sent();
    assert!(matches!(&s[0], Sent::Login(_, u) if u == "alice"));
    assert!(matches!(s[1], Sent::Msg(_, _)), "m2 goes out: {s:?}");
    assert_eq!(s.len(), 2);
    let (Sent::Login(lreq, _), Sent::Msg(mreq, _)) = (s[0].clone(), s[1].clone()) else {
        unreachable!()
    };
    h.reply(lreq, Code::Ok, b"");
    h.reply(mreq, Code::Ok, b"");
    assert!(matches!(h.call_result(m2), Ok(Value::MessageId(_))));
    // A new session: numbering starts again and the next resume uses the new key.
    h.push(1, "fresh");
    assert_eq!(h.e.last_push_seq(), 1);
    h.lose_and_reopen();
    let s = h.sent();
    assert!(
        matches!(&s[0], Sent::Resume(_, k, 1) if k.as_slice() == KEY2),
        "{s:?}"
    );
}

#[test]
fn a_silent_connection_is_declared_dead_within_the_bound() {
    let mut h = H::logged_in();
    let start = h.now;
    // A Ping every heartbeat; the server answers the first.
    h.set(start + 10_000);
    assert_eq!(h.sent(), vec![Sent::Ping]);
    h.frame(ServerFrame::Reply {
        req: 99,
        code: 0,
        data: &[],
    });
    let heard = h.now;
    h.set(start + 20_000);
    assert_eq!(h.sent(), vec![Sent::Ping]);
    // Then nothing: dead 25 s after the last frame, without any close from the transport.
    h.set(heard + 24_999);
    h.transmits();
    assert_eq!(h.e.connection_state(), ConnectionState::Connected);
    h.set(heard + 25_000);
    assert_eq!(
        h.transmits(),
        vec![Transmit::Close {
            code: rtm_core::CLOSE_RECONNECT
        }]
    );
    assert_eq!(states(&h.events()), vec![4]);
}

#[test]
fn coming_back_online_reconnects_at_once_and_probes_an_open_connection() {
    let mut h = H::logged_in();
    h.e.handle_network(h.now, true);
    assert_eq!(h.sent(), vec![Sent::Ping], "probe");
    h.advance(4_999);
    assert!(h.transmits().is_empty());
    h.advance(1);
    assert_eq!(
        h.transmits(),
        vec![Transmit::Close {
            code: rtm_core::CLOSE_RECONNECT
        }],
        "unanswered probe"
    );
    // Waiting for the next attempt: online skips the wait.
    h.e.handle_network(h.now, true);
    h.expect_connect();
}

#[test]
fn no_reconnect_after_a_duplicate_login_or_an_unknown_app() {
    let mut h = H::logged_in();
    h.frame(ServerFrame::Notice {
        code: Code::RtmDuplicateLogin.as_u16(),
        room: "",
        detail: "",
    });
    let ev = h.events();
    assert_eq!(errors(&ev), vec!["RTM_DUPLICATE_LOGIN"]);
    assert_eq!(states(&ev), vec![1]);
    h.e.handle_closed(h.now, 4002);
    assert_eq!(h.e.poll_timeout(), None);

    let mut h = H::logged_in();
    h.frame(ServerFrame::Notice {
        code: Code::UnknownApp.as_u16(),
        room: "",
        detail: "",
    });
    h.e.handle_closed(h.now, 4004);
    assert_eq!(h.e.connection_state(), ConnectionState::Disconnected);
    assert_eq!(h.e.poll_timeout(), None);
}

#[test]
fn a_policy_that_gives_up_reports_reconnect_failed() {
    let mut h = H::logged_in();
    h.e.set_reconnect_policy(Box::new(Twice));
    let m = h.e.send_user_message_outside_room(h.now, "bob", &text("x"));
    h.sent();
    for _ in 0..2 {
        h.e.handle_closed(h.now, 1006);
        h.advance(100);
        h.expect_connect();
    }
    h.e.handle_closed(h.now, 1006);
    let ev = h.events();
    assert!(errors(&ev).contains(&"RECONNECT_FAILED"));
    assert_eq!(*states(&ev).last().unwrap(), 1);
    assert_eq!(h.call_result(m), Err(Error::Code(Code::Broken)));
    assert_eq!(h.e.logged_in_user(), None);
}

#[test]
fn sends_while_disconnected_are_bounded_in_count_and_age() {
    let mut c = Config::default();
    c.max_queued_messages = 2;
    c.max_queued_age_ms = 5_000;
    let mut h = H::with(c);
    h.e.login(h.now, Some("t"), "alice");
    h.expect_connect();
    h.e.handle_connected(h.now);
    h.welcome(&KEY1);
    h.reply(1, Code::Ok, b"");
    h.drain();
    // The connection is lost and stays lost.
    h.e.set_reconnect_policy(Box::new(Fixed));
    h.e.handle_closed(h.now, 1006);
    let a = h.e.send_user_message_outside_room(h.now, "bob", &text("a"));
    let b = h.e.send_server_message(h.now, &text("b"));
    let c = h.e.send_user_message_outside_room(h.now, "bob", &text("c"));
    assert_eq!(h.call_result(c), Err(Error::QueueFull));
    assert_eq!(Error::QueueFull.error_code(), "SEND_QUEUE_FULL");
    // Too old: they fail with USER_MESSAGE_TIMEOUT (the attempts keep failing meanwhile).
    let start = h.now;
    while h.now < start + 5_000 {
        h.set(h.e.poll_timeout().unwrap().min(start + 5_000));
        if !h.transmits().is_empty() {
            h.e.handle_closed(h.now, 1006);
        }
    }
    let done = h.completions();
    assert!(
        done.contains(&(a, Err(Error::Code(Code::Timeout)))),
        "{done:?}"
    );
    assert!(
        done.contains(&(b, Err(Error::Code(Code::Timeout)))),
        "{done:?}"
    );
}

#[test]
fn an_expired_token_at_re_login_ends_in_on_error_and_update_login_token_recovers() {
    let mut h = H::logged_in();
    h.lose_and_reopen();
    h.welcome(&KEY2);
    let Sent::Resume(rreq, ..) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(rreq, Code::Ok, b"");
    let Sent::Login(lreq, _) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(lreq, Code::TokenExpired, b"");
    let ev = h.events();
    assert_eq!(errors(&ev), vec!["TOKEN_EXPIRED"]);
    assert_eq!(h.e.logged_in_user(), None);
    // No retry loop: nothing more is sent, the idle connection closes.
    assert_eq!(h.transmits(), vec![Transmit::Close { code: 1000 }]);
    h.advance(120_000);
    assert!(h.transmits().is_empty());
    // A new token logs in again.
    let c = h.e.update_login_token(h.now, "tok2");
    h.expect_connect();
    h.e.handle_connected(h.now);
    let s = h.sent();
    let [Sent::Login(req, user)] = s.as_slice() else {
        panic!("{s:?}")
    };
    assert_eq!(user, "alice");
    h.reply(*req, Code::Ok, b"");
    assert_eq!(h.call_result(c), Ok(Value::None));
    assert_eq!(h.e.logged_in_user(), Some("alice"));
}

#[test]
fn an_expired_room_token_at_re_join_and_update_token() {
    let mut h = H::logged_in();
    let j = h.e.join_room(h.now, Some("rt"), "r1", "alice", "");
    let Sent::Join(jreq, _) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(jreq, Code::Ok, b"");
    assert_eq!(h.call_result(j), Ok(Value::None));
    h.lose_and_reopen();
    let Sent::Resume(rreq, ..) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(rreq, Code::Ok, b"");
    let s = h.sent();
    let (Sent::Login(lreq, _), Sent::Join(jreq, _)) = (s[0].clone(), s[1].clone()) else {
        panic!("{s:?}")
    };
    h.reply(lreq, Code::Ok, b"");
    h.reply(jreq, Code::TokenExpired, b"");
    let ev = h.events();
    assert_eq!(errors(&ev), vec!["TOKEN_EXPIRED"]);
    assert_eq!(h.e.room_id(), None);
    let c = h.e.update_token(h.now, "rt2");
    let s = h.sent();
    let [Sent::Join(req, room)] = s.as_slice() else {
        panic!("{s:?}")
    };
    assert_eq!(room, "r1");
    h.reply(*req, Code::Ok, b"");
    assert_eq!(h.call_result(c), Ok(Value::None));
    assert_eq!(h.e.room_id(), Some("r1"));
}

#[test]
fn on_token_will_expire_fires_30_s_before_the_room_token_expires() {
    let mut h = H::logged_in();
    // now is 1,000,000 ms = 1,000 s since the epoch; the token expires at 2,000 s.
    h.e.join_room(h.now, Some(&room_token(2_000)), "r1", "alice", "");
    let Sent::Join(jreq, _) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(jreq, Code::Ok, b"");
    h.drain();
    h.set(1_969_999);
    assert!(!h
        .events()
        .iter()
        .any(|e| matches!(e, Event::TokenWillExpire { .. })));
    h.set(1_970_000);
    let ev = h.events();
    assert!(ev.contains(&Event::TokenWillExpire { room: "r1".into() }));
    assert_eq!(ev.last().unwrap().name(), "onTokenWillExpire");
    // Once per token; a renewed token is scheduled anew.
    h.advance(10_000);
    assert!(!h
        .events()
        .iter()
        .any(|e| matches!(e, Event::TokenWillExpire { .. })));
    h.e.update_token(h.now, &room_token(3_000));
    h.set(2_969_999);
    h.set(2_970_000);
    assert!(h
        .events()
        .contains(&Event::TokenWillExpire { room: "r1".into() }));
}

#[test]
fn a_re_join_reports_how_the_room_changed() {
    let mut h = H::logged_in();
    h.e.join_room(h.now, Some("rt"), "r1", "alice", "");
    let Sent::Join(jreq, _) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(
        jreq,
        Code::Ok,
        &encode_members([("bob", ""), ("carol", "")]),
    );
    for u in ["bob", "carol"] {
        h.frame(ServerFrame::Member {
            room: "r1",
            user: u,
            extra: "",
            joined: true,
            reason: 0,
        });
    }
    h.drain();
    h.lose_and_reopen();
    h.welcome(&KEY2);
    let Sent::Resume(rreq, ..) = h.sent()[0].clone() else {
        panic!()
    };
    // Recovery failed: a new session, whose Join lists the room as it is now.
    h.reply(rreq, Code::RecoveryFailed, b"");
    let s = h.sent();
    let (Sent::Login(lreq, _), Sent::Join(jreq, _)) = (s[0].clone(), s[1].clone()) else {
        panic!("{s:?}")
    };
    h.reply(lreq, Code::Ok, b"");
    h.reply(
        jreq,
        Code::Ok,
        &encode_members([("bob", ""), ("dave", "d")]),
    );
    // The Member frames of the new join follow: known members are not reported twice.
    for (u, e) in [("bob", ""), ("dave", "d")] {
        h.frame(ServerFrame::Member {
            room: "r1",
            user: u,
            extra: e,
            joined: true,
            reason: 0,
        });
    }
    let ev: Vec<Event> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::UserJoined { .. } | Event::UserLeave { .. }))
        .collect();
    assert_eq!(
        ev,
        vec![
            Event::UserLeave {
                room: "r1".into(),
                user_id: "carol".into(),
                extra_info: "".into(),
                reason: 1
            },
            Event::UserJoined {
                room: "r1".into(),
                user_id: "dave".into(),
                extra_info: "d".into()
            },
        ]
    );
}

#[test]
fn params_are_set_again_after_a_manual_login_and_cleared_when_refused() {
    let mut h = H::logged_in();
    let p = h.e.set_server_params(h.now, "sig", "http://biz/");
    let Sent::Params(req) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(req, Code::Ok, b"");
    assert_eq!(h.call_result(p), Ok(Value::None));
    let l = h.e.logout(h.now);
    let Sent::Other(req) = h.sent()[0].clone() else {
        panic!()
    };
    h.reply(req, Code::Ok, b"");
    assert_eq!(h.call_result(l), Ok(Value::None));
    h.drain();
    // Kept by the engine; the next login sets them again right behind the Login.
    h.e.login(h.now, Some("tok"), "alice");
    h.expect_connect();
    h.e.handle_connected(h.now);
    let s = h.sent();
    let [Sent::Login(lreq, _), Sent::Params(preq)] = s.as_slice() else {
        panic!("{s:?}")
    };
    h.reply(*lreq, Code::Ok, b"");
    h.reply(*preq, Code::CallbackNotAllowed, b"");
    let ev = h.events();
    assert!(ev.contains(&Event::ServerParamsSetResult {
        error: Some(Error::Code(Code::CallbackNotAllowed))
    }));
    assert_eq!(h.e.server_params(), None);
}

#[test]
fn logout_while_reconnecting_stops_the_attempts() {
    let mut h = H::logged_in();
    h.e.handle_closed(h.now, 1006);
    h.events();
    let l = h.e.logout(h.now);
    assert_eq!(h.call_result(l), Ok(Value::None));
    assert_eq!(states(&h.events()), vec![1]);
    assert_eq!(h.e.poll_timeout(), None);
}
