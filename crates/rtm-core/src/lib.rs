//! The rtm client core: the SDK's protocol and state machine, with no I/O.
//!
//! [`Engine`] takes commands (`login`, `join_room`, ...), transport events (connected, frame
//! received, closed) and the time, and hands back [`Transmit`]s for the transport,
//! [`Completion`]s of calls, [`Event`]s for the application and the next timer deadline. The
//! wasm binding in the `rtm-sdk` crate drives it with a WebSocket and `setTimeout`; tests drive
//! it with a fake clock.
//!
//! ```
//! use rtm_core::{Config, Engine, Transmit, Value};
//! use rtm_protocol::frame::{encode_server, ServerFrame};
//!
//! let mut engine = Engine::new("0123456789abcdef01234567", "http://127.0.0.1:8080", Config::default())
//!     .unwrap();
//! let call = engine.login(0, Some("001..."), "alice");
//! // The first login opens the connection; the Login frame waits until it is open.
//! assert!(matches!(engine.poll_transmit(), Some(Transmit::Connect { .. })));
//! engine.handle_connected(5);
//! // The server's Welcome names the session, for a resume after a lost connection.
//! engine.handle_frame(6, &encode_server(&ServerFrame::Welcome {
//!     session: &[7; 16], heartbeat_ms: 10_000, resume_window_ms: 30_000,
//! }));
//! assert!(matches!(engine.poll_transmit(), Some(Transmit::Send(_))));
//! // The server answers request 1 with success.
//! engine.handle_frame(9, &encode_server(&ServerFrame::Reply { req: 1, code: 0, data: &[] }));
//! let done = engine.poll_completion().unwrap();
//! assert_eq!((done.call, done.result), (call, Ok(Value::None)));
//! assert_eq!(engine.logged_in_user(), Some("alice"));
//! ```
#![deny(missing_docs)]

mod engine;
mod error;
mod reconnect;
mod types;

pub use engine::{
    Config, Engine, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_RECONNECT, MAX_EXTRA_INFO_BYTES,
};
pub use error::{
    all_error_codes, describe, Error, CLIENT_ERROR_CODES, NOT_CONNECTED_YET, SEND_QUEUE_FULL,
    TIME_OUT, UNEXPECTED_ERROR,
};
pub use reconnect::{Backoff, LostCause, ReconnectPolicy};
pub use rtm_protocol::code::Code;
pub use rtm_protocol::frame::PushKind;
pub use types::{
    CallId, Completion, ConnectionState, Event, Payload, Transmit, Value, EVENT_NAMES,
};

/// The WebSocket URL for `server_url` and `app_id`: `http` becomes `ws`, `https` becomes
/// `wss` (`ws`/`wss` are kept), a trailing `/` is dropped, and `/rtm?appId=<app id>&batch=1`
/// is appended with the app id percent-encoded (`batch=1`: the engine reads batches of frames,
/// see `PROTOCOL.md`). `None` without a supported scheme or host.
///
/// ```
/// assert_eq!(
///     rtm_core::ws_url("https://example.com/chat/", "a b").as_deref(),
///     Some("wss://example.com/chat/rtm?appId=a%20b&batch=1"),
/// );
/// ```
pub fn ws_url(server_url: &str, app_id: &str) -> Option<String> {
    let server_url = server_url.trim();
    // `split_once` rather than slicing: a `str` slice's panic path costs the wasm ~4 KB.
    let (scheme, rest) = server_url.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    let scheme = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        "ws"
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        "wss"
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return None;
    }
    let mut url = String::with_capacity(scheme.len() + rest.len() + 24 + app_id.len() * 3);
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(rest);
    url.push_str("/rtm?appId=");
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in app_id.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            url.push(b as char);
        } else {
            url.push('%');
            url.push(HEX[usize::from(b >> 4)] as char);
            url.push(HEX[usize::from(b & 15)] as char);
        }
    }
    url.push_str("&batch=1");
    Some(url)
}
