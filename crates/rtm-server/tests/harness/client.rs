//! A native client: `rtm_core::Engine` driven over tokio-tungstenite with the real clock, the
//! way the wasm binding drives it in a browser.
//!
//! One task owns the engine and the socket. The test calls engine commands through
//! [`EngineClient::call`] and reads what happened from the client's [`Log`]: messages received,
//! connection states, when the client was online.
//!
//! Recovery: the engine reconnects and resumes by itself (`RECONNECTING`, then `RECONNECTED`
//! and a Resume); the driver only opens the connections it asks for. Should the engine give up
//! and report `DISCONNECTED`, the driver does what an application would — it logs in again,
//! rejoins its room and sets its server params again, after a short random pause.
//!
//! The engine is not `Send` (its reconnect policy is a `Box<dyn ReconnectPolicy>`), so each
//! client runs on a thread of its own with a current-thread runtime, as it would run on the
//! one thread of a browser page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use rtm_core::{CallId, ConnectionState, Engine, Error, Event, Payload, PushKind, Transmit, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Ws>> + Send>>;

/// Who a client is and what it keeps up: a login, one room, and (optionally) server params.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user id.
    pub user: String,
    /// The room it stays in.
    pub room: String,
    /// Its login token.
    pub login_token: String,
    /// Its token for `room`.
    pub room_token: String,
    /// `(signature, url)` for `setServerParams`, if it talks to a business server.
    pub server_params: Option<(String, String)>,
}

/// One message the client received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The push kind.
    pub kind: PushKind,
    /// The room ("" outside rooms).
    pub room: String,
    /// The sender.
    pub from: String,
    /// The payload, as text.
    pub text: String,
}

/// What happened to a client, for the test to check.
#[derive(Debug, Default)]
pub struct Log {
    /// Messages received, in order.
    pub received: Vec<Received>,
    /// Session periods: from when login, join (and server params) all succeeded, until the
    /// session ended (`None`: still going). A connection lost and resumed does not end one; a
    /// failed resume (`RECOVERY_FAILED`) or a `DISCONNECTED` does.
    pub online: Vec<(Instant, Option<Instant>)>,
    /// Every connection state reported, in order.
    pub states: Vec<ConnectionState>,
    /// `onError` codes.
    pub errors: Vec<&'static str>,
    /// Connections lost without the engine asking (observed DISCONNECTED or RECONNECTING).
    pub losses: usize,
    /// Sessions that ended with their connection (`RECOVERY_FAILED` or `DISCONNECTED`).
    pub breaks: usize,
    /// Recoveries the driver did (login, join, params again).
    pub recoveries: usize,
    /// WebSocket connections opened.
    pub connects: usize,
}

impl Log {
    /// Whether the client was online at `t` and has stayed online since.
    pub fn online_throughout_since(&self, t: Instant) -> bool {
        self.online
            .last()
            .is_some_and(|&(since, until)| since <= t && until.is_none())
    }

    /// Ends the current session period, if one is open.
    fn end_session(&mut self) {
        if let Some(last) = self.online.last_mut() {
            if last.1.is_none() {
                last.1 = Some(Instant::now());
                self.breaks += 1;
            }
        }
    }

    /// Whether the client is online now.
    pub fn is_online(&self) -> bool {
        self.online
            .last()
            .is_some_and(|&(_, until)| until.is_none())
    }
}

type Reply = oneshot::Sender<Result<Value, Error>>;
type Command = Box<dyn FnOnce(&mut Engine, u64) -> CallId + Send>;

enum Cmd {
    Call(Command, Reply),
    /// Leave the room, log out, and end the task.
    Stop(oneshot::Sender<()>),
}

