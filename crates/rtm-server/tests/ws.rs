//! WebSocket sessions against a real server on port 0.

mod common;

use std::time::Duration;

use common::*;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{encode_client, ClientFrame};
use rtm_protocol::token::AccessToken;
use rtm_server::close;

const OK: u16 = 0;

fn c(code: Code) -> u16 {
    code.as_u16()
}

#[tokio::test]
async fn login_logout_join_leave_ping() {
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.ping().await, OK);
    assert_eq!(a.login("alice").await, OK);
    assert!(s.hub().is_online(APP, "alice"));
    assert_eq!(a.login("alice").await, c(Code::AlreadyLogin));
    assert_eq!(a.join("room1", "alice").await, OK);
    assert_eq!(a.join("room1", "alice").await, c(Code::RepeatJoin));
    assert_eq!(s.hub().counts(APP), Some((1, 1)));
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::PeerStatus { req, user: "alice" })
            .await,
        (OK, vec![1])
    );
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::PeerStatus { req, user: "bob" }).await,
        (OK, vec![0])
    );
    let req = a.req();
    assert_eq!(a.call(&ClientFrame::Logout { req }).await.0, OK);
    assert!(!s.hub().is_online(APP, "alice"));
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Logout { req }).await.0,
        c(Code::NotLoginSession)
    );
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Leave { req, room: "room1" }).await.0,
        OK
    );
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Leave { req, room: "room1" }).await.0,
        OK,
        "leave is idempotent"
    );
    assert_eq!(s.hub().counts(APP), Some((0, 0)));
    a.close().await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn join_without_login_and_other_user_on_same_connection() {
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    // The connection is bound to alice now.
    assert_eq!(a.login("bob").await, c(Code::InvalidParams));
    assert_eq!(a.join("r2", "bob").await, c(Code::InvalidParams));
    assert_eq!(a.login("alice").await, OK);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn members_are_told_of_joins_and_leaves() {
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    let mut b = connect(s.local_addr(), APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.join("r", "bob").await, OK);
    assert_eq!(
        b.next_any().await,
        Got::Member {
            room: "r".into(),
            user: "alice".into(),
            joined: true,
            reason: 0
        }
    );
    assert_eq!(
        a.next_any().await,
        Got::Member {
            room: "r".into(),
            user: "bob".into(),
            joined: true,
            reason: 0
        }
    );
    b.close().await;
    assert_eq!(
        a.next_any().await,
        Got::Member {
            room: "r".into(),
            user: "bob".into(),
            joined: false,
            reason: 1
        }
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicate_login_ends_the_older_login() {
    let s = server().await;
    let mut old = connect(s.local_addr(), APP).await;
    assert_eq!(old.login("alice").await, OK);
    let mut new = connect(s.local_addr(), APP).await;
    assert_eq!(new.login("alice").await, OK);
    match old.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!(code, c(Code::RtmDuplicateLogin));
            assert_eq!(room, "");
        }
        g => panic!("{g:?}"),
    }
    // Nothing else held it: closed with 4002.
    old.expect_close(close::SESSION_ENDED).await;
    assert!(s.hub().is_online(APP, "alice"));
    assert_eq!(new.ping().await, OK);

    // A logged-in connection that is also in a room keeps its room.
    let mut c1 = connect(s.local_addr(), APP).await;
    assert_eq!(c1.login("carol").await, OK);
    assert_eq!(c1.join("r", "carol").await, OK);
    let mut c2 = connect(s.local_addr(), APP).await;
    assert_eq!(c2.login("carol").await, OK);
    assert!(
        matches!(c1.next().await, Got::Notice { code, .. } if code == c(Code::RtmDuplicateLogin))
    );
    assert_eq!(c1.ping().await, OK);
    let req = c1.req();
    assert_eq!(
        c1.call(&ClientFrame::Logout { req }).await.0,
        c(Code::NotLoginSession)
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicate_join_ends_the_older_membership() {
    let s = server().await;
    let mut old = connect(s.local_addr(), APP).await;
    assert_eq!(old.join("r", "alice").await, OK);
    let mut new = connect(s.local_addr(), APP).await;
    assert_eq!(new.join("r", "alice").await, OK);
    match old.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!(code, c(Code::DuplicateLogin));
            assert_eq!(room, "r");
        }
        g => panic!("{g:?}"),
    }
    old.expect_close(close::SESSION_ENDED).await;
    assert_eq!(new.ping().await, OK);
    // The room still holds alice through the new connection.
    assert_eq!(s.hub().counts(APP), Some((0, 1)));
    s.shutdown().await.unwrap();
}

/// A client that logs in and pings, to show the server still serves others.
async fn still_serving(addr: std::net::SocketAddr) {
    let mut other = connect(addr, APP).await;
    assert_eq!(other.login("bystander").await, OK);
    assert_eq!(other.ping().await, OK);
    other.close().await;
}

#[tokio::test]
async fn bad_tokens() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let n = now();

    // Forged: signed with another key.
    let forged = rtm_server::issue_token(APP, "not-the-key", "", "alice", n, 3600).unwrap();
    // Expired.
    let mut t = AccessToken::new(APP, "", "alice");
    t.issued_at = (n - 7200) as u32;
    t.expire_time((n - 3600) as u32);
    let expired = t.serialize(APP_KEY);
    // Another app.
    let other_app = rtm_server::issue_token(APP_B, APP_KEY_B, "", "alice", n, 3600).unwrap();
    // Another user.
    let other_user = token("", "bob");
    // Not a token at all.
    let garbage = "Bearer nonsense".to_string();
    for (tok, want) in [
        (&forged, Code::InvalidToken),
        (&expired, Code::TokenExpired),
        (&other_app, Code::InvalidToken),
        (&other_user, Code::InvalidToken),
        (&garbage, Code::InvalidToken),
    ] {
        let req = a.req();
        let got = a
            .call(&ClientFrame::Login {
                req,
                token: tok,
                user: "alice",
            })
            .await
            .0;
        assert_eq!(got, c(want), "{tok}");
    }

    // Room tokens: wrong room, login token used for a room, expired room token.
    let wrong_room = token("room2", "alice");
    let login_tok = token("", "alice");
    let mut t = AccessToken::new(APP, "room1", "alice");
    t.expire_time((n - 10) as u32);
    let expired_room = t.serialize(APP_KEY);
    for (tok, want) in [
        (&wrong_room, Code::InvalidToken),
        (&login_tok, Code::InvalidToken),
        (&expired_room, Code::TokenExpired),
        (&forged, Code::InvalidToken),
    ] {
        let req = a.req();
        let got = a
            .call(&ClientFrame::Join {
                req,
                token: tok,
                room: "room1",
                user: "alice",
                extra: "",
                visible: true,
            })
            .await
            .0;
        assert_eq!(got, c(want), "{tok}");
    }
    // Still usable afterwards, by this client and by others.
    assert_eq!(a.login("alice").await, OK);
    still_serving(addr).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_ids_and_extra() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let long = "x".repeat(129);
    for user in ["", "a b", "ä", long.as_str(), "a/b"] {
        let t = token("", "alice");
        let req = a.req();
        assert_eq!(
            a.call(&ClientFrame::Login {
                req,
                token: &t,
                user
            })
            .await
            .0,
            c(Code::InvalidParams),
            "{user:?}"
        );
    }
    for room in ["", "r r", long.as_str()] {
        let t = token("r", "alice");
        let req = a.req();
        assert_eq!(
            a.call(&ClientFrame::Join {
                req,
                token: &t,
                room,
                user: "alice",
                extra: "",
                visible: true,
            })
            .await
            .0,
            c(Code::InvalidParams),
            "{room:?}"
        );
    }
    let t = token("r", "alice");
    let extra = "e".repeat(201);
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Join {
            req,
            token: &t,
            room: "r",
            user: "alice",
            extra: &extra,
            visible: true,
        })
        .await
        .0,
        c(Code::InvalidParams)
    );
    let extra = "e".repeat(200);
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Join {
            req,
            token: &t,
            room: "r",
            user: "alice",
            extra: &extra,
            visible: true,
        })
        .await
        .0,
        OK
    );
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::PeerStatus {
            req,
            user: "no way"
        })
        .await
        .0,
        c(Code::InvalidParams)
    );
    still_serving(addr).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn requests_before_login() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let frames = [
        ClientFrame::Logout { req: 11 },
        ClientFrame::Leave { req: 12, room: "r" },
        ClientFrame::SetServerParams {
            req: 13,
            signature: "s",
            url: "http://x/",
        },
        ClientFrame::SendServer {
            req: 14,
            msg_id: 1,
            binary: false,
            payload: b"hi",
        },
        ClientFrame::SendUser {
            req: 15,
            msg_id: 2,
            room: "",
            to: "bob",
            binary: false,
            payload: b"hi",
        },
        ClientFrame::SendRoom {
            req: 16,
            msg_id: 3,
            room: "r",
            binary: false,
            payload: b"hi",
        },
        ClientFrame::PeerStatus {
            req: 17,
            user: "bob",
        },
        ClientFrame::UpdateToken {
            req: 18,
            room: "",
            token: "t",
        },
    ];
    for f in &frames {
        a.send(f).await;
        match a.next().await {
            Got::Reply { req, code, .. } => {
                assert_eq!(code, c(Code::NotLoginSession), "{f:?}");
                assert_eq!(Some(req), frame_req(f));
            }
            g => panic!("{g:?}"),
        }
    }
    // The connection stays usable.
    assert_eq!(a.login("alice").await, OK);
    still_serving(addr).await;
    s.shutdown().await.unwrap();
}

