//! The demo business server: the other end of the relay in [`crate::callback`], and a
//! caller of rtm-server's OpenAPI.
//!
//! Routes:
//!
//! * `POST /` (any path not listed below) — callbacks from rtm-server. Checks
//!   `X-Rtm-Timestamp` (within ±[`CALLBACK_WINDOW_SECS`] of now) and `X-Rtm-Signature`
//!   under the callback secret, answering 401 when either is wrong (no check when the secret is
//!   empty). Answers 200 with
//!   `{"ok":true,"echo":<text, or the byte count for binary>,"received":<messages from this user so far>,"prev":<previous message id from this user or null>}`;
//!   binary messages add `"binary":true` and `"head"` (hex of the first 16 bytes). A text
//!   longer than [`MAX_ECHO_CHARS`] characters is echoed cut to that length, with
//!   `"truncated":true` and `"len"` (its length in bytes), so that the reply stays under
//!   rtm-server's 64 KiB cap on reply bodies even for a maximal message. Text commands:
//!   - `/echo TEXT` — also pushes TEXT back to the sender with `SendUnicast` (From `bizdemo`);
//!   - `/announce ROOM TEXT` — also pushes TEXT to everyone in ROOM with `SendBroadcast`;
//!   - `/fail` — answers 500;
//!   - `/slow MS` — waits MS milliseconds (at most 60 s) before answering.
//!
//!   The result of a push is reported in the reply as `"push":{"action":..,"status":..}`.
//! * `POST /console` (permissive CORS) — the demo page's business console. Takes
//!   `{"Action", "From" (default "bizdemo"), "To" (string, comma list or array), "RoomId",
//!   "Binary", "Message" (hex when Binary)}`, calls that OpenAPI action signed with the
//!   configured key pair and answers with the OpenAPI's status and JSON body (502 when the
//!   OpenAPI cannot be reached, 400 for bad input).
//! * `GET /messages?user=U` (permissive CORS) — the last 2,000 messages received from U, in
//!   arrival order: `{"user":U,"messages":[{"msgId","binary","len","text"}]}`.
//! * `GET /healthz` — `ok`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rtm_protocol::sign::{format_x_date, hex_sha256, sign, SignRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_http::cors::CorsLayer;

use crate::callback::{
    verify_callback_signature, CALLBACK_WINDOW_SECS, HEADER_MESSAGE_ID, HEADER_SIGNATURE,
    HEADER_TIMESTAMP, HEADER_USER_ID,
};

/// The OpenAPI version the demo calls.
const OPENAPI_VERSION: &str = "2023-07-20";
/// The headers the demo signs (the vendor's Go SDK set).
const SIGNED_HEADERS: [&str; 4] = ["content-type", "host", "x-content-sha256", "x-date"];
/// The user id the demo sends as.
const DEMO_FROM: &str = "bizdemo";
/// How many messages per user `GET /messages` remembers.
const LOG_PER_USER: usize = 2_000;
/// The longest `/slow` wait.
const MAX_SLOW: Duration = Duration::from_secs(60);
/// The most characters of a text message the reply echoes (at most 24 KiB of JSON).
pub const MAX_ECHO_CHARS: usize = 4_096;

/// What the demo business server needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BizDemoOptions {
    /// Base URL of rtm-server's OpenAPI, e.g. `http://127.0.0.1:8080`.
    pub rtm_url: String,
    /// The app this business server serves.
    pub app_id: String,
    /// The OpenAPI access key (AK).
    pub access_key: String,
    /// The OpenAPI secret key (SK).
    pub secret_key: String,
    /// The app's callback secret; empty disables the check of `X-Rtm-Signature`.
    pub callback_secret: String,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BizDemoError {
    /// `rtm_url` is not an absolute http(s) URL.
    #[error("invalid rtm URL {0:?}")]
    InvalidRtmUrl(String),
    /// Serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the demo remembers of one user's messages.
#[derive(Default)]
struct UserLog {
    /// Messages received from the user since start.
    count: u64,
    /// The last [`LOG_PER_USER`] messages, oldest first.
    recent: VecDeque<Value>,
}

struct Demo {
    opts: BizDemoOptions,
    /// The OpenAPI URL with a path ending in `/`, without query.
    openapi: url::Url,
    http: reqwest::Client,
    users: Mutex<HashMap<String, UserLog>>,
}

/// The demo's routes (see the [module docs](self)).
pub fn router(opts: BizDemoOptions) -> Result<Router, BizDemoError> {
    let mut openapi = url::Url::parse(&opts.rtm_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| BizDemoError::InvalidRtmUrl(opts.rtm_url.clone()))?;
    openapi.set_query(None);
    openapi.set_fragment(None);
    if !openapi.path().ends_with('/') {
        let path = format!("{}/", openapi.path());
        openapi.set_path(&path);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BizDemoError::Io(std::io::Error::other(e)))?;
    if opts.callback_secret.is_empty() {
        tracing::warn!("no callback secret: callbacks are accepted unsigned");
    }
    let demo = Arc::new(Demo {
        opts,
        openapi,
        http,
        users: Mutex::new(HashMap::new()),
    });
    let cors = Router::new()
        .route("/console", post(console))
        .route("/messages", get(messages))
        .layer(CorsLayer::permissive());
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(cors)
        .fallback(callback)
        .with_state(demo))
}

