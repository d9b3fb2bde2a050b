//! Relaying users' messages to the app's business server (`SendServer`), as signed HTTP POSTs.
//!
//! Three pieces, from configuration to delivery:
//!
//! * [`CallbackConfig`] is one app's policy: the allow-list of callback URL prefixes, the
//!   callback secret, the timeout, the bound on POSTs in flight and the reply cap.
//!   [`CallbackConfig::check_url`] turns the URL a client sets with `setServerParams` into a
//!   [`ValidatedUrl`], or refuses it with a [`CallbackError`]
//!   ([`Code::CallbackNotAllowed`]).
//! * [`Relay`] (one per server, cheap to clone) POSTs one [`OutMessage`] to a [`ValidatedUrl`]
//!   and classifies the answer as a [`RelayOutcome`].
//! * [`UserPipe`] (one per session) queues a session's messages and POSTs them one at a time,
//!   so the business server sees one user's messages in the order that user sent them, while
//!   other users' pipes proceed independently.
//!
//! # What the business server receives
//!
//! ```text
//! POST <the URL the client set>
//! Content-Type: application/json
//! X-Rtm-App-Id: <app id>
//! X-Rtm-User-Id: <sender's user id>
//! X-Rtm-Message-Id: <the sender's message id, decimal; stable across the SDK's resends>
//! X-Rtm-Timestamp: <unix seconds, decimal>
//! X-Rtm-Signature: hex(HMAC-SHA256(callback_secret, X-Rtm-Timestamp + "." + body))
//!
//! {"message":"<text, or standard base64 with padding of the bytes>","binary":false,"signature":"<from setServerParams>"}
//! ```
//!
//! `X-Rtm-Signature` is omitted when the app has no callback secret. A receiver recomputes the
//! signature over the raw body bytes and the timestamp header exactly as received
//! ([`verify_callback_signature`]) and rejects stale timestamps (the demo business server
//! allows ±[`CALLBACK_WINDOW_SECS`]).
//!
//! # Outcomes
//!
//! | business server | [`RelayOutcome::code`] | body |
//! |---|---|---|
//! | HTTP 200, body ≤ cap (64 KiB) | [`Code::Ok`] | the reply body |
//! | HTTP 200, body over the cap | [`Code::ServerResponseError`] | the first 64 KiB |
//! | any other status except 3xx | [`Code::ServerResponseError`] | the reply body (capped) |
//! | 3xx (redirects are never followed) | [`Code::SendToServerError`] | empty |
//! | refused, reset, TLS failure, no complete answer within the timeout | [`Code::SendToServerError`] | empty |
//!
//! The timeout covers the whole relay: waiting for a free slot among the app's POSTs in
//! flight, connecting, sending, and reading the whole reply.
//!
//! # Allow-list
//!
//! An entry is a URL prefix, `scheme://host[:port][/path]`, without user info, query or
//! fragment. A callback URL matches an entry when scheme, host and port (the scheme's default
//! when absent) are equal and the entry's path is a prefix of the URL's path that ends at a
//! `/` boundary: `http://h/api` allows `/api`, `/api/x` and `/api?q` but not `/apix`. URLs
//! are compared after WHATWG normalization (lower-case host, default port dropped, `.` and
//! `..` segments resolved), and a URL with user info is refused.
//!
//! The host of an entry is either named exactly (a host name or an IP literal) or a wildcard:
//! `*` (any host) or `*.example.com` (any subdomain of `example.com`, not `example.com`
//! itself). After DNS resolution, every address of the host must be globally routable —
//! loopback, private (RFC 1918, CGNAT `100.64/10`, `fc00::/7`), link-local, unspecified,
//! multicast, broadcast and reserved addresses are refused — unless the matching entry names
//! the host exactly: `http://127.0.0.1:9000/` allows that loopback endpoint and no other, and
//! `http://localhost:9000/` allows `localhost` on port 9000, whatever it resolves to. A
//! wildcard never reaches a non-public address. The checked addresses are pinned for the
//! relay's connections, so a DNS answer that changes later (rebinding) is never used.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rtm_server::callback::CallbackError> {
//! use rtm_server::callback::{AppCallback, CallbackConfig, OutMessage, Relay, UserPipe};
//! use rtm_protocol::code::Code;
//!
//! let config = CallbackConfig::new(["http://127.0.0.1:9000/"], Some("secret".into()))?;
//! let app = AppCallback::new(config);
//! let relay = Relay::new();
//! let target = app.check_url("http://127.0.0.1:9000/rtm").await?; // at setServerParams
//!
//! let pipe = UserPipe::spawn(relay, app); // one per session
//! let msg = OutMessage {
//!     app_id: "0123456789abcdef01234567".into(),
//!     user_id: "alice".into(),
//!     msg_id: 1,
//!     binary: false,
//!     payload: "hello".into(),
//!     signature: "issued-by-the-business-server".into(),
//! };
//! let outcome = pipe.submit(target, msg).expect("queue has room").await.expect("pipe alive");
//! if outcome.code == Code::Ok {
//!     println!("ack: {}", String::from_utf8_lossy(&outcome.body));
//! }
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rtm_protocol::code::Code;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use url::{Host, Url};

