//! Helpers shared by the browser test targets (`browser`, `worker`, `relay`, `restart`).
// Each target uses a different subset.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Reflect};
use rtm_sdk::RtcEngine;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Request;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (a page's or a worker's).
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch_request(req: &Request) -> Promise;
    /// The global `setTimeout`.
    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(f: &js_sys::Function, ms: f64) -> JsValue;
}

/// The current Unix time in seconds.
pub fn now_secs() -> u32 {
    (js_sys::Date::now() / 1000.0) as u32
}

/// A user or room id unique to this run and test.
pub fn uid(prefix: &str) -> String {
    let r = (js_sys::Math::random() * 1e9) as u64;
    format!("{prefix}-{}-{r}", js_sys::Date::now() as u64)
}

/// `v[k]`.
pub fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, f64::from(ms));
    });
    JsFuture::from(p).await.unwrap();
}

/// Awaits a resolution, failing the test with the rejection's code and message.
pub async fn ok(p: Promise) -> JsValue {
    match JsFuture::from(p).await {
        Ok(v) => v,
        Err(e) => panic!("rejected: {:?} {:?}", get(&e, "code"), get(&e, "message")),
    }
}

/// Awaits a rejection and returns its `code` after checking it is an `SDKError`.
pub async fn rejected(p: Promise) -> String {
    let e = JsFuture::from(p).await.expect_err("expected a rejection");
    assert!(e.is_instance_of::<js_sys::Error>(), "not an Error: {e:?}");
    assert_eq!(get(&e, "name").as_string().as_deref(), Some("SDKError"));
    get(&e, "code").as_string().expect("code")
}

/// Records every emission of `event` (first argument, or `undefined`).
#[derive(Clone)]
pub struct Recorder(Rc<RefCell<Vec<JsValue>>>);

impl Recorder {
    /// Starts recording `event` of `engine`.
    pub fn on(engine: &RtcEngine, event: &str) -> Recorder {
        let rec = Recorder(Rc::default());
        let r = rec.0.clone();
        let f = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| r.borrow_mut().push(v));
        // The listener's lifetime is the test page's: JS owns it from here.
        engine.on(event.into(), f.into_js_value()).unwrap();
        rec
    }

    /// How many emissions arrived.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Every emission so far.
    pub fn all(&self) -> Vec<JsValue> {
        self.0.borrow().clone()
    }

    /// Every emission so far, forgetting them.
    pub fn take(&self) -> Vec<JsValue> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    /// Waits (up to 5 s) until `n` emissions arrived, and returns them.
    pub async fn wait(&self, n: usize) -> Vec<JsValue> {
        for _ in 0..500 {
            if self.len() >= n {
                return self.all();
            }
            sleep(10).await;
        }
        panic!("waited for {n} events, got {}", self.len());
    }

    /// Waits (up to 30 s) until an emission satisfies `f`.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&JsValue) -> bool) -> JsValue {
        for _ in 0..600 {
            if let Some(v) = self.0.borrow().iter().find(|v| f(v)) {
                return v.clone();
            }
            sleep(50).await;
        }
        panic!("waited 30 s for {what}; got {:?}", self.all());
    }
}