/// Serves the demo on `listener` until the task is dropped or serving fails.
pub async fn run(opts: BizDemoOptions, listener: TcpListener) -> Result<(), BizDemoError> {
    let app = router(opts)?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "demo business server listening");
    }
    axum::serve(listener, app).await?;
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"ok": false, "error": msg.into()}))).into_response()
}

impl Demo {
    /// Calls an OpenAPI action, signed; returns the status and body.
    async fn openapi(&self, action: &str, body: &Value) -> Result<(StatusCode, Bytes), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let mut url = self.openapi.clone();
        url.set_query(Some(&format!("Action={action}&Version={OPENAPI_VERSION}")));
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err("no host".into()),
        };
        let x_date = format_x_date(unix_now());
        let body_hash = hex_sha256(&body);
        let headers = [
            ("Content-Type", "application/json"),
            ("Host", host.as_str()),
            ("X-Content-Sha256", body_hash.as_str()),
            ("X-Date", x_date.as_str()),
        ];
        let req = SignRequest {
            method: "POST",
            path: url.path(),
            query: url.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        let auth = sign(
            &req,
            &self.opts.access_key,
            &self.opts.secret_key,
            "cn-north-1",
            "rtc",
            &x_date,
            &SIGNED_HEADERS,
        );
        let mut builder = self.http.post(url.clone());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let resp = builder
            .header(header::AUTHORIZATION, auth)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, bytes))
    }

    /// Pushes text to users through the OpenAPI and summarizes the result for a reply.
    async fn push(&self, action: &str, body: Value) -> Value {
        match self.openapi(action, &body).await {
            Ok((status, resp)) => {
                tracing::info!(action, status = status.as_u16(), "OpenAPI push");
                json!({
                    "action": action,
                    "status": status.as_u16(),
                    "response": serde_json::from_slice::<Value>(&resp).unwrap_or(Value::Null),
                })
            }
            Err(e) => {
                tracing::warn!(action, error = %e, "OpenAPI push failed");
                json!({"action": action, "error": e})
            }
        }
    }

    /// Records a message; returns (messages from this user so far, previous message id).
    fn record(&self, user: &str, entry: Value) -> (u64, Value) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let log = users.entry(user.to_owned()).or_default();
        let prev = log
            .recent
            .back()
            .map_or(Value::Null, |e| e["msgId"].clone());
        if log.recent.len() == LOG_PER_USER {
            log.recent.pop_front();
        }
        log.recent.push_back(entry);
        log.count += 1;
        (log.count, prev)
    }
}

/// The JSON rtm-server POSTs.
#[derive(Deserialize)]
struct Callback {
    message: String,
    binary: bool,
    #[serde(default)]
    signature: String,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    if secret.is_empty() {
        return Ok(());
    }
    let ts = header_str(headers, HEADER_TIMESTAMP).ok_or("missing X-Rtm-Timestamp")?;
    let at: i64 = ts.parse().map_err(|_| "bad X-Rtm-Timestamp")?;
    if (unix_now() - at).abs() > CALLBACK_WINDOW_SECS {
        return Err("stale X-Rtm-Timestamp".into());
    }
    let sig = header_str(headers, HEADER_SIGNATURE).ok_or("missing X-Rtm-Signature")?;
    if !verify_callback_signature(secret, ts, body, sig) {
        return Err("X-Rtm-Signature does not match".into());
    }
    Ok(())
}