/// The default time a relay may take, from queueing for a slot to the end of the reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound on one app's POSTs in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// The default (and vendor's) cap on a business server's reply body: 64 KiB.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 65_536;
/// The clock skew a receiver should tolerate on `X-Rtm-Timestamp`, in seconds.
pub const CALLBACK_WINDOW_SECS: i64 = 300;

/// Header: the app id.
pub const HEADER_APP_ID: &str = "X-Rtm-App-Id";
/// Header: the sender's user id.
pub const HEADER_USER_ID: &str = "X-Rtm-User-Id";
/// Header: the sender's message id (decimal), for deduplication.
pub const HEADER_MESSAGE_ID: &str = "X-Rtm-Message-Id";
/// Header: when the POST was signed, Unix seconds (decimal).
pub const HEADER_TIMESTAMP: &str = "X-Rtm-Timestamp";
/// Header: `hex(HMAC-SHA256(callback_secret, timestamp + "." + body))`.
pub const HEADER_SIGNATURE: &str = "X-Rtm-Signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a callback URL (or an allow-list entry) was refused.
///
/// Every variant reaches the client as [`Code::CallbackNotAllowed`] (see [`code`](Self::code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The URL does not parse, is not `http`/`https`, has no host, or carries user info.
    #[error("invalid callback URL: {0}")]
    InvalidUrl(String),
    /// No allow-list entry of the app matches the URL.
    #[error("callback URL not in the allow-list: {0}")]
    NotAllowed(String),
    /// The host did not resolve (in time, or to any address).
    #[error("cannot resolve callback host {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The host resolved to a non-public address that no allow-list entry names explicitly.
    #[error("callback host {host} resolves to non-public address {addr}")]
    PrivateAddress {
        /// The host name.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// An allow-list entry in the configuration is unusable.
    #[error("invalid allow-list entry {entry:?}: {reason}")]
    InvalidAllowEntry {
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl CallbackError {
    /// The result code a client receives for this error: [`Code::CallbackNotAllowed`].
    pub fn code(&self) -> Code {
        Code::CallbackNotAllowed
    }
}

/// How an allow-list entry names its host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    /// Exactly this host (a domain or an IP literal): explicit, non-public addresses allowed.
    Exact(Host<String>),
    /// `*`: any host, public addresses only.
    Any,
    /// `*.suffix`: any subdomain of `suffix` (stored with its leading dot), public only.
    Subdomain(String),
}

#[derive(Debug, Clone)]
struct AllowEntry {
    /// The entry as configured.
    raw: String,
    scheme: String,
    host: HostRule,
    port: u16,
    path: String,
}

/// Placeholder substituted for the `*` of a wildcard entry so that it parses as a URL.
const WILDCARD_LABEL: &str = "rtm-wildcard-host.invalid";

impl AllowEntry {
    fn parse(raw: &str) -> Result<AllowEntry, CallbackError> {
        let bad = |reason: &str| CallbackError::InvalidAllowEntry {
            entry: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = raw.trim();
        // `*` is not a valid host character everywhere; swap it for a placeholder label.
        let (scheme_sep, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port][/path]"))?;
        let wildcard = rest.starts_with('*');
        let text = if wildcard {
            format!("{scheme_sep}://{WILDCARD_LABEL}{}", &rest[1..])
        } else {
            trimmed.to_owned()
        };
        let url = Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user info is not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("query and fragment are not allowed"));
        }
        let host = url.host().ok_or_else(|| bad("missing host"))?;
        let host = match (wildcard, host) {
            (false, h) => HostRule::Exact(h.to_owned()),
            (true, Host::Domain(d)) if d == WILDCARD_LABEL => HostRule::Any,
            (true, Host::Domain(d)) => match d.strip_prefix(WILDCARD_LABEL) {
                Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                    HostRule::Subdomain(suffix.to_owned())
                }
                _ => return Err(bad("a wildcard host is `*` or `*.domain`")),
            },
            (true, _) => return Err(bad("a wildcard host is `*` or `*.domain`")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("missing port"))?;
        Ok(AllowEntry {
            raw: raw.to_owned(),
            scheme: url.scheme().to_owned(),
            host,
            port,
            path: url.path().to_owned(),
        })
    }

    /// Whether `url` falls under this entry; `Some(explicit)` when it does.
    fn matches(&self, url: &Url) -> Option<bool> {
        if url.scheme() != self.scheme || url.port_or_known_default() != Some(self.port) {
            return None;
        }
        let host = url.host()?;
        let explicit = match &self.host {
            HostRule::Exact(h) => {
                if host.to_owned() != *h {
                    return None;
                }
                true
            }
            HostRule::Any => false,
            HostRule::Subdomain(suffix) => match host {
                Host::Domain(d) if d.ends_with(suffix.as_str()) && d.len() > suffix.len() => false,
                _ => return None,
            },
        };
        let (prefix, path) = (self.path.as_str(), url.path());
        let on_boundary = path == prefix
            || (path.starts_with(prefix)
                && (prefix.ends_with('/') || path.as_bytes()[prefix.len()] == b'/'));
        on_boundary.then_some(explicit)
    }
}

