//! The reliability test harness: a fault-injecting TCP proxy ([`proxy`]), a native client that
//! drives `rtm_core::Engine` over real sockets ([`client`]), and a recording business server
//! ([`BizServer`]).
#![allow(dead_code)]

pub mod client;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rtm_server::callback::{verify_callback_signature, HEADER_MESSAGE_ID, HEADER_SIGNATURE};
use rtm_server::callback::{HEADER_TIMESTAMP, HEADER_USER_ID};
use tokio::net::TcpListener;

/// One message the business server received.
#[derive(Debug, Clone)]
pub struct BizMsg {
    /// `X-Rtm-User-Id`.
    pub user: String,
    /// `X-Rtm-Message-Id`.
    pub msg_id: u64,
    /// The `message` field of the body.
    pub message: String,
}

#[derive(Default)]
struct BizState {
    secret: String,
    got: Mutex<Vec<BizMsg>>,
    bad: Mutex<Vec<String>>,
}

/// A business server on `127.0.0.1:0` that records every callback POST and answers `200 ok`.
pub struct BizServer {
    addr: SocketAddr,
    state: Arc<BizState>,
    task: tokio::task::JoinHandle<()>,
}

impl BizServer {
    /// Starts one; callbacks must be signed with `secret`.
    pub async fn start(secret: &str) -> BizServer {
        let state = Arc::new(BizState {
            secret: secret.into(),
            ..BizState::default()
        });
        let app = Router::new()
            .route("/cb", post(biz_callback))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        BizServer { addr, state, task }
    }

    /// The URL prefix to allow in the app's config.
    pub fn allow(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The callback URL clients set.
    pub fn url(&self) -> String {
        format!("http://{}/cb", self.addr)
    }

    /// Messages received so far, in arrival order.
    pub fn received(&self) -> MutexGuard<'_, Vec<BizMsg>> {
        self.state.got.lock().unwrap()
    }

    /// Requests that were refused (bad signature, missing headers), with why.
    pub fn refused(&self) -> Vec<String> {
        self.state.bad.lock().unwrap().clone()
    }
}

impl Drop for BizServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn biz_callback(
    State(state): State<Arc<BizState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let refuse = |why: String| {
        state.bad.lock().unwrap().push(why);
        (StatusCode::BAD_REQUEST, "refused")
    };
    if !verify_callback_signature(
        &state.secret,
        h(HEADER_TIMESTAMP),
        &body,
        h(HEADER_SIGNATURE),
    ) {
        return refuse(format!(
            "bad signature on {:?}",
            String::from_utf8_lossy(&body)
        ));
    }
    let Ok(msg_id) = h(HEADER_MESSAGE_ID).parse::<u64>() else {
        return refuse("no message id".into());
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(format!("body not JSON: {e}")),
    };
    state.got.lock().unwrap().push(BizMsg {
        user: h(HEADER_USER_ID).to_owned(),
        msg_id,
        message: v["message"].as_str().unwrap_or("").to_owned(),
    });
    (StatusCode::OK, "ok")
}

/// The resident set size of this process, in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