async fn callback(
    State(demo): State<Arc<Demo>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "POST callbacks here");
    }
    if let Err(e) = check_signature(&demo.opts.callback_secret, &headers, &body) {
        tracing::warn!(error = %e, "callback refused");
        return error(StatusCode::UNAUTHORIZED, e);
    }
    let Ok(cb) = serde_json::from_slice::<Callback>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {message, binary, signature}",
        );
    };
    let user = header_str(&headers, HEADER_USER_ID)
        .unwrap_or("")
        .to_owned();
    let msg_id: Value = header_str(&headers, HEADER_MESSAGE_ID)
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Value::Null, Value::from);

    if cb.binary {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&cb.message) else {
            return error(StatusCode::BAD_REQUEST, "binary message is not base64");
        };
        tracing::info!(user, msg_id = %msg_id, len = bytes.len(), "binary message");
        let (received, prev) = demo.record(
            &user,
            json!({"msgId": msg_id, "binary": true, "len": bytes.len(), "text": Value::Null}),
        );
        let head = hex(&bytes[..bytes.len().min(16)]);
        return Json(json!({
            "ok": true, "binary": true, "echo": bytes.len(), "head": head,
            "received": received, "prev": prev,
        }))
        .into_response();
    }

    let text = cb.message;
    tracing::info!(user, msg_id = %msg_id, len = text.len(), signature_len = cb.signature.len(), text = %text.chars().take(120).collect::<String>(), "text message");
    let (received, prev) = demo.record(
        &user,
        json!({"msgId": msg_id, "binary": false, "len": text.len(),
               "text": text.chars().take(256).collect::<String>()}),
    );
    let mut reply = json!({"ok": true, "echo": text, "received": received, "prev": prev});
    if text.chars().nth(MAX_ECHO_CHARS).is_some() {
        reply["echo"] = text.chars().take(MAX_ECHO_CHARS).collect::<String>().into();
        reply["truncated"] = true.into();
        reply["len"] = text.len().into();
    }
    let (command, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    match command {
        "/fail" => return error(StatusCode::INTERNAL_SERVER_ERROR, "failing as asked"),
        "/slow" => {
            let ms = rest.trim().parse::<u64>().unwrap_or(1_000);
            tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLOW)).await;
        }
        "/echo" if !user.is_empty() => {
            let body = json!({
                "AppId": demo.opts.app_id, "From": DEMO_FROM, "To": user,
                "Binary": false, "Message": rest,
            });
            reply["push"] = demo.push("SendUnicast", body).await;
        }
        "/announce" => {
            let (room, msg) = rest
                .trim_start()
                .split_once(' ')
                .unwrap_or((rest.trim(), ""));
            let body = json!({
                "AppId": demo.opts.app_id, "RoomId": room, "From": DEMO_FROM,
                "Binary": false, "Message": msg,
            });
            reply["push"] = demo.push("SendBroadcast", body).await;
        }
        _ => {}
    }
    Json(reply).into_response()
}

/// `To`: one id, a comma list, or an array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Recipients {
    One(String),
    Many(Vec<String>),
}

impl Recipients {
    fn list(&self) -> Vec<String> {
        match self {
            Recipients::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Recipients::Many(v) => v.clone(),
        }
    }
}

/// A request from the demo page's business console.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsoleRequest {
    action: String,
    from: Option<String>,
    to: Option<Recipients>,
    room_id: Option<String>,
    #[serde(default)]
    binary: bool,
    #[serde(default)]
    message: String,
}

async fn console(State(demo): State<Arc<Demo>>, body: Bytes) -> Response {
    let req: ConsoleRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad console request: {e}")),
    };
    if req.action.is_empty() || !req.action.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return error(StatusCode::BAD_REQUEST, "Action must be alphanumeric");
    }
    let message = if req.binary {
        match unhex(&req.message) {
            Some(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
            None => return error(StatusCode::BAD_REQUEST, "Message must be hex when Binary"),
        }
    } else {
        req.message
    };
    let mut body = serde_json::Map::new();
    body.insert("AppId".into(), demo.opts.app_id.clone().into());
    body.insert(
        "From".into(),
        req.from.unwrap_or_else(|| DEMO_FROM.to_owned()).into(),
    );
    let takes_room = req.action != "SendUnicast";
    let takes_to = req.action != "SendBroadcast";
    if let (true, Some(room)) = (takes_room, req.room_id) {
        body.insert("RoomId".into(), room.into());
    }
    if let (true, Some(to)) = (takes_to, &req.to) {
        let to = match (req.action.as_str(), to) {
            ("BatchSendRoomUnicast", to) => Value::from(to.list()),
            (_, Recipients::One(s)) => Value::from(s.trim()),
            (_, Recipients::Many(v)) => Value::from(v.join(",")),
        };
        body.insert("To".into(), to);
    }
    body.insert("Binary".into(), req.binary.into());
    body.insert("Message".into(), message.into());
    match demo.openapi(&req.action, &Value::Object(body)).await {
        Ok((status, resp)) => {
            tracing::info!(
                action = req.action,
                status = status.as_u16(),
                "console call"
            );
            (status, [(header::CONTENT_TYPE, "application/json")], resp).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("OpenAPI unreachable: {e}")),
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    user: String,
}

async fn messages(State(demo): State<Arc<Demo>>, Query(q): Query<MessagesQuery>) -> Response {
    let users = demo.users.lock().unwrap_or_else(|p| p.into_inner());
    let log: Vec<Value> = users
        .get(&q.user)
        .map(|l| l.recent.iter().cloned().collect())
        .unwrap_or_default();
    Json(json!({"user": q.user, "messages": log})).into_response()
}