/// One app's callback policy: allow-list, secret, timeout, bound on POSTs in flight, reply cap.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    allow: Vec<AllowEntry>,
    secret: Option<String>,
    timeout: Duration,
    max_in_flight: usize,
    max_reply_bytes: usize,
}

impl CallbackConfig {
    /// A policy with the given allow-list entries (see the [module docs](self)) and callback
    /// secret, and the default timeout ([`DEFAULT_TIMEOUT`]), bound on POSTs in flight
    /// ([`DEFAULT_MAX_IN_FLIGHT`]) and reply cap ([`DEFAULT_MAX_REPLY_BYTES`]).
    ///
    /// An empty allow-list refuses every URL. Without a secret, POSTs carry no
    /// `X-Rtm-Signature` header. Fails with [`CallbackError::InvalidAllowEntry`] on the first
    /// unusable entry.
    pub fn new<I, S>(allow: I, secret: Option<String>) -> Result<CallbackConfig, CallbackError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allow = allow
            .into_iter()
            .map(|e| AllowEntry::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CallbackConfig {
            allow,
            secret: secret.filter(|s| !s.is_empty()),
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        })
    }

    /// Sets the time a relay may take in all (at least 1 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> CallbackConfig {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets the bound on this app's POSTs in flight (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> CallbackConfig {
        self.max_in_flight = n.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Sets the cap on a reply body, in bytes.
    pub fn with_max_reply_bytes(mut self, n: usize) -> CallbackConfig {
        self.max_reply_bytes = n;
        self
    }

    /// The time a relay may take in all.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bound on this app's POSTs in flight.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The cap on a reply body, in bytes.
    pub fn max_reply_bytes(&self) -> usize {
        self.max_reply_bytes
    }

    /// Whether POSTs are signed (a non-empty callback secret is set).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// The allow-list entries, as configured.
    pub fn allow_list(&self) -> impl Iterator<Item = &str> {
        self.allow.iter().map(|e| e.raw.as_str())
    }

    /// Checks a callback URL against the allow-list and resolves its host (see the
    /// [module docs](self)); on success the returned [`ValidatedUrl`] pins the addresses that
    /// passed the check. Name resolution is bounded by the configured timeout.
    pub async fn check_url(&self, url: &str) -> Result<ValidatedUrl, CallbackError> {
        let mut url = Url::parse(url.trim())
            .map_err(|e| CallbackError::InvalidUrl(format!("{url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CallbackError::InvalidUrl(format!(
                "{url}: scheme must be http or https"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CallbackError::InvalidUrl(
                "user info is not allowed in a callback URL".into(),
            ));
        }
        let Some(port) = url.port_or_known_default() else {
            return Err(CallbackError::InvalidUrl(format!("{url}: no port")));
        };
        url.set_fragment(None);
        let mut matched = None;
        for entry in &self.allow {
            if let Some(explicit) = entry.matches(&url) {
                matched = Some(matched.unwrap_or(false) || explicit);
            }
        }
        let Some(explicit) = matched else {
            return Err(CallbackError::NotAllowed(url.to_string()));
        };
        let (domain, addrs) = match url.host() {
            Some(Host::Ipv4(ip)) => (None, vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Ipv6(ip)) => (None, vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Domain(d)) => {
                let d = d.to_owned();
                let addrs = resolve(&d, port, self.timeout).await?;
                (Some(d), addrs)
            }
            None => return Err(CallbackError::InvalidUrl(format!("{url}: no host"))),
        };
        if !explicit {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(CallbackError::PrivateAddress {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    addr: bad.ip(),
                });
            }
        }
        Ok(ValidatedUrl {
            inner: Arc::new(ValidatedInner {
                url,
                pin: PinKey { domain, addrs },
            }),
        })
    }
}

