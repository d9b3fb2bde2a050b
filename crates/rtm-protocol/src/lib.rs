//! The rtm wire protocol, shared by the SDK and the reference server. No I/O.
//!
//! * [`frame`]: the binary WebSocket frames (see `PROTOCOL.md`), with a decoder that never
//!   panics and borrows from the input instead of allocating.
//! * [`code`]: result codes carried in replies and notices.
//! * [`token`]: the vendor-compatible "001" access token.
//! * [`sign`]: OpenAPI request signing (HMAC-SHA256, SigV4-like).
//! * [`ids`]: user and room id validation.
//!
//! ```
//! use rtm_protocol::frame::{ClientFrame, encode_client, decode_client};
//! let bytes = encode_client(&ClientFrame::Logout { req: 7 });
//! assert_eq!(decode_client(&bytes).unwrap(), ClientFrame::Logout { req: 7 });
//! ```
#![deny(missing_docs)]

pub mod code;
pub mod frame;
pub mod ids;
pub mod sign;
pub mod token;

/// The WebSocket subprotocol name; the version of this protocol.
pub const SUBPROTOCOL: &str = "rtm.v1";

/// The largest message payload, in bytes (UTF-8 bytes for text).
pub const MAX_MESSAGE_BYTES: usize = 65_536;
