//! The server restarts under a live page (headless Chromium): the SDK reconnects, finds that
//! its session is gone (`RECOVERY_FAILED`), logs in, rejoins its room and sets its server
//! params again by itself, and what the app sent during the outage arrives.
//!
//! The page cannot restart a server, so `scripts/test.sh` runs a second `rtm-server` under
//! `scripts/restart-harness.py`, a test-only supervisor whose control endpoint
//! (`GET /restart?down_ms=N`) stops the server gracefully and starts it again N ms later.
//!
//! Compile-time environment variables, set by `scripts/test.sh`: `RTM_TEST_RESTART_SERVER`
//! (the supervised server), `RTM_TEST_RESTART_CONTROL` (the harness), `RTM_TEST_BUSINESS`
//! (the demo business server, allow-listed on the supervised server), `RTM_TEST_APP_ID`,
//! `RTM_TEST_APP_KEY`. Unset variables fail the test.
#![cfg(target_arch = "wasm32")]

use js_sys::{Object, Reflect};
use rtm_protocol::token::AccessToken;
use rtm_sdk::{create_engine, RtcEngine};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Request, Response};
mod util;
use util::*;

wasm_bindgen_test_configure!(run_in_browser);

fn need(v: Option<&'static str>, name: &str) -> &'static str {
    match v {
        Some(v) if !v.is_empty() => v.trim_end_matches('/'),
        _ => panic!("{name} is not set: build the restart test through scripts/test.sh"),
    }
}

fn server() -> &'static str {
    need(
        option_env!("RTM_TEST_RESTART_SERVER"),
        "RTM_TEST_RESTART_SERVER",
    )
}
fn control() -> &'static str {
    need(
        option_env!("RTM_TEST_RESTART_CONTROL"),
        "RTM_TEST_RESTART_CONTROL",
    )
}
fn business() -> &'static str {
    need(option_env!("RTM_TEST_BUSINESS"), "RTM_TEST_BUSINESS")
}
fn app_id() -> &'static str {
    need(option_env!("RTM_TEST_APP_ID"), "RTM_TEST_APP_ID")
}
fn app_key() -> &'static str {
    need(option_env!("RTM_TEST_APP_KEY"), "RTM_TEST_APP_KEY")
}

fn token(room: &str, user: &str) -> String {
    let now = (js_sys::Date::now() / 1000.0) as u32;
    let mut t = AccessToken::new(app_id(), room, user);
    t.nonce = (js_sys::Math::random() * 1e9) as u32;
    t.issued_at = now;
    t.expire_time(now + 3600);
    t.serialize(app_key())
}

fn engine() -> RtcEngine {
    let cfg = Object::new();
    Reflect::set(&cfg, &"serverUrl".into(), &server().into()).unwrap();
    create_engine(app_id().into(), cfg.into()).expect("createEngine")
}

fn user_info(user: &str) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"userId".into(), &user.into()).unwrap();
    o.into()
}

async fn fetch_text(url: &str) -> String {
    let req = Request::new_with_str(url).unwrap();
    let resp: Response = JsFuture::from(fetch_request(&req))
        .await
        .unwrap_or_else(|e| panic!("fetch {url}: {e:?}"))
        .dyn_into()
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let text = JsFuture::from(resp.text().unwrap()).await.unwrap();
    text.as_string().unwrap()
}

fn state_is(n: f64) -> impl Fn(&JsValue) -> bool {
    move |v| get(v, "state").as_f64() == Some(n)
}

fn error_is(code: &'static str) -> impl Fn(&JsValue) -> bool {
    move |v| get(v, "errorCode").as_string().as_deref() == Some(code)
}

fn message_is(text: &'static str) -> impl Fn(&JsValue) -> bool {
    move |v| get(v, "message").as_string().as_deref() == Some(text)
}

#[wasm_bindgen_test]
async fn the_sdk_comes_back_by_itself_after_a_server_restart() {
    let room = uid("restart-room");
    let (ua, ub) = (uid("ra"), uid("rb"));
    let a = engine();
    let b = engine();
    let a_states = Recorder::on(&a, "onConnectionStateChanged");
    let b_states = Recorder::on(&b, "onConnectionStateChanged");
    let a_errors = Recorder::on(&a, "onError");
    let a_params = Recorder::on(&a, "onServerParamsSetResult");
    let b_room = Recorder::on(&b, "onRoomMessageReceived");
    let a_outside = Recorder::on(&a, "onUserMessageReceivedOutsideRoom");
    for (e, u) in [(&a, &ua), (&b, &ub)] {
        ok(e.login(token("", u).into(), u.clone().into())).await;
        ok(e.join_room(
            token(&room, u).into(),
            room.clone().into(),
            user_info(u),
            JsValue::UNDEFINED,
        ))
        .await;
    }
    let callback = format!("{}/rtm/callback", business());
    ok(a.set_server_params("sig".into(), callback.into())).await;
    a_params.wait_for("params set", JsValue::is_undefined).await;

    // The server goes away (gracefully: its clients are told to reconnect) for 1.5 s.
    assert_eq!(
        fetch_text(&format!("{}/restart?down_ms=1500", control())).await,
        "down"
    );
    a_states.wait_for("RECONNECTING", state_is(4.0)).await;
    // Sent during the outage: waits in the SDK's queue, goes out after the re-login and the
    // automatic setServerParams, and reaches the business server.
    let during = a.send_server_message("sent during the outage".into());

    // Both come back by themselves: RECONNECTED, the session was lost with the old process.
    a_states.wait_for("a RECONNECTED", state_is(5.0)).await;
    b_states.wait_for("b RECONNECTED", state_is(5.0)).await;
    a_errors
        .wait_for("RECOVERY_FAILED", error_is("RECOVERY_FAILED"))
        .await;
    let reply = ok(during).await;
    let response = get(&reply, "response").as_string().unwrap();
    assert!(
        response.contains("sent during the outage"),
        "the business server echoes it: {response}"
    );
    // onServerParamsSetResult fired again, for the automatic setServerParams.
    for _ in 0..100 {
        if a_params.all().len() >= 2 {
            break;
        }
        sleep(50).await;
    }
    let params = a_params.all();
    assert!(params.len() >= 2, "params set again: {params:?}");
    assert!(params[1].is_undefined(), "and it succeeded");

    // Logged in and in the room again, without any call from the app. The other engine may
    // come back a little later: retry until its re-join is done.
    let mut delivered = false;
    for _ in 0..60 {
        ok(a.send_room_message("after the restart".into())).await;
        sleep(250).await;
        if b_room.all().iter().any(message_is("after the restart")) {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "room messages flow again");
    ok(b.send_user_message_outside_room(ua.clone().into(), "hello again".into())).await;
    a_outside
        .wait_for("the outside-room message", message_is("hello again"))
        .await;
    let last = |r: &Recorder| get(r.all().last().unwrap(), "state").as_f64();
    assert_eq!(last(&a_states), Some(5.0));
    assert_eq!(last(&b_states), Some(5.0));
    rtm_sdk::destroy_engine(&a);
    rtm_sdk::destroy_engine(&b);
}
