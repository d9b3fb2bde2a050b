//! The browser test suite, shared by `tests/browser.rs` (a page) and `tests/worker.rs`
//! (a dedicated Worker), against a real `rtm-server`.
//!
//! The server's URL and credentials come from compile-time environment variables set by the
//! test script: `RTM_TEST_SERVER` (e.g. `http://127.0.0.1:8080`), `RTM_TEST_APP_ID`,
//! `RTM_TEST_APP_KEY`, `RTM_TEST_AK`, `RTM_TEST_SK`. The server must run with
//! `--cors-origin '*'` (the test page has another origin). Unset variables fail every test
//! that needs the server.

use std::cell::RefCell;
use std::rc::Rc;

use crate::util::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array, JSON};
use rtm_protocol::sign::{format_x_date, hex_sha256, sign, SignRequest};
use rtm_protocol::token::AccessToken;
use rtm_sdk::{create_engine, destroy_engine, get_sdk_version, ConnectionState, RtcEngine};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Headers, Request, RequestInit, Response};

struct Env {
    server: &'static str,
    app_id: &'static str,
    app_key: &'static str,
    ak: &'static str,
    sk: &'static str,
}

fn env() -> Env {
    fn need(v: Option<&'static str>, name: &str) -> &'static str {
        match v {
            Some(v) if !v.is_empty() => v,
            _ => panic!("{name} is not set: build the browser tests through scripts/test.sh"),
        }
    }
    Env {
        server: need(option_env!("RTM_TEST_SERVER"), "RTM_TEST_SERVER"),
        app_id: need(option_env!("RTM_TEST_APP_ID"), "RTM_TEST_APP_ID"),
        app_key: need(option_env!("RTM_TEST_APP_KEY"), "RTM_TEST_APP_KEY"),
        ak: need(option_env!("RTM_TEST_AK"), "RTM_TEST_AK"),
        sk: need(option_env!("RTM_TEST_SK"), "RTM_TEST_SK"),
    }
}

fn token_with(app_id: &str, key: &str, room: &str, user: &str, expire: u32) -> String {
    let mut t = AccessToken::new(app_id, room, user);
    t.nonce = (js_sys::Math::random() * 1e9) as u32;
    t.issued_at = now_secs();
    t.expire_time(expire);
    t.serialize(key)
}

fn token(room: &str, user: &str) -> String {
    let e = env();
    token_with(e.app_id, e.app_key, room, user, now_secs() + 3600)
}

fn engine() -> RtcEngine {
    let cfg = obj(&[("serverUrl", env().server.into())]);
    create_engine(env().app_id.into(), cfg).expect("createEngine")
}

fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// Sends a signed OpenAPI request; returns the HTTP status and the response body.
async fn openapi(action: &str, body: &JsValue) -> (u16, String) {
    openapi_with(action, body, env().sk).await
}

async fn openapi_with(action: &str, body: &JsValue, sk: &str) -> (u16, String) {
    let e = env();
    let body = JSON::stringify(body).unwrap().as_string().unwrap();
    let query = format!("Action={action}&Version=2023-07-20");
    let host = e
        .server
        .split_once("://")
        .map_or(e.server, |(_, r)| r)
        .trim_end_matches('/');
    let x_date = format_x_date(i64::from(now_secs()));
    let sha = hex_sha256(body.as_bytes());
    let signed = [
        ("Host", host),
        ("X-Date", x_date.as_str()),
        ("X-Content-Sha256", sha.as_str()),
    ];
    let req = SignRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &signed,
        body: body.as_bytes(),
    };
    let auth = sign(
        &req,
        e.ak,
        sk,
        "cn-north-1",
        "rtc",
        &x_date,
        &["host", "x-date", "x-content-sha256"],
    );
    let headers = Headers::new().unwrap();
    headers.set("X-Date", &x_date).unwrap();
    headers.set("X-Content-Sha256", &sha).unwrap();
    headers.set("Authorization", &auth).unwrap();
    headers.set("Content-Type", "application/json").unwrap();
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    let url = format!("{}/?{query}", e.server.trim_end_matches('/'));
    let request = Request::new_with_str_and_init(&url, &init).unwrap();
    let resp: Response = JsFuture::from(fetch_request(&request))
        .await
        .expect("fetch")
        .dyn_into()
        .unwrap();
    let text = JsFuture::from(resp.text().unwrap()).await.unwrap();
    (resp.status(), text.as_string().unwrap())
}

/// A logged-in engine in a fresh room, and its user and room ids.
async fn logged_in_and_joined() -> (RtcEngine, String, String) {
    let user = uid("u");
    let room = uid("r");
    let engine = engine();
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    let info = obj(&[("userId", user.clone().into())]);
    ok(engine.join_room(
        token(&room, &user).into(),
        room.clone().into(),
        info,
        JsValue::UNDEFINED,
    ))
    .await;
    (engine, user, room)
}

