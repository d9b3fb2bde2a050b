//! The vendor-compatible OpenAPI: `POST /?Action=..&Version=..` from business servers,
//! delivered to users as pushes (REFERENCE §3).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rtm_protocol::frame::PushKind;
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::sign::{self, SignError, SignRequest};
use rtm_protocol::MAX_MESSAGE_BYTES;
use serde_json::{json, Map, Value};

use crate::hub::push_body;
use crate::server::ServerState;

/// The versions the OpenAPI accepts (same bodies).
pub const VERSIONS: [&str; 2] = ["2023-07-20", "2020-12-01"];
/// The service name in responses.
pub const SERVICE: &str = "rtc";
/// The region in responses.
pub const REGION: &str = "cn-north-1";
/// The largest message of `BatchSendRoomUnicast`, in bytes.
pub const MAX_BATCH_MESSAGE_BYTES: usize = 20_480;
/// The most recipients of one `BatchSendRoomUnicast`.
pub const MAX_BATCH_RECIPIENTS: usize = 600;

/// The four Actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    SendUnicast,
    SendRoomUnicast,
    BatchSendRoomUnicast,
    SendBroadcast,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "SendUnicast" => Action::SendUnicast,
            "SendRoomUnicast" => Action::SendRoomUnicast,
            "BatchSendRoomUnicast" => Action::BatchSendRoomUnicast,
            "SendBroadcast" => Action::SendBroadcast,
            _ => return None,
        })
    }

    /// The body fields the Action requires, `AppId` first.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Action::SendUnicast => &["AppId", "From", "To", "Binary", "Message"],
            Action::SendRoomUnicast | Action::BatchSendRoomUnicast => {
                &["AppId", "RoomId", "From", "To", "Binary", "Message"]
            }
            Action::SendBroadcast => &["AppId", "RoomId", "From", "Binary", "Message"],
        }
    }
}

/// An OpenAPI error: the vendor's `Code`, `CodeN`, a message and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    code: &'static str,
    code_n: u32,
    status: u16,
    message: String,
}

impl ApiError {
    fn sign(e: SignError, message: impl Into<String>) -> Self {
        ApiError {
            code: e.code(),
            code_n: e.code_n(),
            status: e.http_status(),
            message: message.into(),
        }
    }
    fn missing(field: &str) -> Self {
        Self::sign(
            SignError::MissingParameter,
            format!("missing parameter {field}"),
        )
    }
    fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            code: "InvalidParameter",
            code_n: 100_004,
            status: 400,
            message: message.into(),
        }
    }
    fn flow_limit() -> Self {
        ApiError {
            code: "FlowLimitExceeded",
            code_n: 100_018,
            status: 429,
            message: "too many requests for this app".into(),
        }
    }
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> Self {
        let msg = e.to_string();
        ApiError::sign(e, msg)
    }
}

fn request_id() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn metadata(action: &str, version: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("RequestId".into(), request_id().into());
    m.insert("Action".into(), action.into());
    m.insert("Version".into(), version.into());
    m.insert("Service".into(), SERVICE.into());
    m.insert("Region".into(), REGION.into());
    m
}

