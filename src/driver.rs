//! The one owner of the engine state: commands, socket and timer callbacks all come here; it
//! drains the core's outputs and calls listeners with no borrow held.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Promise, Uint8Array};
use rtm_core::{CallId, Completion, Engine, Error, Event, Payload, Transmit, Value};
use wasm_bindgen::prelude::*;

use crate::emitter::Emitter;
use crate::network::NetworkWatch;
use crate::socket::Socket;
use crate::timer::Timeout;
use crate::{now, sdk_error};

#[derive(Default)]
struct Io {
    socket: Option<Socket>,
    generation: u32,
    timer: Option<Timeout>,
    /// Held for its listeners, removed on drop.
    _network: Option<NetworkWatch>,
}

/// The engine behind one JS `RTCEngine`.
pub(crate) struct Driver {
    core: RefCell<Engine>,
    io: RefCell<Io>,
    /// Promise resolvers of pending calls: (call, resolve, reject).
    calls: RefCell<Vec<(CallId, Function, Function)>>,
    pub(crate) emitter: Emitter,
    pumping: Cell<bool>,
    again: Cell<bool>,
    me: Weak<Driver>,
    /// The sender of the last message and its JS string: most messages come from the sender
    /// of the one before, and each string made from wasm memory costs a `TextDecoder` call
    /// (about 1 µs in Chromium, whatever its length: more than the rest of a message).
    sender: RefCell<(String, JsValue)>,
    /// `"userId"` and `"message"` as JS strings, made once for the same reason.
    keys: [JsValue; 2],
}

impl Driver {
    pub(crate) fn new(core: Engine) -> Rc<Driver> {
        Rc::new_cyclic(|me: &Weak<Driver>| Driver {
            core: RefCell::new(core),
            io: RefCell::new(Io {
                _network: Some(NetworkWatch::new(me.clone())),
                ..Io::default()
            }),
            calls: RefCell::default(),
            emitter: Emitter::default(),
            pumping: Cell::new(false),
            again: Cell::new(false),
            me: me.clone(),
            sender: RefCell::new((String::new(), JsValue::from_str(""))),
            keys: [JsValue::from_str("userId"), JsValue::from_str("message")],
        })
    }

    /// Runs a command on the core and returns the Promise of its result.
    pub(crate) fn call(&self, command: impl FnOnce(&mut Engine, u64) -> CallId) -> Promise {
        let call = command(&mut self.core.borrow_mut(), now());
        let mut resolvers = None;
        let promise = Promise::new(&mut |resolve, reject| resolvers = Some((resolve, reject)));
        if let Some((resolve, reject)) = resolvers {
            self.calls.borrow_mut().push((call, resolve, reject));
        }
        self.pump();
        promise
    }

    /// `destroyEngine`: fails pending calls, closes the socket, clears timer and listeners.
    pub(crate) fn destroy(&self) {
        self.core.borrow_mut().destroy();
        self.pump();
        let io = std::mem::take(&mut *self.io.borrow_mut());
        drop(io);
        self.emitter.remove_all(None);
    }

    pub(crate) fn on_open(&self, generation: u32) {
        if self.is_current(generation) {
            self.core.borrow_mut().handle_connected(now());
            self.pump();
        }
    }

    /// One binary frame arrived, in `data`.
    pub(crate) fn on_frame(&self, generation: u32, data: &Uint8Array) {
        if self.is_current(generation) {
            // `Uint8Array::to_vec` asks the array its length three times; each is a call
            // out of wasm.
            let mut bytes = vec![0; data.length() as usize];
            copy_to(&mut bytes, data);
            self.core.borrow_mut().handle_frame(now(), &bytes);
            self.pump();
        }
    }

    pub(crate) fn on_close(&self, generation: u32, code: u16) {
        if self.is_current(generation) {
            // The socket is finished; dropping it removes its callbacks.
            let socket = self.io.borrow_mut().socket.take();
            drop(socket);
            self.core.borrow_mut().handle_closed(now(), code);
            self.pump();
        }
    }

    /// The page or worker went online or offline, or came back to the foreground.
    pub(crate) fn on_network(&self, online: bool) {
        self.core.borrow_mut().handle_network(now(), online);
        self.pump();
    }

    fn on_timer(&self) {
        self.io.borrow_mut().timer = None;
        self.core.borrow_mut().handle_timeout(now());
        self.pump();
    }