/// A running native client.
pub struct EngineClient {
    /// The client's user id.
    pub user: String,
    cmd: mpsc::UnboundedSender<Cmd>,
    log: Arc<Mutex<Log>>,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

impl EngineClient {
    /// Starts a client for `app_id` at `server` (`host:port`), and brings it online.
    pub fn start(app_id: &str, server: std::net::SocketAddr, id: Identity) -> EngineClient {
        let (tx, rx) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Log::default()));
        let user = id.user.clone();
        let (app_id, driver_log) = (app_id.to_owned(), log.clone());
        std::thread::Builder::new()
            .name(format!("client-{user}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("client runtime");
                let mut config = rtm_core::Config::default();
                config.request_timeout_ms = 10_000;
                let url = format!("http://{server}");
                let engine = Engine::new(&app_id, &url, config).expect("engine");
                rt.block_on(Driver::new(engine, id, driver_log).run(rx));
            })
            .expect("client thread");
        EngineClient { user, cmd: tx, log }
    }

    /// The client's log.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// Runs an engine command and waits for its completion.
    pub async fn call(
        &self,
        f: impl FnOnce(&mut Engine, u64) -> CallId + Send + 'static,
    ) -> Result<Value, Error> {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Call(Box::new(f), tx)).is_err() {
            return Err(Error::Destroyed);
        }
        rx.await.unwrap_or(Err(Error::Destroyed))
    }

    /// Waits until the client is online (or `limit` passes); whether it is.
    pub async fn wait_online(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.log().is_online() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.log().is_online()
    }

    /// Leaves the room, logs out and ends the client's task.
    pub async fn stop(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }
}

/// What a completion is for.
enum Route {
    Test(Reply),
    /// One step of a recovery (login, join or server params).
    Recovery,
}

struct Driver {
    engine: Engine,
    id: Identity,
    log: Arc<Mutex<Log>>,
    base: Instant,
    ws: Option<Ws>,
    connecting: Option<Connecting>,
    calls: HashMap<CallId, Route>,
    /// Recovery steps still pending, and whether one failed.
    recovery_pending: usize,
    recovery_failed: bool,
    /// When to start the next recovery.
    recover_at: Option<Instant>,
    stopping: bool,
}

