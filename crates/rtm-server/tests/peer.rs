//! User and room messages between clients, online status and Member frames, against a real
//! server on port 0.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{decode_members, decode_server, ClientFrame, PushKind, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

const OK: u16 = 0;

fn c(code: Code) -> u16 {
    code.as_u16()
}

/// A Member frame with its extra info (the shared `Got` leaves it out).
#[derive(Debug, PartialEq, Eq)]
struct Member {
    room: String,
    user: String,
    extra: String,
    joined: bool,
    reason: u8,
}

fn member(room: &str, user: &str, extra: &str, joined: bool, reason: u8) -> Member {
    Member {
        room: room.into(),
        user: user.into(),
        extra: extra.into(),
        joined,
        reason,
    }
}

/// The next frame, which must be a Member frame.
async fn next_member(cl: &mut Client) -> Member {
    loop {
        let m = tokio::time::timeout(WAIT, cl.ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("readable");
        let Message::Binary(b) = m else { continue };
        match decode_server(&b).expect("decodes") {
            ServerFrame::Member {
                room,
                user,
                extra,
                joined,
                reason,
            } => {
                return Member {
                    room: room.into(),
                    user: user.into(),
                    extra: extra.into(),
                    joined,
                    reason,
                }
            }
            f => panic!("expected a Member frame, got {f:?}"),
        }
    }
}

/// Joins with `extra`, visible or not: the reply's code and data.
async fn join_with(
    cl: &mut Client,
    room: &str,
    user: &str,
    extra: &str,
    visible: bool,
) -> (u16, Vec<u8>) {
    let t = token(room, user);
    let req = cl.req();
    cl.call(&ClientFrame::Join {
        req,
        token: &t,
        room,
        user,
        extra,
        visible,
    })
    .await
}

async fn join_extra(cl: &mut Client, room: &str, user: &str, extra: &str) -> u16 {
    join_with(cl, room, user, extra, true).await.0
}

async fn send_user(cl: &mut Client, room: &str, to: &str, binary: bool, payload: &[u8]) -> u16 {
    let req = cl.req();
    let f = ClientFrame::SendUser {
        req,
        msg_id: u64::from(req),
        room,
        to,
        binary,
        payload,
    };
    cl.call(&f).await.0
}

async fn send_room(cl: &mut Client, room: &str, binary: bool, payload: &[u8]) -> u16 {
    let req = cl.req();
    let f = ClientFrame::SendRoom {
        req,
        msg_id: u64::from(req),
        room,
        binary,
        payload,
    };
    cl.call(&f).await.0
}

async fn peer_status(cl: &mut Client, user: &str) -> (u16, Vec<u8>) {
    let req = cl.req();
    cl.call(&ClientFrame::PeerStatus { req, user }).await
}

#[tokio::test]
async fn user_messages_outside_rooms_reach_the_logged_in_receiver() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    // Not logged in anywhere yet.
    assert_eq!(
        send_user(&mut a, "", "bob", false, b"hi").await,
        c(Code::NoReceiver)
    );
    assert_eq!(b.login("bob").await, OK);
    assert_eq!(send_user(&mut a, "", "bob", false, b"hi").await, OK);
    assert_eq!(
        b.next_push().await,
        (
            1,
            PushKind::OutsideRoom,
            "".into(),
            "alice".into(),
            false,
            b"hi".to_vec()
        )
    );
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(send_user(&mut a, "", "bob", true, &big).await, OK);
    assert_eq!(
        b.next_push().await,
        (
            2,
            PushKind::OutsideRoom,
            "".into(),
            "alice".into(),
            true,
            big
        )
    );
    // And back: pushes of a session are numbered whoever sends them.
    assert_eq!(send_user(&mut b, "", "alice", false, b"yo").await, OK);
    assert_eq!(a.next_push().await.0, 1);
    // After the receiver logs out: no receiver.
    let req = b.req();
    assert_eq!(b.call(&ClientFrame::Logout { req }).await.0, OK);
    assert_eq!(
        send_user(&mut a, "", "bob", false, b"hi").await,
        c(Code::NoReceiver)
    );
    // The same user id in another app is somebody else.
    let mut other = connect(addr, APP_B).await;
    let t = rtm_server::issue_token(APP_B, APP_KEY_B, "", "bob", now(), 3600).unwrap();
    let req = other.req();
    let login = ClientFrame::Login {
        req,
        token: &t,
        user: "bob",
    };
    assert_eq!(other.call(&login).await.0, OK);
    assert_eq!(
        send_user(&mut a, "", "bob", false, b"hi").await,
        c(Code::NoReceiver)
    );
    other.expect_silence(Duration::from_millis(100)).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn outside_rooms_needs_a_login_on_both_sides() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    // Alice only joined a room: she may not send outside rooms.
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.login("bob").await, OK);
    assert_eq!(
        send_user(&mut a, "", "bob", false, b"hi").await,
        c(Code::NotLoginSession)
    );
    // Carol is in a room but not logged in: not a receiver outside rooms, and offline.
    let mut cr = connect(addr, APP).await;
    assert_eq!(cr.join("r", "carol").await, OK);
    assert_eq!(
        send_user(&mut b, "", "carol", false, b"hi").await,
        c(Code::NoReceiver)
    );
    assert_eq!(peer_status(&mut b, "carol").await, (OK, vec![0]));
    assert_eq!(peer_status(&mut b, "bob").await, (OK, vec![1]));
    assert_eq!(peer_status(&mut b, "nobody").await, (OK, vec![0]));
    assert_eq!(
        peer_status(&mut b, "bad id").await.0,
        c(Code::InvalidParams)
    );
    // A session that only joined a room may ask too.
    assert_eq!(peer_status(&mut a, "bob").await, (OK, vec![1]));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn messages_in_a_room() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    let mut cl = connect(addr, APP).await;
    let mut outsider = connect(addr, APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.join("r", "bob").await, OK);
    assert_eq!(cl.join("r", "carol").await, OK);
    assert_eq!(outsider.login("dave").await, OK);
    assert_eq!(outsider.join("r2", "dave").await, OK);

    assert_eq!(send_user(&mut a, "r", "bob", false, b"to bob").await, OK);
    assert_eq!(
        b.next_push().await,
        (
            1,
            PushKind::RoomUser,
            "r".into(),
            "alice".into(),
            false,
            b"to bob".to_vec()
        )
    );
    assert_eq!(send_room(&mut a, "r", true, &[1, 2, 3]).await, OK);
    for rx in [&mut b, &mut cl] {
        let (_, kind, room, from, binary, payload) = rx.next_push().await;
        assert_eq!(
            (kind, room.as_str(), from.as_str(), binary, payload),
            (PushKind::Room, "r", "alice", true, vec![1, 2, 3])
        );
    }
    // Not to the sender, not to other rooms, not to carol for bob's message.
    a.expect_silence(Duration::from_millis(100)).await;
    cl.expect_silence(Duration::from_millis(1)).await;
    outsider.expect_silence(Duration::from_millis(1)).await;

    // dave is logged in but not in r: no receiver. Nobody called zed either.
    assert_eq!(
        send_user(&mut a, "r", "dave", false, b"x").await,
        c(Code::NoReceiver)
    );
    assert_eq!(
        send_user(&mut a, "r", "zed", false, b"x").await,
        c(Code::NoReceiver)
    );
    // The sender is not in r2.
    assert_eq!(
        send_user(&mut a, "r2", "dave", false, b"x").await,
        c(Code::NotJoin)
    );
    assert_eq!(send_room(&mut a, "r2", false, b"x").await, c(Code::NotJoin));
    // After leaving r, nothing more in r.
    let req = a.req();
    assert_eq!(a.call(&ClientFrame::Leave { req, room: "r" }).await.0, OK);
    assert_eq!(send_room(&mut a, "r", false, b"x").await, c(Code::NotJoin));
    assert_eq!(
        send_user(&mut a, "r", "bob", false, b"x").await,
        c(Code::NotJoin)
    );
    // Alone in a room: a room message still succeeds.
    assert_eq!(send_room(&mut outsider, "r2", false, b"anyone?").await, OK);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_messages() {
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(a.join("r", "alice").await, OK);
    let big = vec![0u8; 65_537];
    for (room, to, payload) in [
        ("", "bob", &b""[..]),
        ("", "bob", &big[..]),
        ("", "b b", &b"x"[..]),
        ("", "", &b"x"[..]),
        ("r r", "bob", &b"x"[..]),
        // To oneself, outside rooms and in a room.
        ("", "alice", &b"x"[..]),
        ("r", "alice", &b"x"[..]),
    ] {
        assert_eq!(
            send_user(&mut a, room, to, false, payload).await,
            c(Code::InvalidParams),
            "{room:?} {to:?} {}",
            payload.len()
        );
    }
    assert_eq!(
        send_room(&mut a, "r", false, b"").await,
        c(Code::InvalidParams)
    );
    assert_eq!(
        send_room(&mut a, "r", true, &big).await,
        c(Code::InvalidParams)
    );
    assert_eq!(
        send_room(&mut a, "", true, b"x").await,
        c(Code::InvalidParams)
    );
    s.shutdown().await.unwrap();
}