    fn is_current(&self, generation: u32) -> bool {
        let io = self.io.borrow();
        io.socket.is_some() && io.generation == generation
    }

    /// Drains the core: transport actions, then completions, then events, until nothing is
    /// left; then re-arms the timer. Re-entrant calls (a listener calling a method) only ask
    /// the running pump for another round.
    pub(crate) fn pump(&self) {
        if self.pumping.replace(true) {
            self.again.set(true);
            return;
        }
        loop {
            self.again.set(false);
            loop {
                let t = self.core.borrow_mut().poll_transmit();
                match t {
                    Some(t) => self.apply(t),
                    None => break,
                }
            }
            loop {
                let c = self.core.borrow_mut().poll_completion();
                match c {
                    Some(c) => self.settle(c),
                    None => break,
                }
            }
            loop {
                let e = self.core.borrow_mut().poll_event();
                match e {
                    Some(e) => self.dispatch(e),
                    None => break,
                }
            }
            if !self.again.get() {
                break;
            }
        }
        self.rearm_timer();
        self.pumping.set(false);
    }

    fn apply(&self, t: Transmit) {
        match t {
            Transmit::Connect { url } => {
                let generation = {
                    let mut io = self.io.borrow_mut();
                    io.socket = None;
                    io.generation = io.generation.wrapping_add(1);
                    io.generation
                };
                match Socket::open(&url, self.me.clone(), generation) {
                    Ok(s) => self.io.borrow_mut().socket = Some(s),
                    // An unusable URL: report it as a connection that never opened.
                    Err(_) => self.core.borrow_mut().handle_closed(now(), 1006),
                }
            }
            Transmit::Send(bytes) => {
                if let Some(s) = &self.io.borrow().socket {
                    s.send(&bytes);
                }
            }
            Transmit::Close { code } => {
                let socket = self.io.borrow_mut().socket.take();
                if let Some(s) = socket {
                    s.close(code);
                }
            }
        }
    }

    fn rearm_timer(&self) {
        let deadline = self.core.borrow().poll_timeout();
        let mut io = self.io.borrow_mut();
        match deadline {
            None => io.timer = None,
            Some(d) if io.timer.as_ref().is_some_and(|t| t.deadline == d) => {}
            Some(d) => {
                let me = self.me.clone();
                io.timer = Some(Timeout::new(d.saturating_sub(now()), d, move || {
                    if let Some(d) = me.upgrade() {
                        d.on_timer();
                    }
                }));
            }
        }
    }

    fn settle(&self, c: Completion) {
        let found = {
            let mut calls = self.calls.borrow_mut();
            let i = calls.iter().position(|(id, _, _)| *id == c.call);
            i.map(|i| calls.swap_remove(i))
        };
        let Some((_, resolve, reject)) = found else {
            return;
        };
        // Settling a promise schedules its reactions; it never runs user code synchronously.
        let _ = match c.result {
            Ok(v) => resolve.call1(&JsValue::UNDEFINED, &value_to_js(v)),
            Err(e) => reject.call1(&JsValue::UNDEFINED, &sdk_error(e)),
        };
    }

