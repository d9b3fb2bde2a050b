//! The OpenAPI against a real server on port 0, with real WebSocket recipients.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use rtm_protocol::frame::PushKind;
use serde_json::{json, Value};

const OK: u16 = 0;

fn push(
    kind: PushKind,
    room: &str,
    from: &str,
    binary: bool,
    payload: &[u8],
) -> (PushKind, String, String, bool, Vec<u8>) {
    (kind, room.into(), from.into(), binary, payload.to_vec())
}

async fn next_push(c: &mut Client) -> (PushKind, String, String, bool, Vec<u8>) {
    let (_, kind, room, from, binary, payload) = c.next_push().await;
    (kind, room, from, binary, payload)
}

/// 64 KB of text (multi-byte characters included, exactly 65,536 UTF-8 bytes).
fn big_text() -> String {
    let mut s = "é€".repeat(65_536 / 5);
    while s.len() < 65_536 {
        s.push('x');
    }
    assert_eq!(s.len(), 65_536);
    s
}

fn big_binary() -> Vec<u8> {
    (0..65_536u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn send_unicast_text_and_binary() {
    let s = server().await;
    let addr = s.local_addr();
    let mut alice = connect(addr, APP).await;
    assert_eq!(alice.login("alice").await, OK);
    let mut bob = connect(addr, APP).await;
    assert_eq!(bob.login("bob").await, OK);

    let r = api(addr, "SendUnicast", &json!({"AppId": APP, "From": "server", "To": "alice", "Binary": false, "Message": "hello"})).await;
    r.assert_ok();
    assert_eq!(r.body["ResponseMetadata"]["Action"], "SendUnicast");
    assert_eq!(r.body["ResponseMetadata"]["Version"], "2023-07-20");
    assert_eq!(r.body["ResponseMetadata"]["Service"], "rtc");
    assert_eq!(r.body["ResponseMetadata"]["Region"], "cn-north-1");
    assert!(
        r.body["ResponseMetadata"]["RequestId"]
            .as_str()
            .unwrap()
            .len()
            >= 16
    );
    assert_eq!(
        next_push(&mut alice).await,
        push(PushKind::OutsideRoom, "", "server", false, b"hello")
    );

    let text = big_text();
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": text}),
    )
    .await
    .assert_ok();
    assert_eq!(
        next_push(&mut alice).await,
        push(PushKind::OutsideRoom, "", "srv", false, text.as_bytes())
    );

    let bin = big_binary();
    let b64 = STANDARD.encode(&bin);
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": true, "Message": b64}),
    )
    .await
    .assert_ok();
    assert_eq!(
        next_push(&mut alice).await,
        push(PushKind::OutsideRoom, "", "srv", true, &bin)
    );

    // Sequence numbers count per session from 1.
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": true, "Message": "AAEC"}),
    )
    .await
    .assert_ok();
    match alice.next().await {
        Got::Push { seq, payload, .. } => assert_eq!((seq, payload), (4, vec![0, 1, 2])),
        g => panic!("{g:?}"),
    }
    // Offline recipient: still success.
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "srv", "To": "nobody", "Binary": false, "Message": "x"}),
    )
    .await
    .assert_ok();
    // The older Version works too.
    let r = api_signed(
        addr,
        "Action=SendUnicast&Version=2020-12-01",
        json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "old"})
            .to_string()
            .as_bytes(),
        &Signer::new(AK, SK),
    )
    .await;
    r.assert_ok();
    assert_eq!(
        next_push(&mut alice).await,
        push(PushKind::OutsideRoom, "", "srv", false, b"old")
    );
    // Bob got nothing.
    bob.expect_silence(Duration::from_millis(200)).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn room_unicast_batch_and_broadcast() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    let mut c = connect(addr, APP).await;
    let mut outsider = connect(addr, APP).await;
    assert_eq!(a.join("r1", "alice").await, OK);
    assert_eq!(b.join("r1", "bob").await, OK);
    assert_eq!(c.join("r1", "carol").await, OK);
    assert_eq!(outsider.join("r2", "dave").await, OK);
    // Also logged in: a room message is not an outside-room message.
    assert_eq!(outsider.login("dave").await, OK);

    // SendRoomUnicast, text and a 64 KB binary.
    api(addr, "SendRoomUnicast", &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": "bob", "Binary": false, "Message": "to bob"})).await.assert_ok();
    assert_eq!(
        next_push(&mut b).await,
        push(PushKind::RoomUser, "r1", "srv", false, b"to bob")
    );
    let bin = big_binary();
    api(addr, "SendRoomUnicast", &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": "bob", "Binary": true, "Message": STANDARD.encode(&bin)})).await.assert_ok();
    assert_eq!(
        next_push(&mut b).await,
        push(PushKind::RoomUser, "r1", "srv", true, &bin)
    );
    // A user not in that room gets nothing.
    api(addr, "SendRoomUnicast", &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": "dave", "Binary": false, "Message": "no"})).await.assert_ok();

    // BatchSendRoomUnicast to alice and carol (and someone absent), text then binary.
    let body = json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": ["alice", "carol", "ghost", "alice"], "Binary": false, "Message": "batch"});
    api(addr, "BatchSendRoomUnicast", &body).await.assert_ok();
    let bin20: Vec<u8> = (0..20_480u32).map(|i| (i % 256) as u8).collect();
    let body = json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": ["alice", "carol"], "Binary": true, "Message": STANDARD.encode(&bin20)});
    api(addr, "BatchSendRoomUnicast", &body).await.assert_ok();
    for cl in [&mut a, &mut c] {
        assert_eq!(
            next_push(cl).await,
            push(PushKind::RoomUser, "r1", "srv", false, b"batch")
        );
        assert_eq!(
            next_push(cl).await,
            push(PushKind::RoomUser, "r1", "srv", true, &bin20)
        );
    }

    // SendBroadcast reaches everyone in r1, text and 64 KB text.
    api(
        addr,
        "SendBroadcast",
        &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "Binary": false, "Message": "all"}),
    )
    .await
    .assert_ok();
    let text = big_text();
    api(
        addr,
        "SendBroadcast",
        &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "Binary": false, "Message": text}),
    )
    .await
    .assert_ok();
    api(addr, "SendBroadcast", &json!({"AppId": APP, "RoomId": "r1", "From": "srv", "Binary": true, "Message": STANDARD.encode(&bin)})).await.assert_ok();
    for cl in [&mut a, &mut b, &mut c] {
        assert_eq!(
            next_push(cl).await,
            push(PushKind::Room, "r1", "srv", false, b"all")
        );
        assert_eq!(
            next_push(cl).await,
            push(PushKind::Room, "r1", "srv", false, text.as_bytes())
        );
        assert_eq!(
            next_push(cl).await,
            push(PushKind::Room, "r1", "srv", true, &bin)
        );
    }
    // Nothing for the member of another room, nor extra frames for b.
    outsider.expect_silence(Duration::from_millis(200)).await;
    b.expect_silence(Duration::from_millis(50)).await;
    s.shutdown().await.unwrap();
}

