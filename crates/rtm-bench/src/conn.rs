//! Client connections to the three servers: opening (from one of several loopback source
//! addresses), the protocol handshake of each, and the receive loop that records deliveries.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use rtm_protocol::frame::{decode_server, encode_client, server_frames, ClientFrame, ServerFrame};
use rtm_protocol::token::{AccessToken, Privilege};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::stats::recorder;

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Which server the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// rtm-server: `/rtm?appId=`, subprotocol `rtm.v1`, binary frames.
    Rtm,
    /// Socket.IO 4: engine.io v4 over WebSocket.
    Socketio,
    /// The bare broadcast server: plain WebSocket on `/sub`, publisher on `/pub`.
    Bare,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rtm => "rtm",
            Kind::Socketio => "socketio",
            Kind::Bare => "bare",
        }
    }
}

/// What a connection does once open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// rtm: join the room; Socket.IO: connect to the namespace (the server joins the room).
    Join,
    /// rtm: log in (no room); Socket.IO: connect to the namespace.
    Login,
}

/// Where and as whom clients connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub app_id: String,
    pub app_key: String,
    pub room: String,
    /// Whether rtm clients join visible (announced to each other).
    pub visible: bool,
    /// Local addresses the clients bind to, in turn (loopback has ~28k ports per address).
    pub sources: Vec<IpAddr>,
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// A "001" token for `user` in `room` ("" for login), valid for a day.
pub fn token(app_id: &str, app_key: &str, room: &str, user: &str) -> String {
    let now = unix_now();
    let mut t = AccessToken::new(app_id, room, user);
    t.nonce = rand::random();
    t.issued_at = now;
    t.expire_time(now + 86_400)
        .add_privilege(Privilege::PublishStream, now + 86_400)
        .add_privilege(Privilege::SubscribeStream, now + 86_400);
    t.serialize(app_key)
}

/// The user id of client `i`.
pub fn user(i: usize) -> String {
    format!("u{i}")
}

fn client_config() -> WebSocketConfig {
    // Small buffers: 10,000 clients share the machine with the server.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// Opens a WebSocket from source address `sources[i % len]` to `path` on the target.
pub async fn open(t: &Target, i: usize, path: &str) -> Result<Ws, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if !t.sources.is_empty() {
        let src = t.sources[i % t.sources.len()];
        sock.bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
    }
    let stream = sock
        .connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{}{path}", t.addr);
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if t.kind == Kind::Rtm {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(rtm_protocol::SUBPROTOCOL),
        );
    }
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(client_config()))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// The path a client of `kind` opens.
pub fn client_path(t: &Target) -> String {
    match t.kind {
        // As the SDK connects: the server may batch frames that are ready together.
        Kind::Rtm => format!("/rtm?appId={}&batch=1", t.app_id),
        Kind::Socketio => "/socket.io/?EIO=4&transport=websocket".into(),
        Kind::Bare => "/sub".into(),
    }
}

/// Opens client `i` and completes its handshake.
pub async fn connect(t: &Target, i: usize, hello: Hello) -> Result<Ws, String> {
    let mut ws = open(t, i, &client_path(t)).await?;
    let done = async {
        match t.kind {
            Kind::Rtm => {
                let u = user(i);
                let (tok, frame);
                match hello {
                    Hello::Join => {
                        tok = token(&t.app_id, &t.app_key, &t.room, &u);
                        frame = ClientFrame::Join {
                            req: 1,
                            token: &tok,
                            room: &t.room,
                            user: &u,
                            extra: "",
                            visible: t.visible,
                        };
                    }
                    Hello::Login => {
                        tok = token(&t.app_id, &t.app_key, "", &u);
                        frame = ClientFrame::Login {
                            req: 1,
                            token: &tok,
                            user: &u,
                        };
                    }
                }
                send_frame(&mut ws, &frame).await?;
                expect_reply(&mut ws, 1).await.map(|_| ())
            }
            Kind::Socketio => {
                // engine.io open packet `0{...}`, then connect to the main namespace.
                loop {
                    match next_text(&mut ws).await? {
                        t if t.starts_with('0') => break,
                        _ => continue,
                    }
                }
                ws.send(Message::text("40"))
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    match next_text(&mut ws).await? {
                        t if t.starts_with("40") => return Ok(()),
                        t if t.starts_with("44") => return Err(format!("connect error {t}")),
                        t if t == "2" => ws
                            .send(Message::text("3"))
                            .await
                            .map_err(|e| e.to_string())?,
                        _ => continue,
                    }
                }
            }
            Kind::Bare => Ok(()),
        }
    };
    tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    Ok(ws)
}

/// Sends one rtm client frame.
pub async fn send_frame(ws: &mut Ws, f: &ClientFrame<'_>) -> Result<(), String> {
    ws.send(Message::binary(encode_client(f)))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Reads rtm frames until the Reply to `req`; returns its data. A code other than 0 is an error.
pub async fn expect_reply(ws: &mut Ws, req: u32) -> Result<Vec<u8>, String> {
    loop {
        let m = ws
            .next()
            .await
            .ok_or("closed before the reply")?
            .map_err(|e| e.to_string())?;
        let Message::Binary(b) = m else {
            if let Message::Close(c) = m {
                return Err(format!("closed before the reply: {c:?}"));
            }
            continue;
        };
        for f in server_frames(&b) {
            match f.and_then(decode_server) {
                Ok(ServerFrame::Reply { req: r, code, data }) if r == req => {
                    if code != 0 {
                        return Err(format!("reply code {code}"));
                    }
                    return Ok(data.to_vec());
                }
                Ok(ServerFrame::Notice { code, detail, .. }) => {
                    return Err(format!("notice {code}: {detail}"))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("undecodable frame: {e}")),
            }
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}

/// The send timestamp at the start of a payload: 16 ASCII digits.
pub fn parse_stamp(payload: &[u8]) -> Option<u64> {
    let digits = payload.get(..16)?;
    let mut v = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    Some(v)
}

/// A payload of `size` bytes (at least 16) that starts with the timestamp `stamp`.
pub fn payload(stamp: u64, size: usize) -> String {
    let mut s = format!("{stamp:016}");
    if size > 16 {
        s.push(' ');
    }
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Receives until the connection ends, recording each timestamped delivery.
pub async fn receive(kind: Kind, mut ws: Ws) {
    let rec = recorder();
    while let Some(Ok(m)) = ws.next().await {
        let stamp = match (&m, kind) {
            (Message::Binary(b), Kind::Rtm) => {
                for f in server_frames(b) {
                    match f.and_then(decode_server) {
                        Ok(ServerFrame::Push { push, .. }) => match parse_stamp(push.payload) {
                            Some(s) => rec.delivery(s),
                            None => {
                                rec.other.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        _ => {
                            rec.other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                continue;
            }
            (Message::Binary(b), Kind::Bare) => parse_stamp(b),
            (Message::Text(t), Kind::Socketio) => {
                let t = t.as_str();
                if t == "2" {
                    if ws.send(Message::text("3")).await.is_err() {
                        break;
                    }
                    continue;
                }
                t.strip_prefix("42[\"msg\",\"")
                    .and_then(|r| parse_stamp(r.as_bytes()))
            }
            (Message::Close(_), _) => break,
            _ => None,
        };
        match stamp {
            Some(s) => rec.delivery(s),
            None => {
                rec.other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    rec.closed.fetch_add(1, Ordering::Relaxed);
}