    fn dispatch(&self, e: Event) {
        let name = e.name();
        let arg = match e {
            Event::Message {
                user_id, payload, ..
            } => {
                let message = match payload {
                    Payload::Text(s) => JsValue::from_str(&s),
                    Payload::Binary(b) => array_buffer(&b),
                };
                let o: Props = Object::new().unchecked_into();
                let mut sender = self.sender.borrow_mut();
                if sender.0 != user_id {
                    sender.1 = JsValue::from_str(&user_id);
                    sender.0 = user_id;
                }
                o.set(&self.keys[0], &sender.1);
                drop(sender);
                o.set(&self.keys[1], &message);
                o.into()
            }
            Event::ConnectionStateChanged { state } => obj(&[("state", state.as_u8().into())]),
            Event::Error { error_code, room } => {
                let o = obj(&[("errorCode", JsValue::from_str(error_code))]);
                if !room.is_empty() {
                    o.unchecked_ref::<Props>()
                        .set(&JsValue::from_str("roomId"), &room.into());
                }
                o
            }
            Event::LoginResult {
                user_id,
                error,
                elapsed_ms,
            } => obj(&[
                ("userId", user_id.into()),
                ("errorCode", error_code_or_undefined(error)),
                ("elapsed", (elapsed_ms as f64).into()),
            ]),
            Event::ServerParamsSetResult { error } => match error {
                None => {
                    self.emit(name, None);
                    return;
                }
                Some(e) => JsValue::from_str(e.error_code()),
            },
            Event::ServerMessageSendResult {
                msg_id,
                error,
                response,
            } => obj(&[
                ("msgid", (msg_id as f64).into()),
                ("error", error.map_or(0, |e| e.wire_code()).into()),
                ("errorCode", error_code_or_undefined(error)),
                (
                    "message",
                    String::from_utf8_lossy(&response).as_ref().into(),
                ),
            ]),
            Event::MessageSendResult { msg_id, error, .. } => obj(&[
                ("msgid", (msg_id as f64).into()),
                ("error", error.map_or(0, |e| e.wire_code()).into()),
                ("errorCode", error_code_or_undefined(error)),
            ]),
            Event::UserJoined {
                user_id,
                extra_info,
                ..
            } => obj(&[("userInfo", user_info(user_id, extra_info))]),
            Event::UserLeave {
                user_id,
                extra_info,
                reason,
                ..
            } => obj(&[
                ("userInfo", user_info(user_id, extra_info)),
                ("reason", reason.into()),
            ]),
            Event::TokenWillExpire { room } => obj(&[("roomId", room.into())]),
            _ => return,
        };
        self.emit(name, Some(&arg));
    }

    /// Calls the listeners of `event` one at a time, with no borrow held. A listener that
    /// throws is reported on the console and, unless it is an `onError` listener, through
    /// `onError` with `UNEXPECTED_ERROR`.
    pub(crate) fn emit(&self, event: &str, arg: Option<&JsValue>) -> bool {
        let listeners = self.emitter.take_for_emit(event);
        let any = !listeners.is_empty();
        for f in &listeners {
            let r = match arg {
                None => f.call0(&JsValue::UNDEFINED),
                Some(a) => f.call1(&JsValue::UNDEFINED, a),
            };
            if let Err(thrown) = r {
                web_sys::console::error_2(&JsValue::from_str("rtm: a listener threw"), &thrown);
                if event != "onError" {
                    let payload = obj(&[
                        ("errorCode", JsValue::from_str(rtm_core::UNEXPECTED_ERROR)),
                        ("error", thrown),
                    ]);
                    self.emit("onError", Some(&payload));
                }
            }
        }
        any
    }
}

fn error_code_or_undefined(e: Option<Error>) -> JsValue {
    e.map_or(JsValue::UNDEFINED, |e| JsValue::from_str(e.error_code()))
}

fn user_info(user_id: String, extra_info: String) -> JsValue {
    obj(&[("userId", user_id.into()), ("extraInfo", extra_info.into())])
}

#[wasm_bindgen]
extern "C" {
    /// Copies `src` into `dst`, of the same length.
    #[wasm_bindgen(js_namespace = Uint8Array, js_name = "prototype.set.call")]
    fn copy_to(dst: &mut [u8], src: &Uint8Array);
    /// A JS object to store properties on.
    pub(crate) type Props;
    /// `this[key] = value`: a plain store, which V8 runs inline (`Reflect.set` is a C++
    /// builtin there).
    #[wasm_bindgen(method, structural, indexing_setter)]
    pub(crate) fn set(this: &Props, key: &JsValue, value: &JsValue);
}

/// A plain object with these properties.
pub(crate) fn obj(fields: &[(&str, JsValue)]) -> JsValue {
    let o: Props = Object::new().unchecked_into();
    for (k, v) in fields {
        o.set(&JsValue::from_str(k), v);
    }
    o.into()
}

/// A fresh `ArrayBuffer` holding a copy of `bytes`.
fn array_buffer(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).buffer().into()
}

fn value_to_js(v: Value) -> JsValue {
    match v {
        Value::PeerStatus(n) => n.into(),
        Value::MessageId(id) => (id as f64).into(),
        Value::ServerMessage { msg_id, response } => obj(&[
            ("msgId", (msg_id as f64).into()),
            (
                "response",
                String::from_utf8_lossy(&response).as_ref().into(),
            ),
        ]),
        _ => JsValue::UNDEFINED,
    }
}