async fn resolve(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, CallbackError> {
    let err = |reason: String| CallbackError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let found = tokio::time::timeout(limit, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(err("no addresses".into()));
    }
    Ok(addrs)
}

/// Whether an address is globally routable (not loopback, private, CGNAT, link-local,
/// unspecified, multicast, broadcast, benchmarking or reserved). IPv6 forms that embed an IPv4
/// address (mapped, compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by it.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 blocks that are not globally routable: (network, prefix length).
const NON_PUBLIC_V4: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),      // "this network", unspecified
    ([10, 0, 0, 0], 8),     // private
    ([100, 64, 0, 0], 10),  // CGNAT
    ([127, 0, 0, 0], 8),    // loopback
    ([169, 254, 0, 0], 16), // link-local
    ([172, 16, 0, 0], 12),  // private
    ([192, 0, 0, 0], 24),   // IETF protocol assignments
    ([192, 168, 0, 0], 16), // private
    ([198, 18, 0, 0], 15),  // benchmarking
    ([224, 0, 0, 0], 4),    // multicast
    ([240, 0, 0, 0], 4),    // reserved, broadcast
];

/// IPv6 blocks that are not globally routable (after the IPv4-embedding forms are handled).
const NON_PUBLIC_V6: &[(u16, u16)] = &[
    (0xfc00, 0xfe00), // unique local fc00::/7
    (0xfe80, 0xffc0), // link-local fe80::/10
    (0xfec0, 0xffc0), // site-local (deprecated) fec0::/10
    (0xff00, 0xff00), // multicast ff00::/8
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    !NON_PUBLIC_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - len);
        ip & mask == u32::from_be_bytes(net)
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // ::, ::1 and the deprecated IPv4-compatible form.
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix.
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4.
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    !NON_PUBLIC_V6.iter().any(|&(net, mask)| s[0] & mask == net)
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// The addresses a connection may use: DNS overrides for a host name, or nothing for an IP
/// literal. Also the key of the relay's client cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PinKey {
    domain: Option<String>,
    addrs: Vec<SocketAddr>,
}

#[derive(Debug)]
struct ValidatedInner {
    url: Url,
    pin: PinKey,
}

/// A callback URL that passed [`CallbackConfig::check_url`], with the addresses its host
/// resolved to at that moment; POSTs to it connect only to those. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ValidatedUrl {
    inner: Arc<ValidatedInner>,
}

impl ValidatedUrl {
    /// The normalized URL (fragment removed).
    pub fn as_str(&self) -> &str {
        self.inner.url.as_str()
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The addresses connections to this URL are pinned to.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.inner.pin.addrs
    }
}

impl fmt::Display for ValidatedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app's relay state: its [`CallbackConfig`] and the slots bounding its POSTs in flight.
/// Cheap to clone; build one per app at start-up.
#[derive(Debug, Clone)]
pub struct AppCallback {
    inner: Arc<AppInner>,
}

#[derive(Debug)]
struct AppInner {
    config: CallbackConfig,
    slots: Semaphore,
}

impl AppCallback {
    /// The relay state for an app with this policy.
    pub fn new(config: CallbackConfig) -> AppCallback {
        let slots = Semaphore::new(config.max_in_flight);
        AppCallback {
            inner: Arc::new(AppInner { config, slots }),
        }
    }

    /// The app's policy.
    pub fn config(&self) -> &CallbackConfig {
        &self.inner.config
    }

