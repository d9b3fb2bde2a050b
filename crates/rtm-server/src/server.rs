//! The HTTP surface (WebSocket endpoint, OpenAPI, health, demo tokens, static files) and the
//! server's lifecycle.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use rtm_protocol::ids::is_valid_id;
use rtm_protocol::token::{AccessToken, Privilege, TokenError};
use rtm_protocol::SUBPROTOCOL;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::config::{Config, ConfigError};
use crate::hub::Hub;
use crate::openapi;
use crate::relay::Relays;
use crate::resume::Resumes;
use crate::session::{self, SessionEnv, SessionLimits};

/// How long a shutdown waits for sessions to close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The initial read buffer of each WebSocket, in bytes (see `websocket`).
const WS_READ_BUFFER: usize = 1024;

/// The default lifetime of a token issued by `rtm-server token` and `/demo/token`, in seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u32 = 86_400;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding or serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ServerState {
    pub(crate) hub: Hub,
    pub(crate) config: Arc<Config>,
    pub(crate) env: SessionEnv,
    /// The runtime the WebSocket sessions run on.
    pub(crate) sessions: Handle,
}

/// Serves `config` on `listener` until `shutdown` completes, then tells every session
/// (close code 4003) and waits for them to end.
///
/// ```no_run
/// # async fn demo() -> Result<(), rtm_server::Error> {
/// let config = rtm_server::Config::single_app("0123456789abcdef01234567", "appkey", "AK", "SK");
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// rtm_server::run(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_on(config, listener, shutdown, Handle::current()).await
}

/// Like [`run`], with every WebSocket session on the runtime `sessions`: the runtime that
/// runs this future only accepts connections and answers HTTP (the OpenAPI, `/healthz`,
/// `/metrics`), so an OpenAPI request is answered at once however busy the sessions keep
/// their runtime. `rtm-server serve` runs this way: a single-threaded runtime in front of a
/// multi-threaded one for the sessions.
///
/// ```no_run
/// # fn demo() -> Result<(), rtm_server::Error> {
/// let sessions = tokio::runtime::Runtime::new()?;
/// let front = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// front.block_on(async {
///     let config = rtm_server::Config::single_app("0123456789abcdef01234567", "appkey", "AK", "SK");
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
///     let stop = async { let _ = tokio::signal::ctrl_c().await; };
///     rtm_server::run_on(config, listener, stop, sessions.handle().clone()).await
/// })
/// # }
/// ```
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    sessions: Handle,
) -> Result<(), Error> {
    config.validate()?;
    let hub = Hub::new(&config);
    join_cluster(&config, &hub)?;
    serve(config, hub, listener, shutdown, sessions).await
}

/// A running server started by [`start`].
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's shared state.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Shuts the server down (sessions are closed with 4003) and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io(std::io::Error::other(e))),
        }
    }
}

/// Binds `config.listen` (port 0 picks a free port) and serves in a background task.
///
/// ```no_run
/// # async fn demo() -> Result<(), rtm_server::Error> {
/// let mut config = rtm_server::Config::single_app("0123456789abcdef01234567", "appkey", "AK", "SK");
/// config.listen = "127.0.0.1:0".parse().unwrap();
/// let server = rtm_server::start(config).await?;
/// println!("ws://{}/rtm?appId=0123456789abcdef01234567", server.local_addr());
/// server.shutdown().await
/// # }
/// ```
pub async fn start(config: Config) -> Result<ServerHandle, Error> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let hub = Hub::new(&config);
    join_cluster(&config, &hub)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve(
        config,
        hub.clone(),
        listener,
        stopped,
        Handle::current(),
    ));
    Ok(ServerHandle {
        addr,
        hub,
        stop: Some(stop),
        task,
    })
}

