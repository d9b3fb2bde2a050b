//! The relay to business servers (`rtm_server::callback`) and the demo business server
//! (`rtm_server::bizdemo`), over real sockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use rtm_protocol::code::Code;
use rtm_server::bizdemo::{self, BizDemoOptions};
use rtm_server::callback::{
    callback_body, callback_signature, verify_callback_signature, AppCallback, CallbackConfig,
    CallbackError, OutMessage, Relay, RelayOutcome, UserPipe, ValidatedUrl,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const SECRET: &str = "callback-secret";
const APP: &str = "0123456789abcdef01234567";

// ---------------------------------------------------------------------------------------------
// Signature

#[test]
fn signature_vector() {
    let msg = OutMessage {
        app_id: APP.into(),
        user_id: "alice".into(),
        msg_id: 7,
        binary: false,
        payload: "hello".into(),
        signature: "sig".into(),
    };
    let body = callback_body(&msg);
    assert_eq!(
        body,
        br#"{"message":"hello","binary":false,"signature":"sig"}"#
    );
    let sig = callback_signature(SECRET, "1704164645", &body);
    assert_eq!(
        sig,
        "b98bec27c9ff6d99e97bad8aac8494b7a78911c4b514aa63a108328184f0f206"
    );
    assert!(verify_callback_signature(SECRET, "1704164645", &body, &sig));
    assert!(!verify_callback_signature(
        SECRET,
        "1704164646",
        &body,
        &sig
    ));
    assert!(!verify_callback_signature(
        "other",
        "1704164645",
        &body,
        &sig
    ));

    let bin = OutMessage {
        binary: true,
        payload: vec![0u8, 1, 2, 255].into(),
        ..msg
    };
    assert_eq!(
        callback_body(&bin),
        br#"{"message":"AAEC/w==","binary":true,"signature":"sig"}"#
    );
}

// ---------------------------------------------------------------------------------------------
// Allow-list

async fn check(allow: &[&str], url: &str) -> Result<ValidatedUrl, CallbackError> {
    CallbackConfig::new(allow.iter().copied(), None)
        .unwrap()
        .check_url(url)
        .await
}

#[tokio::test]
async fn allow_list_prefix_and_path_boundary() {
    let allow = ["http://127.0.0.1:9000/api"];
    for ok in [
        "http://127.0.0.1:9000/api",
        "http://127.0.0.1:9000/api/",
        "http://127.0.0.1:9000/api/cb?x=1",
        "http://127.0.0.1:9000/api#frag",
        "http://127.0.0.1:9000/other/../api/cb",
    ] {
        let v = check(&allow, ok)
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(
            v.addrs(),
            &["127.0.0.1:9000".parse::<SocketAddr>().unwrap()]
        );
        assert!(!v.as_str().contains('#'));
    }
    for refused in [
        "http://127.0.0.1:9000/apix",
        "http://127.0.0.1:9000/",
        "http://127.0.0.1:9000/api/../admin",
        "http://127.0.0.1:9001/api",
        "http://127.0.0.2:9000/api",
    ] {
        let err = check(&allow, refused).await.unwrap_err();
        assert!(
            matches!(err, CallbackError::NotAllowed(_)),
            "{refused}: {err}"
        );
        assert_eq!(err.code(), Code::CallbackNotAllowed);
    }
    // An entry with a trailing slash: exactly that directory and below.
    let allow = ["http://127.0.0.1:9000/api/"];
    assert!(check(&allow, "http://127.0.0.1:9000/api/x").await.is_ok());
    assert!(check(&allow, "http://127.0.0.1:9000/api").await.is_err());
}

#[tokio::test]
async fn allow_list_scheme_and_shape() {
    let allow = ["https://127.0.0.1:9000/"];
    assert!(matches!(
        check(&allow, "http://127.0.0.1:9000/").await,
        Err(CallbackError::NotAllowed(_))
    ));
    assert!(check(&allow, "https://127.0.0.1:9000/cb").await.is_ok());
    for bad in [
        "ftp://127.0.0.1:9000/",
        "not a url",
        "",
        "https://user:pw@127.0.0.1:9000/",
    ] {
        assert!(
            matches!(check(&allow, bad).await, Err(CallbackError::InvalidUrl(_))),
            "{bad}"
        );
    }
    // The user-info trick does not confuse host matching either.
    assert!(check(&["http://*/"], "http://127.0.0.1:9000@8.8.8.8/")
        .await
        .is_err());
    // Unusable entries fail at configuration time.
    for entry in [
        "127.0.0.1:9000",
        "ftp://h/",
        "http://h/?q",
        "http://u@h/",
        "http://*h/",
    ] {
        assert!(
            matches!(
                CallbackConfig::new([entry], None),
                Err(CallbackError::InvalidAllowEntry { .. })
            ),
            "{entry}"
        );
    }
    // An empty allow-list refuses everything.
    assert!(check(&[], "http://8.8.8.8/").await.is_err());
}

#[tokio::test]
async fn loopback_refused_unless_named() {
    // Named explicitly as an IP literal: that endpoint and no other.
    let named = ["http://127.0.0.1:9000/"];
    assert!(check(&named, "http://127.0.0.1:9000/cb").await.is_ok());
    assert!(check(&named, "http://127.0.0.1:9001/cb").await.is_err());
    assert!(check(&named, "http://[::1]:9000/cb").await.is_err());
    // A hostname resolving to loopback is not what the entry names.
    assert!(matches!(
        check(&named, "http://localhost:9000/").await,
        Err(CallbackError::NotAllowed(_))
    ));

    // A wildcard entry matches, but never reaches loopback, by literal or by name.
    let wildcard = ["http://*:9000/"];
    for url in [
        "http://127.0.0.1:9000/",
        "http://[::1]:9000/",
        "http://[::ffff:127.0.0.1]:9000/",
        "http://localhost:9000/",
    ] {
        let err = check(&wildcard, url).await.unwrap_err();
        assert!(
            matches!(err, CallbackError::PrivateAddress { .. }),
            "{url}: {err}"
        );
        assert_eq!(err.code(), Code::CallbackNotAllowed);
    }
    // A public address through the wildcard is fine.
    assert!(check(&wildcard, "http://8.8.8.8:9000/").await.is_ok());

    // Naming the host explicitly allows it, whatever it resolves to.
    let by_name = ["http://localhost:9000/"];
    let v = check(&by_name, "http://localhost:9000/cb").await.unwrap();
    assert!(!v.addrs().is_empty());
    assert!(v
        .addrs()
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 9000));
    assert!(check(&by_name, "http://localhost:9001/cb").await.is_err());
}