/// A member that left gets no broadcast sent after its leave; one that joined again gets each
/// later broadcast once; a membership taken over by another connection ends the old one's.
#[tokio::test]
async fn broadcasts_follow_membership_across_leave_rejoin_and_takeover() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.join("r", "bob").await, OK);
    let broadcast = |m: &'static str| async move {
        api(
            addr,
            "SendBroadcast",
            &json!({"AppId": APP, "RoomId": "r", "From": "srv", "Binary": false, "Message": m}),
        )
        .await
        .assert_ok();
    };
    broadcast("1").await;
    assert_eq!(
        next_push(&mut b).await,
        push(PushKind::Room, "r", "srv", false, b"1")
    );
    let req = b.req();
    let leave = rtm_protocol::frame::ClientFrame::Leave { req, room: "r" };
    assert_eq!(b.call(&leave).await.0, OK);
    broadcast("2").await;
    b.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(b.join("r", "bob").await, OK);
    broadcast("3").await;
    for m in ["1", "2", "3"] {
        assert_eq!(
            next_push(&mut a).await,
            push(PushKind::Room, "r", "srv", false, m.as_bytes())
        );
    }
    assert_eq!(
        next_push(&mut b).await,
        push(PushKind::Room, "r", "srv", false, b"3")
    );
    b.expect_silence(Duration::from_millis(100)).await;
    // Bob joins from another connection: the first one's reading of the room ends.
    let mut b2 = connect(addr, APP).await;
    assert_eq!(b2.join("r", "bob").await, OK);
    broadcast("4").await;
    assert_eq!(
        next_push(&mut b2).await,
        push(PushKind::Room, "r", "srv", false, b"4")
    );
    assert_eq!(
        next_push(&mut a).await,
        push(PushKind::Room, "r", "srv", false, b"4")
    );
    // The first connection is told, and gets no push before it is closed.
    loop {
        match b.next().await {
            Got::Notice { room, .. } => assert_eq!(room, "r"),
            Got::Closed(_) => break,
            g => panic!("after the takeover: {g:?}"),
        }
    }
    s.shutdown().await.unwrap();
}

