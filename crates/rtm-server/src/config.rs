//! Server configuration: a TOML file, or the single-app quick start of the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("invalid config: {0}")]
    Toml(#[from] toml::de::Error),
    /// The configuration parses but is not usable.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// One OpenAPI key pair of an app.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    /// The access key (AK), sent in the `Authorization` header.
    pub access_key: String,
    /// The secret key (SK), never sent.
    pub secret_key: String,
}

/// One app: its id, the key its tokens are signed with, and its OpenAPI key pairs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The AppID: exactly 24 characters (the token format requires it).
    pub app_id: String,
    /// The AppKey that signs this app's "001" tokens.
    pub app_key: String,
    /// The secret that signs business-server callbacks (the relay of `SendServer`).
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// URL prefixes business-server callbacks may go to.
    #[serde(default)]
    pub allow_callbacks: Vec<String>,
    /// How long a business-server callback may take, in milliseconds.
    #[serde(default = "default_callback_timeout_ms")]
    pub callback_timeout_ms: u64,
    /// At most this many callbacks of this app in flight at once.
    #[serde(default = "default_max_callbacks")]
    pub max_callbacks_in_flight: usize,
    /// The OpenAPI key pairs that may send on behalf of this app.
    #[serde(default)]
    pub keys: Vec<KeyPair>,
}

impl AppConfig {
    /// An app with one key pair and the default callback settings.
    pub fn new(
        app_id: impl Into<String>,
        app_key: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        AppConfig {
            app_id: app_id.into(),
            app_key: app_key.into(),
            callback_secret: None,
            allow_callbacks: Vec::new(),
            callback_timeout_ms: default_callback_timeout_ms(),
            max_callbacks_in_flight: default_max_callbacks(),
            keys: vec![KeyPair {
                access_key: access_key.into(),
                secret_key: secret_key.into(),
            }],
        }
    }
}

/// The whole server configuration.
///
/// ```
/// let config = rtm_server::Config::from_toml_str(r#"
///     listen = "127.0.0.1:0"
///     [[apps]]
///     app_id = "0123456789abcdef01234567"
///     app_key = "testappkey"
///     [[apps.keys]]
///     access_key = "AKTEST"
///     secret_key = "SKTEST"
/// "#).unwrap();
/// assert_eq!(config.apps[0].keys[0].access_key, "AKTEST");
/// assert_eq!(config.auth_timeout_ms, 5000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The address to listen on (used by [`start`](crate::start); [`run`](crate::run) takes a
    /// listener instead).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A connection that neither logs in nor joins a room within this time is closed (4001).
    #[serde(default = "default_auth_timeout_ms")]
    pub auth_timeout_ms: u64,
    /// OpenAPI requests per second allowed per app (the four send Actions together).
    #[serde(default = "default_openapi_rate")]
    pub openapi_rate: u32,
    /// The largest WebSocket message accepted from a client, in bytes.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// The largest OpenAPI request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How many frames may wait for a slow client before the server disconnects it; also how
    /// many broadcasts (at least) each room keeps for members that have not read them yet.
    #[serde(default = "default_session_queue")]
    pub session_queue: usize,
    /// Serve files from this directory (GET / serves its `index.html`).
    #[serde(default)]
    pub static_dir: Option<PathBuf>,
    /// Origins allowed to call the OpenAPI and `/demo/token` from a browser (`*` for any).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Enable `GET /demo/token?user=U&room=R`, issuing tokens for the first app.
    #[serde(default)]
    pub demo: bool,
    /// In demo mode, the demo business server's base URL, offered to the demo page by
    /// `GET /demo/config`.
    #[serde(default)]
    pub demo_business_url: Option<String>,
    /// The apps this server hosts.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// User and room messages (`SendUser`, `SendRoom`) each connection may send per second;
    /// a connection may send this many at once, and its budget refills at this rate. Over
    /// the budget the server answers `USER_MESSAGE_EXCEED_QPS`. 0 disables the limit.
    /// Default 100.
    #[serde(default = "default_max_messages_per_sec")]
    pub max_messages_per_sec: u32,
    /// Run as a node of a cluster on this Redis (`redis://host:port[/db]`); absent: a single
    /// node, everything in memory.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// This node's id in the cluster (letters, digits, `.`, `_`, `-`; at most 64); absent: a
    /// random id at start.
    #[serde(default)]
    pub node_id: Option<String>,
    /// In a cluster, how long this node's presence outlives its last heartbeat (the node
    /// renews it every third of this), in milliseconds: a crashed node's users appear
    /// offline after at most this long. Default 15,000.
    #[serde(default = "default_cluster_ttl_ms")]
    pub cluster_ttl_ms: u64,
    /// How often clients should send a heartbeat (announced in the Welcome frame), in ms. A
    /// connection that sends nothing for 3 times this is closed (4005) and its session kept
    /// for resume. Default 10,000.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// How long the session of a lost connection is kept for a `Resume`, in ms: its login,
    /// rooms and queued pushes. 0 ends sessions with their connection. Default 30,000.
    #[serde(default = "default_resume_window_ms")]
    pub resume_window_ms: u64,
    /// How many written pushes each session keeps to replay on resume. Default 1,024.
    #[serde(default = "default_replay_ring")]
    pub replay_ring: usize,
    /// At most this many bytes of push bodies in each session's replay ring (bodies shared
    /// by a broadcast count once per session). Default 4 MiB.
    #[serde(default = "default_replay_ring_bytes")]
    pub replay_ring_bytes: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_auth_timeout_ms() -> u64 {
    5000
}
fn default_openapi_rate() -> u32 {
    500
}
fn default_max_frame_bytes() -> usize {
    128 * 1024
}
fn default_max_body_bytes() -> usize {
    256 * 1024
}
fn default_session_queue() -> usize {
    1024
}
fn default_callback_timeout_ms() -> u64 {
    5000
}
fn default_max_callbacks() -> usize {
    64
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            auth_timeout_ms: default_auth_timeout_ms(),
            openapi_rate: default_openapi_rate(),
            max_frame_bytes: default_max_frame_bytes(),
            max_body_bytes: default_max_body_bytes(),
            session_queue: default_session_queue(),
            static_dir: None,
            cors_origins: Vec::new(),
            demo: false,
            demo_business_url: None,
            apps: Vec::new(),
            max_messages_per_sec: default_max_messages_per_sec(),
            redis_url: None,
            node_id: None,
            cluster_ttl_ms: default_cluster_ttl_ms(),
            heartbeat_ms: default_heartbeat_ms(),
            resume_window_ms: default_resume_window_ms(),
            replay_ring: default_replay_ring(),
            replay_ring_bytes: default_replay_ring_bytes(),
        }
    }
}

