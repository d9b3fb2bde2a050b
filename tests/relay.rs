//! Messages to the business server (`setServerParams`, `sendServerMessage`,
//! `sendServerBinaryMessage`) in a page of headless Chromium, through a real `rtm-server` to a
//! real business server (`rtm-server business-demo`).
//!
//! Compile-time environment variables, set by `scripts/test.sh`:
//!
//! * `RTM_TEST_SERVER`, `RTM_TEST_APP_ID`, `RTM_TEST_APP_KEY`: as for the browser suite;
//! * `RTM_TEST_BUSINESS`: the demo business server's base URL (allow-listed, its callback
//!   secret given to both processes, its OpenAPI credentials those of the app);
//! * `RTM_TEST_DEAD_CALLBACK`: an allow-listed URL where nothing listens;
//! * `RTM_TEST_CALLBACK_TIMEOUT_MS`: the server's `--callback-timeout-ms`.
//!
//! Unset variables fail every test that needs them.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array, JSON};
use rtm_protocol::token::AccessToken;
use rtm_sdk::{create_engine, destroy_engine, RtcEngine};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Request, Response};
mod util;
use util::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The user id the demo business server pushes as (`bizdemo::DEMO_FROM`).
const DEMO_FROM: &str = "bizdemo";
const SIGNATURE: &str = "signature-issued-by-the-business-server";

struct Env {
    server: &'static str,
    app_id: &'static str,
    app_key: &'static str,
    business: &'static str,
    dead_callback: &'static str,
    timeout_ms: f64,
}

fn env() -> Env {
    fn need(v: Option<&'static str>, name: &str) -> &'static str {
        match v {
            Some(v) if !v.is_empty() => v,
            _ => panic!("{name} is not set: build the relay tests through scripts/test.sh"),
        }
    }
    let timeout = need(
        option_env!("RTM_TEST_CALLBACK_TIMEOUT_MS"),
        "RTM_TEST_CALLBACK_TIMEOUT_MS",
    );
    Env {
        server: need(option_env!("RTM_TEST_SERVER"), "RTM_TEST_SERVER"),
        app_id: need(option_env!("RTM_TEST_APP_ID"), "RTM_TEST_APP_ID"),
        app_key: need(option_env!("RTM_TEST_APP_KEY"), "RTM_TEST_APP_KEY"),
        business: need(option_env!("RTM_TEST_BUSINESS"), "RTM_TEST_BUSINESS").trim_end_matches('/'),
        dead_callback: need(
            option_env!("RTM_TEST_DEAD_CALLBACK"),
            "RTM_TEST_DEAD_CALLBACK",
        ),
        timeout_ms: timeout
            .parse()
            .expect("RTM_TEST_CALLBACK_TIMEOUT_MS is a number"),
    }
}

/// The business server's callback URL (any path but `/console` and `/messages` is one).
fn callback_url() -> String {
    format!("{}/rtm/callback", env().business)
}

fn login_token(user: &str) -> String {
    let e = env();
    let mut t = AccessToken::new(e.app_id, "", user);
    t.nonce = (js_sys::Math::random() * 1e9) as u32;
    t.issued_at = now_secs();
    t.expire_time(now_secs() + 3600);
    t.serialize(e.app_key)
}

fn engine() -> RtcEngine {
    let cfg = Object::new();
    Reflect::set(&cfg, &"serverUrl".into(), &env().server.into()).unwrap();
    create_engine(env().app_id.into(), cfg.into()).expect("createEngine")
}

/// A logged-in engine and its user id.
async fn logged_in() -> (RtcEngine, String) {
    let user = uid("relay");
    let engine = engine();
    ok(engine.login(login_token(&user).into(), user.clone().into())).await;
    (engine, user)
}

/// A logged-in engine whose messages go to the business server.
async fn connected() -> (RtcEngine, String) {
    let (engine, user) = logged_in().await;
    ok(engine.set_server_params(SIGNATURE.into(), callback_url().into())).await;
    (engine, user)
}

/// The `{msgId, response}` of a resolved send: the message id and the reply parsed as JSON.
fn result_of(v: &JsValue) -> (f64, JsValue) {
    let msg_id = get(v, "msgId").as_f64().expect("msgId is a number");
    let response = get(v, "response")
        .as_string()
        .expect("response is a string");
    let json = JSON::parse(&response).unwrap_or_else(|_| panic!("not JSON: {response}"));
    (msg_id, json)
}

/// `GET {business}/messages?user=U`: the messages the business server logged for `user`.
async fn business_log(user: &str) -> Vec<JsValue> {
    let url = format!("{}/messages?user={user}", env().business);
    let req = Request::new_with_str(&url).unwrap();
    let resp: Response = JsFuture::from(fetch_request(&req))
        .await
        .expect("fetch /messages")
        .dyn_into()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = JsFuture::from(resp.text().unwrap()).await.unwrap();
    let body = JSON::parse(&text.as_string().unwrap()).unwrap();
    assert_eq!(get(&body, "user").as_string().as_deref(), Some(user));
    get(&body, "messages")
        .dyn_into::<Array>()
        .expect("messages is an array")
        .to_vec()
}

/// A flag set when `p` settles.
fn settled_flag(p: &Promise) -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(false));
    let (a, b) = (flag.clone(), flag.clone());
    let on_ok = Closure::<dyn FnMut(JsValue)>::new(move |_| a.set(true));
    let on_err = Closure::<dyn FnMut(JsValue)>::new(move |_| b.set(true));
    let _ = p.then2(&on_ok, &on_err);
    on_ok.forget();
    on_err.forget();
    flag
}