/// Sends `n` messages without waiting, then reads the `n` replies (in order).
async fn burst(cl: &mut Client, n: usize, outside: bool) -> Vec<u16> {
    let mut reqs = Vec::new();
    for _ in 0..n {
        let req = cl.req();
        reqs.push(req);
        let f = if outside {
            ClientFrame::SendUser {
                req,
                msg_id: u64::from(req),
                room: "",
                to: "bob",
                binary: false,
                payload: b"x",
            }
        } else {
            ClientFrame::SendRoom {
                req,
                msg_id: u64::from(req),
                room: "r",
                binary: false,
                payload: b"x",
            }
        };
        cl.send(&f).await;
    }
    let mut codes = Vec::new();
    while codes.len() < n {
        match cl.next().await {
            Got::Reply { req, code, .. } => {
                assert_eq!(req, reqs[codes.len()], "replies in order");
                codes.push(code);
            }
            Got::Closed(c) => panic!("closed {c:?}"),
            _ => {}
        }
    }
    codes
}

#[tokio::test]
async fn a_burst_over_the_message_rate_gets_exceed_qps() {
    let mut config = config();
    config.max_messages_per_sec = 5;
    let s = server_with(config).await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.login("bob").await, OK);
    let codes = burst(&mut a, 12, true).await;
    let ok = codes.iter().filter(|c| **c == OK).count();
    // Five at once, plus whatever refilled while the burst was read (one per 200 ms).
    assert!((5..=6).contains(&ok), "{codes:?}");
    assert_eq!(&codes[..5], &[OK; 5]);
    assert!(codes
        .iter()
        .all(|code| *code == OK || *code == c(Code::ExceedQps)));
    assert_eq!(Code::ExceedQps.error_code(), "USER_MESSAGE_EXCEED_QPS");
    // Only the accepted ones were delivered.
    for _ in 0..ok {
        b.next_push().await;
    }
    b.expect_silence(Duration::from_millis(100)).await;
    // Room messages share the budget; it refills with time.
    assert_eq!(
        send_room(&mut a, "r", false, b"x").await,
        c(Code::ExceedQps)
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(send_room(&mut a, "r", false, b"x").await, OK);
    // The budget is per connection: bob's is untouched.
    assert_eq!(send_user(&mut b, "", "alice", false, b"x").await, OK);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_default_rate_allows_a_burst_of_100_and_0_disables_it() {
    assert_eq!(rtm_server::Config::default().max_messages_per_sec, 100);
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    let codes = burst(&mut a, 100, false).await;
    assert_eq!(codes, vec![OK; 100]);
    s.shutdown().await.unwrap();

    let mut config = config();
    config.max_messages_per_sec = 0;
    let s = server_with(config).await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    let codes = burst(&mut a, 500, false).await;
    assert_eq!(codes, vec![OK; 500]);
    s.shutdown().await.unwrap();
}

#[test]
fn the_rate_is_read_from_the_config_file() {
    let config = rtm_server::Config::from_toml_str(
        r#"
        max_messages_per_sec = 7
        [[apps]]
        app_id = "0123456789abcdef01234567"
        app_key = "k"
        "#,
    )
    .unwrap();
    assert_eq!(config.max_messages_per_sec, 7);
    let config = rtm_server::Config::from_toml_str(
        r#"
        [[apps]]
        app_id = "0123456789abcdef01234567"
        app_key = "k"
        "#,
    )
    .unwrap();
    assert_eq!(config.max_messages_per_sec, 100);
}

#[tokio::test]
async fn member_frames_carry_extra_info_and_reasons() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    let mut cl = connect(addr, APP).await;
    assert_eq!(join_extra(&mut a, "r", "alice", "a's info").await, OK);
    assert_eq!(join_extra(&mut b, "r", "bob", "").await, OK);
    // The newcomer hears of those already there; they hear of it.
    assert_eq!(
        next_member(&mut b).await,
        member("r", "alice", "a's info", true, 0)
    );
    assert_eq!(next_member(&mut a).await, member("r", "bob", "", true, 0));
    let extra = "x".repeat(200);
    assert_eq!(join_extra(&mut cl, "r", "carol", &extra).await, OK);
    assert_eq!(
        next_member(&mut a).await,
        member("r", "carol", &extra, true, 0)
    );
    assert_eq!(
        next_member(&mut b).await,
        member("r", "carol", &extra, true, 0)
    );
    let mut others = vec![next_member(&mut cl).await, next_member(&mut cl).await];
    others.sort_by(|x, y| x.user.cmp(&y.user));
    assert_eq!(
        others,
        vec![
            member("r", "alice", "a's info", true, 0),
            member("r", "bob", "", true, 0)
        ]
    );
    // Extra info over 200 bytes is refused.
    let mut d = connect(addr, APP).await;
    assert_eq!(
        join_extra(&mut d, "r", "dave", &"x".repeat(201)).await,
        c(Code::InvalidParams)
    );
    // Leave: QUIT (0), with the leaver's extra info.
    let req = cl.req();
    assert_eq!(cl.call(&ClientFrame::Leave { req, room: "r" }).await.0, OK);
    assert_eq!(
        next_member(&mut a).await,
        member("r", "carol", &extra, false, 0)
    );
    assert_eq!(
        next_member(&mut b).await,
        member("r", "carol", &extra, false, 0)
    );
    // Connection gone: DROPPED (1).
    a.close().await;
    assert_eq!(
        next_member(&mut b).await,
        member("r", "alice", "a's info", false, 1)
    );
    // A repeated leave tells nobody.
    let req = cl.req();
    assert_eq!(cl.call(&ClientFrame::Leave { req, room: "r" }).await.0, OK);
    b.expect_silence(Duration::from_millis(100)).await;
    s.shutdown().await.unwrap();
}

