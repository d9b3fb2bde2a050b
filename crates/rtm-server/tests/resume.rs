//! Sessions outlive their connections (PROTOCOL.md §9): Welcome, Resume within and outside
//! the window, replay of missed pushes exactly once and in order, re-sent requests answered
//! once, re-login and re-join on a resumed session, heartbeat timeout, shutdown notice.

mod common;

use std::time::Duration;

use common::*;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{decode_members, ClientFrame};
use rtm_server::Config;
use serde_json::json;

fn config_with(window_ms: u64, ring: usize) -> Config {
    let mut c = config();
    c.resume_window_ms = window_ms;
    c.replay_ring = ring;
    c
}

/// Connects and waits for the Welcome; returns the client and its session key.
async fn open(addr: std::net::SocketAddr) -> (Client, Vec<u8>) {
    let mut c = connect(addr, APP).await;
    // Ping so the Welcome (always first) has been read.
    assert_eq!(c.ping().await, 0);
    let key = c.session.clone().expect("a Welcome frame");
    assert_eq!(key.len(), 16);
    (c, key)
}

async fn resume(c: &mut Client, key: &[u8], last_seq: u64) -> u16 {
    let req = c.req();
    c.call(&ClientFrame::Resume {
        req,
        session: key,
        last_seq,
    })
    .await
    .0
}

async fn unicast(addr: std::net::SocketAddr, to: &str, msg: &str) {
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "svc", "To": to, "Binary": false, "Message": msg}),
    )
    .await
    .assert_ok();
}

/// The next push as (seq, payload text).
async fn next_push(c: &mut Client) -> (u64, String) {
    match c.next().await {
        Got::Push { seq, payload, .. } => (seq, String::from_utf8(payload).unwrap()),
        other => panic!("expected a push, got {other:?}"),
    }
}

#[tokio::test]
async fn welcome_is_the_first_frame() {
    let server = server().await;
    let mut c = connect(server.local_addr(), APP).await;
    match c.next_any_raw().await {
        Got::Welcome {
            session,
            heartbeat_ms,
            resume_window_ms,
        } => {
            assert_eq!(session.len(), 16);
            assert_eq!((heartbeat_ms, resume_window_ms), (10_000, 30_000));
        }
        other => panic!("expected a Welcome, got {other:?}"),
    }
    // Every connection has its own key.
    let (_, k1) = open(server.local_addr()).await;
    let (_, k2) = open(server.local_addr()).await;
    assert_ne!(k1, k2);
}

#[tokio::test]
async fn missed_pushes_arrive_once_in_order_after_a_resume() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    for i in 1..=5 {
        unicast(addr, "alice", &format!("m{i}")).await;
    }
    // The client reads three pushes; the rest die with its connection.
    for i in 1..=3u64 {
        assert_eq!(next_push(&mut a).await, (i, format!("m{i}")));
    }
    drop(a);
    // Pushes while the session has no connection wait in its queue.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        server.hub().is_online(APP, "alice"),
        "kept during the window"
    );
    for i in 6..=8 {
        unicast(addr, "alice", &format!("m{i}")).await;
    }
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 3).await, 0);
    for i in 4..=8u64 {
        assert_eq!(next_push(&mut b).await, (i, format!("m{i}")));
    }
    // Numbering goes on; nothing is repeated.
    unicast(addr, "alice", "m9").await;
    assert_eq!(next_push(&mut b).await, (9, "m9".into()));
    b.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(b.batches, (0, 0), "no Batch message without batch=1");
    // The resumed session is still logged in: a second plain Login is refused as usual
    // once the re-login has been used.
    assert_eq!(b.login("alice").await, 0, "re-login after resume");
    assert_eq!(b.login("alice").await, Code::AlreadyLogin.as_u16());
}