/// Unicasts, room unicasts, broadcasts in two rooms and another member's room messages, sent
/// one after the other (each answered before the next), arrive in the order sent, numbered by
/// the session from 1.
#[tokio::test]
async fn pushes_of_every_kind_arrive_in_the_order_sent() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(a.join("r1", "alice").await, OK);
    assert_eq!(a.join("r2", "alice").await, OK);
    assert_eq!(b.join("r1", "bob").await, OK);
    let mut want = Vec::new();
    for i in 0..60 {
        let text = format!("m{i}");
        let (action, body, kind, room) = match i % 5 {
            0 => (
                "SendUnicast",
                json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": text}),
                PushKind::OutsideRoom,
                "",
            ),
            1 => (
                "SendBroadcast",
                json!({"AppId": APP, "RoomId": "r1", "From": "srv", "Binary": false, "Message": text}),
                PushKind::Room,
                "r1",
            ),
            2 => (
                "SendRoomUnicast",
                json!({"AppId": APP, "RoomId": "r1", "From": "srv", "To": "alice", "Binary": false, "Message": text}),
                PushKind::RoomUser,
                "r1",
            ),
            3 => (
                "SendBroadcast",
                json!({"AppId": APP, "RoomId": "r2", "From": "srv", "Binary": false, "Message": text}),
                PushKind::Room,
                "r2",
            ),
            _ => {
                let req = b.req();
                let r = b
                    .call(&rtm_protocol::frame::ClientFrame::SendRoom {
                        req,
                        room: "r1",
                        msg_id: i,
                        binary: false,
                        payload: text.as_bytes(),
                    })
                    .await;
                assert_eq!(r.0, OK);
                want.push(push(PushKind::Room, "r1", "bob", false, text.as_bytes()));
                continue;
            }
        };
        api(addr, action, &body).await.assert_ok();
        want.push(push(kind, room, "srv", false, text.as_bytes()));
    }
    let mut seqs = Vec::new();
    for w in &want {
        let (seq, kind, room, from, binary, payload) = a.next_push().await;
        assert_eq!(&(kind, room, from, binary, payload), w);
        seqs.push(seq);
    }
    assert_eq!(seqs, (1..=want.len() as u64).collect::<Vec<_>>());
    a.expect_silence(Duration::from_millis(200)).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn signing_variants() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    let body =
        json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "go"})
            .to_string();
    // The Go SDK's header set.
    let mut signer = Signer::new(AK, SK);
    signer.signed = vec!["content-type", "host", "x-content-sha256", "x-date"];
    api_signed(
        addr,
        "Action=SendUnicast&Version=2023-07-20",
        body.as_bytes(),
        &signer,
    )
    .await
    .assert_ok();
    // Only x-date and host.
    signer.signed = vec!["host", "x-date"];
    api_signed(
        addr,
        "Version=2023-07-20&Action=SendUnicast",
        body.as_bytes(),
        &signer,
    )
    .await
    .assert_ok();
    // X-Date 10 minutes off is within the window.
    signer.time -= 600;
    api_signed(
        addr,
        "Action=SendUnicast&Version=2023-07-20",
        body.as_bytes(),
        &signer,
    )
    .await
    .assert_ok();
    for _ in 0..3 {
        assert_eq!(
            next_push(&mut a).await,
            push(PushKind::OutsideRoom, "", "srv", false, b"go")
        );
    }
    s.shutdown().await.unwrap();
}

