//! The rtm reference server: WebSocket sessions (login, rooms, pushes), the vendor-compatible
//! OpenAPI for business servers, and the binary `rtm-server`.
//!
//! One listener serves:
//!
//! * `GET /rtm?appId=<APPID>`: the WebSocket endpoint, subprotocol `rtm.v1`, binary frames of
//!   [`rtm_protocol::frame`];
//! * `POST /?Action=..&Version=..`: the OpenAPI (`SendUnicast`, `SendRoomUnicast`,
//!   `BatchSendRoomUnicast`, `SendBroadcast`), signed as in [`rtm_protocol::sign`];
//! * `GET /healthz`, `GET /metrics` (Prometheus), and optionally static files and
//!   `GET /demo/token`.
//!
//! With [`Config::redis_url`] set, the server is one node of a cluster: users on any node
//! reach each other, and presence lives in Redis.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rtm_server::Error> {
//! let mut config = rtm_server::Config::single_app(
//!     "0123456789abcdef01234567", // AppID (24 characters)
//!     "appkey",                   // AppKey: signs the users' tokens
//!     "AKTEST", "SKTEST",         // an OpenAPI key pair
//! );
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let server = rtm_server::start(config).await?;
//! let addr = server.local_addr();
//! // Clients connect to ws://{addr}/rtm?appId=0123456789abcdef01234567;
//! // business servers POST to http://{addr}/?Action=SendUnicast&Version=2023-07-20.
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bizdemo;
pub mod callback;
mod cluster;
mod config;
mod hub;
mod inbox;
mod metrics;
pub mod openapi;
mod relay;
mod resume;
mod roomlog;
mod server;
mod session;

pub use config::{AppConfig, Config, ConfigError, KeyPair};
pub use hub::Hub;
pub use server::{issue_token, run, run_on, start, Error, ServerHandle, DEFAULT_TOKEN_TTL_SECS};
pub use session::close;