fn error_response(action: &str, version: &str, e: ApiError) -> Response {
    tracing::debug!(action, code = e.code, message = %e.message, "openapi error");
    let mut meta = metadata(action, version);
    meta.insert(
        "Error".into(),
        json!({"Code": e.code, "Message": e.message, "CodeN": e.code_n}),
    );
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(json!({ "ResponseMetadata": meta }))).into_response()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST /?Action=..&Version=..`.
pub(crate) async fn handle(State(state): State<ServerState>, req: Request) -> Response {
    let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let action_s = query.get("Action").cloned().unwrap_or_default();
    let version = query.get("Version").cloned().unwrap_or_default();
    let result = serve(&state, req, &action_s, &version).await;
    let metrics = state.hub.metrics();
    match &result {
        Ok(()) => metrics.openapi(&action_s, "success"),
        Err(e) => metrics.openapi(&action_s, e.code),
    }
    match result {
        Ok(()) => {
            let body = json!({
                "ResponseMetadata": metadata(&action_s, &version),
                "Result": {"Message": "success"},
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => error_response(&action_s, &version, e),
    }
}

async fn serve(
    state: &ServerState,
    req: Request,
    action_s: &str,
    version: &str,
) -> Result<(), ApiError> {
    let action = Action::parse(action_s)
        .filter(|_| VERSIONS.contains(&version))
        .ok_or_else(|| {
            ApiError::sign(
                SignError::InvalidActionOrVersion,
                format!("unknown Action {action_s:?} or Version {version:?}"),
            )
        })?;

    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::invalid(format!("request body larger than {limit} bytes")))?;

    // Verify the signature over the request exactly as received.
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let host;
    let mut headers = headers;
    if parts.headers.get("host").is_none() {
        // HTTP/2 carries the host in the URI authority.
        if let Some(a) = parts.uri.authority() {
            host = a.as_str().to_owned();
            headers.push(("host", &host));
        }
    }
    let sreq = SignRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let hub = &state.hub;
    let verified = sign::verify(
        &sreq,
        |ak| hub.secret_key(ak).map(str::to_owned),
        now_unix(),
        sign::DEFAULT_WINDOW_SECS,
    )?;

    let obj: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("body is not a JSON object: {e}")))?;
    for f in action.fields() {
        if obj.get(*f).is_none_or(Value::is_null) {
            return Err(ApiError::missing(f));
        }
    }
    let app_id = string(&obj, "AppId")?;
    let app = match hub.key(&verified.access_key) {
        Some((app, _)) if app.config.app_id == app_id => app.clone(),
        _ => {
            return Err(ApiError::sign(
                SignError::AccessDenied,
                format!("the access key may not send for AppId {app_id:?}"),
            ))
        }
    };
    if !app.try_acquire_rate() {
        return Err(ApiError::flow_limit());
    }

    let from = id(&obj, "From")?;
    let binary = obj
        .get("Binary")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::invalid("Binary must be a boolean"))?;
    let max = if action == Action::BatchSendRoomUnicast {
        MAX_BATCH_MESSAGE_BYTES
    } else {
        MAX_MESSAGE_BYTES
    };
    let payload = message(&obj, binary, max)?;

    match action {
        Action::SendUnicast => {
            let to = id(&obj, "To")?;
            let body = push_body(PushKind::OutsideRoom, "", from, binary, &payload);
            let n = app.push_to_login(to, body);
            tracing::debug!(app = app_id, from, to, delivered = n, "SendUnicast");
        }
        Action::SendRoomUnicast => {
            let room = id(&obj, "RoomId")?;
            let to = id(&obj, "To")?;
            let body = push_body(PushKind::RoomUser, room, from, binary, &payload);
            let n = app.push_to_members(room, [to], &body);
            tracing::debug!(
                app = app_id,
                from,
                room,
                to,
                delivered = n,
                "SendRoomUnicast"
            );
        }
        Action::BatchSendRoomUnicast => {
            let room = id(&obj, "RoomId")?;
            let to = recipients(&obj)?;
            let body = push_body(PushKind::RoomUser, room, from, binary, &payload);
            let n = app.push_to_members(room, to.iter().copied(), &body);
            tracing::debug!(
                app = app_id,
                from,
                room,
                to = to.len(),
                delivered = n,
                "BatchSendRoomUnicast"
            );
        }
        Action::SendBroadcast => {
            let room = id(&obj, "RoomId")?;
            let body = push_body(PushKind::Room, room, from, binary, &payload);
            let n = app.push_to_room(room, None, &body);
            tracing::debug!(app = app_id, from, room, delivered = n, "SendBroadcast");
        }
    }
    Ok(())
}

fn string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(ApiError::missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
    }
}

fn id<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    let s = string(obj, name)?;
    if !is_valid_id(s) {
        return Err(ApiError::invalid(format!(
            "{name} must match [a-zA-Z0-9@._-]{{1,128}}"
        )));
    }
    Ok(s)
}

/// The message bytes: UTF-8 text, or standard base64 (padded) when `binary`.
fn message(obj: &Map<String, Value>, binary: bool, max: usize) -> Result<Vec<u8>, ApiError> {
    let s = string(obj, "Message")?;
    let bytes = if binary {
        // Base64 of `max` bytes is at most this long; refuse longer input before decoding.
        if s.len() > max.div_ceil(3) * 4 {
            return Err(ApiError::invalid(format!(
                "Message larger than {max} bytes"
            )));
        }
        STANDARD
            .decode(s)
            .map_err(|_| ApiError::invalid("Message is not valid base64"))?
    } else {
        s.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid("Message is empty"));
    }
    if bytes.len() > max {
        return Err(ApiError::invalid(format!(
            "Message larger than {max} bytes"
        )));
    }
    Ok(bytes)
}

/// The `To` list of `BatchSendRoomUnicast`: 1 to 600 valid ids, duplicates removed.
fn recipients(obj: &Map<String, Value>) -> Result<Vec<&str>, ApiError> {
    let Some(Value::Array(list)) = obj.get("To") else {
        return Err(ApiError::invalid("To must be an array of user ids"));
    };
    if list.is_empty() || list.len() > MAX_BATCH_RECIPIENTS {
        return Err(ApiError::invalid(format!(
            "To must list 1 to {MAX_BATCH_RECIPIENTS} users"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for v in list {
        match v.as_str() {
            Some(u) if is_valid_id(u) => {
                if seen.insert(u) {
                    out.push(u);
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    "each To must match [a-zA-Z0-9@._-]{1,128}",
                ))
            }
        }
    }
    Ok(out)
}
