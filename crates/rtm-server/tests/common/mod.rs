//! Test helpers: a real server on port 0, a WebSocket client, a signed OpenAPI client.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use rtm_protocol::frame::{
    decode_server, encode_client, server_frames, ClientFrame, PushKind, ServerFrame,
};
use rtm_protocol::sign::{self, SignRequest};
use rtm_server::{AppConfig, Config, ServerHandle};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const APP: &str = "0123456789abcdef01234567";
pub const APP_KEY: &str = "testappkey";
pub const AK: &str = "AKTEST";
pub const SK: &str = "SKTEST";
pub const APP_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";
pub const APP_KEY_B: &str = "appkeyb";
pub const AK_B: &str = "AKB";
pub const SK_B: &str = "SKB";

pub const WAIT: Duration = Duration::from_secs(5);

pub fn config() -> Config {
    let mut c = Config::single_app(APP, APP_KEY, AK, SK);
    c.apps.push(AppConfig::new(APP_B, APP_KEY_B, AK_B, SK_B));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c
}

pub async fn server() -> ServerHandle {
    server_with(config()).await
}

pub async fn server_with(c: Config) -> ServerHandle {
    rtm_server::start(c).await.expect("server starts")
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn token(room: &str, user: &str) -> String {
    rtm_server::issue_token(APP, APP_KEY, room, user, now(), 3600).unwrap()
}

/// A server frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Reply {
        req: u32,
        code: u16,
        data: Vec<u8>,
    },
    Push {
        seq: u64,
        kind: PushKind,
        room: String,
        from: String,
        binary: bool,
        payload: Vec<u8>,
    },
    Notice {
        code: u16,
        room: String,
        detail: String,
    },
    Member {
        room: String,
        user: String,
        joined: bool,
        reason: u8,
    },
    Welcome {
        session: Vec<u8>,
        heartbeat_ms: u32,
        resume_window_ms: u32,
    },
    Closed(Option<u16>),
}

