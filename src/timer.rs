//! `setTimeout` bound as a global, so the same build runs in a page, a Worker and an Electron
//! renderer.

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// A pending `setTimeout`; dropping it clears the timer and frees the callback.
#[must_use = "dropping a Timeout cancels it"]
pub(crate) struct Timeout {
    id: JsValue,
    /// The engine deadline this timer was armed for.
    pub(crate) deadline: u64,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    /// Calls `f` after `ms` milliseconds, unless dropped first.
    pub(crate) fn new(ms: u64, deadline: u64, f: impl FnOnce() + 'static) -> Timeout {
        let callback = Closure::once(f);
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms as f64);
        Timeout {
            id,
            deadline,
            _callback: callback,
        }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}