#[tokio::test]
async fn a_client_that_reads_batches_gets_the_replay_in_one_message() {
    let server = server().await;
    let addr = server.local_addr();
    let mut a = connect_batch(addr, APP).await;
    assert_eq!(a.ping().await, 0);
    let key = a.session.clone().expect("a Welcome frame");
    assert_eq!(a.login("alice").await, 0);
    unicast(addr, "alice", "m1").await;
    assert_eq!(next_push(&mut a).await, (1, "m1".into()));
    // One frame at a time is written as a plain message.
    assert_eq!(a.batches, (0, 0));
    // Two pushes are written to the connection and never read; three wait for the session.
    unicast(addr, "alice", "m2").await;
    unicast(addr, "alice", "m3").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 4..=6 {
        unicast(addr, "alice", &format!("m{i}")).await;
    }
    let mut b = connect_batch(addr, APP).await;
    assert_eq!(b.ping().await, 0);
    assert_eq!(resume(&mut b, &key, 1).await, 0);
    for i in 2..=6u64 {
        assert_eq!(next_push(&mut b).await, (i, format!("m{i}")));
    }
    // The reply with the replayed m2 and m3, then the three queued pushes: two messages.
    assert_eq!(b.batches, (2, 6));
    // Numbering goes on after the batches.
    unicast(addr, "alice", "m7").await;
    assert_eq!(next_push(&mut b).await, (7, "m7".into()));
    b.expect_silence(Duration::from_millis(200)).await;
}

/// Room broadcasts sent while the connection is away wait in the room's log and arrive after
/// the resume, numbered on; a session whose missed broadcasts the log no longer holds cannot
/// resume.
#[tokio::test]
async fn room_broadcasts_missed_while_away_arrive_after_a_resume_unless_the_log_dropped_them() {
    let mut config = config_with(30_000, 64);
    // The log keeps at least the last 8 broadcasts; 300 are more than it can still hold.
    config.session_queue = 8;
    let server = server_with(config).await;
    let addr = server.local_addr();
    let broadcast = |text: String| {
        let body =
            json!({"AppId": APP, "RoomId": "r", "From": "svc", "Binary": false, "Message": text});
        async move { api(addr, "SendBroadcast", &body).await.assert_ok() }
    };
    for (missed, resumes) in [(8, true), (300, false)] {
        let (mut a, key) = open(addr).await;
        assert_eq!(a.join("r", "alice").await, 0);
        broadcast("first".into()).await;
        assert_eq!(next_push(&mut a).await, (1, "first".into()));
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..missed {
            broadcast(format!("m{i}")).await;
        }
        let (mut b, _) = open(addr).await;
        if resumes {
            assert_eq!(resume(&mut b, &key, 1).await, 0);
            for i in 0..missed {
                assert_eq!(next_push(&mut b).await, (i as u64 + 2, format!("m{i}")));
            }
            b.expect_silence(Duration::from_millis(100)).await;
            // Leave, so that the next round's alice is a new member of a new room.
            let req = b.req();
            assert_eq!(b.call(&ClientFrame::Leave { req, room: "r" }).await.0, 0);
        } else {
            assert_eq!(resume(&mut b, &key, 1).await, Code::RecoveryFailed.as_u16());
        }
    }
}

