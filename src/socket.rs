//! The WebSocket, owned: its callbacks only forward into the driver, and dropping it removes
//! them and closes the socket.

use std::rc::Weak;

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::driver::Driver;

/// An open (or opening) WebSocket and the callbacks it holds.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens `url` with the protocol's subprotocol. `generation` tags the callbacks so that
    /// events of a replaced socket are ignored.
    pub(crate) fn open(
        url: &str,
        driver: Weak<Driver>,
        generation: u32,
    ) -> Result<Socket, JsValue> {
        let ws = WebSocket::new_with_str(url, rtm_protocol::SUBPROTOCOL)?;
        ws.set_binary_type(BinaryType::Arraybuffer);

        let d = driver.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if let Some(d) = d.upgrade() {
                d.on_open(generation);
            }
        });
        let d = driver.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            // Text frames are not part of the protocol; the server never sends them.
            if let (Some(d), Ok(buf)) = (d.upgrade(), e.data().dyn_into::<ArrayBuffer>()) {
                d.on_frame(generation, &Uint8Array::new(&buf));
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            if let Some(d) = driver.upgrade() {
                d.on_close(generation, e.code());
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends one binary frame. A failure means the socket is closing; its close event follows.
    pub(crate) fn send(&self, bytes: &[u8]) {
        let _ = self.ws.send_with_u8_array(bytes);
    }

    /// Closes with `code` and drops the callbacks.
    pub(crate) fn close(self, code: u16) {
        let _ = self.ws.close_with_code(code);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // A no-op when already closing or closed.
        let _ = self.ws.close();
    }
}