/// After each bad request, a good one is still delivered.
async fn still_delivers(addr: std::net::SocketAddr, c: &mut Client) {
    api(addr, "SendUnicast", &json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "still here"}))
        .await
        .assert_ok();
    assert_eq!(
        next_push(c).await,
        push(PushKind::OutsideRoom, "", "srv", false, b"still here")
    );
}

#[tokio::test]
async fn authentication_errors() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    let q = "Action=SendUnicast&Version=2023-07-20";
    let body = json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "x"})
        .to_string();
    let body = body.as_bytes();

    // Bad signature: wrong secret key.
    api_signed(addr, q, body, &Signer::new(AK, "WRONG"))
        .await
        .assert_err(401, "SignatureDoesNotMatch", 100010);
    still_delivers(addr, &mut a).await;
    // Unknown access key.
    api_signed(addr, q, body, &Signer::new("AKNOPE", SK))
        .await
        .assert_err(401, "InvalidAccessKey", 100009);
    // No Authorization at all.
    api_raw(addr, q, body, None)
        .await
        .assert_err(401, "MissingAuthenticationToken", 100003);
    // Stale and future X-Date.
    let mut st = Signer::new(AK, SK);
    st.time -= 1000;
    api_signed(addr, q, body, &st)
        .await
        .assert_err(403, "InvalidTimestamp", 100006);
    let mut st = Signer::new(AK, SK);
    st.time += 1000;
    api_signed(addr, q, body, &st)
        .await
        .assert_err(403, "InvalidTimestamp", 100006);
    still_delivers(addr, &mut a).await;
    // Signed query differs from the one sent: sign one action, send another.
    let tampered =
        json!({"AppId": APP, "From": "srv", "To": "bob", "Binary": false, "Message": "x"})
            .to_string();
    {
        // Sign `body` but send `tampered`: the body hash no longer matches.
        let x_date = rtm_protocol::sign::format_x_date(now() as i64);
        let host = addr.to_string();
        let headers = [("Host", host.as_str()), ("X-Date", x_date.as_str())];
        let req = rtm_protocol::sign::SignRequest {
            method: "POST",
            path: "/",
            query: q,
            headers: &headers,
            body,
        };
        let auth = rtm_protocol::sign::sign(
            &req,
            AK,
            SK,
            "cn-north-1",
            "rtc",
            &x_date,
            &["host", "x-date"],
        );
        let r = reqwest::Client::new()
            .post(format!("http://{host}/?{q}"))
            .header("X-Date", &x_date)
            .header("Authorization", auth)
            .body(tampered)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["ResponseMetadata"]["Error"]["Code"],
            "SignatureDoesNotMatch"
        );
    }
    // Wrong AppId: app B's key pair sending for app A, and an unknown AppId.
    api_signed(addr, q, body, &Signer::new(AK_B, SK_B))
        .await
        .assert_err(403, "AccessDenied", 100013);
    let other = json!({"AppId": "ffffffffffffffffffffffff", "From": "srv", "To": "alice", "Binary": false, "Message": "x"}).to_string();
    api_signed(addr, q, other.as_bytes(), &Signer::new(AK, SK))
        .await
        .assert_err(403, "AccessDenied", 100013);
    still_delivers(addr, &mut a).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn action_version_and_body_errors() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    let good = json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "x"});
    let signer = Signer::new(AK, SK);

    // Unknown Action, unknown Version, none at all.
    for q in [
        "Action=SendMulticast&Version=2023-07-20",
        "Action=SendUnicast&Version=2099-01-01",
        "Action=SendUnicast",
        "",
    ] {
        let r = api_signed(addr, q, good.to_string().as_bytes(), &signer).await;
        r.assert_err(404, "InvalidActionOrVersion", 100008);
    }
    still_delivers(addr, &mut a).await;

    // Missing fields, for each Action.
    let full: [(&str, Value); 4] = [
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "bob", "Binary": false, "Message": "x"}),
        ),
        (
            "SendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": "alice", "Binary": false, "Message": "x"}),
        ),
        (
            "BatchSendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": ["alice"], "Binary": false, "Message": "x"}),
        ),
        (
            "SendBroadcast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "Binary": false, "Message": "x"}),
        ),
    ];
    for (action, body) in &full {
        api(addr, action, body).await.assert_ok();
        for field in body.as_object().unwrap().keys() {
            let mut b = body.clone();
            b.as_object_mut().unwrap().remove(field);
            let r = api(addr, action, &b).await;
            r.assert_err(400, "MissingParameter", 100002);
            assert!(
                r.body["ResponseMetadata"]["Error"]["Message"]
                    .as_str()
                    .unwrap()
                    .contains(field.as_str()),
                "{}",
                r.body
            );
            let mut b = body.clone();
            b[field] = Value::Null;
            api(addr, action, &b)
                .await
                .assert_err(400, "MissingParameter", 100002);
        }
    }
    still_delivers(addr, &mut a).await;

    // Invalid values.
    let long_id = "u".repeat(129);
    let invalid = [
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "a b", "Binary": false, "Message": "x"}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": long_id, "To": "alice", "Binary": false, "Message": "x"}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": "no", "Message": "x"}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": 5}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": ""}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": true, "Message": "not base64!"}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": true, "Message": "AAE"}),
        ),
        (
            "SendUnicast",
            json!({"AppId": APP, "From": "srv", "To": ["alice"], "Binary": false, "Message": "x"}),
        ),
        (
            "SendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r/1", "From": "srv", "To": "alice", "Binary": false, "Message": "x"}),
        ),
        (
            "BatchSendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": "alice", "Binary": false, "Message": "x"}),
        ),
        (
            "BatchSendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": [], "Binary": false, "Message": "x"}),
        ),
        (
            "BatchSendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": ["ok", "not ok"], "Binary": false, "Message": "x"}),
        ),
        (
            "BatchSendRoomUnicast",
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": ["ok", 7], "Binary": false, "Message": "x"}),
        ),
        (
            "SendBroadcast",
            json!({"AppId": APP, "RoomId": "", "From": "srv", "Binary": false, "Message": "x"}),
        ),
        (
            "SendBroadcast",
            json!({"AppId": 12, "RoomId": "r", "From": "srv", "Binary": false, "Message": "x"}),
        ),
    ];
    for (action, body) in &invalid {
        let r = api(addr, action, body).await;
        assert_eq!(
            r.error_code(),
            Some(("InvalidParameter", 100004)),
            "{action} {body} -> {}",
            r.body
        );
        assert_eq!(r.status, 400);
    }
    // Not JSON at all, and JSON that is not an object.
    for raw in [&b"{nope"[..], b"[1,2]", b""] {
        let r = api_signed(addr, "Action=SendUnicast&Version=2023-07-20", raw, &signer).await;
        r.assert_err(400, "InvalidParameter", 100004);
    }
    still_delivers(addr, &mut a).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn limits() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(a.join("r", "alice").await, OK);

    // One byte over 64 KB, as text and as binary.
    let text = "x".repeat(65_537);
    api(
        addr,
        "SendUnicast",
        &json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": text}),
    )
    .await
    .assert_err(400, "InvalidParameter", 100004);
    let bin = STANDARD.encode(vec![1u8; 65_537]);
    api(
        addr,
        "SendBroadcast",
        &json!({"AppId": APP, "RoomId": "r", "From": "srv", "Binary": true, "Message": bin}),
    )
    .await
    .assert_err(400, "InvalidParameter", 100004);
    // Batch: 20 KB + 1, and 601 recipients; exactly 600 is fine.
    let b20 = "y".repeat(20_481);
    api(addr, "BatchSendRoomUnicast", &json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": ["alice"], "Binary": false, "Message": b20}))
        .await
        .assert_err(400, "InvalidParameter", 100004);
    let many: Vec<String> = (0..601).map(|i| format!("user{i}")).collect();
    api(addr, "BatchSendRoomUnicast", &json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": many, "Binary": false, "Message": "m"}))
        .await
        .assert_err(400, "InvalidParameter", 100004);
    let mut six_hundred: Vec<String> = (0..599).map(|i| format!("user{i}")).collect();
    six_hundred.push("alice".into());
    api(addr, "BatchSendRoomUnicast", &json!({"AppId": APP, "RoomId": "r", "From": "srv", "To": six_hundred, "Binary": false, "Message": "m600"}))
        .await
        .assert_ok();
    assert_eq!(
        next_push(&mut a).await,
        push(PushKind::RoomUser, "r", "srv", false, b"m600")
    );
    // A body over the server's limit gets the envelope, not a bare 413.
    let huge = json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "z".repeat(300_000)});
    api(addr, "SendUnicast", &huge)
        .await
        .assert_err(400, "InvalidParameter", 100004);
    still_delivers(addr, &mut a).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limit_per_app() {
    let mut cfg = config();
    cfg.openapi_rate = 5;
    let s = server_with(cfg).await;
    let addr = s.local_addr();
    let body = json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "x"});
    let mut limited = 0;
    for _ in 0..12 {
        let r = api(addr, "SendUnicast", &body).await;
        if r.status == 429 {
            r.assert_err(429, "FlowLimitExceeded", 100018);
            limited += 1;
        } else {
            r.assert_ok();
        }
    }
    // The bucket holds 5 and refills at 5/s: most of 12 quick requests are refused.
    assert!(limited >= 1, "{limited}");
    // Another app has its own budget.
    let body_b =
        json!({"AppId": APP_B, "From": "srv", "To": "alice", "Binary": false, "Message": "x"});
    api_signed(
        addr,
        "Action=SendUnicast&Version=2023-07-20",
        body_b.to_string().as_bytes(),
        &Signer::new(AK_B, SK_B),
    )
    .await
    .assert_ok();
    // The budget refills.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api(addr, "SendUnicast", &body).await.assert_ok();
    s.shutdown().await.unwrap();
}