/// Joins `room` as `user` with extra `user`'s initial, visible or not; returns the member
/// list of the reply (sorted).
async fn join_visible(cl: &mut Client, room: &str, user: &str, visible: bool) -> Vec<String> {
    let (code, data) = join_with(cl, room, user, &user[..1], visible).await;
    assert_eq!(code, OK, "join {user}");
    let mut users: Vec<String> = decode_members(&data)
        .expect("member list")
        .into_iter()
        .map(|(u, _)| u.to_owned())
        .collect();
    users.sort();
    users
}

#[tokio::test]
async fn invisible_members_receive_and_are_not_announced() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    let mut cl = connect(addr, APP).await;
    assert!(join_visible(&mut a, "r", "alice", true).await.is_empty());
    // An invisible joiner hears of the visible members; nobody hears of it.
    assert_eq!(join_visible(&mut b, "r", "bob", false).await, ["alice"]);
    assert_eq!(
        next_member(&mut b).await,
        member("r", "alice", "a", true, 0)
    );
    a.expect_silence(Duration::from_millis(100)).await;
    // A later joiner is not told about it either.
    assert_eq!(join_visible(&mut cl, "r", "carol", true).await, ["alice"]);
    assert_eq!(
        next_member(&mut cl).await,
        member("r", "alice", "a", true, 0)
    );
    cl.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(
        next_member(&mut a).await,
        member("r", "carol", "c", true, 0)
    );
    assert_eq!(
        next_member(&mut b).await,
        member("r", "carol", "c", true, 0)
    );
    // It is a full member: a receiver of user and room messages, and a sender.
    assert_eq!(send_user(&mut a, "r", "bob", false, b"to bob").await, OK);
    assert_eq!(b.next_push().await.5, b"to bob");
    assert_eq!(send_room(&mut cl, "r", false, b"all").await, OK);
    assert_eq!(b.next_push().await.5, b"all");
    assert_eq!(a.next_push().await.5, b"all");
    assert_eq!(send_room(&mut b, "r", false, b"from bob").await, OK);
    assert_eq!(a.next_push().await.3, "bob");
    assert_eq!(cl.next_push().await.3, "bob");
    // Becoming visible is a join for the others; setting it again changes nothing.
    assert_eq!(b.set_visibility("r", true).await, OK);
    assert_eq!(next_member(&mut a).await, member("r", "bob", "b", true, 0));
    assert_eq!(next_member(&mut cl).await, member("r", "bob", "b", true, 0));
    assert_eq!(b.set_visibility("r", true).await, OK);
    a.expect_silence(Duration::from_millis(100)).await;
    // Becoming invisible is a leave with SWITCH_TO_INVISIBLE (2).
    assert_eq!(b.set_visibility("r", false).await, OK);
    assert_eq!(next_member(&mut a).await, member("r", "bob", "b", false, 2));
    assert_eq!(
        next_member(&mut cl).await,
        member("r", "bob", "b", false, 2)
    );
    // Outside the room: NOT_JOIN.
    assert_eq!(b.set_visibility("elsewhere", true).await, c(Code::NotJoin));
    // An invisible member leaves (or drops) unannounced.
    let req = b.req();
    assert_eq!(b.call(&ClientFrame::Leave { req, room: "r" }).await.0, OK);
    a.expect_silence(Duration::from_millis(100)).await;
    assert!(join_visible(&mut b, "r", "bob", false).await.len() == 2);
    b.close().await;
    a.expect_silence(Duration::from_millis(200)).await;
    // A duplicate join that changes the visibility is announced as that change.
    let mut c2 = connect(addr, APP).await;
    assert_eq!(join_visible(&mut c2, "r", "carol", false).await, ["alice"]);
    assert_eq!(
        next_member(&mut a).await,
        member("r", "carol", "c", false, 2)
    );
    s.shutdown().await.unwrap();
}
