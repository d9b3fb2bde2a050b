//! The server's Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format
//! (which Prometheus scrapes natively).
//!
//! Every server (every [`Hub`](crate::Hub)) has its own set. Counters count what happened on
//! this node since it started; the gauges of logged-in users and rooms are read from the hub
//! at scrape time.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rtm_protocol::code::Code;
use rtm_protocol::frame::PushKind;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    action: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The push kinds, in the order of [`kind_index`].
const KINDS: [&str; 3] = ["outside_room", "room_user", "room"];

fn kind_index(kind: PushKind) -> usize {
    match kind {
        PushKind::OutsideRoom => 0,
        PushKind::RoomUser => 1,
        PushKind::Room => 2,
    }
}

/// One counter per push kind, taken from `family` once (the hot path skips the family's map).
fn by_kind(family: &Family<KindLabel, Counter>) -> [Counter; 3] {
    KINDS.map(|kind| family.get_or_create(&KindLabel { kind }).clone())
}

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    connections_opened: Counter,
    users: Family<AppLabel, Gauge>,
    rooms: Family<AppLabel, Gauge>,
    messages_in: [Counter; 3],
    messages_out: [Counter; 3],
    push_dropped: Counter,
    slow_consumers: Counter,
    openapi: Family<ApiLabel, Counter>,
    callbacks: Family<ResultLabel, Counter>,
    callback_seconds: Histogram,
    redis_up: Gauge,
    cluster_published: Counter,
    cluster_received: Counter,
    cluster_errors: Counter,
    cluster_dropped: Counter,
    cluster_reconnects: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rtm");
        let messages_in = Family::<KindLabel, Counter>::default();
        let messages_out = Family::<KindLabel, Counter>::default();
        let m = Metrics {
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            users: Family::default(),
            rooms: Family::default(),
            messages_in: by_kind(&messages_in),
            messages_out: by_kind(&messages_out),
            push_dropped: Counter::default(),
            slow_consumers: Counter::default(),
            openapi: Family::default(),
            callbacks: Family::default(),
            callback_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            redis_up: Gauge::default(),
            cluster_published: Counter::default(),
            cluster_received: Counter::default(),
            cluster_errors: Counter::default(),
            cluster_dropped: Counter::default(),
            cluster_reconnects: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        r.register(
            "connections_opened",
            "WebSocket connections accepted",
            m.connections_opened.clone(),
        );
        r.register(
            "logged_in_users",
            "Users logged in on this node",
            m.users.clone(),
        );
        r.register(
            "rooms",
            "Rooms with at least one member on this node",
            m.rooms.clone(),
        );
        r.register(
            "messages_in",
            "Messages routed by this node (from its clients and its OpenAPI), by push kind",
            messages_in,
        );
        r.register(
            "messages_out",
            "Pushes queued to sessions on this node, by push kind",
            messages_out,
        );
        r.register(
            "push_dropped",
            "Pushes and frames not queued because the session's queue was full or closing",
            m.push_dropped.clone(),
        );
        r.register(
            "slow_consumer_disconnects",
            "Sessions closed because their send queue overflowed",
            m.slow_consumers.clone(),
        );
        r.register(
            "openapi_requests",
            "OpenAPI requests by Action and result (success or the error Code)",
            m.openapi.clone(),
        );
        r.register(
            "callback_requests",
            "Business-server POSTs by result (ok, server_error, unreachable)",
            m.callbacks.clone(),
        );
        r.register(
            "callback_duration_seconds",
            "Business-server POST latency, waiting for an in-flight slot included",
            m.callback_seconds.clone(),
        );
        r.register(
            "cluster_redis_up",
            "1 while the node is connected to Redis (always 0 without --redis-url)",
            m.redis_up.clone(),
        );
        r.register(
            "cluster_published",
            "Messages this node published to Redis",
            m.cluster_published.clone(),
        );
        r.register(
            "cluster_received",
            "Messages this node received from Redis (its own echoes included)",
            m.cluster_received.clone(),
        );
        r.register(
            "cluster_errors",
            "Failed Redis commands",
            m.cluster_errors.clone(),
        );
        r.register(
            "cluster_dropped",
            "Messages not published because the queue to Redis was full",
            m.cluster_dropped.clone(),
        );
        r.register(
            "cluster_reconnects",
            "Times this node (re)connected its Redis subscriber",
            m.cluster_reconnects.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition, with the per-app gauges set from `counts`
    /// (app id, logged-in users, rooms) first.
    pub fn encode(&self, counts: impl IntoIterator<Item = (String, usize, usize)>) -> String {
        for (app, users, rooms) in counts {
            let label = AppLabel { app };
            self.users.get_or_create(&label).set(users as i64);
            self.rooms.get_or_create(&label).set(rooms as i64);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }

    /// A connection opened; the returned guard counts it as open until dropped.
    pub(crate) fn connection(&self) -> ConnectionGuard {
        self.connections_opened.inc();
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    pub(crate) fn message_in(&self, kind: PushKind) {
        self.messages_in[kind_index(kind)].inc();
    }

    pub(crate) fn messages_out(&self, kind: PushKind, n: usize) {
        if n > 0 {
            self.messages_out[kind_index(kind)].inc_by(n as u64);
        }
    }

    pub(crate) fn push_dropped(&self, n: usize) {
        if n > 0 {
            self.push_dropped.inc_by(n as u64);
        }
    }

    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.inc();
    }

    pub(crate) fn openapi(&self, action: &str, result: &str) {
        // Bound the label values: an unknown Action is one value, not one per request.
        let action = match action {
            "SendUnicast" | "SendRoomUnicast" | "BatchSendRoomUnicast" | "SendBroadcast" => action,
            _ => "other",
        };
        self.openapi
            .get_or_create(&ApiLabel {
                action: action.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    pub(crate) fn callback(&self, code: Code, elapsed: Duration) {
        let result = match code {
            Code::Ok => "ok",
            Code::ServerResponseError => "server_error",
            _ => "unreachable",
        };
        self.callbacks.get_or_create(&ResultLabel { result }).inc();
        self.callback_seconds.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn set_redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    pub(crate) fn cluster_published(&self, n: usize) {
        self.cluster_published.inc_by(n as u64);
    }

    pub(crate) fn cluster_received(&self) {
        self.cluster_received.inc();
    }

    pub(crate) fn cluster_error(&self) {
        self.cluster_errors.inc();
    }

    pub(crate) fn cluster_dropped(&self) {
        self.cluster_dropped.inc();
    }

    pub(crate) fn cluster_reconnect(&self) {
        self.cluster_reconnects.inc();
    }
}

/// Counts a connection as open while it lives.
pub(crate) struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
