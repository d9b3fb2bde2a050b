//! Messages from a user to the app's business server (`SetServerParams`, `SendServer`).
//!
//! A session keeps the parameters its client set; [`send`] decides the reply to a
//! `SendServer` request. Relaying over HTTP is not wired up yet: with parameters set, the
//! request is answered with [`Code::SendToServerError`].

use rtm_protocol::code::Code;

/// Where a session's `SendServer` messages go, as set by its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerParams {
    /// The opaque signature the business server issued to the client.
    pub(crate) signature: String,
    /// The business server's URL.
    pub(crate) url: String,
}

/// Checks and builds the parameters of a `SetServerParams` request.
pub(crate) fn params(signature: &str, url: &str) -> Result<ServerParams, Code> {
    if signature.is_empty() || url.is_empty() {
        return Err(Code::InvalidParams);
    }
    Ok(ServerParams {
        signature: signature.to_owned(),
        url: url.to_owned(),
    })
}

/// A `SendServer` request from a session.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    /// Whether the session is logged in.
    pub(crate) logged_in: bool,
    /// The parameters the session set, if any.
    pub(crate) params: Option<&'a ServerParams>,
    /// The message.
    pub(crate) payload: &'a [u8],
}

/// The reply code and data for a `SendServer` request.
pub(crate) fn send(req: Outgoing<'_>) -> (Code, Vec<u8>) {
    if !req.logged_in {
        return (Code::NotLogin, Vec::new());
    }
    if req.params.is_none() {
        return (Code::ServerParamsNotSet, Vec::new());
    }
    if req.payload.is_empty() || req.payload.len() > rtm_protocol::MAX_MESSAGE_BYTES {
        return (Code::InvalidParams, Vec::new());
    }
    (Code::SendToServerError, Vec::new())
}