    /// Shorthand for [`CallbackConfig::check_url`].
    pub async fn check_url(&self, url: &str) -> Result<ValidatedUrl, CallbackError> {
        self.inner.config.check_url(url).await
    }
}

/// One message from a user to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// The app id (`X-Rtm-App-Id`).
    pub app_id: String,
    /// The sender's user id (`X-Rtm-User-Id`).
    pub user_id: String,
    /// The sender's message id (`X-Rtm-Message-Id`).
    pub msg_id: u64,
    /// Whether `payload` is binary (sent as base64) rather than UTF-8 text.
    pub binary: bool,
    /// The message. Text that is not valid UTF-8 is sent with replacement characters.
    pub payload: Bytes,
    /// The opaque signature the client set with `setServerParams`.
    pub signature: String,
}

/// The result of relaying one message: the code for the sender's reply and the data to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayOutcome {
    /// [`Code::Ok`], [`Code::ServerResponseError`] or [`Code::SendToServerError`]
    /// (see the [module docs](self)).
    pub code: Code,
    /// The business server's reply body, at most the app's reply cap.
    pub body: Vec<u8>,
}

impl RelayOutcome {
    fn unreachable() -> RelayOutcome {
        RelayOutcome {
            code: Code::SendToServerError,
            body: Vec::new(),
        }
    }
}

/// The JSON body of a callback POST; field order is part of the documented format.
#[derive(serde::Serialize)]
struct CallbackBody<'a> {
    message: Cow<'a, str>,
    binary: bool,
    signature: &'a str,
}

/// The JSON body POSTed for `msg`: `{"message":...,"binary":...,"signature":...}`.
pub fn callback_body(msg: &OutMessage) -> Vec<u8> {
    let message = if msg.binary {
        Cow::Owned(base64::engine::general_purpose::STANDARD.encode(&msg.payload))
    } else {
        String::from_utf8_lossy(&msg.payload)
    };
    let body = CallbackBody {
        message,
        binary: msg.binary,
        signature: &msg.signature,
    };
    serde_json::to_vec(&body).expect("a struct of strings and a bool serializes")
}

/// `hex(HMAC-SHA256(secret, timestamp + "." + body))`, the `X-Rtm-Signature` header value
/// (64 lower-case hex digits). `timestamp` is the `X-Rtm-Timestamp` header value as sent.
///
/// ```
/// use rtm_server::callback::callback_signature;
/// let body = br#"{"message":"hello","binary":false,"signature":"sig"}"#;
/// assert_eq!(
///     callback_signature("callback-secret", "1704164645", body),
///     "b98bec27c9ff6d99e97bad8aac8494b7a78911c4b514aa63a108328184f0f206",
/// );
/// ```
pub fn callback_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = callback_mac(secret, timestamp, body);
    let mut out = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks an `X-Rtm-Signature` value (hex, either case) against the secret, the
/// `X-Rtm-Timestamp` value as received and the raw body, in constant time. The caller checks
/// that the timestamp is recent (see [`CALLBACK_WINDOW_SECS`]).
pub fn verify_callback_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(expected) = decode_hex(signature.trim()) else {
        return false;
    };
    callback_mac(secret, timestamp, body)
        .verify_slice(&expected)
        .is_ok()
}

fn callback_mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The most HTTP clients (one per distinct pinned address set) a relay keeps.
const MAX_CLIENTS: usize = 1024;

/// Sends callbacks: one per server, cheap to clone. Keeps one HTTP client (and connection
/// pool) per pinned address set; never follows redirects, never uses a proxy.
#[derive(Debug, Clone, Default)]
pub struct Relay {
    inner: Arc<RelayInner>,
}

#[derive(Debug, Default)]
struct RelayInner {
    clients: Mutex<HashMap<PinKey, reqwest::Client>>,
    /// Where POST results and latencies are counted.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Relay {
    /// A relay with no connections yet.
    pub fn new() -> Relay {
        Relay::default()
    }

    /// A relay that counts its POSTs in `metrics`.
    pub(crate) fn with_metrics(metrics: Arc<crate::metrics::Metrics>) -> Relay {
        Relay {
            inner: Arc::new(RelayInner {
                clients: Mutex::default(),
                metrics: Some(metrics),
            }),
        }
    }