// ---------------------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn text_and_binary_round_trip_with_the_reply_body() {
    let (engine, user) = logged_in().await;
    let params = Recorder::on(&engine, "onServerParamsSetResult");
    let results = Recorder::on(&engine, "onServerMessageSendResult");
    ok(engine.set_server_params(SIGNATURE.into(), callback_url().into())).await;
    let got = params.wait(1).await;
    assert!(
        got[0].is_undefined(),
        "success is reported without an argument"
    );

    // Text, with characters outside ASCII and JSON's special characters.
    let text = "héllo \"wörld\" 🌍\n\\";
    let first = ok(engine.send_server_message(text.into())).await;
    let (id1, reply) = result_of(&first);
    assert_eq!(get(&reply, "ok"), JsValue::TRUE);
    assert_eq!(get(&reply, "echo").as_string().as_deref(), Some(text));
    assert_eq!(get(&reply, "received").as_f64(), Some(1.0));
    assert!(get(&reply, "prev").is_null());

    // Binary from a Uint8Array: every byte value.
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let second = ok(engine.send_server_binary_message(Uint8Array::from(&bytes[..]).into())).await;
    let (id2, reply) = result_of(&second);
    assert_eq!(get(&reply, "binary"), JsValue::TRUE);
    assert_eq!(get(&reply, "echo").as_f64(), Some(1000.0));
    assert_eq!(
        get(&reply, "head").as_string().as_deref(),
        Some("000102030405060708090a0b0c0d0e0f")
    );
    assert_eq!(get(&reply, "received").as_f64(), Some(2.0));
    assert_eq!(get(&reply, "prev").as_f64(), Some(id1));

    // Binary from an ArrayBuffer, at the 65,536-byte limit.
    let big: Vec<u8> = (0..65_536u32).map(|i| (255 - i % 256) as u8).collect();
    let buf: ArrayBuffer = Uint8Array::from(&big[..]).buffer();
    let third = ok(engine.send_server_binary_message(buf.into())).await;
    let (id3, reply) = result_of(&third);
    assert_eq!(get(&reply, "echo").as_f64(), Some(65_536.0));
    assert_eq!(
        get(&reply, "head").as_string().as_deref(),
        Some("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0")
    );
    assert_eq!(get(&reply, "prev").as_f64(), Some(id2));

    // Text at the 65,536-byte limit (32,768 two-byte characters); the demo cuts its echo
    // to keep the reply under the server's 64 KiB cap on reply bodies.
    let max_text = "é".repeat(32_768);
    let fourth = ok(engine.send_server_message(max_text.as_str().into())).await;
    let (id4, reply) = result_of(&fourth);
    assert_eq!(get(&reply, "truncated"), JsValue::TRUE);
    assert_eq!(get(&reply, "len").as_f64(), Some(65_536.0));
    assert_eq!(get(&reply, "echo").as_string(), Some("é".repeat(4_096)));

    assert!(
        id1 < id2 && id2 < id3 && id3 < id4,
        "message ids increase: {id1} {id2} {id3} {id4}"
    );

    // The native-API event, once per message, with the same id and body.
    let events = results.wait(4).await;
    assert_eq!(events.len(), 4);
    for (event, resolved) in events.iter().zip([&first, &second, &third, &fourth]) {
        assert_eq!(
            get(event, "msgid").as_f64(),
            get(resolved, "msgId").as_f64()
        );
        assert_eq!(get(event, "error").as_f64(), Some(0.0));
        assert_eq!(
            get(event, "message").as_string(),
            get(resolved, "response").as_string()
        );
    }

    // The business server logged them for this user (from X-Rtm-User-Id), in order.
    let log = business_log(&user).await;
    assert_eq!(log.len(), 4);
    let ids: Vec<f64> = log
        .iter()
        .map(|m| get(m, "msgId").as_f64().unwrap())
        .collect();
    assert_eq!(ids, vec![id1, id2, id3, id4]);
    assert_eq!(get(&log[3], "len").as_f64(), Some(65_536.0));
    assert_eq!(get(&log[0], "text").as_string().as_deref(), Some(text));
    assert_eq!(get(&log[2], "len").as_f64(), Some(65_536.0));
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn an_error_status_is_server_response_error() {
    let (engine, _) = connected().await;
    let results = Recorder::on(&engine, "onServerMessageSendResult");
    assert_eq!(
        rejected(engine.send_server_message("/fail".into())).await,
        "USER_MESSAGE_SERVER_RESPONSE_ERROR"
    );
    let got = results.wait(1).await;
    assert_eq!(get(&got[0], "error").as_f64(), Some(18.0));
    assert!(get(&got[0], "msgid").as_f64().is_some());
    assert!(
        get(&got[0], "message")
            .as_string()
            .unwrap_or_default()
            .contains("failing as asked"),
        "the error body is reported: {:?}",
        get(&got[0], "message")
    );
    // The user's pipe goes on.
    let (_, reply) = result_of(&ok(engine.send_server_message("after".into())).await);
    assert_eq!(get(&reply, "echo").as_string().as_deref(), Some("after"));
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn a_refused_connection_is_send_to_server_error() {
    let (engine, _) = logged_in().await;
    let results = Recorder::on(&engine, "onServerMessageSendResult");
    ok(engine.set_server_params(SIGNATURE.into(), env().dead_callback.into())).await;
    let started = js_sys::Date::now();
    assert_eq!(
        rejected(engine.send_server_message("anyone there?".into())).await,
        "USER_MESSAGE_SEND_TO_SERVER_ERROR"
    );
    let elapsed = js_sys::Date::now() - started;
    assert!(
        elapsed < env().timeout_ms + 3000.0,
        "failed after {elapsed} ms"
    );
    let got = results.wait(1).await;
    assert_eq!(get(&got[0], "error").as_f64(), Some(17.0));
    // Pointing back at a live business server works again.
    ok(engine.set_server_params(SIGNATURE.into(), callback_url().into())).await;
    ok(engine.send_server_message("back".into())).await;
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn a_reply_slower_than_the_timeout_is_send_to_server_error_within_the_timeout() {
    let (engine, _) = connected().await;
    let timeout = env().timeout_ms;
    let slow = format!("/slow {}", timeout as u64 + 5000);
    let started = js_sys::Date::now();
    assert_eq!(
        rejected(engine.send_server_message(slow.into())).await,
        "USER_MESSAGE_SEND_TO_SERVER_ERROR"
    );
    let elapsed = js_sys::Date::now() - started;
    // Not before the server's deadline (less a little for clock granularity), and not much after.
    assert!(
        elapsed >= timeout - 100.0,
        "failed early, after {elapsed} ms"
    );
    assert!(elapsed < timeout + 3000.0, "failed after {elapsed} ms");
    // The next message is not held up by the abandoned one.
    let (_, reply) = result_of(&ok(engine.send_server_message("next".into())).await);
    assert_eq!(get(&reply, "echo").as_string().as_deref(), Some("next"));
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn a_url_outside_the_allow_list_is_refused() {
    let (engine, _) = logged_in().await;
    let params = Recorder::on(&engine, "onServerParamsSetResult");
    let business = env().business;
    let port = business.rsplit_once(':').map(|(_, p)| p).expect("a port");
    let refused = [
        "https://example.com/callback".to_owned(),
        // Loopback under another name than the allow-list's.
        format!("http://localhost:{port}/callback"),
        // Another scheme for the same endpoint.
        format!("https://127.0.0.1:{port}/callback"),
    ];
    for url in &refused {
        assert_eq!(
            rejected(engine.set_server_params(SIGNATURE.into(), url.as_str().into())).await,
            "CALLBACK_URL_NOT_ALLOWED",
            "{url}"
        );
    }
    let got = params.wait(refused.len()).await;
    for (event, url) in got.iter().zip(&refused) {
        assert_eq!(
            event.as_string().as_deref(),
            Some("CALLBACK_URL_NOT_ALLOWED"),
            "onServerParamsSetResult(code) for {url}: {event:?}"
        );
    }
    // Empty arguments are refused by the SDK itself, also through the event.
    assert_eq!(
        rejected(engine.set_server_params("".into(), callback_url().into())).await,
        "INVALID_PARAMS"
    );
    assert_eq!(
        rejected(engine.set_server_params(SIGNATURE.into(), "".into())).await,
        "INVALID_PARAMS"
    );
    let got = params.wait(refused.len() + 2).await;
    assert_eq!(
        got[refused.len()].as_string().as_deref(),
        Some("INVALID_PARAMS")
    );
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn params_never_set() {
    let (engine, _) = logged_in().await;
    assert_eq!(
        rejected(engine.send_server_message("hi".into())).await,
        "USER_MESSAGE_SERVER_PARAMS_NOTSET"
    );
    assert_eq!(
        rejected(engine.send_server_binary_message(Uint8Array::from(&[1u8][..]).into())).await,
        "USER_MESSAGE_SERVER_PARAMS_NOTSET"
    );
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn not_logged_in() {
    let engine = engine();
    assert_eq!(
        rejected(engine.send_server_message("hi".into())).await,
        "NOT_LOGIN"
    );
    assert_eq!(
        rejected(engine.send_server_binary_message(Uint8Array::from(&[1u8][..]).into())).await,
        "NOT_LOGIN"
    );
    assert_eq!(
        rejected(engine.set_server_params(SIGNATURE.into(), callback_url().into())).await,
        "NOT_LOGIN"
    );
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn empty_and_oversize_messages_are_invalid_params() {
    let (engine, user) = connected().await;
    let results = Recorder::on(&engine, "onServerMessageSendResult");
    let cases: Vec<(&str, Promise)> = vec![
        ("empty text", engine.send_server_message("".into())),
        (
            "empty bytes",
            engine.send_server_binary_message(Uint8Array::new_with_length(0).into()),
        ),
        (
            "empty buffer",
            engine.send_server_binary_message(ArrayBuffer::new(0).into()),
        ),
        (
            "65,537 bytes",
            engine.send_server_binary_message(Uint8Array::new_with_length(65_537).into()),
        ),
        (
            "65,537-byte text",
            engine.send_server_message("x".repeat(65_537).into()),
        ),
        (
            // 32,769 two-byte characters: 65,538 UTF-8 bytes.
            "65,538-byte UTF-8 text",
            engine.send_server_message("é".repeat(32_769).into()),
        ),
        ("not a string", engine.send_server_message(JsValue::from(5))),
        (
            "not bytes",
            engine.send_server_binary_message("text".into()),
        ),
    ];
    for (name, p) in cases {
        assert_eq!(rejected(p).await, "INVALID_PARAMS", "{name}");
    }
    // Nothing reached the business server.
    sleep(100).await;
    assert!(business_log(&user).await.is_empty());
    assert_eq!(results.len(), 0);
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn a_thousand_messages_arrive_in_order() {
    const N: usize = 1000;
    let (engine, user) = connected().await;
    let all: Array = (0..N)
        .map(|i| JsValue::from(engine.send_server_message(format!("m{i}").into())))
        .collect();
    let results: Vec<JsValue> = ok(Promise::all(&all))
        .await
        .dyn_into::<Array>()
        .unwrap()
        .to_vec();
    assert_eq!(results.len(), N);
    let mut last = f64::NEG_INFINITY;
    let mut ids = Vec::with_capacity(N);
    for (i, r) in results.iter().enumerate() {
        let (id, reply) = result_of(r);
        assert!(id > last, "message ids increase at {i}");
        assert_eq!(
            get(&reply, "echo").as_string(),
            Some(format!("m{i}")),
            "reply {i}"
        );
        // The business server had seen exactly the messages before this one.
        assert_eq!(get(&reply, "received").as_f64(), Some((i + 1) as f64));
        if i > 0 {
            assert_eq!(get(&reply, "prev").as_f64(), Some(last), "prev of {i}");
        }
        last = id;
        ids.push(id);
    }
    let log = business_log(&user).await;
    assert_eq!(log.len(), N);
    for (i, m) in log.iter().enumerate() {
        assert_eq!(
            get(m, "text").as_string(),
            Some(format!("m{i}")),
            "arrival {i}"
        );
        assert_eq!(get(m, "msgId").as_f64(), Some(ids[i]), "arrival {i}");
    }
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn echo_pushes_back_through_the_openapi() {
    let (engine, _) = connected().await;
    let received = Recorder::on(&engine, "onUserMessageReceivedOutsideRoom");
    let (_, reply) = result_of(&ok(engine.send_server_message("/echo hi".into())).await);
    let push = get(&reply, "push");
    assert_eq!(
        get(&push, "status").as_f64(),
        Some(200.0),
        "the demo's SendUnicast: {:?}",
        JSON::stringify(&push)
    );
    let got = received.wait(1).await;
    assert_eq!(
        get(&got[0], "userId").as_string().as_deref(),
        Some(DEMO_FROM)
    );
    assert_eq!(get(&got[0], "message").as_string().as_deref(), Some("hi"));
    destroy_engine(&engine);
}

#[wasm_bindgen_test]
async fn a_slow_answer_for_one_user_does_not_stall_another() {
    let timeout = env().timeout_ms;
    let (a, _) = connected().await;
    let (b, _) = connected().await;
    // Slow, but within the timeout: A's message succeeds in the end.
    let slow_ms = (timeout * 0.75) as u64;
    let a_started = js_sys::Date::now();
    let a_pending = a.send_server_message(format!("/slow {slow_ms}").into());
    let a_done = settled_flag(&a_pending);
    sleep(100).await;
    let b_started = js_sys::Date::now();
    let (_, reply) = result_of(&ok(b.send_server_message("not stalled".into())).await);
    let b_elapsed = js_sys::Date::now() - b_started;
    assert_eq!(
        get(&reply, "echo").as_string().as_deref(),
        Some("not stalled")
    );
    assert!(
        !a_done.get(),
        "B answered after {b_elapsed} ms, but only after A's slow message settled"
    );
    ok(a_pending).await;
    let a_elapsed = js_sys::Date::now() - a_started;
    assert!(
        a_elapsed >= slow_ms as f64 - 50.0,
        "A's answer was slow: {a_elapsed} ms"
    );
    assert!(
        b_elapsed < a_elapsed,
        "B ({b_elapsed} ms) did not wait for A ({a_elapsed} ms)"
    );
    destroy_engine(&a);
    destroy_engine(&b);
}
