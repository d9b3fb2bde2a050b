//! The broadcast trigger of each server, driven at a fixed rate: a signed `SendBroadcast`
//! OpenAPI request (rtm), `POST /broadcast` (the Socket.IO reference) or a message on the
//! publisher WebSocket (bare).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rtm_protocol::sign::{self, SignRequest};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Kind, Target};
use crate::stats::now_micros;

/// OpenAPI credentials for rtm's publisher.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
}

enum How {
    Rtm { keys: Keys },
    Socketio,
    Bare { tx: mpsc::Sender<String> },
}

/// Sends broadcasts to one server.
pub struct Publisher {
    how: How,
    http: reqwest::Client,
    target: Target,
    in_flight: Arc<Semaphore>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    first_error: Arc<Mutex<Option<String>>>,
    /// Request-to-answer time of each broadcast of the current run, in microseconds (for the
    /// bare server, whose publisher gets no answer, the time to queue it).
    latency: Arc<Mutex<Histogram<u64>>>,
}

/// HTTP requests in flight at once. Each waits for the server's reply, which comes after the
/// server has queued the broadcast for every member: with fewer, a busy server's reply latency
/// (not its fan-out) capped the publishing rate (64 in flight reached ~920 broadcasts/s).
const MAX_IN_FLIGHT: usize = 512;

/// What one publishing run did.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Broadcasts the server accepted.
    pub ok: u64,
    /// Broadcasts that failed (non-200, connection errors).
    pub failed: u64,
    /// The rate achieved, per second.
    pub rate: f64,
    /// Request-to-answer time of the broadcasts, p50 and p99, in microseconds.
    pub answer_p50: u64,
    pub answer_p99: u64,
}

impl Publisher {
    pub async fn new(target: &Target, keys: Keys) -> Result<Self, String> {
        let how = match target.kind {
            Kind::Rtm => How::Rtm { keys },
            Kind::Socketio => How::Socketio,
            Kind::Bare => {
                let ws = conn::open(target, usize::MAX, "/pub").await?;
                let (tx, mut rx) = mpsc::channel::<String>(65_536);
                let (mut sink, mut source) = ws.split();
                tokio::spawn(async move { while source.next().await.is_some() {} });
                tokio::spawn(async move {
                    while let Some(p) = rx.recv().await {
                        let mut m = p;
                        loop {
                            if sink.feed(Message::binary(m.into_bytes())).await.is_err() {
                                return;
                            }
                            match rx.try_recv() {
                                Ok(n) => m = n,
                                Err(_) => break,
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                How::Bare { tx }
            }
        };
        Ok(Publisher {
            how,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(MAX_IN_FLIGHT)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| e.to_string())?,
            target: target.clone(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            ok: Arc::default(),
            failed: Arc::default(),
            first_error: Arc::default(),
            latency: Arc::new(Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            )),
        })
    }

    /// The first error a broadcast got, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap().clone()
    }

    /// Publishes at `rate` per second for `duration`, messages of `size` bytes; waits for
    /// the requests in flight.
    pub async fn run(&self, rate: f64, duration: Duration, size: usize) -> Sent {
        let ok0 = self.ok.load(Ordering::Relaxed);
        let failed0 = self.failed.load(Ordering::Relaxed);
        self.latency.lock().unwrap().reset();
        let start = Instant::now();
        let mut k: u64 = 0;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            let due = (elapsed.as_secs_f64() * rate) as u64 + 1;
            while k < due {
                self.send_one(size).await;
                k += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Wait for the HTTP requests in flight.
        let _all = self
            .in_flight
            .acquire_many(MAX_IN_FLIGHT as u32)
            .await
            .expect("semaphore open");
        let secs = start.elapsed().as_secs_f64();
        let ok = self.ok.load(Ordering::Relaxed) - ok0;
        let h = self.latency.lock().unwrap();
        Sent {
            ok,
            failed: self.failed.load(Ordering::Relaxed) - failed0,
            rate: ok as f64 / secs,
            answer_p50: h.value_at_quantile(0.5),
            answer_p99: h.value_at_quantile(0.99),
        }
    }

    async fn send_one(&self, size: usize) {
        let body = conn::payload(now_micros(), size);
        let start = Instant::now();
        let req = match &self.how {
            How::Bare { tx } => {
                let counter = if tx.send(body).await.is_ok() {
                    &self.ok
                } else {
                    &self.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                record(&self.latency, start);
                return;
            }
            How::Socketio => self
                .http
                .post(format!("http://{}/broadcast", self.target.addr))
                .body(body),
            How::Rtm { keys } => self.rtm_request(keys, &body),
        };
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (ok, failed, first, latency) = (
            self.ok.clone(),
            self.failed.clone(),
            self.first_error.clone(),
            self.latency.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let err = match req.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!(
                    "{}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Some(e.to_string()),
            };
            record(&latency, start);
            match err {
                None => ok.fetch_add(1, Ordering::Relaxed),
                Some(e) => {
                    first.lock().unwrap().get_or_insert(e);
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }

    fn rtm_request(&self, keys: &Keys, message: &str) -> reqwest::RequestBuilder {
        let t = &self.target;
        let body = serde_json::json!({
            "AppId": t.app_id,
            "RoomId": t.room,
            "From": "bench",
            "Binary": false,
            "Message": message,
        })
        .to_string();
        let query = "Action=SendBroadcast&Version=2023-07-20";
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let x_date = sign::format_x_date(now);
        let hash = sign::hex_sha256(body.as_bytes());
        let host = t.addr.to_string();
        let headers = [
            ("Host", host.as_str()),
            ("X-Date", x_date.as_str()),
            ("X-Content-Sha256", hash.as_str()),
        ];
        let req = SignRequest {
            method: "POST",
            path: "/",
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        let auth = sign::sign(
            &req,
            &keys.access_key,
            &keys.secret_key,
            "cn-north-1",
            "rtc",
            &x_date,
            &["host", "x-content-sha256", "x-date"],
        );
        self.http
            .post(format!("http://{host}/?{query}"))
            .header("Content-Type", "application/json")
            .header("X-Date", x_date)
            .header("X-Content-Sha256", hash)
            .header("Authorization", auth)
            .body(body)
    }
}

/// Records the time since `since` in `h`.
fn record(h: &Mutex<Histogram<u64>>, since: Instant) {
    let us = since.elapsed().as_micros() as u64;
    h.lock().unwrap().saturating_record(us.max(1));
}