#[tokio::test]
async fn room_members_see_nothing_during_a_resume_and_dropped_after_the_window() {
    let server = server_with(config_with(600, 1024)).await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.join("r1", "alice").await, 0);
    let mut c = connect(addr, APP).await;
    let t = token("r1", "carol");
    let req = c.req();
    let (code, data) = c
        .call(&ClientFrame::Join {
            req,
            token: &t,
            room: "r1",
            user: "carol",
            extra: "c",
            visible: true,
        })
        .await;
    assert_eq!(code, 0);
    // The Join reply lists the members already there.
    assert_eq!(decode_members(&data).unwrap(), vec![("alice", "")]);
    // The same list follows as Member frames, as for every first join.
    assert!(matches!(
        c.next_any().await,
        Got::Member { joined: true, .. }
    ));
    assert!(matches!(
        a.next_any().await,
        Got::Member { joined: true, .. }
    ));

    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, 0);
    // The re-join of a resumed session is OK (not REPEAT_JOIN) and lists the members.
    let t = token("r1", "alice");
    let req = b.req();
    let (code, data) = b
        .call(&ClientFrame::Join {
            req,
            token: &t,
            room: "r1",
            user: "alice",
            extra: "",
            visible: true,
        })
        .await;
    assert_eq!(code, 0);
    assert_eq!(decode_members(&data).unwrap(), vec![("carol", "c")]);
    assert_eq!(b.join("r1", "alice").await, Code::RepeatJoin.as_u16());
    c.expect_silence(Duration::from_millis(300)).await;

    // Lost again, and not resumed: after the window the others see a drop.
    drop(b);
    match c.next_any().await {
        Got::Member {
            user,
            joined: false,
            reason,
            ..
        } => assert_eq!((user.as_str(), reason), ("alice", 1)),
        other => panic!("expected alice to leave, got {other:?}"),
    }
    assert!(!server.hub().is_online(APP, "alice"));
}

#[tokio::test]
async fn outside_the_window_recovery_fails_and_the_connection_is_a_new_session() {
    let server = server_with(config_with(200, 1024)).await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    drop(a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!server.hub().is_online(APP, "alice"));
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, Code::RecoveryFailed.as_u16());
    // An unknown key too.
    assert_eq!(
        resume(&mut b, &[7; 16], 0).await,
        Code::RecoveryFailed.as_u16()
    );
    // The connection goes on as its own session.
    assert_eq!(b.login("alice").await, 0);
    unicast(addr, "alice", "fresh").await;
    assert_eq!(next_push(&mut b).await, (1, "fresh".into()));
}

#[tokio::test]
async fn a_last_seq_older_than_the_ring_fails_and_ends_the_old_session() {
    let server = server_with(config_with(30_000, 2)).await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    for i in 1..=4 {
        unicast(addr, "alice", &format!("m{i}")).await;
    }
    for i in 1..=4u64 {
        assert_eq!(next_push(&mut a).await.0, i);
    }
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut b, _) = open(addr).await;
    // The ring holds 3 and 4 only: the client claims it has seen 1.
    assert_eq!(resume(&mut b, &key, 1).await, Code::RecoveryFailed.as_u16());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.hub().is_online(APP, "alice"),
        "the old session ended"
    );
    // And a key can be used only while its session exists.
    assert_eq!(resume(&mut b, &key, 4).await, Code::RecoveryFailed.as_u16());
}

#[tokio::test]
async fn a_request_re_sent_after_a_resume_is_answered_from_the_cache() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut bob, _) = open(addr).await;
    assert_eq!(bob.login("bob").await, 0);
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    // Sent, executed, but the reply never read: the connection dies.
    let send = ClientFrame::SendUser {
        req: 50,
        msg_id: 9,
        room: "",
        to: "bob",
        binary: false,
        payload: b"once",
    };
    a.send(&send).await;
    assert_eq!(next_push(&mut bob).await, (1, "once".into()));
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, 0);
    b.send(&send).await;
    match b.next().await {
        Got::Reply { req, code, .. } => assert_eq!((req, code), (50, 0)),
        other => panic!("expected the cached reply, got {other:?}"),
    }
    // Sent again (the client lost this reply too): still answered once, never executed.
    b.send(&send).await;
    assert!(matches!(
        b.next().await,
        Got::Reply {
            req: 50,
            code: 0,
            ..
        }
    ));
    bob.expect_silence(Duration::from_millis(300)).await;
    // Other request ids are executed as usual.
    let req = b.req();
    let again = ClientFrame::SendUser {
        req,
        msg_id: 10,
        room: "",
        to: "bob",
        binary: false,
        payload: b"twice",
    };
    assert_eq!(b.call(&again).await.0, 0);
    assert_eq!(next_push(&mut bob).await, (2, "twice".into()));
}