/// `run_on`, as `rtm-server serve` runs: sessions on a runtime of their own behind a
/// single-threaded front that answers the OpenAPI. Pushes of every path arrive, and a
/// shutdown still reaches every session (4003) and ends the server.
#[test]
fn sessions_on_their_own_runtime_behind_a_front_runtime() {
    let sessions = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let front = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    front.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let server = tokio::spawn(rtm_server::run_on(
            config(),
            listener,
            stopped,
            sessions.handle().clone(),
        ));
        let mut a = connect(addr, APP).await;
        let mut b = connect(addr, APP).await;
        assert_eq!(a.login("alice").await, OK);
        assert_eq!(a.join("r", "alice").await, OK);
        assert_eq!(b.join("r", "bob").await, OK);
        assert_eq!(
            sessions.metrics().num_alive_tasks(),
            2,
            "both sessions run on the sessions' runtime"
        );
        let room =
            json!({"AppId": APP, "RoomId": "r", "From": "srv", "Binary": false, "Message": "all"});
        api(addr, "SendBroadcast", &room).await.assert_ok();
        let user =
            json!({"AppId": APP, "From": "srv", "To": "alice", "Binary": false, "Message": "you"});
        api(addr, "SendUnicast", &user).await.assert_ok();
        let got = |p: (u64, PushKind, String, String, bool, Vec<u8>)| (p.0, p.1, p.5);
        assert_eq!(
            got(a.next_push().await),
            (1, PushKind::Room, b"all".to_vec())
        );
        assert_eq!(
            got(a.next_push().await),
            (2, PushKind::OutsideRoom, b"you".to_vec())
        );
        assert_eq!(
            got(b.next_push().await),
            (1, PushKind::Room, b"all".to_vec())
        );
        stop.send(()).unwrap();
        a.expect_close(rtm_server::close::SHUTDOWN).await;
        b.expect_close(rtm_server::close::SHUTDOWN).await;
        tokio::time::timeout(WAIT, server)
            .await
            .expect("the server ends")
            .unwrap()
            .unwrap();
    });
}
