//! A table of bad inputs, over WebSocket frames and OpenAPI requests, each answered with its
//! documented error (PROTOCOL.md §1, §6, §7; the OpenAPI envelope of REFERENCE §3). After each
//! group, a fresh client still logs in and receives a push within a bounded wait: no bad
//! input crashes or stalls the server.

mod common;

use std::time::Duration;

use common::*;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{encode_client, ClientFrame};
use rtm_protocol::sign::{self, SignRequest};
use rtm_protocol::token::AccessToken;
use rtm_server::close;
use serde_json::{json, Value};

/// How the connection is prepared before the bad input is sent.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// Nothing: the first frame of the connection.
    Fresh,
    /// Logged in as the case's user.
    LoggedIn,
}

/// Builds a frame for the case's user.
type Build = Box<dyn Fn(&str) -> Vec<u8>>;

/// What is sent.
enum Input {
    /// Frames built by the codec (possibly with bad field values).
    Frame(Build),
    /// Raw bytes, as one binary message.
    Raw(Vec<u8>),
    /// A text message.
    Text(&'static str),
}

/// What the server must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A reply with this code; the connection stays usable (checked with a Ping).
    Reply(Code),
    /// A reply with this code to `req`, then a close with this code.
    ReplyThenClose(u32, Code, u16),
    /// A close with this code, no reply.
    Close(u16),
}

struct WsCase {
    name: &'static str,
    setup: Setup,
    input: Input,
    expect: Expect,
}

fn frame(f: impl Fn(&str) -> Vec<u8> + 'static) -> Input {
    Input::Frame(Box::new(f))
}

fn login(token: String) -> Input {
    frame(move |user| {
        encode_client(&ClientFrame::Login {
            req: 100,
            token: &token,
            user,
        })
    })
}

fn join(token: impl Fn(&str) -> String + 'static, room: &'static str, extra: String) -> Input {
    frame(move |user| {
        encode_client(&ClientFrame::Join {
            req: 100,
            token: &token(user),
            room,
            user,
            extra: &extra,
            visible: true,
        })
    })
}

fn set_visibility(room: &'static str, visible: bool) -> Input {
    frame(move |_| {
        encode_client(&ClientFrame::SetVisibility {
            req: 100,
            room,
            visible,
        })
    })
}

fn send_user(to: Option<&'static str>, payload: Vec<u8>) -> Input {
    frame(move |user| {
        encode_client(&ClientFrame::SendUser {
            req: 100,
            msg_id: 1,
            room: "",
            to: to.unwrap_or(user),
            binary: true,
            payload: &payload,
        })
    })
}

/// A token for `user` issued `age` seconds ago, valid for `ttl` seconds.
fn aged_token(room: &str, user: &str, age: u64, ttl: u32) -> String {
    rtm_server::issue_token(APP, APP_KEY, room, user, now() - age, ttl).unwrap()
}

