//! The page's or worker's connectivity hints: `online`/`offline` on the global scope,
//! `pageshow` (a page restored from the back/forward cache) and `visibilitychange` on the
//! document. The callbacks only forward to the driver; dropping the watch removes them.

use std::rc::Weak;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::EventTarget;

use crate::driver::Driver;

type Callback = Closure<dyn FnMut()>;

/// The listeners of one engine.
#[must_use = "dropping the watch removes its listeners"]
pub(crate) struct NetworkWatch {
    listeners: Vec<(EventTarget, &'static str, Callback)>,
}

impl NetworkWatch {
    /// Listens on the global scope (a window or a worker) and, in a page, on its document.
    pub(crate) fn new(driver: Weak<Driver>) -> NetworkWatch {
        let mut listeners = Vec::new();
        let global = js_sys::global();
        let document = js_sys::Reflect::get(&global, &"document".into())
            .ok()
            .and_then(|d| d.dyn_into::<EventTarget>().ok());
        let targets = [
            (
                global.dyn_ref::<EventTarget>().cloned(),
                "online",
                Some(true),
            ),
            (
                global.dyn_ref::<EventTarget>().cloned(),
                "offline",
                Some(false),
            ),
            (
                global.dyn_ref::<EventTarget>().cloned(),
                "pageshow",
                Some(true),
            ),
            // Only the return to the foreground is a hint; becoming hidden is not.
            (document.clone(), "visibilitychange", None),
        ];
        for (target, event, online) in targets {
            let Some(target) = target else { continue };
            let d = driver.clone();
            let doc = document.clone();
            let callback = Callback::new(move || {
                let online = online.unwrap_or_else(|| is_visible(doc.as_ref()));
                if online || event == "offline" {
                    if let Some(d) = d.upgrade() {
                        d.on_network(online);
                    }
                }
            });
            if target
                .add_event_listener_with_callback(event, callback.as_ref().unchecked_ref())
                .is_ok()
            {
                listeners.push((target, event, callback));
            }
        }
        NetworkWatch { listeners }
    }
}

fn is_visible(document: Option<&EventTarget>) -> bool {
    document
        .and_then(|d| js_sys::Reflect::get(d, &"visibilityState".into()).ok())
        .and_then(|v| v.as_string())
        .is_none_or(|v| v == "visible")
}

impl Drop for NetworkWatch {
    fn drop(&mut self) {
        for (target, event, callback) in &self.listeners {
            let _ = target
                .remove_event_listener_with_callback(event, callback.as_ref().unchecked_ref());
        }
    }
}