/// With `config.redis_url`, makes `hub` a node of the cluster on that Redis.
fn join_cluster(config: &Config, hub: &Hub) -> Result<(), Error> {
    let Some(url) = &config.redis_url else {
        return Ok(());
    };
    let node = config
        .node_id
        .clone()
        .unwrap_or_else(crate::cluster::random_node_id);
    let ttl = Duration::from_millis(config.cluster_ttl_ms);
    let cluster = crate::cluster::start(url, &node, ttl, hub)
        .map_err(|e| Error::Config(ConfigError::Invalid(format!("redis_url: {e}"))))?;
    hub.attach_cluster(cluster);
    Ok(())
}

async fn serve(
    config: Config,
    hub: Hub,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    sessions: Handle,
) -> Result<(), Error> {
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    hub.run_sessions_on(sessions.clone());
    let state_hub = hub.clone();
    let resumes = Resumes::default();
    let relays = Relays::new(&config.apps)
        .map_err(|e| Error::Config(ConfigError::Invalid(e.to_string())))?
        .with_metrics(hub.metrics().clone());
    let state = ServerState {
        env: SessionEnv {
            hub: hub.clone(),
            auth_timeout: Duration::from_millis(config.auth_timeout_ms),
            alive,
            relays,
            resumes: resumes.clone(),
            limits: SessionLimits::from_config(&config),
        },
        hub,
        config: Arc::new(config),
        sessions,
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, apps = state.config.apps.len(), "rtm-server listening");
    }
    let app = router(state);
    // Pushes and replies are small and must go out at once, not wait for the client's ACK
    // of earlier data (Nagle's algorithm).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            resumes.shut_down_all();
        })
        .await?;
    // Every session holds a clone of `alive`; recv() returns None once all have ended.
    if tokio::time::timeout(SHUTDOWN_GRACE, all_gone.recv())
        .await
        .is_err()
    {
        tracing::warn!("sessions still open after the shutdown grace period");
    }
    if let Some(cluster) = state_hub.cluster() {
        cluster.shutdown().await;
    }
    Ok(())
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-date"),
            HeaderName::from_static("x-content-sha256"),
            HeaderName::from_static("x-security-token"),
        ])
        .max_age(Duration::from_secs(3600))
}