#[tokio::test]
async fn a_login_taken_while_away_is_not_re_confirmed() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Meanwhile alice logs in elsewhere; her old session keeps nothing but the notice.
    let (mut other, _) = open(addr).await;
    assert_eq!(other.login("alice").await, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut b, _) = open(addr).await;
    // With nothing left the old session ended at once: recovery fails.
    assert_eq!(resume(&mut b, &key, 0).await, Code::RecoveryFailed.as_u16());
}

#[tokio::test]
async fn a_half_open_connection_is_replaced_by_the_resume() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    // The client believes `a` is dead and resumes on another connection; the server has
    // not noticed anything.
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, 0);
    a.expect_close(rtm_server::close::SESSION_ENDED).await;
    unicast(addr, "alice", "here").await;
    assert_eq!(next_push(&mut b).await, (1, "here".into()));
}

#[tokio::test]
async fn a_silent_connection_is_closed_and_its_session_kept() {
    let mut c = config();
    c.heartbeat_ms = 100;
    let server = server_with(c).await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    // No frame for 3 heartbeats (not even the pongs to the server's WebSocket pings, which
    // the client stack sends only while it reads).
    tokio::time::sleep(Duration::from_millis(600)).await;
    loop {
        match a.next_any().await {
            // The pongs the client stack queued while reading the pings may meet a socket
            // the server already closed, so the close frame can be lost to a reset.
            Got::Closed(code) => {
                assert!(
                    matches!(code, None | Some(rtm_server::close::IDLE)),
                    "{code:?}"
                );
                break;
            }
            _ => continue,
        }
    }
    assert!(server.hub().is_online(APP, "alice"));
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, 0);
}

#[tokio::test]
async fn a_client_that_only_reads_pushes_is_pinged_and_kept() {
    // A ping goes out alone, or in the write of pushes about to be written; either way the
    // pongs of the client's stack keep the connection alive.
    let mut c = config();
    c.heartbeat_ms = 100;
    let server = server_with(c).await;
    let addr = server.local_addr();
    let (mut a, _) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    let sender = tokio::spawn(async move {
        for i in 0..50 {
            unicast(addr, "alice", &i.to_string()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // Ten heartbeats without a frame from the client, only the pongs of its stack.
    for i in 0..50 {
        assert_eq!(next_push(&mut a).await, (i + 1, i.to_string()));
    }
    sender.await.unwrap();
    assert!(a.pings >= 3, "{} pings in 10 heartbeats", a.pings);
    assert_eq!(a.ping().await, 0, "still connected");
}

#[tokio::test]
async fn a_normal_close_ends_the_session_at_once() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut a, key) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    a.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.hub().is_online(APP, "alice"));
    let (mut b, _) = open(addr).await;
    assert_eq!(resume(&mut b, &key, 0).await, Code::RecoveryFailed.as_u16());
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect() {
    let server = server().await;
    let addr = server.local_addr();
    let (mut a, _) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    let stop = tokio::spawn(server.shutdown());
    match a.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!((code, room.as_str()), (Code::ServerShutdown.as_u16(), ""))
        }
        other => panic!("expected the shutdown notice, got {other:?}"),
    }
    a.expect_close(rtm_server::close::SHUTDOWN).await;
    stop.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_ends_sessions_kept_for_a_resume() {
    // A resume window far longer than the shutdown grace period (10 s).
    let server = server_with(config_with(600_000, 1024)).await;
    let addr = server.local_addr();
    let (mut a, _) = open(addr).await;
    assert_eq!(a.login("alice").await, 0);
    // A second, connected session, which is told and closed with 4003.
    let (mut b, _) = open(addr).await;
    assert_eq!(b.login("bob").await, 0);
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.hub().is_online(APP, "alice"), "kept for a resume");
    // Both sessions end on the shutdown: the kept one does not wait out its window, nor
    // the server its grace period.
    let stop = tokio::spawn(server.shutdown());
    b.expect_close(rtm_server::close::SHUTDOWN).await;
    drop(b);
    let done = tokio::time::timeout(Duration::from_secs(5), stop).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "shutdown waited: {done:?}");
}