    fn client(&self, pin: &PinKey) -> Result<reqwest::Client, reqwest::Error> {
        if let Some(c) = self.lock().get(pin) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .use_rustls_tls()
            .user_agent(concat!("rtm-server/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(domain) = &pin.domain {
            builder = builder.resolve_to_addrs(domain, &pin.addrs);
        }
        let client = builder.build()?;
        let mut clients = self.lock();
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        Ok(clients.entry(pin.clone()).or_insert(client).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PinKey, reqwest::Client>> {
        // The map holds no invariant a panic could break; keep going after one.
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// POSTs `msg` to `target` under `app`'s policy and classifies the answer (see the
    /// [module docs](self)). Waits for one of the app's in-flight slots, but never past the
    /// app's timeout, which bounds the whole call. Never panics, never errors: every failure
    /// is an outcome.
    pub async fn post(
        &self,
        app: &AppCallback,
        target: &ValidatedUrl,
        msg: OutMessage,
    ) -> RelayOutcome {
        let config = app.config();
        let deadline = Instant::now() + config.timeout;
        let started = std::time::Instant::now();
        let (app_id, user_id, msg_id) = (msg.app_id.clone(), msg.user_id.clone(), msg.msg_id);
        let outcome = tokio::time::timeout_at(deadline, async {
            let _slot = match app.inner.slots.acquire().await {
                Ok(slot) => slot,
                Err(_) => return RelayOutcome::unreachable(),
            };
            self.send(config, target, &msg).await
        })
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(app = %app_id, user = %user_id, msg_id, url = %target, "callback timed out");
            RelayOutcome::unreachable()
        });
        tracing::debug!(
            app = %app_id, user = %user_id, msg_id, url = %target,
            code = outcome.code.error_code(), reply_len = outcome.body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64, "callback done"
        );
        if let Some(m) = &self.inner.metrics {
            m.callback(outcome.code, started.elapsed());
        }
        outcome
    }

    async fn send(
        &self,
        config: &CallbackConfig,
        target: &ValidatedUrl,
        msg: &OutMessage,
    ) -> RelayOutcome {
        let client = match self.client(&target.inner.pin) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the callback HTTP client");
                return RelayOutcome::unreachable();
            }
        };
        let body = callback_body(msg);
        let timestamp = unix_now().to_string();
        let mut req = client
            .post(target.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_APP_ID, &msg.app_id)
            .header(HEADER_USER_ID, &msg.user_id)
            .header(HEADER_MESSAGE_ID, msg.msg_id.to_string())
            .header(HEADER_TIMESTAMP, &timestamp);
        if let Some(secret) = &config.secret {
            req = req.header(
                HEADER_SIGNATURE,
                callback_signature(secret, &timestamp, &body),
            );
        }
        let mut resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url = %target, error = %e, "callback not delivered");
                return RelayOutcome::unreachable();
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            tracing::warn!(url = %target, %status, "callback answered with a redirect; not followed");
            return RelayOutcome::unreachable();
        }
        let cap = config.max_reply_bytes;
        let mut body = Vec::new();
        let mut over_cap = false;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = cap - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        over_cap = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(url = %target, error = %e, "callback reply broken off");
                    return RelayOutcome::unreachable();
                }
            }
        }
        let code = if status == reqwest::StatusCode::OK && !over_cap {
            Code::Ok
        } else {
            if over_cap {
                tracing::warn!(url = %target, cap, "callback reply over the cap; truncated");
            } else {
                tracing::info!(url = %target, %status, "callback answered with an error status");
            }
            Code::ServerResponseError
        };
        RelayOutcome { code, body }
    }
}

/// Why [`UserPipe::push`] did not queue a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The session already has the pipe's capacity of messages waiting.
    #[error("too many messages waiting for the business server")]
    Full,
    /// The pipe's task is gone (the runtime is shutting down).
    #[error("callback pipe closed")]
    Closed,
}

impl PipeError {
    /// The result code a client receives: [`Code::ExceedQps`] when full,
    /// [`Code::SendToServerError`] when closed.
    pub fn code(&self) -> Code {
        match self {
            PipeError::Full => Code::ExceedQps,
            PipeError::Closed => Code::SendToServerError,
        }
    }
}

struct Job {
    target: ValidatedUrl,
    msg: OutMessage,
    reply: oneshot::Sender<RelayOutcome>,
}