impl Got {
    fn from_frame(f: ServerFrame<'_>) -> Got {
        match f {
            ServerFrame::Reply { req, code, data } => Got::Reply {
                req,
                code,
                data: data.to_vec(),
            },
            ServerFrame::Push { seq, push } => Got::Push {
                seq,
                kind: push.kind,
                room: push.room.into(),
                from: push.from.into(),
                binary: push.binary,
                payload: push.payload.to_vec(),
            },
            ServerFrame::Notice { code, room, detail } => Got::Notice {
                code,
                room: room.into(),
                detail: detail.into(),
            },
            ServerFrame::Member {
                room,
                user,
                joined,
                reason,
                ..
            } => Got::Member {
                room: room.into(),
                user: user.into(),
                joined,
                reason,
            },
            ServerFrame::Welcome {
                session,
                heartbeat_ms,
                resume_window_ms,
            } => Got::Welcome {
                session: session.to_vec(),
                heartbeat_ms,
                resume_window_ms,
            },
        }
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_req: u32,
    /// The session key of the Welcome frame, once it arrived (`next_any` consumes it).
    pub session: Option<Vec<u8>>,
    /// Frames of a Batch message not yet returned.
    queued: VecDeque<Got>,
    /// How many Batch messages arrived, and how many frames they carried.
    pub batches: (usize, usize),
    /// How many WebSocket pings arrived (the client stack answers them as it reads).
    pub pings: usize,
}

pub async fn connect(addr: SocketAddr, app_id: &str) -> Client {
    connect_to(addr, app_id, "").await
}

/// Connects with `&batch=1`: the server may send Batch messages, which `next_any_raw` splits.
pub async fn connect_batch(addr: SocketAddr, app_id: &str) -> Client {
    connect_to(addr, app_id, "&batch=1").await
}

async fn connect_to(addr: SocketAddr, app_id: &str, query: &str) -> Client {
    let mut req = format!("ws://{addr}/rtm?appId={app_id}{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("rtm.v1"));
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "rtm.v1"
    );
    Client {
        ws,
        next_req: 1,
        session: None,
        queued: VecDeque::new(),
        batches: (0, 0),
        pings: 0,
    }
}

impl Client {
    pub fn req(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn send(&mut self, f: &ClientFrame<'_>) {
        self.send_raw(encode_client(f)).await;
    }

    /// The next frame, Welcome included, or Closed.
    pub async fn next_any_raw(&mut self) -> Got {
        if let Some(g) = self.queued.pop_front() {
            return g;
        }
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match m {
                None => return Got::Closed(None),
                Some(Err(_)) => return Got::Closed(None),
                Some(Ok(Message::Binary(b))) => {
                    let mut frames = server_frames(&b)
                        .map(|f| {
                            Got::from_frame(
                                decode_server(f.expect("a batch splits"))
                                    .expect("server frame decodes"),
                            )
                        })
                        .collect::<VecDeque<_>>();
                    if frames.len() > 1 || b.first() == Some(&0x85) {
                        self.batches.0 += 1;
                        self.batches.1 += frames.len();
                    }
                    let first = frames.pop_front().expect("a frame");
                    self.queued.append(&mut frames);
                    return first;
                }
                Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame other than the Welcome (whose key is kept in `session`), or Closed.
    pub async fn next_any(&mut self) -> Got {
        loop {
            match self.next_any_raw().await {
                Got::Welcome { session, .. } => self.session = Some(session),
                g => return g,
            }
        }
    }

    /// The next push as (seq, kind, room, from, binary, payload), skipping Member frames.
    pub async fn next_push(&mut self) -> (u64, PushKind, String, String, bool, Vec<u8>) {
        match self.next().await {
            Got::Push {
                seq,
                kind,
                room,
                from,
                binary,
                payload,
            } => (seq, kind, room, from, binary, payload),
            g => panic!("expected a push, got {g:?}"),
        }
    }

    /// The next frame that is not a Member frame.
    pub async fn next(&mut self) -> Got {
        loop {
            match self.next_any().await {
                Got::Member { .. } => continue,
                g => return g,
            }
        }
    }

    /// Sends `f` and returns the reply's (code, data), skipping pushes and members.
    pub async fn call(&mut self, f: &ClientFrame<'_>) -> (u16, Vec<u8>) {
        self.send(f).await;
        loop {
            match self.next().await {
                Got::Reply { code, data, .. } => return (code, data),
                Got::Closed(c) => panic!("closed ({c:?}) while waiting for a reply to {f:?}"),
                _ => continue,
            }
        }
    }

    pub async fn login(&mut self, user: &str) -> u16 {
        let t = token("", user);
        let req = self.req();
        self.call(&ClientFrame::Login {
            req,
            token: &t,
            user,
        })
        .await
        .0
    }

    pub async fn join(&mut self, room: &str, user: &str) -> u16 {
        self.join_as(room, user, true).await
    }

    /// Joins visible or invisible.
    pub async fn join_as(&mut self, room: &str, user: &str, visible: bool) -> u16 {
        let t = token(room, user);
        let req = self.req();
        self.call(&ClientFrame::Join {
            req,
            token: &t,
            room,
            user,
            extra: "",
            visible,
        })
        .await
        .0
    }

    /// Becomes visible or invisible in `room`.
    pub async fn set_visibility(&mut self, room: &str, visible: bool) -> u16 {
        let req = self.req();
        self.call(&ClientFrame::SetVisibility { req, room, visible })
            .await
            .0
    }

    pub async fn ping(&mut self) -> u16 {
        let req = self.req();
        self.call(&ClientFrame::Ping { req }).await.0
    }

    /// Expects the server to close the connection with `code` (skipping other frames).
    pub async fn expect_close(&mut self, code: u16) {
        loop {
            match self.next_any().await {
                Got::Closed(c) => {
                    assert_eq!(c, Some(code), "close code");
                    return;
                }
                _ => continue,
            }
        }
    }

    /// Expects no frame within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, self.ws.next()).await {
            panic!("unexpected frame {m:?}");
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// An OpenAPI response: HTTP status and JSON body.
#[derive(Debug)]
pub struct ApiResp {
    pub status: u16,
    pub body: Value,
}

impl ApiResp {
    pub fn error_code(&self) -> Option<(&str, u64)> {
        let e = self.body["ResponseMetadata"].get("Error")?;
        Some((e["Code"].as_str()?, e["CodeN"].as_u64()?))
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["Result"]["Message"], "success", "{}", self.body);
        assert!(self.body["ResponseMetadata"].get("Error").is_none());
    }

    pub fn assert_err(&self, status: u16, code: &str, code_n: u64) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.error_code(), Some((code, code_n)), "{}", self.body);
        assert!(self.body.get("Result").is_none(), "{}", self.body);
        let m = &self.body["ResponseMetadata"];
        assert_eq!(m["Service"], "rtc");
        assert_eq!(m["Region"], "cn-north-1");
        assert!(m["RequestId"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

/// How to sign a request.
#[derive(Debug, Clone)]
pub struct Signer {
    pub ak: String,
    pub sk: String,
    /// Unix seconds put in X-Date.
    pub time: i64,
    pub signed: Vec<&'static str>,
}

impl Signer {
    pub fn new(ak: &str, sk: &str) -> Self {
        Signer {
            ak: ak.into(),
            sk: sk.into(),
            time: now() as i64,
            signed: vec!["host", "x-content-sha256", "x-date"],
        }
    }
}

pub async fn api(addr: SocketAddr, action: &str, body: &Value) -> ApiResp {
    api_raw(
        addr,
        &format!("Action={action}&Version=2023-07-20"),
        body.to_string().as_bytes(),
        Some(&Signer::new(AK, SK)),
    )
    .await
}

pub async fn api_signed(addr: SocketAddr, query: &str, body: &[u8], signer: &Signer) -> ApiResp {
    api_raw(addr, query, body, Some(signer)).await
}

pub async fn api_raw(
    addr: SocketAddr,
    query: &str,
    body: &[u8],
    signer: Option<&Signer>,
) -> ApiResp {
    let host = addr.to_string();
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), host.clone()),
        ("Content-Type".into(), "application/json".into()),
    ];
    if let Some(s) = signer {
        let x_date = sign::format_x_date(s.time);
        let hash = sign::hex_sha256(body);
        headers.push(("X-Date".into(), x_date.clone()));
        headers.push(("X-Content-Sha256".into(), hash));
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let req = SignRequest {
            method: "POST",
            path: "/",
            query,
            headers: &pairs,
            body,
        };
        let auth = sign::sign(&req, &s.ak, &s.sk, "cn-north-1", "rtc", &x_date, &s.signed);
        headers.push(("Authorization".into(), auth));
    }
    let client = reqwest::Client::new();
    let mut rb = client
        .post(format!("http://{host}/?{query}"))
        .body(body.to_vec());
    for (k, v) in &headers {
        if k != "Host" {
            rb = rb.header(k, v);
        }
    }
    let resp = rb.send().await.expect("http request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"));
    ApiResp { status, body }
}