impl Driver {
    fn new(engine: Engine, id: Identity, log: Arc<Mutex<Log>>) -> Driver {
        Driver {
            engine,
            id,
            log,
            base: Instant::now(),
            ws: None,
            connecting: None,
            calls: HashMap::new(),
            recovery_pending: 0,
            recovery_failed: false,
            recover_at: Some(Instant::now()),
            stopping: false,
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn engine_deadline(&self) -> Option<Instant> {
        self.engine
            .poll_timeout()
            .map(|ms| self.base + Duration::from_millis(ms))
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut stop_reply: Option<oneshot::Sender<()>> = None;
        loop {
            let engine_at = self.engine_deadline();
            let recover_at = self.recover_at;
            tokio::select! {
                cmd = rx.recv(), if !self.stopping => match cmd {
                    Some(Cmd::Call(f, reply)) => {
                        let now = self.now();
                        let call = f(&mut self.engine, now);
                        self.calls.insert(call, Route::Test(reply));
                    }
                    Some(Cmd::Stop(reply)) => {
                        self.stopping = true;
                        self.recover_at = None;
                        stop_reply = Some(reply);
                        let now = self.now();
                        let leave = self.engine.leave_room(now);
                        self.calls.insert(leave, Route::Recovery);
                        let logout = self.engine.logout(now);
                        self.calls.insert(logout, Route::Recovery);
                    }
                    None => return,
                },
                ws = async { self.connecting.as_mut().unwrap().await }, if self.connecting.is_some() => {
                    self.connecting = None;
                    let now = self.now();
                    match ws {
                        Some(ws) => {
                            self.ws = Some(ws);
                            lock(&self.log).connects += 1;
                            self.engine.handle_connected(now);
                        }
                        None => self.engine.handle_closed(now, 1006),
                    }
                }
                msg = async { self.ws.as_mut().unwrap().next().await }, if self.ws.is_some() => {
                    let now = self.now();
                    match msg {
                        Some(Ok(Message::Binary(b))) => self.engine.handle_frame(now, &b),
                        Some(Ok(Message::Close(c))) => {
                            self.ws = None;
                            let code = c.map(|c| u16::from(c.code)).unwrap_or(1005);
                            self.engine.handle_closed(now, code);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            self.ws = None;
                            self.engine.handle_closed(now, 1006);
                        }
                    }
                }
                () = sleep_until(engine_at), if engine_at.is_some() => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
                () = sleep_until(recover_at), if recover_at.is_some() => {
                    self.recover_at = None;
                    self.recover();
                }
            }
            self.flush().await;
            if self.stopping && self.calls.is_empty() {
                if let Some(mut ws) = self.ws.take() {
                    let _ = ws.close(None).await;
                }
                if let Some(r) = stop_reply.take() {
                    let _ = r.send(());
                }
                return;
            }
        }
    }

    /// Starts a recovery: whatever of login, join and server params is missing.
    fn recover(&mut self) {
        if self.stopping {
            return;
        }
        let now = self.now();
        lock(&self.log).recoveries += 1;
        self.recovery_failed = false;
        self.recovery_pending = 0;
        if self.engine.logged_in_user().is_none() {
            let c = self
                .engine
                .login(now, Some(&self.id.login_token), &self.id.user);
            self.calls.insert(c, Route::Recovery);
            self.recovery_pending += 1;
        }
        if self.engine.room_id().is_none() {
            let c = self.engine.join_room(
                now,
                Some(&self.id.room_token),
                &self.id.room,
                &self.id.user,
                "",
            );
            self.calls.insert(c, Route::Recovery);
            self.recovery_pending += 1;
        }
        // A new session on the server knows no server params: set them again.
        if let Some((sig, url)) = self.id.server_params.clone() {
            let c = self.engine.set_server_params(now, &sig, &url);
            self.calls.insert(c, Route::Recovery);
            self.recovery_pending += 1;
        }
    }

    /// Acts on everything the engine has queued.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.engine.poll_transmit() {
                progressed = true;
                self.transmit(t).await;
            }
            while let Some(c) = self.engine.poll_completion() {
                progressed = true;
                match self.calls.remove(&c.call) {
                    Some(Route::Test(reply)) => {
                        let _ = reply.send(c.result);
                    }
                    Some(Route::Recovery) if !self.stopping => {
                        self.recovery_pending = self.recovery_pending.saturating_sub(1);
                        if c.result.is_err() {
                            self.recovery_failed = true;
                        }
                        if self.recovery_pending == 0 {
                            if self.recovery_failed {
                                self.schedule_recovery();
                            } else {
                                let mut log = lock(&self.log);
                                if !log.is_online() {
                                    log.online.push((Instant::now(), None));
                                }
                            }
                        }
                    }
                    Some(Route::Recovery) | None => {}
                }
            }
            while let Some(e) = self.engine.poll_event() {
                progressed = true;
                self.event(e);
            }
            if !progressed {
                return;
            }
        }
    }

    fn schedule_recovery(&mut self) {
        if self.stopping || self.recover_at.is_some() {
            return;
        }
        let pause = rand::thread_rng().gen_range(20..200);
        self.recover_at = Some(Instant::now() + Duration::from_millis(pause));
    }

    fn event(&mut self, e: Event) {
        let mut log = lock(&self.log);
        match e {
            Event::Message {
                kind,
                room,
                user_id,
                payload,
            } => {
                let text = match payload {
                    Payload::Text(s) => s,
                    Payload::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                };
                log.received.push(Received {
                    kind,
                    room,
                    from: user_id,
                    text,
                });
            }
            Event::ConnectionStateChanged { state } => {
                log.states.push(state);
                let lost = matches!(
                    state,
                    ConnectionState::Disconnected | ConnectionState::Reconnecting
                );
                if lost && !self.stopping {
                    log.losses += 1;
                }
                if state == ConnectionState::Disconnected && !self.stopping {
                    log.end_session();
                    drop(log);
                    self.schedule_recovery();
                }
            }
            Event::Error { error_code, .. } if error_code == "RECOVERY_FAILED" => {
                log.errors.push(error_code);
                log.end_session();
            }
            // The engine restores the session after every reconnect, server params last.
            Event::ServerParamsSetResult { error: None } if !self.stopping => {
                // (The driver's own recoveries open theirs when their calls complete.)
                let driver_busy = self.recover_at.is_some() || self.recovery_pending > 0;
                if !log.is_online() && !driver_busy {
                    log.online.push((Instant::now(), None));
                }
            }
            Event::Error { error_code, .. } => log.errors.push(error_code),
            _ => {}
        }
    }

    async fn transmit(&mut self, t: Transmit) {
        match t {
            Transmit::Connect { url } => {
                self.ws = None;
                self.connecting = Some(Box::pin(connect(url)));
            }
            Transmit::Send(bytes) => {
                let sent = match self.ws.as_mut() {
                    Some(ws) => ws.send(Message::Binary(bytes.into())).await.is_ok(),
                    None => false,
                };
                if !sent && self.ws.take().is_some() {
                    let now = self.now();
                    self.engine.handle_closed(now, 1006);
                }
            }
            Transmit::Close { code } => {
                self.connecting = None;
                if let Some(mut ws) = self.ws.take() {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: "".into(),
                    };
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
                }
            }
        }
    }
}

async fn connect(url: String) -> Option<Ws> {
    let mut req = url.into_client_request().ok()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(rtm_protocol::SUBPROTOCOL),
    );
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