fn frame_req(f: &ClientFrame<'_>) -> Option<u32> {
    rtm_protocol::frame::peek_req(&encode_client(f))
}

#[tokio::test]
async fn server_params_and_send_server() {
    let s = server().await;
    let mut a = connect(s.local_addr(), APP).await;
    assert_eq!(a.join("r", "alice").await, OK);
    let send = ClientFrame::SendServer {
        req: 50,
        msg_id: 1,
        binary: false,
        payload: b"hi",
    };
    assert_eq!(a.call(&send).await.0, c(Code::NotLogin));
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(a.call(&send).await.0, c(Code::ServerParamsNotSet));
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::SetServerParams {
            req,
            signature: "",
            url: "http://x/"
        })
        .await
        .0,
        c(Code::InvalidParams)
    );
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::SetServerParams {
            req,
            signature: "sig",
            url: "http://127.0.0.1:9/"
        })
        .await
        .0,
        c(Code::CallbackNotAllowed),
        "a URL outside the app's allow-list is refused"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn peer_and_room_messages() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    let mut b = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    assert_eq!(b.login("bob").await, OK);
    assert_eq!(a.join("r", "alice").await, OK);
    assert_eq!(b.join("r", "bob").await, OK);
    let f = ClientFrame::SendUser {
        req: 60,
        msg_id: 1,
        room: "",
        to: "bob",
        binary: false,
        payload: b"hey",
    };
    assert_eq!(a.call(&f).await.0, OK);
    match b.next().await {
        Got::Push {
            seq,
            from,
            payload,
            room,
            ..
        } => {
            assert_eq!(
                (seq, from.as_str(), payload.as_slice(), room.as_str()),
                (1, "alice", &b"hey"[..], "")
            );
        }
        g => panic!("{g:?}"),
    }
    let f = ClientFrame::SendUser {
        req: 61,
        msg_id: 2,
        room: "",
        to: "nobody",
        binary: false,
        payload: b"x",
    };
    assert_eq!(a.call(&f).await.0, c(Code::NoReceiver));
    let f = ClientFrame::SendRoom {
        req: 62,
        msg_id: 3,
        room: "r",
        binary: true,
        payload: &[0, 1, 2],
    };
    assert_eq!(a.call(&f).await.0, OK);
    match b.next().await {
        Got::Push {
            seq,
            payload,
            binary,
            ..
        } => assert_eq!((seq, payload, binary), (2, vec![0, 1, 2], true)),
        g => panic!("{g:?}"),
    }
    let f = ClientFrame::SendRoom {
        req: 63,
        msg_id: 4,
        room: "elsewhere",
        binary: true,
        payload: &[0],
    };
    assert_eq!(a.call(&f).await.0, c(Code::NotJoin));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_frames_close_with_4000() {
    let s = server().await;
    let addr = s.local_addr();

    // Truncated Login: type and req id, then a string length past the end.
    let mut a = connect(addr, APP).await;
    a.send_raw(vec![0x01, 0x07, 0x10, b'a']).await;
    assert_eq!(
        a.next().await,
        Got::Reply {
            req: 7,
            code: c(Code::ProtocolError),
            data: vec![]
        }
    );
    a.expect_close(close::PROTOCOL_ERROR).await;

    // A valid frame cut short.
    let t = token("", "alice");
    let full = encode_client(&ClientFrame::Login {
        req: 300,
        token: &t,
        user: "alice",
    });
    let mut a = connect(addr, APP).await;
    a.send_raw(full[..full.len() - 2].to_vec()).await;
    assert_eq!(
        a.next().await,
        Got::Reply {
            req: 300,
            code: c(Code::ProtocolError),
            data: vec![]
        }
    );
    a.expect_close(close::PROTOCOL_ERROR).await;

    // Trailing bytes.
    let mut a = connect(addr, APP).await;
    let mut f = encode_client(&ClientFrame::Ping { req: 9 });
    f.push(0);
    a.send_raw(f).await;
    assert_eq!(
        a.next().await,
        Got::Reply {
            req: 9,
            code: c(Code::ProtocolError),
            data: vec![]
        }
    );
    a.expect_close(close::PROTOCOL_ERROR).await;

    // Unknown type, empty frame: no request id to answer.
    for raw in [vec![0x7f, 1, 2], vec![], vec![0x80, 1, 0, 0]] {
        let mut a = connect(addr, APP).await;
        a.send_raw(raw).await;
        a.expect_close(close::PROTOCOL_ERROR).await;
    }

    // A text frame.
    let mut a = connect(addr, APP).await;
    use futures::SinkExt;
    a.ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "hello".into(),
    ))
    .await
    .unwrap();
    a.expect_close(close::PROTOCOL_ERROR).await;

    // A frame over the size limit.
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("big").await, OK);
    let _ =
        a.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
            vec![0u8; 200 * 1024].into(),
        ))
        .await;
    assert_eq!(
        a.next_any().await,
        Got::Closed(Some(close::MESSAGE_TOO_BIG))
    );

    still_serving(addr).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_timeout_closes_with_4001() {
    let mut cfg = config();
    cfg.auth_timeout_ms = 300;
    let s = server_with(cfg).await;
    let addr = s.local_addr();
    let mut idle = connect(addr, APP).await;
    let mut active = connect(addr, APP).await;
    // Pings do not count as logging in.
    assert_eq!(idle.ping().await, OK);
    assert_eq!(active.login("alice").await, OK);
    let started = std::time::Instant::now();
    idle.expect_close(close::AUTH_TIMEOUT).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // The logged-in connection stays.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(active.ping().await, OK);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_app_id_gets_notice_and_4004() {
    let s = server().await;
    let addr = s.local_addr();
    for app in ["ffffffffffffffffffffffff", "", "short"] {
        let mut a = connect(addr, app).await;
        match a.next().await {
            Got::Notice { code, .. } => assert_eq!(code, c(Code::UnknownApp)),
            g => panic!("{g:?}"),
        }
        a.expect_close(close::UNKNOWN_APP).await;
    }
    // A token for app B does not log in on app A, but works on app B.
    let mut a = connect(addr, APP).await;
    let tb = rtm_server::issue_token(APP_B, APP_KEY_B, "", "alice", now(), 60).unwrap();
    let req = a.req();
    assert_eq!(
        a.call(&ClientFrame::Login {
            req,
            token: &tb,
            user: "alice"
        })
        .await
        .0,
        c(Code::InvalidToken)
    );
    let mut b = connect(addr, APP_B).await;
    let req = b.req();
    assert_eq!(
        b.call(&ClientFrame::Login {
            req,
            token: &tb,
            user: "alice"
        })
        .await
        .0,
        OK
    );
    still_serving(addr).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn subprotocol_is_required() {
    let s = server().await;
    let url = format!("ws://{}/rtm?appId={APP}", s.local_addr());
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    still_serving(s.local_addr()).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_sessions_with_4003() {
    let s = server().await;
    let addr = s.local_addr();
    let mut a = connect(addr, APP).await;
    assert_eq!(a.login("alice").await, OK);
    let mut idle = connect(addr, APP).await;
    let stop = tokio::spawn(s.shutdown());
    a.expect_close(close::SHUTDOWN).await;
    idle.expect_close(close::SHUTDOWN).await;
    drop(a);
    drop(idle);
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn healthz_and_demo_token() {
    let s = server().await;
    let base = format!("http://{}", s.local_addr());
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = reqwest::get(format!("{base}/demo/token?user=alice"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no demo tokens unless --demo");
    s.shutdown().await.unwrap();

    let mut cfg = config();
    cfg.demo = true;
    cfg.cors_origins = vec!["*".into()];
    let s = server_with(cfg).await;
    let base = format!("http://{}", s.local_addr());
    let r = reqwest::get(format!("{base}/demo/token?user=alice&room=r1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let t = v["token"].as_str().unwrap();
    let p = rtm_protocol::token::verify(t, APP, APP_KEY, "r1", "alice", now()).unwrap();
    assert!(p.token.expire_at as u64 >= now() + 86_000);
    let r = reqwest::get(format!("{base}/demo/token?user=a%20b"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // CORS preflight on the OpenAPI route.
    let r = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/?Action=SendUnicast&Version=2023-07-20"),
        )
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,x-date,x-content-sha256,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "x-date",
        "x-content-sha256",
        "content-type",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn static_files() {
    let dir = std::env::temp_dir().join(format!("rtm-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>hello</p>").unwrap();
    std::fs::write(dir.join("app.js"), "1").unwrap();
    let mut cfg = config();
    cfg.static_dir = Some(dir.clone());
    let s = server_with(cfg).await;
    let base = format!("http://{}", s.local_addr());
    assert_eq!(
        reqwest::get(format!("{base}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "<p>hello</p>"
    );
    assert_eq!(
        reqwest::get(format!("{base}/app.js"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    // The OpenAPI still answers POST /.
    let r = api(s.local_addr(), "Nope", &serde_json::json!({})).await;
    r.assert_err(404, "InvalidActionOrVersion", 100008);
    s.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