#[tokio::test]
async fn private_and_link_local_literals_refused() {
    let any = ["http://*/"];
    for url in [
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://0x7f000001/",
        "http://2130706433/",
    ] {
        let err = check(&any, url).await.unwrap_err();
        assert!(
            matches!(err, CallbackError::PrivateAddress { .. }),
            "{url}: {err}"
        );
    }
    // Unless named.
    assert!(check(&["http://10.1.2.3/"], "http://10.1.2.3/cb")
        .await
        .is_ok());
    // Subdomain wildcards match subdomains only.
    let sub = ["https://*.example.com/"];
    assert!(matches!(
        check(&sub, "https://example.com/").await,
        Err(CallbackError::NotAllowed(_))
    ));
    assert!(matches!(
        check(&sub, "https://evil-example.com/").await,
        Err(CallbackError::NotAllowed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// A real business server

#[derive(Default)]
struct Biz {
    ok_hits: AtomicUsize,
    /// (user, message id) in arrival order.
    arrivals: Mutex<Vec<(String, u64)>>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn biz_ok(State(biz): State<Arc<Biz>>, h: HeaderMap, body: Bytes) -> Response {
    biz.ok_hits.fetch_add(1, Ordering::SeqCst);
    let ts = header(&h, "x-rtm-timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() <= 300);
    if !fresh || !verify_callback_signature(SECRET, ts, &body, header(&h, "x-rtm-signature")) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    assert_eq!(header(&h, "content-type"), "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let reply = json!({
        "app": header(&h, "x-rtm-app-id"),
        "user": header(&h, "x-rtm-user-id"),
        "id": header(&h, "x-rtm-message-id"),
        "got": v,
    });
    (StatusCode::OK, reply.to_string()).into_response()
}

async fn biz_order(State(biz): State<Arc<Biz>>, h: HeaderMap) -> &'static str {
    let id = header(&h, "x-rtm-message-id").parse().unwrap();
    let user = header(&h, "x-rtm-user-id").to_owned();
    // A varying delay, so that any reordering would show.
    if id % 7 == 0 {
        tokio::task::yield_now().await;
    }
    biz.arrivals.lock().unwrap().push((user, id));
    "ok"
}

async fn start_biz() -> (SocketAddr, Arc<Biz>) {
    let biz = Arc::new(Biz::default());
    let app = Router::new()
        .route("/ok", post(biz_ok))
        .route("/order", post(biz_order))
        .route(
            "/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "nope") }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/stall", post(std::future::pending::<&'static str>))
        .route("/redirect", post(|| async { Redirect::temporary("/ok") }))
        .route("/big", post(|| async { vec![b'x'; 100 * 1024] }))
        .with_state(biz.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, biz)
}

fn app_for(addr: SocketAddr, timeout: Duration, max_in_flight: usize) -> AppCallback {
    let config = CallbackConfig::new([format!("http://{addr}/")], Some(SECRET.into()))
        .unwrap()
        .with_timeout(timeout)
        .with_max_in_flight(max_in_flight);
    AppCallback::new(config)
}

fn message(user: &str, msg_id: u64, text: &str) -> OutMessage {
    OutMessage {
        app_id: APP.into(),
        user_id: user.into(),
        msg_id,
        binary: false,
        payload: text.to_owned().into(),
        signature: "issued-token".into(),
    }
}

async fn relay_once(app: &AppCallback, url: &str, msg: OutMessage) -> RelayOutcome {
    let target = app.check_url(url).await.unwrap();
    Relay::new().post(app, &target, msg).await
}

#[tokio::test]
async fn ok_carries_the_reply_body_and_signed_headers() {
    let (addr, _) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(5), 64);
    let out = relay_once(
        &app,
        &format!("http://{addr}/ok"),
        message("alice", 42, "hello"),
    )
    .await;
    assert_eq!(out.code, Code::Ok, "{}", String::from_utf8_lossy(&out.body));
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["app"], APP);
    assert_eq!(v["user"], "alice");
    assert_eq!(v["id"], "42");
    assert_eq!(
        v["got"],
        json!({"message": "hello", "binary": false, "signature": "issued-token"})
    );

    let bin = OutMessage {
        binary: true,
        payload: vec![0u8, 1, 2, 255].into(),
        ..message("alice", 43, "")
    };
    let out = relay_once(&app, &format!("http://{addr}/ok"), bin).await;
    assert_eq!(out.code, Code::Ok);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["got"]["message"], "AAEC/w==");
    assert_eq!(v["got"]["binary"], true);

    // Signed with another secret: the business server refuses, the sender learns it.
    let wrong = AppCallback::new(
        CallbackConfig::new([format!("http://{addr}/")], Some("other".into())).unwrap(),
    );
    let out = relay_once(
        &wrong,
        &format!("http://{addr}/ok"),
        message("alice", 44, "x"),
    )
    .await;
    assert_eq!(out.code, Code::ServerResponseError);
    assert_eq!(out.body, b"bad signature");
}

#[tokio::test]
async fn localhost_named_in_the_allow_list_is_reached() {
    let (addr, _) = start_biz().await;
    let url = format!("http://localhost:{}/", addr.port());
    let app = AppCallback::new(CallbackConfig::new([url.as_str()], Some(SECRET.into())).unwrap());
    let target = app.check_url(&format!("{url}ok")).await.unwrap();
    // localhost may also resolve to ::1, where nothing listens; the pinned set includes
    // 127.0.0.1, which the client tries too.
    assert!(target.addrs().contains(&addr));
    let out = Relay::new()
        .post(&app, &target, message("bob", 1, "hi"))
        .await;
    assert_eq!(out.code, Code::Ok, "{}", String::from_utf8_lossy(&out.body));
}

#[tokio::test]
async fn error_status_is_server_response_error() {
    let (addr, _) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(5), 64);
    let out = relay_once(&app, &format!("http://{addr}/fail"), message("a", 1, "x")).await;
    assert_eq!(out.code, Code::ServerResponseError);
    assert_eq!(out.body, b"nope");
    let out = relay_once(
        &app,
        &format!("http://{addr}/missing"),
        message("a", 2, "x"),
    )
    .await;
    assert_eq!(out.code, Code::ServerResponseError);
}

#[tokio::test]
async fn oversize_reply_is_truncated_and_an_error() {
    let (addr, _) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(5), 64);
    let out = relay_once(&app, &format!("http://{addr}/big"), message("a", 1, "x")).await;
    assert_eq!(out.code, Code::ServerResponseError);
    assert_eq!(out.body.len(), 65_536);
}

#[tokio::test]
async fn refused_connection_is_send_to_server_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let app = app_for(addr, Duration::from_secs(5), 64);
    let started = Instant::now();
    let out = relay_once(&app, &format!("http://{addr}/ok"), message("a", 1, "x")).await;
    assert_eq!(out.code, Code::SendToServerError);
    assert!(out.body.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn slower_than_the_timeout_is_send_to_server_error() {
    let (addr, _) = start_biz().await;
    let timeout = Duration::from_millis(500);
    let app = app_for(addr, timeout, 64);
    let started = Instant::now();
    let out = relay_once(&app, &format!("http://{addr}/slow"), message("a", 1, "x")).await;
    let took = started.elapsed();
    assert_eq!(out.code, Code::SendToServerError);
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, biz) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(5), 64);
    let out = relay_once(
        &app,
        &format!("http://{addr}/redirect"),
        message("a", 1, "x"),
    )
    .await;
    assert_eq!(out.code, Code::SendToServerError);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(biz.ok_hits.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Ordering and isolation

#[tokio::test]
async fn one_users_messages_arrive_in_order() {
    let (addr, biz) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(10), 8);
    let relay = Relay::new();
    let target = app
        .check_url(&format!("http://{addr}/order"))
        .await
        .unwrap();
    let alice = UserPipe::spawn(relay.clone(), app.clone());
    let bob = UserPipe::spawn(relay, app);
    let mut pending = Vec::new();
    for id in 0..1000u64 {
        pending.push(
            alice
                .submit(target.clone(), message("alice", id, "m"))
                .unwrap(),
        );
        if id % 10 == 0 {
            pending.push(bob.submit(target.clone(), message("bob", id, "m")).unwrap());
        }
    }
    for rx in pending {
        assert_eq!(rx.await.unwrap().code, Code::Ok);
    }
    let arrivals = biz.arrivals.lock().unwrap();
    let alice_ids: Vec<u64> = arrivals
        .iter()
        .filter(|(u, _)| u == "alice")
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(alice_ids, (0..1000).collect::<Vec<_>>());
    let bob_ids: Vec<u64> = arrivals
        .iter()
        .filter(|(u, _)| u == "bob")
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(bob_ids, (0..1000).step_by(10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_stalled_user_does_not_delay_another() {
    let (addr, _) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(3), 64);
    let relay = Relay::new();
    let stall = app
        .check_url(&format!("http://{addr}/stall"))
        .await
        .unwrap();
    let ok = app.check_url(&format!("http://{addr}/ok")).await.unwrap();
    let a = UserPipe::spawn(relay.clone(), app.clone());
    let b = UserPipe::spawn(relay, app);

    let started = Instant::now();
    let a1 = a.submit(stall.clone(), message("a", 1, "x")).unwrap();
    let a2 = a.submit(ok.clone(), message("a", 2, "x")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in 0..5 {
        let out = b
            .submit(ok.clone(), message("b", id, "x"))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(out.code, Code::Ok);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A's first message times out; its second goes through after it, in order.
    assert_eq!(a1.await.unwrap().code, Code::SendToServerError);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(a2.await.unwrap().code, Code::Ok);
}

#[tokio::test]
async fn in_flight_posts_are_bounded_and_waiting_is_bounded_by_the_timeout() {
    let (addr, biz) = start_biz().await;
    let timeout = Duration::from_millis(400);
    let app = app_for(addr, timeout, 1);
    let relay = Relay::new();
    let stall = app
        .check_url(&format!("http://{addr}/stall"))
        .await
        .unwrap();
    let ok = app.check_url(&format!("http://{addr}/ok")).await.unwrap();
    let started = Instant::now();
    // One stalled POST holds the only slot; three more users queue for it right behind it.
    let mut stalled = Vec::new();
    let mut pipes = Vec::new();
    for user in ["s0", "s1", "s2", "s3"] {
        let pipe = UserPipe::spawn(relay.clone(), app.clone());
        stalled.push(pipe.submit(stall.clone(), message(user, 1, "x")).unwrap());
        pipes.push(pipe);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b = UserPipe::spawn(relay, app);
    let b_started = Instant::now();
    let out = b.submit(ok, message("b", 1, "x")).unwrap().await.unwrap();
    let waited = b_started.elapsed();
    // B waited for the slot (nothing else was in flight meanwhile), but not past its timeout:
    // the users queued ahead of it gave up when their own time ran out.
    assert_eq!(out.code, Code::Ok);
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < timeout, "{waited:?}");
    assert_eq!(biz.ok_hits.load(Ordering::SeqCst), 1);
    for rx in stalled {
        assert_eq!(rx.await.unwrap().code, Code::SendToServerError);
    }
    assert!(started.elapsed() < timeout + Duration::from_millis(300));
}

#[tokio::test]
async fn a_full_pipe_refuses_without_blocking() {
    let (addr, _) = start_biz().await;
    let app = app_for(addr, Duration::from_secs(2), 4);
    let stall = app
        .check_url(&format!("http://{addr}/stall"))
        .await
        .unwrap();
    let pipe = UserPipe::with_capacity(Relay::new(), app, 2);
    let mut accepted = Vec::new();
    let mut full = 0;
    for id in 0..10 {
        match pipe.submit(stall.clone(), message("a", id, "x")) {
            Ok(rx) => accepted.push(rx),
            Err(e) => {
                assert_eq!(e.code(), Code::ExceedQps);
                full += 1;
            }
        }
    }
    assert!(
        accepted.len() <= 3 && full >= 7,
        "{} accepted",
        accepted.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The demo business server

#[derive(Default)]
struct FakeOpenApi {
    /// (Action, body) of every authentic call.
    calls: Mutex<Vec<(String, Value)>>,
}

async fn fake_openapi(
    State(api): State<Arc<FakeOpenApi>>,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: Vec<(&str, &str)> = h
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
        .collect();
    let req = rtm_protocol::sign::SignRequest {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if let Err(e) = rtm_protocol::sign::verify(
        &req,
        |ak| (ak == "AKTEST").then(|| "SKTEST".into()),
        now,
        900,
    ) {
        return (
            StatusCode::UNAUTHORIZED,
            format!("{{\"error\":\"{}\"}}", e.code()),
        )
            .into_response();
    }
    let action = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("")
        .to_owned();
    let v: Value = serde_json::from_slice(&body).unwrap();
    api.calls.lock().unwrap().push((action.clone(), v));
    axum::Json(json!({"ResponseMetadata": {"Action": action}, "Result": {"Message": "success"}}))
        .into_response()
}

async fn start_demo() -> (SocketAddr, Arc<FakeOpenApi>) {
    let api = Arc::new(FakeOpenApi::default());
    let app = Router::new()
        .route("/", post(fake_openapi))
        .with_state(api.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let demo_addr = listener.local_addr().unwrap();
    let opts = BizDemoOptions {
        rtm_url: format!("http://{api_addr}"),
        app_id: APP.into(),
        access_key: "AKTEST".into(),
        secret_key: "SKTEST".into(),
        callback_secret: SECRET.into(),
    };
    tokio::spawn(async move { bizdemo::run(opts, listener).await.unwrap() });
    (demo_addr, api)
}

#[tokio::test]
async fn demo_answers_verifies_and_pushes_back() {
    let (addr, api) = start_demo().await;
    let app = app_for(addr, Duration::from_secs(5), 64);
    let relay = Relay::new();
    let target = app.check_url(&format!("http://{addr}/")).await.unwrap();

    let out = relay
        .post(&app, &target, message("alice", 1, "hello"))
        .await;
    assert_eq!(out.code, Code::Ok);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        (v["ok"].clone(), v["echo"].clone()),
        (json!(true), json!("hello"))
    );
    assert_eq!(
        (v["received"].clone(), v["prev"].clone()),
        (json!(1), Value::Null)
    );

    let out = relay
        .post(&app, &target, message("alice", 2, "/echo hi there"))
        .await;
    assert_eq!(out.code, Code::Ok);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["prev"], 1);
    assert_eq!(v["push"]["status"], 200, "{v}");

    let out = relay
        .post(
            &app,
            &target,
            message("alice", 3, "/announce room1 welcome all"),
        )
        .await;
    assert_eq!(out.code, Code::Ok);

    let bin = OutMessage {
        binary: true,
        payload: vec![0xde, 0xad, 0xbe, 0xef].into(),
        ..message("alice", 4, "")
    };
    let out = relay.post(&app, &target, bin).await;
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        (v["echo"].clone(), v["head"].clone()),
        (json!(4), json!("deadbeef"))
    );

    let out = relay
        .post(&app, &target, message("alice", 5, "/fail"))
        .await;
    assert_eq!(out.code, Code::ServerResponseError);

    let calls = api.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            (
                "SendUnicast".to_owned(),
                json!({"AppId": APP, "From": "bizdemo", "To": "alice", "Binary": false, "Message": "hi there"})
            ),
            (
                "SendBroadcast".to_owned(),
                json!({"AppId": APP, "RoomId": "room1", "From": "bizdemo", "Binary": false, "Message": "welcome all"})
            ),
        ]
    );

    // Wrong secret → 401 → the sender sees SERVER_RESPONSE_ERROR.
    let forged = AppCallback::new(
        CallbackConfig::new([format!("http://{addr}/")], Some("not-the-secret".into())).unwrap(),
    );
    let out = relay.post(&forged, &target, message("alice", 6, "x")).await;
    assert_eq!(out.code, Code::ServerResponseError);

    // The log of what arrived, in order.
    let log: Value = reqwest::get(format!("http://{addr}/messages?user=alice"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msgId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn demo_console_calls_the_openapi() {
    let (addr, api) = start_demo().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{addr}/console"))
        .header("Origin", "http://page.example")
        .json(
            &json!({"Action": "BatchSendRoomUnicast", "RoomId": "r1", "To": "u1, u2",
                      "Binary": true, "Message": "00ff"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("access-control-allow-origin"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["Result"]["Message"], "success");
    assert_eq!(
        api.calls.lock().unwrap().last().unwrap(),
        &(
            "BatchSendRoomUnicast".to_owned(),
            json!({"AppId": APP, "RoomId": "r1", "From": "bizdemo", "To": ["u1", "u2"],
                   "Binary": true, "Message": "AP8="})
        )
    );

    // Preflight from the demo page.
    let resp = http
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/console"))
        .header("Origin", "http://page.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(resp.headers().contains_key("access-control-allow-origin"));

    let resp = http
        .post(format!("http://{addr}/console"))
        .json(&json!({"Action": "SendUnicast", "To": "u1", "Binary": true, "Message": "xyz"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