fn ws_cases() -> Vec<WsCase> {
    use Expect::*;
    use Setup::*;
    let c = |name, setup, input, expect| WsCase {
        name,
        setup,
        input,
        expect,
    };
    let forged = |user: &str| {
        rtm_server::issue_token(APP, "not-the-app-key", "", user, now(), 3600).unwrap()
    };
    vec![
        // Tokens.
        c(
            "forged login token",
            Fresh,
            frame(move |u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &forged(u),
                    user: u,
                })
            }),
            Reply(Code::InvalidToken),
        ),
        c(
            "expired login token",
            Fresh,
            frame(|u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &aged_token("", u, 7200, 3600),
                    user: u,
                })
            }),
            Reply(Code::TokenExpired),
        ),
        c(
            "login token of another app",
            Fresh,
            frame(|u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &rtm_server::issue_token(APP_B, APP_KEY_B, "", u, now(), 3600).unwrap(),
                    user: u,
                })
            }),
            Reply(Code::InvalidToken),
        ),
        c(
            "login token of another user",
            Fresh,
            login(token("", "someone-else")),
            Reply(Code::InvalidToken),
        ),
        c(
            "room token used to log in",
            Fresh,
            frame(|u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &token("r1", u),
                    user: u,
                })
            }),
            Reply(Code::InvalidToken),
        ),
        c(
            "token for another room",
            Fresh,
            join(|u| token("other-room", u), "r1", String::new()),
            Reply(Code::InvalidToken),
        ),
        c(
            "login token used to join",
            Fresh,
            join(|u| token("", u), "r1", String::new()),
            Reply(Code::InvalidToken),
        ),
        c(
            "expired room token",
            Fresh,
            join(|u| aged_token("r1", u, 7200, 60), "r1", String::new()),
            Reply(Code::TokenExpired),
        ),
        c(
            "garbage token",
            Fresh,
            login("not a token".into()),
            Reply(Code::InvalidToken),
        ),
        c(
            "token of version 002",
            Fresh,
            frame(|u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &token("", u).replacen("001", "002", 1),
                    user: u,
                })
            }),
            Reply(Code::InvalidToken),
        ),
        c(
            "token with bad base64",
            Fresh,
            frame(|u| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &format!("001{APP}%%%%{}", &token("", u)[31..]),
                    user: u,
                })
            }),
            Reply(Code::InvalidToken),
        ),
        // Ids and sizes.
        c(
            "invalid user id",
            Fresh,
            frame(|_| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: &token("", "bad user!"),
                    user: "bad user!",
                })
            }),
            Reply(Code::InvalidParams),
        ),
        c(
            "user id of 129 bytes",
            Fresh,
            frame(|_| {
                let u = "u".repeat(129);
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: "x",
                    user: &u,
                })
            }),
            Reply(Code::InvalidParams),
        ),
        c(
            "empty user id",
            Fresh,
            frame(|_| {
                encode_client(&ClientFrame::Login {
                    req: 100,
                    token: "x",
                    user: "",
                })
            }),
            Reply(Code::InvalidParams),
        ),
        c(
            "invalid room id",
            Fresh,
            join(|u| token("room/1", u), "room/1", String::new()),
            Reply(Code::InvalidParams),
        ),
        c(
            "extra info over 200 bytes",
            Fresh,
            join(|u| token("r1", u), "r1", "e".repeat(201)),
            Reply(Code::InvalidParams),
        ),
        c(
            "message over 64 KiB",
            LoggedIn,
            send_user(Some("peer"), vec![7; 65_537]),
            Reply(Code::InvalidParams),
        ),
        c(
            "empty message",
            LoggedIn,
            send_user(Some("peer"), Vec::new()),
            Reply(Code::InvalidParams),
        ),
        c(
            "message to oneself",
            LoggedIn,
            send_user(None, b"hi".to_vec()),
            Reply(Code::InvalidParams),
        ),
        c(
            "message to an invalid id",
            LoggedIn,
            send_user(Some("no such/user"), b"hi".to_vec()),
            Reply(Code::InvalidParams),
        ),
        c(
            "peer status of an invalid id",
            LoggedIn,
            frame(|_| {
                encode_client(&ClientFrame::PeerStatus {
                    req: 100,
                    user: "a b",
                })
            }),
            Reply(Code::InvalidParams),
        ),
        c(
            "second user on one connection",
            LoggedIn,
            login(token("", "intruder")).with_user("intruder"),
            Reply(Code::InvalidParams),
        ),
        // State.
        c(
            "user message before login",
            Fresh,
            send_user(Some("peer"), b"hi".to_vec()),
            Reply(Code::NotLoginSession),
        ),
        c(
            "room message before join",
            Fresh,
            frame(|_| {
                encode_client(&ClientFrame::SendRoom {
                    req: 100,
                    msg_id: 1,
                    room: "r1",
                    binary: false,
                    payload: b"hi",
                })
            }),
            Reply(Code::NotLoginSession),
        ),
        c(
            "logout before login",
            Fresh,
            frame(|_| encode_client(&ClientFrame::Logout { req: 100 })),
            Reply(Code::NotLoginSession),
        ),
        c(
            "room message to a room not joined",
            LoggedIn,
            frame(|_| {
                encode_client(&ClientFrame::SendRoom {
                    req: 100,
                    msg_id: 1,
                    room: "r1",
                    binary: false,
                    payload: b"hi",
                })
            }),
            Reply(Code::NotJoin),
        ),
        c(
            "visibility in a room not joined",
            LoggedIn,
            set_visibility("r1", false),
            Reply(Code::NotJoin),
        ),
        c(
            "visibility before login",
            Fresh,
            set_visibility("r1", true),
            Reply(Code::NotLoginSession),
        ),
        c(
            "server message without server params",
            LoggedIn,
            frame(|_| {
                encode_client(&ClientFrame::SendServer {
                    req: 100,
                    msg_id: 1,
                    binary: false,
                    payload: b"hi",
                })
            }),
            Reply(Code::ServerParamsNotSet),
        ),
        c(
            "callback URL not allowed",
            LoggedIn,
            frame(|_| {
                encode_client(&ClientFrame::SetServerParams {
                    req: 100,
                    signature: "s",
                    url: "http://127.0.0.1:1/cb",
                })
            }),
            Reply(Code::CallbackNotAllowed),
        ),
        c(
            "resume of an unknown session",
            Fresh,
            frame(|_| {
                encode_client(&ClientFrame::Resume {
                    req: 100,
                    session: &[0; 16],
                    last_seq: 0,
                })
            }),
            Reply(Code::RecoveryFailed),
        ),
        // Frames.
        c(
            "text frame",
            Fresh,
            Input::Text("{\"login\":1}"),
            Close(close::PROTOCOL_ERROR),
        ),
        c(
            "empty binary frame",
            Fresh,
            Input::Raw(vec![]),
            Close(close::PROTOCOL_ERROR),
        ),
        c(
            "unknown frame type",
            Fresh,
            Input::Raw(vec![0x7f, 0x01]),
            Close(close::PROTOCOL_ERROR),
        ),
        c(
            "server frame sent by a client",
            LoggedIn,
            Input::Raw(vec![0x80, 0x01, 0x00, 0x00]),
            Close(close::PROTOCOL_ERROR),
        ),
        c(
            "truncated login",
            Fresh,
            Input::Raw(vec![0x01, 0x05, 0x10, b'a']),
            ReplyThenClose(5, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "huge length prefix",
            Fresh,
            Input::Raw(vec![
                0x01, 0x06, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, b'a',
            ]),
            ReplyThenClose(6, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "request id varint overflow",
            Fresh,
            Input::Raw(vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Close(close::PROTOCOL_ERROR),
        ),
        c(
            "trailing bytes after a ping",
            Fresh,
            Input::Raw(vec![0x0a, 0x07, 0x00]),
            ReplyThenClose(7, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "user id not UTF-8",
            Fresh,
            Input::Raw(vec![0x01, 0x08, 0x01, b't', 0x02, 0xc3, 0x28]),
            ReplyThenClose(8, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "boolean byte 2",
            LoggedIn,
            Input::Raw(vec![0x06, 0x09, 0x01, 0x02, 0x01, b'x']),
            ReplyThenClose(9, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "visibility byte 2",
            LoggedIn,
            Input::Raw(vec![0x0d, 0x0a, 0x02, b'r', b'1', 0x02]),
            ReplyThenClose(10, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "join without its visibility byte",
            Fresh,
            Input::Raw(vec![
                0x03, 0x0b, 0x01, b't', 0x02, b'r', b'1', 0x01, b'u', 0x00,
            ]),
            ReplyThenClose(11, Code::ProtocolError, close::PROTOCOL_ERROR),
        ),
        c(
            "message over the frame limit",
            LoggedIn,
            Input::Raw({
                let mut f = vec![0x0a, 0x01];
                f.resize(200 * 1024, 0);
                f
            }),
            Close(close::MESSAGE_TOO_BIG),
        ),
    ]
}

trait WithUser {
    fn with_user(self, user: &'static str) -> Input;
}

impl WithUser for Input {
    /// Sends the frame as `user` instead of the case's user.
    fn with_user(self, user: &'static str) -> Input {
        match self {
            Input::Frame(f) => Input::Frame(Box::new(move |_| f(user))),
            other => other,
        }
    }
}

/// The reply, close, or nothing that follows; Member frames and pushes are skipped.
async fn next_answer(c: &mut Client) -> Got {
    loop {
        match c.next().await {
            Got::Push { .. } | Got::Notice { .. } => continue,
            g => return g,
        }
    }
}

async fn run_ws_case(addr: std::net::SocketAddr, i: usize, case: &WsCase) {
    let name = case.name;
    let user = format!("bad{i}");
    let mut c = connect(addr, APP).await;
    if let Setup::LoggedIn = case.setup {
        assert_eq!(c.login(&user).await, 0, "{name}: setup login");
    }
    match &case.input {
        Input::Frame(f) => c.send_raw(f(&user)).await,
        Input::Raw(b) => c.send_raw(b.clone()).await,
        Input::Text(t) => {
            use futures::SinkExt;
            c.ws.send(tokio_tungstenite::tungstenite::Message::Text((*t).into()))
                .await
                .unwrap();
        }
    }
    match case.expect {
        Expect::Reply(code) => {
            match next_answer(&mut c).await {
                Got::Reply { req, code: got, .. } => {
                    assert_eq!((req, got), (100, code.as_u16()), "{name}: reply");
                }
                g => panic!("{name}: expected reply {code:?}, got {g:?}"),
            }
            // The connection is still served.
            let req = c.req();
            let answer = c.call(&ClientFrame::Ping { req }).await;
            assert_eq!(answer.0, 0, "{name}: ping after the bad input");
        }
        Expect::ReplyThenClose(req, code, close) => {
            assert_eq!(
                next_answer(&mut c).await,
                Got::Reply {
                    req,
                    code: code.as_u16(),
                    data: vec![]
                },
                "{name}: reply"
            );
            assert_eq!(
                next_answer(&mut c).await,
                Got::Closed(Some(close)),
                "{name}: close"
            );
        }
        Expect::Close(close) => {
            assert_eq!(
                next_answer(&mut c).await,
                Got::Closed(Some(close)),
                "{name}: close"
            );
        }
    }
}

/// A fresh client logs in and gets an OpenAPI push within a bounded wait.
async fn still_serving(addr: std::net::SocketAddr, user: &str) {
    let check = async {
        let mut c = connect(addr, APP).await;
        assert_eq!(c.login(user).await, 0);
        let body =
            json!({"AppId": APP, "From": "svc", "To": user, "Binary": false, "Message": "alive?"});
        api(addr, "SendUnicast", &body).await.assert_ok();
        match c.next().await {
            Got::Push { payload, .. } => assert_eq!(payload, b"alive?"),
            g => panic!("expected the push, got {g:?}"),
        }
        c.close().await;
    };
    tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .expect("the server still serves a fresh client");
}

#[tokio::test]
async fn bad_websocket_inputs_get_their_documented_answers() {
    let mut config = common::config();
    config.auth_timeout_ms = 2_000;
    let server = server_with(config).await;
    let addr = server.local_addr();
    let cases = ws_cases();
    for (i, case) in cases.iter().enumerate() {
        run_ws_case(addr, i, case).await;
        if i % 10 == 9 {
            still_serving(addr, &format!("alive{i}")).await;
        }
    }

    // Connection-level refusals.
    let mut c = connect(addr, "000000000000000000000000").await;
    match c.next_any().await {
        Got::Notice { code, .. } => assert_eq!(code, Code::UnknownApp.as_u16(), "unknown app"),
        g => panic!("unknown app: expected a notice, got {g:?}"),
    }
    c.expect_close(close::UNKNOWN_APP).await;
    let mut c = connect(addr, APP).await;
    c.expect_close(close::AUTH_TIMEOUT).await;
    let no_subprotocol =
        tokio_tungstenite::connect_async(format!("ws://{addr}/rtm?appId={APP}")).await;
    assert!(
        no_subprotocol.is_err(),
        "an upgrade without rtm.v1 is refused"
    );

    still_serving(addr, "alive-end").await;
    assert!(cases.len() + 3 >= 30);
    server.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// OpenAPI

/// A request: query, body, and how it is signed.
struct ApiCase {
    name: &'static str,
    query: String,
    body: Vec<u8>,
    auth: Auth,
    /// HTTP status, `Code`, `CodeN`; `None`: success.
    expect: Option<(u16, &'static str, u64)>,
}

#[derive(Clone)]
enum Auth {
    /// Signed with this key pair, `skew` seconds off the clock.
    Signed {
        ak: &'static str,
        sk: &'static str,
        skew: i64,
    },
    /// Signed correctly, then the body is replaced.
    BodySwapped(Vec<u8>),
    /// No Authorization header.
    None,
    /// This Authorization header, with valid X-Date and body hash.
    Header(&'static str),
}

const OK_AUTH: Auth = Auth::Signed {
    ak: AK,
    sk: SK,
    skew: 0,
};

fn q(action: &str) -> String {
    format!("Action={action}&Version=2023-07-20")
}

fn unicast(fields: Value) -> Vec<u8> {
    let mut base =
        json!({"AppId": APP, "From": "svc", "To": "nobody", "Binary": false, "Message": "hi"});
    for (k, v) in fields.as_object().unwrap() {
        if v == "<remove>" {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base.to_string().into_bytes()
}

fn api_cases() -> Vec<ApiCase> {
    let c = |name, query: String, body: Vec<u8>, auth: Auth, expect| ApiCase {
        name,
        query,
        body,
        auth,
        expect,
    };
    let invalid = Some((400, "InvalidParameter", 100_004));
    let missing = Some((400, "MissingParameter", 100_002));
    let ok_body = unicast(json!({}));
    let batch = |to: Vec<String>, msg: String| {
        json!({"AppId": APP, "RoomId": "r1", "From": "svc", "To": to, "Binary": false, "Message": msg})
            .to_string()
            .into_bytes()
    };
    let many: Vec<String> = (0..601).map(|i| format!("u{i}")).collect();
    vec![
        c(
            "unknown Action",
            q("SendEverything"),
            ok_body.clone(),
            OK_AUTH,
            Some((404, "InvalidActionOrVersion", 100_008)),
        ),
        c(
            "unknown Version",
            "Action=SendUnicast&Version=2099-01-01".into(),
            ok_body.clone(),
            OK_AUTH,
            Some((404, "InvalidActionOrVersion", 100_008)),
        ),
        c(
            "no Authorization",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::None,
            Some((401, "MissingAuthenticationToken", 100_003)),
        ),
        c(
            "malformed Authorization",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Header("HMAC-SHA256 Credential=AKTEST"),
            Some((401, "MissingSignature", 100_005)),
        ),
        c(
            "stale X-Date",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Signed {
                ak: AK,
                sk: SK,
                skew: -3600,
            },
            Some((403, "InvalidTimestamp", 100_006)),
        ),
        c(
            "X-Date in the future",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Signed {
                ak: AK,
                sk: SK,
                skew: 3600,
            },
            Some((403, "InvalidTimestamp", 100_006)),
        ),
        c(
            "wrong secret key",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Signed {
                ak: AK,
                sk: "wrong",
                skew: 0,
            },
            Some((401, "SignatureDoesNotMatch", 100_010)),
        ),
        c(
            "body changed after signing",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::BodySwapped(unicast(json!({"Message": "changed"}))),
            Some((401, "SignatureDoesNotMatch", 100_010)),
        ),
        c(
            "unknown access key",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Signed {
                ak: "AKNOBODY",
                sk: SK,
                skew: 0,
            },
            Some((401, "InvalidAccessKey", 100_009)),
        ),
        c(
            "another app's key",
            q("SendUnicast"),
            ok_body.clone(),
            Auth::Signed {
                ak: AK_B,
                sk: SK_B,
                skew: 0,
            },
            Some((403, "AccessDenied", 100_013)),
        ),
        c(
            "missing To",
            q("SendUnicast"),
            unicast(json!({"To": "<remove>"})),
            OK_AUTH,
            missing,
        ),
        c(
            "missing AppId",
            q("SendUnicast"),
            unicast(json!({"AppId": "<remove>"})),
            OK_AUTH,
            missing,
        ),
        c(
            "null From",
            q("SendUnicast"),
            unicast(json!({"From": null})),
            OK_AUTH,
            missing,
        ),
        c(
            "missing RoomId",
            q("SendBroadcast"),
            unicast(json!({})),
            OK_AUTH,
            missing,
        ),
        c(
            "Binary not a boolean",
            q("SendUnicast"),
            unicast(json!({"Binary": "yes"})),
            OK_AUTH,
            invalid,
        ),
        c(
            "Message not a string",
            q("SendUnicast"),
            unicast(json!({"Message": 42})),
            OK_AUTH,
            invalid,
        ),
        c(
            "AppId not a string",
            q("SendUnicast"),
            unicast(json!({"AppId": 7})),
            OK_AUTH,
            invalid,
        ),
        c(
            "invalid To id",
            q("SendUnicast"),
            unicast(json!({"To": "bad id!"})),
            OK_AUTH,
            invalid,
        ),
        c(
            "bad base64",
            q("SendUnicast"),
            unicast(json!({"Binary": true, "Message": "@@not base64@@"})),
            OK_AUTH,
            invalid,
        ),
        c(
            "message over 64 KiB",
            q("SendUnicast"),
            unicast(json!({"Message": "m".repeat(65_537)})),
            OK_AUTH,
            invalid,
        ),
        c(
            "empty message",
            q("SendUnicast"),
            unicast(json!({"Message": ""})),
            OK_AUTH,
            invalid,
        ),
        c(
            "batch over 600",
            q("BatchSendRoomUnicast"),
            batch(many, "hi".into()),
            OK_AUTH,
            invalid,
        ),
        c(
            "batch message over 20 KiB",
            q("BatchSendRoomUnicast"),
            batch(vec!["a".into()], "m".repeat(20_481)),
            OK_AUTH,
            invalid,
        ),
        c(
            "batch To not an array",
            q("BatchSendRoomUnicast"),
            unicast(json!({"RoomId": "r1"})),
            OK_AUTH,
            invalid,
        ),
        c(
            "body not JSON",
            q("SendUnicast"),
            b"{\"AppId\":".to_vec(),
            OK_AUTH,
            invalid,
        ),
        c(
            "body a JSON array",
            q("SendUnicast"),
            b"[1,2,3]".to_vec(),
            OK_AUTH,
            invalid,
        ),
        c(
            "body over the limit",
            q("SendUnicast"),
            vec![b' '; 300 * 1024],
            OK_AUTH,
            invalid,
        ),
        c(
            "extra fields are ignored",
            q("SendUnicast"),
            unicast(json!({"Extra": {"nested": [1]}})),
            OK_AUTH,
            None,
        ),
    ]
}

/// Sends `case` as a raw HTTP request.
async fn send_api(addr: std::net::SocketAddr, case: &ApiCase) -> ApiResp {
    let host = addr.to_string();
    let (ak, sk, skew) = match case.auth {
        Auth::Signed { ak, sk, skew } => (ak, sk, skew),
        _ => (AK, SK, 0),
    };
    let x_date = sign::format_x_date(now() as i64 + skew);
    let hash = sign::hex_sha256(&case.body);
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), host.clone()),
        ("Content-Type".into(), "application/json".into()),
        ("X-Date".into(), x_date.clone()),
        ("X-Content-Sha256".into(), hash),
    ];
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = SignRequest {
        method: "POST",
        path: "/",
        query: &case.query,
        headers: &pairs,
        body: &case.body,
    };
    let auth = sign::sign(
        &req,
        ak,
        sk,
        "cn-north-1",
        "rtc",
        &x_date,
        &["host", "x-content-sha256", "x-date"],
    );
    let mut body = case.body.clone();
    match &case.auth {
        Auth::Signed { .. } => headers.push(("Authorization".into(), auth)),
        Auth::BodySwapped(b) => {
            headers.push(("Authorization".into(), auth));
            // Keep the signed hash header: the body no longer matches it.
            body = b.clone();
        }
        Auth::Header(h) => headers.push(("Authorization".into(), (*h).into())),
        Auth::None => {}
    }
    let mut rb = reqwest::Client::new()
        .post(format!("http://{host}/?{}", case.query))
        .body(body);
    for (k, v) in &headers {
        if k != "Host" {
            rb = rb.header(k, v);
        }
    }
    let resp = rb.send().await.expect("http request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{}: a JSON body, got {text:?}", case.name));
    ApiResp { status, body }
}

#[tokio::test]
async fn bad_openapi_requests_get_their_documented_errors() {
    let server = server().await;
    let addr = server.local_addr();
    let cases = api_cases();
    for (i, case) in cases.iter().enumerate() {
        let r = send_api(addr, case).await;
        match case.expect {
            None => r.assert_ok(),
            Some((status, code, code_n)) => {
                assert_eq!(
                    (r.status, r.error_code()),
                    (status, Some((code, code_n))),
                    "{}: {}",
                    case.name,
                    r.body
                );
                r.assert_err(status, code, code_n);
            }
        }
        if i % 10 == 9 {
            still_serving(addr, &format!("alive{i}")).await;
        }
    }
    still_serving(addr, "alive-end").await;
    assert!(cases.len() >= 25);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn openapi_over_its_rate_is_told_flow_limit_exceeded() {
    let mut config = common::config();
    config.openapi_rate = 3;
    let server = server_with(config).await;
    let addr = server.local_addr();
    let body =
        json!({"AppId": APP, "From": "svc", "To": "nobody", "Binary": false, "Message": "hi"});
    let mut limited = 0;
    for _ in 0..10 {
        let r = api(addr, "SendUnicast", &body).await;
        if r.status == 429 {
            r.assert_err(429, "FlowLimitExceeded", 100_018);
            limited += 1;
        } else {
            r.assert_ok();
        }
    }
    assert!(limited > 0, "10 requests at once exceed a rate of 3/s");
    // The other app is not limited by this one's budget.
    let other =
        json!({"AppId": APP_B, "From": "svc", "To": "nobody", "Binary": false, "Message": "hi"});
    let r = api_signed(
        addr,
        &q("SendUnicast"),
        other.to_string().as_bytes(),
        &Signer::new(AK_B, SK_B),
    )
    .await;
    r.assert_ok();
    server.shutdown().await.unwrap();
}

#[test]
fn a_token_for_another_app_id_of_the_right_length_is_refused() {
    // The token format itself: AppID is part of the signed content.
    let mut t = AccessToken::new(APP_B, "", "u");
    t.expire_time(0);
    let s = t.serialize(APP_KEY);
    assert!(rtm_protocol::token::verify(&s, APP, APP_KEY, "", "u", now()).is_err());
}
