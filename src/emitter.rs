//! The listener registry behind `on`/`once`/`off`/... (eventemitter3 semantics, string event
//! names only).

use std::cell::RefCell;

use js_sys::{Array, Function};
use wasm_bindgen::JsValue;

struct Listener {
    event: String,
    f: Function,
    once: bool,
}

/// Listeners in registration order.
#[derive(Default)]
pub(crate) struct Emitter {
    list: RefCell<Vec<Listener>>,
}

impl Emitter {
    /// Adds a listener.
    pub(crate) fn add(&self, event: String, f: Function, once: bool) {
        self.list.borrow_mut().push(Listener { event, f, once });
    }

    /// Removes the listeners of `event` that are `f` (every one of them when `f` is `None`).
    pub(crate) fn remove(&self, event: &str, f: Option<&Function>) {
        self.list.borrow_mut().retain(|l| {
            l.event != event || f.is_some_and(|f| JsValue::from(f) != JsValue::from(&l.f))
        });
    }

    /// Removes every listener of `event`, or every listener at all.
    pub(crate) fn remove_all(&self, event: Option<&str>) {
        match event {
            Some(ev) => self.list.borrow_mut().retain(|l| l.event != ev),
            None => self.list.borrow_mut().clear(),
        }
    }

    /// How many listeners `event` has.
    pub(crate) fn count(&self, event: &str) -> usize {
        self.list
            .borrow()
            .iter()
            .filter(|l| l.event == event)
            .count()
    }

    /// The listeners of `event`, in order.
    pub(crate) fn listeners(&self, event: &str) -> Array {
        self.list
            .borrow()
            .iter()
            .filter(|l| l.event == event)
            .map(|l| JsValue::from(&l.f))
            .collect()
    }

    /// The names of the events that have listeners, in first-registration order.
    pub(crate) fn event_names(&self) -> Array {
        let list = self.list.borrow();
        let mut names: Vec<&str> = Vec::new();
        for l in list.iter() {
            if !names.contains(&l.event.as_str()) {
                names.push(&l.event);
            }
        }
        names.into_iter().map(JsValue::from_str).collect()
    }

    /// The listeners to call for one emission of `event`; `once` listeners are removed.
    /// Called before any listener runs, so listeners added or removed meanwhile take effect
    /// from the next emission (as in eventemitter3).
    pub(crate) fn take_for_emit(&self, event: &str) -> Vec<Function> {
        let mut list = self.list.borrow_mut();
        let out = list
            .iter()
            .filter(|l| l.event == event)
            .map(|l| l.f.clone())
            .collect();
        list.retain(|l| !(l.once && l.event == event));
        out
    }
}