fn message_body(user_fields: &[(&str, JsValue)], from: &str, message: &Message<'_>) -> JsValue {
    let mut fields = vec![
        ("AppId", JsValue::from_str(env().app_id)),
        ("From", from.into()),
    ];
    fields.extend(user_fields.iter().cloned());
    match message {
        Message::Text(t) => {
            fields.push(("Binary", false.into()));
            fields.push(("Message", (*t).into()));
        }
        Message::Binary(b) => {
            fields.push(("Binary", true.into()));
            fields.push(("Message", STANDARD.encode(b).into()));
        }
    }
    obj(&fields)
}

enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Checks one received event payload: `userId` is `from`, `message` the exact text or an
/// `ArrayBuffer` with the exact bytes.
fn check(payload: &JsValue, from: &str, message: &Message<'_>) {
    assert_eq!(get(payload, "userId").as_string().as_deref(), Some(from));
    let m = get(payload, "message");
    match message {
        Message::Text(t) => assert_eq!(m.as_string().as_deref(), Some(*t)),
        Message::Binary(b) => {
            let buf = m.dyn_into::<ArrayBuffer>().expect("an ArrayBuffer");
            assert!(
                Uint8Array::new(&buf).to_vec() == *b,
                "binary payload differs"
            );
        }
    }
}

#[wasm_bindgen_test]
fn exported_enums_and_version() {
    // `events` and `ErrorCode` are plain objects in pkg-template/index.js (checked against the
    // Rust lists by the native test `enums_match_index_js_and_index_d_ts`).
    assert_eq!(ConnectionState::CONNECTION_STATE_CONNECTED as u8, 3);
    assert!(!get_sdk_version().is_empty());
}