/// One session's ordered queue to the business server: one task that relays each message
/// only after the previous one's outcome is known, so the business server sees a user's
/// messages in the order sent. Sessions have independent pipes (a slow business server
/// delays only the users whose messages wait for it), and pushing never blocks.
///
/// Dropping the pipe lets the task finish the message in flight; messages still queued
/// whose reply receiver is gone are skipped rather than sent.
#[derive(Debug)]
pub struct UserPipe {
    tx: mpsc::Sender<Job>,
}

impl UserPipe {
    /// The default bound on one session's waiting messages.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// Spawns the pipe's task on the current Tokio runtime, with
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    pub fn spawn(relay: Relay, app: AppCallback) -> UserPipe {
        UserPipe::with_capacity(relay, app, UserPipe::DEFAULT_CAPACITY)
    }

    /// Spawns the pipe's task with room for `capacity` waiting messages (at least 1).
    pub fn with_capacity(relay: Relay, app: AppCallback, capacity: usize) -> UserPipe {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if job.reply.is_closed() {
                    continue;
                }
                let outcome = relay.post(&app, &job.target, job.msg).await;
                let _ = job.reply.send(outcome);
            }
        });
        UserPipe { tx }
    }

    /// Queues `msg` for `target`; its outcome goes to `reply`. Never blocks.
    pub fn push(
        &self,
        target: ValidatedUrl,
        msg: OutMessage,
        reply: oneshot::Sender<RelayOutcome>,
    ) -> Result<(), PipeError> {
        self.tx
            .try_send(Job { target, msg, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PipeError::Full,
                mpsc::error::TrySendError::Closed(_) => PipeError::Closed,
            })
    }

    /// Queues `msg` for `target` and returns the receiver of its outcome. Never blocks.
    pub fn submit(
        &self,
        target: ValidatedUrl,
        msg: OutMessage,
    ) -> Result<oneshot::Receiver<RelayOutcome>, PipeError> {
        let (tx, rx) = oneshot::channel();
        self.push(target, msg, tx)?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2001:4860::8888",
            "2002:0808:0808::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s}");
        }
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn allow_entry_parsing() {
        assert!(AllowEntry::parse("ftp://h/").is_err());
        assert!(AllowEntry::parse("http://u:p@h/").is_err());
        assert!(AllowEntry::parse("http://h/?q=1").is_err());
        assert!(AllowEntry::parse("http://*x.com/").is_err());
        assert!(AllowEntry::parse("h/").is_err());
        assert_eq!(AllowEntry::parse("http://*/").unwrap().host, HostRule::Any);
        assert_eq!(
            AllowEntry::parse("https://*.Example.com:8443/cb")
                .unwrap()
                .host,
            HostRule::Subdomain(".example.com".into())
        );
        let e = AllowEntry::parse("HTTP://LocalHost:80").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/"));
    }

    #[test]
    fn matching() {
        let e = AllowEntry::parse("http://h:9000/api").unwrap();
        let m = |u: &str| e.matches(&Url::parse(u).unwrap());
        assert_eq!(m("http://h:9000/api"), Some(true));
        assert_eq!(m("http://h:9000/api/x"), Some(true));
        assert_eq!(m("http://h:9000/api?x=1"), Some(true));
        assert_eq!(m("http://H:9000/x/../api/y"), Some(true));
        assert_eq!(m("http://h:9000/apix"), None);
        assert_eq!(m("http://h:9000/api/%2e%2e/admin"), None);
        assert_eq!(m("http://h:9001/api"), None);
        assert_eq!(m("https://h:9000/api"), None);
        let w = AllowEntry::parse("https://*.example.com/").unwrap();
        let m = |u: &str| w.matches(&Url::parse(u).unwrap());
        assert_eq!(m("https://a.example.com/x"), Some(false));
        assert_eq!(m("https://example.com/x"), None);
        assert_eq!(m("https://aexample.com/x"), None);
        assert_eq!(m("https://a.example.com:444/x"), None);
    }

    #[test]
    fn hex_round_trip() {
        let sig = callback_signature("k", "1", b"{}");
        assert_eq!(sig.len(), 64);
        assert!(verify_callback_signature("k", "1", b"{}", &sig));
        assert!(verify_callback_signature(
            "k",
            "1",
            b"{}",
            &sig.to_uppercase()
        ));
        assert!(!verify_callback_signature("k", "2", b"{}", &sig));
        assert!(!verify_callback_signature("k", "1", b"{}", "zz"));
        assert!(!verify_callback_signature("k", "1", b"{}", &sig[..62]));
    }
}