fn default_max_messages_per_sec() -> u32 {
    100
}
fn default_cluster_ttl_ms() -> u64 {
    15_000
}
fn default_heartbeat_ms() -> u64 {
    10_000
}
fn default_resume_window_ms() -> u64 {
    30_000
}
fn default_replay_ring() -> usize {
    1024
}
fn default_replay_ring_bytes() -> usize {
    4 << 20
}

impl Config {
    /// The single-app quick start: one app with one key pair, everything else default.
    pub fn single_app(
        app_id: impl Into<String>,
        app_key: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Config {
            apps: vec![AppConfig::new(app_id, app_key, access_key, secret_key)],
            ..Config::default()
        }
    }

    /// Parses a TOML configuration (not yet [validated](Self::validate)).
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(s)?)
    }

    /// Reads and parses a TOML file (not yet [validated](Self::validate)).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&s)
    }

    /// Checks that the configuration is usable: at least one app, 24-character unique app ids,
    /// non-empty keys, access keys unique across apps, non-zero limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.apps.is_empty() {
            return bad("no apps configured".into());
        }
        if self.openapi_rate == 0 || self.max_frame_bytes == 0 || self.session_queue == 0 {
            return bad("openapi_rate, max_frame_bytes and session_queue must be > 0".into());
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms > u64::from(u32::MAX) / 3 {
            return bad("heartbeat_ms must be between 1 and 1431655765".into());
        }
        if self.resume_window_ms > u64::from(u32::MAX) {
            return bad("resume_window_ms must fit in 32 bits".into());
        }
        if let Some(url) = &self.redis_url {
            crate::cluster::check_url(url).map_err(ConfigError::Invalid)?;
        }
        if let Some(id) = &self.node_id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return bad(format!(
                    "node_id {id:?} must be 1 to 64 letters, digits, '.', '_' or '-'"
                ));
            }
        }
        if self.cluster_ttl_ms < 300 {
            return bad("cluster_ttl_ms must be at least 300".into());
        }
        let mut ids = std::collections::HashSet::new();
        let mut aks = std::collections::HashSet::new();
        for app in &self.apps {
            if app.app_id.len() != rtm_protocol::token::APP_ID_LEN {
                return bad(format!(
                    "app_id {:?} must be exactly {} bytes",
                    app.app_id,
                    rtm_protocol::token::APP_ID_LEN
                ));
            }
            if !ids.insert(app.app_id.as_str()) {
                return bad(format!("app_id {:?} appears twice", app.app_id));
            }
            if app.app_key.is_empty() {
                return bad(format!("app {:?}: empty app_key", app.app_id));
            }
            if let Err(e) = crate::relay::callback_config(app) {
                return bad(format!("app {:?}: {e}", app.app_id));
            }
            for k in &app.keys {
                if k.access_key.is_empty() || k.secret_key.is_empty() {
                    return bad(format!("app {:?}: empty access or secret key", app.app_id));
                }
                if !aks.insert(k.access_key.as_str()) {
                    return bad(format!("access key {:?} appears twice", k.access_key));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_toml() {
        let c = Config::from_toml_str(
            r#"
            listen = "0.0.0.0:9000"
            auth_timeout_ms = 100
            openapi_rate = 7
            [[apps]]
            app_id = "0123456789abcdef01234567"
            app_key = "k"
            callback_secret = "s"
            allow_callbacks = ["http://127.0.0.1:9000/"]
            callback_timeout_ms = 1000
            max_callbacks_in_flight = 3
            [[apps.keys]]
            access_key = "AK"
            secret_key = "SK"
            [[apps.keys]]
            access_key = "AK2"
            secret_key = "SK2"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.openapi_rate, 7);
        assert_eq!(c.apps[0].keys.len(), 2);
        assert_eq!(c.apps[0].max_callbacks_in_flight, 3);
    }

    #[test]
    fn rejects() {
        assert!(Config::default().validate().is_err());
        assert!(Config::single_app("short", "k", "a", "s")
            .validate()
            .is_err());
        let mut c = Config::single_app("0123456789abcdef01234567", "k", "a", "s");
        c.validate().unwrap();
        c.apps.push(c.apps[0].clone());
        assert!(c.validate().is_err());
        assert!(Config::from_toml_str("nonsense = 1").is_err());
    }
}