#[wasm_bindgen_test]
async fn four_actions_deliver_exact_payloads() {
    let (engine, user, room) = logged_in_and_joined().await;
    let names = [
        "onUserMessageReceivedOutsideRoom",
        "onUserBinaryMessageReceivedOutsideRoom",
        "onUserMessageReceived",
        "onUserBinaryMessageReceived",
        "onRoomMessageReceived",
        "onRoomBinaryMessageReceived",
    ];
    let recs: Vec<Recorder> = names.iter().map(|n| Recorder::on(&engine, n)).collect();

    let big_bin: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect();
    let big_text = "x".repeat(65_536);
    let small_bin: Vec<u8> = (0..=255).collect();
    let batch_bin: Vec<u8> = (0..20_480u32).map(|i| i as u8).collect();
    let text = "héllo \"wörld\" 🌍";
    let from = "biz-server_1";

    type Case<'a> = (&'a str, Vec<(&'a str, JsValue)>, Message<'a>, usize);
    let to: JsValue = user.clone().into();
    let batch_to: JsValue = Array::of2(&to, &"nobody-here".into()).into();
    let room_v: JsValue = room.clone().into();
    let cases: Vec<Case<'_>> = vec![
        (
            "SendUnicast",
            vec![("To", to.clone())],
            Message::Text(text),
            0,
        ),
        (
            "SendUnicast",
            vec![("To", to.clone())],
            Message::Binary(&small_bin),
            1,
        ),
        (
            "SendUnicast",
            vec![("To", to.clone())],
            Message::Binary(&big_bin),
            1,
        ),
        (
            "SendUnicast",
            vec![("To", to.clone())],
            Message::Text(&big_text),
            0,
        ),
        (
            "SendRoomUnicast",
            vec![("RoomId", room_v.clone()), ("To", to.clone())],
            Message::Text(text),
            2,
        ),
        (
            "SendRoomUnicast",
            vec![("RoomId", room_v.clone()), ("To", to.clone())],
            Message::Binary(&big_bin),
            3,
        ),
        (
            "BatchSendRoomUnicast",
            vec![("RoomId", room_v.clone()), ("To", batch_to.clone())],
            Message::Text(text),
            2,
        ),
        (
            "BatchSendRoomUnicast",
            vec![("RoomId", room_v.clone()), ("To", batch_to.clone())],
            Message::Binary(&batch_bin),
            3,
        ),
        (
            "SendBroadcast",
            vec![("RoomId", room_v.clone())],
            Message::Text(text),
            4,
        ),
        (
            "SendBroadcast",
            vec![("RoomId", room_v.clone())],
            Message::Binary(&big_bin),
            5,
        ),
    ];
    for (action, fields, message, event) in &cases {
        let body = message_body(fields, from, message);
        let (status, resp) = openapi(action, &body).await;
        assert_eq!(status, 200, "{action}: {resp}");
        assert!(resp.contains("\"success\""), "{action}: {resp}");
        let got = recs[*event].wait(1).await;
        assert_eq!(got.len(), 1, "{action}: one event");
        check(&got[0], from, message);
        recs[*event].take();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.len(), 0, "{action}: unexpected {}", names[i]);
        }
    }
    ok(engine.leave_room()).await;
    ok(engine.logout()).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn connection_states_login_logout() {
    let user = uid("u");
    let engine = engine();
    let states = Recorder::on(&engine, "onConnectionStateChanged");
    assert_eq!(rejected(engine.logout()).await, "NOT_LOGIN");
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    assert_eq!(
        rejected(engine.login(token("", &user).into(), user.clone().into())).await,
        "ALREADY_LOGIN"
    );
    ok(engine.logout()).await;
    let got: Vec<f64> = states
        .wait(3)
        .await
        .iter()
        .map(|s| get(s, "state").as_f64().unwrap())
        .collect();
    assert_eq!(got, vec![2.0, 3.0, 1.0]);
    // Log in again after logging out.
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn bad_tokens() {
    let e = env();
    let user = uid("u");
    let engine = engine();
    let forged = token_with(e.app_id, "not-the-key", "", &user, now_secs() + 3600);
    assert_eq!(
        rejected(engine.login(forged.into(), user.clone().into())).await,
        "INVALID_TOKEN"
    );
    let expired = token_with(e.app_id, e.app_key, "", &user, now_secs() - 10);
    assert_eq!(
        rejected(engine.login(expired.into(), user.clone().into())).await,
        "TOKEN_EXPIRED"
    );
    let other_user = token("", "someone-else");
    assert_eq!(
        rejected(engine.login(other_user.into(), user.clone().into())).await,
        "INVALID_TOKEN"
    );
    assert_eq!(
        rejected(engine.login(JsValue::NULL, user.clone().into())).await,
        "INVALID_TOKEN"
    );
    let info = obj(&[("userId", user.clone().into())]);
    let wrong_room = token("room-a", &user);
    assert_eq!(
        rejected(engine.join_room(wrong_room.into(), "room-b".into(), info, JsValue::UNDEFINED))
            .await,
        "INVALID_TOKEN"
    );
    // The engine still works afterwards.
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn invalid_params_fail_without_a_request() {
    let engine = engine();
    let states = Recorder::on(&engine, "onConnectionStateChanged");
    for bad in ["", "a b", "ä", &"x".repeat(129)] {
        let code = rejected(engine.login(token("", "x").into(), bad.into())).await;
        assert_eq!(code, "INVALID_PARAMS", "{bad:?}");
    }
    assert_eq!(
        rejected(engine.login(token("", "x").into(), JsValue::from(5))).await,
        "INVALID_PARAMS"
    );
    let info = obj(&[("userId", "ok-user".into())]);
    assert_eq!(
        rejected(engine.join_room(
            token("r", "ok-user").into(),
            "bad room".into(),
            info,
            JsValue::UNDEFINED
        ))
        .await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        rejected(engine.join_room(
            token("r", "x").into(),
            "r".into(),
            JsValue::UNDEFINED,
            JsValue::UNDEFINED
        ))
        .await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        rejected(engine.send_server_message("hi".into())).await,
        "NOT_LOGIN"
    );
    sleep(50).await;
    assert_eq!(states.len(), 0, "no connection was opened");
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn rtm_duplicate_login() {
    let user = uid("u");
    let first = engine();
    let errors = Recorder::on(&first, "onError");
    ok(first.login(token("", &user).into(), user.clone().into())).await;
    let second = engine();
    ok(second.login(token("", &user).into(), user.clone().into())).await;
    let got = errors.wait(1).await;
    assert_eq!(
        get(&got[0], "errorCode").as_string().as_deref(),
        Some("RTM_DUPLICATE_LOGIN")
    );
    // The first engine is logged out now.
    assert_eq!(rejected(first.logout()).await, "NOT_LOGIN");
    destroy_engine(&first);
    destroy_engine(&second);
}

#[wasm_bindgen_test]
async fn duplicate_join() {
    let (first, user, room) = logged_in_and_joined().await;
    let errors = Recorder::on(&first, "onError");
    let second = engine();
    let info = obj(&[("userId", user.clone().into())]);
    ok(second.join_room(
        token(&room, &user).into(),
        room.clone().into(),
        info,
        JsValue::UNDEFINED,
    ))
    .await;
    let got = errors.wait(1).await;
    assert_eq!(
        get(&got[0], "errorCode").as_string().as_deref(),
        Some("DUPLICATE_LOGIN")
    );
    // Out of the room, so a new join is possible; it takes the room back.
    let errors2 = Recorder::on(&second, "onError");
    let info = obj(&[("userId", user.clone().into())]);
    ok(first.join_room(
        token(&room, &user).into(),
        room.clone().into(),
        info,
        JsValue::UNDEFINED,
    ))
    .await;
    let got = errors2.wait(1).await;
    assert_eq!(
        get(&got[0], "errorCode").as_string().as_deref(),
        Some("DUPLICATE_LOGIN")
    );
    destroy_engine(&first);
    destroy_engine(&second);
}

#[wasm_bindgen_test]
async fn repeat_join_and_idempotent_leave() {
    let (engine, user, room) = logged_in_and_joined().await;
    let info = obj(&[("userId", user.clone().into())]);
    assert_eq!(
        rejected(engine.join_room(
            token(&room, &user).into(),
            room.clone().into(),
            info,
            JsValue::UNDEFINED
        ))
        .await,
        "REPEAT_JOIN"
    );
    ok(engine.leave_room()).await;
    ok(engine.leave_room()).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn unknown_app_id() {
    let cfg = obj(&[("serverUrl", env().server.into())]);
    let engine = create_engine("ffffffffffffffffffffffff".into(), cfg).unwrap();
    let errors = Recorder::on(&engine, "onError");
    let user = uid("u");
    let code = rejected(engine.login(token("", &user).into(), user.into())).await;
    assert_eq!(code, "INVALID_APP_ID");
    assert_eq!(
        get(&errors.wait(1).await[0], "errorCode")
            .as_string()
            .as_deref(),
        Some("INVALID_APP_ID")
    );
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
fn create_engine_checks_its_arguments() {
    let bad = obj(&[("serverUrl", "ftp://x".into())]);
    let e = create_engine(env().app_id.into(), bad)
        .err()
        .expect("rejected URL");
    assert_eq!(
        get(&e, "code").as_string().as_deref(),
        Some("INVALID_PARAMS")
    );
    assert!(create_engine("".into(), JsValue::UNDEFINED).is_err());
    // Without serverUrl the page's own origin is used.
    assert!(create_engine(env().app_id.into(), JsValue::UNDEFINED).is_ok());
}

#[wasm_bindgen_test]
async fn a_throwing_listener_is_contained() {
    let user = uid("u");
    let engine = engine();
    let thrower = Closure::<dyn FnMut(JsValue)>::new(|_| {
        wasm_bindgen::throw_str("listener failure");
    });
    engine
        .on("onConnectionStateChanged".into(), thrower.into_js_value())
        .unwrap();
    let errors = Recorder::on(&engine, "onError");
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    let got = errors.wait(1).await;
    assert_eq!(
        get(&got[0], "errorCode").as_string().as_deref(),
        Some("UNEXPECTED_ERROR")
    );
    ok(engine.logout()).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn emitter_methods() {
    let engine = engine();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    let f: JsValue =
        Closure::<dyn FnMut(JsValue)>::new(move |_| *c.borrow_mut() += 1).into_js_value();
    engine.on("x".into(), f.clone()).unwrap();
    engine.once("x".into(), f.clone()).unwrap();
    engine.once("y".into(), f.clone()).unwrap();
    assert_eq!(engine.listener_count("x".into()), 2);
    assert_eq!(engine.event_names().length(), 2);
    assert!(engine.emit("x".into(), JsValue::NULL));
    assert_eq!(*calls.borrow(), 2);
    assert_eq!(engine.listener_count("x".into()), 1);
    assert!(engine.emit("x".into(), JsValue::NULL));
    assert_eq!(*calls.borrow(), 3);
    engine.off("x".into(), f.clone());
    assert_eq!(engine.listener_count("x".into()), 0);
    assert!(!engine.emit("x".into(), JsValue::NULL));
    assert_eq!(engine.listeners("y".into()).length(), 1);
    engine.remove_all_listeners(None);
    assert_eq!(engine.event_names().length(), 0);
    assert!(engine.on("x".into(), JsValue::from(1)).is_err());
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn server_message_needs_params_and_valid_size() {
    let user = uid("u");
    let engine = engine();
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    assert_eq!(
        rejected(engine.send_server_message("".into())).await,
        "INVALID_PARAMS"
    );
    let too_big = Uint8Array::new_with_length(65_537);
    assert_eq!(
        rejected(engine.send_server_binary_message(too_big.into())).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        rejected(engine.send_server_binary_message("text".into())).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        rejected(engine.send_server_message("hi".into())).await,
        "USER_MESSAGE_SERVER_PARAMS_NOTSET"
    );
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn openapi_rejects_a_bad_signature() {
    let body = obj(&[
        ("AppId", env().app_id.into()),
        ("From", "s".into()),
        ("To", "u".into()),
        ("Binary", false.into()),
        ("Message", "m".into()),
    ]);
    let (status, resp) = openapi_with("SendUnicast", &body, "wrong-secret").await;
    assert_eq!(status, 401, "{resp}");
    assert!(resp.contains("SignatureDoesNotMatch"), "{resp}");
}

#[wasm_bindgen_test]
async fn listeners_may_call_the_engine() {
    let user = uid("u");
    let engine = Rc::new(engine());
    let inner: Rc<RefCell<Option<Promise>>> = Rc::default();
    let (e, slot) = (engine.clone(), inner.clone());
    let f = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        // Runs while the engine dispatches the login's events.
        *slot.borrow_mut() = Some(e.logout());
    });
    engine
        .once("onLoginResult".into(), f.into_js_value())
        .unwrap();
    let states = Recorder::on(&engine, "onConnectionStateChanged");
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    let logout = inner.borrow_mut().take().expect("the listener ran");
    ok(logout).await;
    let got: Vec<f64> = states
        .wait(3)
        .await
        .iter()
        .map(|s| get(s, "state").as_f64().unwrap())
        .collect();
    assert_eq!(got, vec![2.0, 3.0, 1.0]);
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn each_message_carries_its_own_sender() {
    // The SDK reuses the sender's JS string while the sender stays the same: a change of
    // sender, and a return to the first one, must show in `userId`.
    let (engine, user) = logged_in("senders").await;
    let rec = Recorder::on(&engine, "onUserMessageReceivedOutsideRoom");
    let senders = ["biz-a", "biz-a", "biz.b@x", "biz-a", "biz.b@x", "biz.b@x"];
    for (i, from) in senders.iter().enumerate() {
        let text = format!("message {i}");
        let body = message_body(&[("To", user.clone().into())], from, &Message::Text(&text));
        let (status, resp) = openapi("SendUnicast", &body).await;
        assert_eq!(status, 200, "{resp}");
        let got = rec.wait(i + 1).await;
        check(&got[i], from, &Message::Text(&text));
    }
    ok(engine.logout()).await;
    destroy_engine(&engine);
}

/// A fresh engine logged in as a fresh user.
async fn logged_in(prefix: &str) -> (RtcEngine, String) {
    let user = uid(prefix);
    let engine = engine();
    ok(engine.login(token("", &user).into(), user.clone().into())).await;
    (engine, user)
}

async fn join(engine: &RtcEngine, room: &str, user: &str, extra: Option<&str>) -> Promise {
    let mut fields = vec![("userId", JsValue::from_str(user))];
    if let Some(x) = extra {
        fields.push(("extraInfo", x.into()));
    }
    engine.join_room(
        token(room, user).into(),
        room.into(),
        obj(&fields),
        JsValue::UNDEFINED,
    )
}

fn num(v: &JsValue) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v:?}"))
}

fn str_of(v: &JsValue, k: &str) -> String {
    get(v, k).as_string().unwrap_or_default()
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).buffer().into()
}

/// Checks a `{msgid, error, errorCode}` send-result event.
fn check_result(e: &JsValue, msgid: f64, error: f64, code: Option<&str>) {
    assert_eq!(num(&get(e, "msgid")), msgid);
    assert_eq!(num(&get(e, "error")), error);
    assert_eq!(get(e, "errorCode").as_string().as_deref(), code);
}

#[wasm_bindgen_test]
async fn user_messages_outside_rooms() {
    let (a, alice) = logged_in("a").await;
    let (b, bob) = logged_in("b").await;
    let texts = Recorder::on(&b, "onUserMessageReceivedOutsideRoom");
    let bins = Recorder::on(&b, "onUserBinaryMessageReceivedOutsideRoom");
    let others: Vec<Recorder> = [
        "onUserMessageReceived",
        "onUserBinaryMessageReceived",
        "onRoomMessageReceived",
        "onRoomBinaryMessageReceived",
    ]
    .iter()
    .map(|n| Recorder::on(&b, n))
    .collect();
    let results = Recorder::on(&a, "onUserMessageSendResultOutsideRoom");

    assert_eq!(
        num(&ok(a.get_peer_online_status(bob.clone().into())).await),
        1.0
    );
    assert_eq!(
        num(&ok(a.get_peer_online_status(uid("nobody").into())).await),
        0.0
    );

    let text = "héllo \"wörld\" 🌍";
    let id1 = num(&ok(a.send_user_message_outside_room(bob.clone().into(), text.into())).await);
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 13) as u8).collect();
    let id2 =
        num(&ok(a.send_user_binary_message_outside_room(bob.clone().into(), bytes(&big))).await);
    // A Uint8Array works as well as an ArrayBuffer.
    let id3 = num(&ok(a.send_user_binary_message_outside_room(
        bob.clone().into(),
        Uint8Array::from(&[0u8, 255][..]).into(),
    ))
    .await);
    assert_eq!((id1, id2, id3), (1.0, 2.0, 3.0));
    let got = texts.wait(1).await;
    check(&got[0], &alice, &Message::Text(text));
    let got = bins.wait(2).await;
    check(&got[0], &alice, &Message::Binary(&big));
    check(&got[1], &alice, &Message::Binary(&[0, 255]));
    let got = results.wait(3).await;
    for (i, e) in got.iter().enumerate() {
        check_result(e, i as f64 + 1.0, 0.0, None);
    }
    results.take();
    assert!(others.iter().all(|r| r.len() == 0));

    // A reply travels the other way; bob's engine counts its own ids.
    let back = Recorder::on(&a, "onUserMessageReceivedOutsideRoom");
    let id = num(&ok(b.send_user_message_outside_room(alice.clone().into(), "re".into())).await);
    assert_eq!(id, 1.0);
    check(&back.wait(1).await[0], &bob, &Message::Text("re"));

    // Nobody logged in under that id: no receiver; the id is used and reported.
    let nobody = uid("nobody");
    assert_eq!(
        rejected(a.send_user_message_outside_room(nobody.into(), "x".into())).await,
        "USER_MESSAGE_NO_RECEIVER"
    );
    check_result(
        &results.wait(1).await[0],
        4.0,
        3.0,
        Some("USER_MESSAGE_NO_RECEIVER"),
    );
    results.take();

    // Checked before sending: no id used, no event.
    for (to, msg) in [
        (JsValue::from_str(&bob), JsValue::from_str("")),
        (JsValue::from_str(&bob), JsValue::from(5)),
        (JsValue::from_str("bad id"), JsValue::from_str("x")),
        (JsValue::from(7), JsValue::from_str("x")),
        (JsValue::from_str(&alice), JsValue::from_str("to myself")),
        (
            JsValue::from_str(&bob),
            JsValue::from_str(&"x".repeat(65_537)),
        ),
    ] {
        assert_eq!(
            rejected(a.send_user_message_outside_room(to.clone(), msg.clone())).await,
            "INVALID_PARAMS",
            "{to:?} {msg:?}"
        );
    }
    for msg in [bytes(&[]), bytes(&vec![1; 65_537]), "text".into()] {
        assert_eq!(
            rejected(a.send_user_binary_message_outside_room(bob.clone().into(), msg)).await,
            "INVALID_PARAMS"
        );
    }
    // The counter is shared with server messages: a failed one uses an id too.
    assert_eq!(
        rejected(a.send_server_message("srv".into())).await,
        "USER_MESSAGE_SERVER_PARAMS_NOTSET"
    );
    let id = num(&ok(a.send_user_message_outside_room(bob.clone().into(), "next".into())).await);
    assert_eq!(id, 6.0);
    assert_eq!(
        results.wait(1).await.len(),
        1,
        "no events for local failures"
    );

    // Logged out: NOT_LOGIN, and bob sees alice offline.
    ok(a.logout()).await;
    assert_eq!(
        rejected(a.send_user_message_outside_room(bob.clone().into(), "x".into())).await,
        "NOT_LOGIN"
    );
    assert_eq!(
        num(&ok(b.get_peer_online_status(alice.clone().into())).await),
        0.0
    );
    assert_eq!(
        rejected(b.send_user_message_outside_room(alice.into(), "x".into())).await,
        "USER_MESSAGE_NO_RECEIVER"
    );
    assert_eq!(
        rejected(a.get_peer_online_status(bob.into())).await,
        "NOT_LOGIN"
    );
    destroy_engine(&a);
    destroy_engine(&b);
}

#[wasm_bindgen_test]
async fn room_messages_and_members_with_three_engines() {
    let room = uid("r");
    let (a, alice) = logged_in("a").await;
    let joined_a = Recorder::on(&a, "onUserJoined");
    let left_a = Recorder::on(&a, "onUserLeave");
    ok(join(&a, &room, &alice, Some("alice's info")).await).await;

    // bob joins without logging in; carol with 200 bytes of extra info.
    let bob = uid("b");
    let b = engine();
    let joined_b = Recorder::on(&b, "onUserJoined");
    ok(join(&b, &room, &bob, None).await).await;
    let (c, carol) = logged_in("c").await;
    let carol_info = "é".repeat(100);
    assert_eq!(
        rejected(join(&c, &room, &carol, Some(&"x".repeat(201))).await).await,
        "INVALID_PARAMS"
    );
    ok(join(&c, &room, &carol, Some(&carol_info)).await).await;

    let got = joined_a.wait(2).await;
    let info = |e: &JsValue| {
        let i = get(e, "userInfo");
        (str_of(&i, "userId"), str_of(&i, "extraInfo"))
    };
    assert_eq!(info(&got[0]), (bob.clone(), String::new()));
    assert_eq!(info(&got[1]), (carol.clone(), carol_info.clone()));
    // Those already in the room are announced to a newcomer.
    let got = joined_b.wait(2).await;
    let mut seen: Vec<(String, String)> = got.iter().map(info).collect();
    seen.sort();
    let mut want = vec![
        (alice.clone(), "alice's info".to_owned()),
        (carol.clone(), carol_info.clone()),
    ];
    want.sort();
    assert_eq!(seen, want);

    let names = [
        "onUserMessageReceived",
        "onUserBinaryMessageReceived",
        "onRoomMessageReceived",
        "onRoomBinaryMessageReceived",
        "onUserMessageReceivedOutsideRoom",
        "onUserBinaryMessageReceivedOutsideRoom",
    ];
    let rec =
        |e: &RtcEngine| -> Vec<Recorder> { names.iter().map(|n| Recorder::on(e, n)).collect() };
    let (ra, rb, rc) = (rec(&a), rec(&b), rec(&c));
    let user_results = Recorder::on(&a, "onUserMessageSendResult");
    let room_results = Recorder::on(&a, "onRoomMessageSendResult");

    let mut ids = Vec::new();
    ids.push(num(&ok(
        a.send_user_message(bob.clone().into(), "to bob".into())
    )
    .await));
    ids.push(num(&ok(a.send_user_binary_message(
        carol.clone().into(),
        bytes(&[9, 8, 7]),
    ))
    .await));
    ids.push(num(&ok(a.send_room_message("to all".into())).await));
    ids.push(num(&ok(a.send_room_binary_message(
        Uint8Array::from(&[1u8, 2][..]).into(),
    ))
    .await));
    assert_eq!(ids, vec![1.0, 2.0, 3.0, 4.0]);
    check(&rb[0].wait(1).await[0], &alice, &Message::Text("to bob"));
    check(
        &rc[1].wait(1).await[0],
        &alice,
        &Message::Binary(&[9, 8, 7]),
    );
    for r in [&rb, &rc] {
        check(&r[2].wait(1).await[0], &alice, &Message::Text("to all"));
        check(&r[3].wait(1).await[0], &alice, &Message::Binary(&[1, 2]));
    }
    sleep(100).await;
    let counts = |r: &[Recorder]| r.iter().map(Recorder::len).collect::<Vec<_>>();
    assert_eq!(counts(&ra), vec![0; 6], "the sender gets nothing");
    assert_eq!(counts(&rb), vec![1, 0, 1, 1, 0, 0]);
    assert_eq!(counts(&rc), vec![0, 1, 1, 1, 0, 0]);
    let got = user_results.wait(2).await;
    check_result(&got[0], 1.0, 0.0, None);
    check_result(&got[1], 2.0, 0.0, None);
    let got = room_results.wait(2).await;
    check_result(&got[0], 3.0, 0.0, None);
    check_result(&got[1], 4.0, 0.0, None);

    // bob (not logged in) replies in the room; his ids start at 1.
    assert_eq!(num(&ok(b.send_room_message("hi all".into())).await), 1.0);
    check(&ra[2].wait(1).await[0], &bob, &Message::Text("hi all"));
    check(&rc[2].wait(2).await[1], &bob, &Message::Text("hi all"));
    // ...but may not send outside rooms.
    assert_eq!(
        rejected(b.send_user_message_outside_room(alice.clone().into(), "x".into())).await,
        "NOT_LOGIN"
    );

    // Failures: not in the room, to oneself, empty, oversize.
    let (d, dave) = logged_in("d").await;
    assert_eq!(
        rejected(a.send_user_message(dave.clone().into(), "x".into())).await,
        "USER_MESSAGE_NO_RECEIVER"
    );
    check_result(
        &user_results.wait(3).await[2],
        5.0,
        3.0,
        Some("USER_MESSAGE_NO_RECEIVER"),
    );
    assert_eq!(
        rejected(d.send_user_message(alice.clone().into(), "x".into())).await,
        "USER_MESSAGE_NOT_JOIN"
    );
    assert_eq!(
        rejected(d.send_room_message("x".into())).await,
        "USER_MESSAGE_NOT_JOIN"
    );
    assert_eq!(
        rejected(d.send_room_binary_message(bytes(&[1]))).await,
        "USER_MESSAGE_NOT_JOIN"
    );
    for p in [
        a.send_user_message(alice.clone().into(), "me".into()),
        a.send_user_message(bob.clone().into(), "".into()),
        a.send_user_binary_message(bob.clone().into(), bytes(&vec![0; 65_537])),
        a.send_room_message("".into()),
        a.send_room_message(JsValue::NULL),
        a.send_room_binary_message(bytes(&vec![0; 65_537])),
    ] {
        assert_eq!(rejected(p).await, "INVALID_PARAMS");
    }

    // carol leaves: QUIT (0). bob's engine is destroyed: DROPPED (1).
    ok(c.leave_room()).await;
    let got = left_a.wait(1).await;
    assert_eq!(info(&got[0]), (carol.clone(), carol_info.clone()));
    assert_eq!(num(&get(&got[0], "reason")), 0.0);
    destroy_engine(&b);
    let got = left_a.wait(2).await;
    assert_eq!(info(&got[1]), (bob.clone(), String::new()));
    assert_eq!(num(&get(&got[1], "reason")), 1.0);
    // Nobody left to receive; a room message still succeeds.
    assert_eq!(num(&ok(a.send_room_message("alone".into())).await), 6.0);
    ok(a.leave_room()).await;
    assert_eq!(
        rejected(a.send_room_message("x".into())).await,
        "USER_MESSAGE_NOT_JOIN"
    );
    destroy_engine(&a);
    destroy_engine(&c);
    destroy_engine(&d);
}

#[wasm_bindgen_test]
async fn a_burst_of_messages_exceeds_the_rate() {
    // The test server runs with the default budget: 100 messages at once per connection.
    let (a, _) = logged_in("a").await;
    let (b, bob) = logged_in("b").await;
    let received = Recorder::on(&b, "onUserMessageReceivedOutsideRoom");
    let results = Recorder::on(&a, "onUserMessageSendResultOutsideRoom");
    let calls: Vec<Promise> = (0..150)
        .map(|i| a.send_user_message_outside_room(bob.clone().into(), i.to_string().into()))
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, p) in calls.into_iter().enumerate() {
        match JsFuture::from(p).await {
            Ok(id) => {
                assert_eq!(num(&id), i as f64 + 1.0, "ids follow the calls");
                accepted.push(i);
            }
            Err(e) => {
                assert_eq!(str_of(&e, "code"), "USER_MESSAGE_EXCEED_QPS");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some of the burst is refused");
    assert!(
        accepted.len() >= 100,
        "the burst allowance is used: {}",
        accepted.len()
    );
    // Exactly the accepted messages arrive, in order.
    let got = received.wait(accepted.len()).await;
    let texts: Vec<String> = got.iter().map(|e| str_of(e, "message")).collect();
    let want: Vec<String> = accepted.iter().map(|i| i.to_string()).collect();
    assert_eq!(texts, want);
    let got = results.wait(150).await;
    let qps = got.iter().filter(|e| num(&get(e, "error")) == 5.0).count();
    assert_eq!(qps, refused);
    // The budget refills.
    sleep(300).await;
    assert_eq!(
        num(&ok(a.send_user_message_outside_room(bob.into(), "later".into())).await),
        151.0
    );
    destroy_engine(&a);
    destroy_engine(&b);
}

#[wasm_bindgen_test]
async fn invisible_users_receive_and_are_announced_only_when_visible() {
    let room = uid("r");
    let (a, alice) = logged_in("a").await;
    let joined_a = Recorder::on(&a, "onUserJoined");
    let left_a = Recorder::on(&a, "onUserLeave");
    ok(join(&a, &room, &alice, None).await).await;
    let (b, bob) = logged_in("b").await;
    let joined_b = Recorder::on(&b, "onUserJoined");
    let room_b = Recorder::on(&b, "onRoomMessageReceived");
    assert_eq!(
        rejected(b.set_user_visibility("no".into())).await,
        "INVALID_PARAMS"
    );
    // Set before the join: bob joins as an invisible audience member.
    ok(b.set_user_visibility(false.into())).await;
    ok(join(&b, &room, &bob, Some("bob's info")).await).await;
    let user_id = |e: &JsValue| str_of(&get(e, "userInfo"), "userId");
    assert_eq!(user_id(&joined_b.wait(1).await[0]), alice);
    ok(a.send_room_message("hello".into())).await;
    check(&room_b.wait(1).await[0], &alice, &Message::Text("hello"));
    assert_eq!(joined_a.len(), 0, "alice is not told about bob");
    // Visible: a join for alice; invisible again: a leave with SWITCH_TO_INVISIBLE.
    ok(b.set_user_visibility(true.into())).await;
    let got = joined_a.wait(1).await;
    assert_eq!(user_id(&got[0]), bob);
    assert_eq!(str_of(&get(&got[0], "userInfo"), "extraInfo"), "bob's info");
    ok(b.set_user_visibility(false.into())).await;
    let got = left_a.wait(1).await;
    assert_eq!(user_id(&got[0]), bob);
    assert_eq!(num(&get(&got[0], "reason")), 2.0);
    // An invisible member leaves unannounced.
    ok(b.leave_room()).await;
    sleep(200).await;
    assert_eq!(left_a.len(), 1);
    destroy_engine(&a);
    destroy_engine(&b);
}