fn router(state: ServerState) -> Router {
    let config = state.config.clone();
    let mut root = post(openapi::handle);
    let mut demo = get(demo_token);
    if let Some(dir) = &config.static_dir {
        root = root.get_service(ServeDir::new(dir));
    }
    if !config.cors_origins.is_empty() {
        let cors = cors_layer(&config.cors_origins);
        root = root.layer(cors.clone());
        demo = demo.layer(cors);
    }
    let mut r = Router::new().route("/", root).route("/rtm", get(websocket));
    if config.demo {
        r = r
            .route("/demo/token", demo)
            .route("/demo/config", get(demo_config));
    }
    if let Some(dir) = &config.static_dir {
        r = r.fallback_service(ServeDir::new(dir));
    }
    // Probes and scrapes stay out of the request log (a 503 probe would log as an error).
    r.layer(TraceLayer::new_for_http())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /healthz`: `ok`; in a cluster, also the node id and whether Redis is reachable
/// (503 while it is not: the node then only reaches its own users).
async fn healthz(State(state): State<ServerState>) -> Response {
    match state.hub.cluster() {
        None => "ok".into_response(),
        Some(c) if c.is_up() => format!("ok\nnode: {}\nredis: up\n", c.node()).into_response(),
        Some(c) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded\nnode: {}\nredis: down\n", c.node()),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
async fn metrics(State(state): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.hub.encode_metrics(),
    )
        .into_response()
}

/// `GET /rtm?appId=..`: the WebSocket endpoint.
async fn websocket(
    State(state): State<ServerState>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = ws.protocols([SUBPROTOCOL]);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("the WebSocket subprotocol {SUBPROTOCOL} is required"),
        )
            .into_response();
    }
    let max = state.config.max_frame_bytes;
    // A 1 KiB read buffer (the library default is 128 KiB): the WebSocket zero-fills the
    // buffer's free capacity on every read attempt, so its size is both resident memory per
    // connection and a memset per poll of the socket. Client frames are small (requests,
    // messages of ~100 bytes typically); a larger frame grows the buffer to its own size
    // and is read in 1 KiB steps.
    let ws = ws
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(WS_READ_BUFFER);
    let app_id = q.get("appId").cloned().unwrap_or_default();
    // `batch=1`: the client reads several frames in one Batch message (PROTOCOL.md §1).
    let batch = q.get("batch").is_some_and(|v| v == "1");
    let (env, sessions) = (state.env.clone(), state.sessions.clone());
    match state.hub.app(&app_id) {
        // The session runs as a task of its own, so nothing of the upgrade stays resident.
        Some(app) => ws.on_upgrade(move |socket| {
            drop(sessions.spawn(session::run(socket, batch, app, env)));
            std::future::ready(())
        }),
        None => ws.on_upgrade(move |socket| session::run_unknown_app(socket, app_id, env)),
    }
}

/// Builds a "001" token for `user` in `room` ("" for a login token) of `app_id`, signed with
/// `app_key`, issued at `now` (Unix seconds) and valid for `ttl_secs` (0 = never expires).
/// The token grants the publish and subscribe privileges until it expires.
///
/// ```
/// let t = rtm_server::issue_token("0123456789abcdef01234567", "appkey", "", "user1", 1_700_000_000, 3600)
///     .unwrap();
/// assert!(rtm_protocol::token::verify(&t, "0123456789abcdef01234567", "appkey", "", "user1", 1_700_000_001).is_ok());
/// ```
pub fn issue_token(
    app_id: &str,
    app_key: &str,
    room: &str,
    user: &str,
    now: u64,
    ttl_secs: u32,
) -> Result<String, TokenError> {
    let issued = u32::try_from(now).unwrap_or(u32::MAX);
    let expire = if ttl_secs == 0 {
        0
    } else {
        issued.saturating_add(ttl_secs)
    };
    let mut t = AccessToken::new(app_id, room, user);
    t.nonce = rand::random();
    t.issued_at = issued;
    t.expire_time(expire)
        .add_privilege(Privilege::PublishStream, expire)
        .add_privilege(Privilege::SubscribeStream, expire);
    t.try_serialize(app_key)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `GET /demo/config`: what the demo page needs to start: the first app's id and, when a
/// demo business server is configured, its callback and console URLs.
async fn demo_config(State(state): State<ServerState>) -> Response {
    let app_id = state.config.apps.first().map(|a| a.app_id.as_str());
    let biz = state
        .config
        .demo_business_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'));
    Json(serde_json::json!({
        "appId": app_id,
        "callbackUrl": biz.map(|b| format!("{b}/callback")),
        "consoleUrl": biz.map(|b| format!("{b}/console")),
    }))
    .into_response()
}

/// `GET /demo/token?user=U&room=R`: a token for the first app, valid for 24 hours.
async fn demo_token(
    State(state): State<ServerState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": m })),
        )
            .into_response()
    };
    let user = q.get("user").map(String::as_str).unwrap_or_default();
    let room = q.get("room").map(String::as_str).unwrap_or_default();
    if !is_valid_id(user) {
        return bad("user must match [a-zA-Z0-9@._-]{1,128}");
    }
    if !room.is_empty() && !is_valid_id(room) {
        return bad("room must match [a-zA-Z0-9@._-]{1,128}");
    }
    let Some(app) = state.config.apps.first() else {
        return bad("no app configured");
    };
    match issue_token(
        &app.app_id,
        &app.app_key,
        room,
        user,
        now_unix(),
        DEFAULT_TOKEN_TTL_SECS,
    ) {
        Ok(token) => Json(serde_json::json!({ "token": token })).into_response(),
        Err(e) => bad(&e.to_string()),
    }
}
