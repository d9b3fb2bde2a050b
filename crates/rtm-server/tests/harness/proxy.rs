//! A fault-injecting TCP proxy for tests: it listens on `127.0.0.1:0`, forwards every
//! connection to an upstream address, and, while its faults are armed, cuts connections at
//! random, delays bytes and splits writes into small chunks.
//!
//! Every random choice comes from a seeded RNG; the seed is printed when the proxy starts so a
//! failing run can be repeated with `RTM_CHAOS_SEED=<seed>`. (Connections are accepted in the
//! order the clients happen to connect, so a repeated run injects the same kinds of faults
//! with the same odds, not necessarily on the same connections.)
//!
//! Faults are bounded in time ([`Faults::active_for`], plus the latest cut) and count
//! ([`Faults::max_cuts`]): after either, connections are forwarded untouched, so a test can
//! let everything settle.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does to connections while its faults are armed.
#[derive(Debug, Clone)]
pub struct Faults {
    /// The RNG seed (printed at start).
    pub seed: u64,
    /// The chance that a new connection is cut at some point.
    pub cut_probability: f64,
    /// When a doomed connection is cut, after it was accepted.
    pub cut_after: Range<Duration>,
    /// The chance that a chunk of bytes is held back before it is forwarded.
    pub delay_probability: f64,
    /// The longest hold-back.
    pub max_delay: Duration,
    /// The chance that a read is forwarded as several small writes.
    pub split_probability: f64,
    /// The largest piece of a split write, in bytes (at least 1).
    pub max_piece: usize,
    /// Faults are decided only this long after the proxy starts (a cut decided then lands
    /// at most `cut_after.end` later).
    pub active_for: Duration,
    /// At most this many cuts in all.
    pub max_cuts: usize,
}

impl Faults {
    /// No faults at all: a plain forwarder.
    pub fn none() -> Self {
        Faults {
            seed: 0,
            cut_probability: 0.0,
            cut_after: Duration::ZERO..Duration::from_millis(1),
            delay_probability: 0.0,
            max_delay: Duration::ZERO,
            split_probability: 0.0,
            max_piece: 1,
            active_for: Duration::ZERO,
            max_cuts: 0,
        }
    }

    /// The seed from `RTM_CHAOS_SEED`, or a fresh random one.
    pub fn seed_from_env() -> u64 {
        std::env::var("RTM_CHAOS_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(rand::random)
    }
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicUsize,
    /// Connections open right now (both directions not yet finished).
    pub open: AtomicUsize,
    /// Connections cut on purpose.
    pub cuts: AtomicUsize,
    /// Chunks held back.
    pub delays: AtomicU64,
    /// Reads forwarded as several writes.
    pub splits: AtomicU64,
    /// Bytes forwarded, both directions.
    pub bytes: AtomicU64,
}

/// A running proxy. Dropping it stops accepting and cuts every open connection.
pub struct FaultProxy {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` with `faults`, and prints its seed.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        eprintln!(
            "fault proxy {addr} -> {upstream}: seed {} (repeat with RTM_CHAOS_SEED={})",
            faults.seed, faults.seed
        );
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            Arc::new(faults),
            stats.clone(),
            stopped,
        ));
        FaultProxy {
            addr,
            stats,
            stop,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A one-line summary of the counters.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "accepted {}, open {}, cuts {}, delays {}, splits {}, bytes {}",
            s.accepted.load(Ordering::Relaxed),
            s.open.load(Ordering::Relaxed),
            s.cuts.load(Ordering::Relaxed),
            s.delays.load(Ordering::Relaxed),
            s.splits.load(Ordering::Relaxed),
            s.bytes.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: Arc<Faults>,
    stats: Arc<Stats>,
    stopped: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut stop = stopped.clone();
    let mut n: u64 = 0;
    loop {
        let (down, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        n += 1;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // One RNG per connection, derived from the seed and the connection's number.
        let rng = StdRng::seed_from_u64(faults.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tokio::spawn(connection(
            down,
            upstream,
            faults.clone(),
            stats.clone(),
            started,
            rng,
            stopped.clone(),
        ));
    }
}

/// Whether faults are still armed.
fn armed(faults: &Faults, started: Instant) -> bool {
    started.elapsed() < faults.active_for
}

async fn connection(
    down: TcpStream,
    upstream: SocketAddr,
    faults: Arc<Faults>,
    stats: Arc<Stats>,
    started: Instant,
    mut rng: StdRng,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    stats.open.fetch_add(1, Ordering::Relaxed);
    // Whether (and when) this connection is cut; a cut takes one unit of the budget now.
    let doomed = armed(&faults, started)
        && rng.gen_bool(faults.cut_probability)
        && stats
            .cuts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c < faults.max_cuts).then_some(c + 1)
            })
            .is_ok();
    let cut_at = doomed.then(|| {
        let d = if faults.cut_after.is_empty() {
            faults.cut_after.start
        } else {
            rng.gen_range(faults.cut_after.clone())
        };
        Instant::now() + d
    });
    // Half of the cuts are resets (zero linger: closing sends RST), half orderly closes.
    if doomed && rng.gen_bool(0.5) {
        let _ = down.set_zero_linger();
        let _ = up.set_zero_linger();
    }
    let seed_a: u64 = rng.gen();
    let seed_b: u64 = rng.gen();

    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    let c2s = pump(
        dr,
        uw,
        faults.clone(),
        stats.clone(),
        started,
        StdRng::seed_from_u64(seed_a),
    );
    let s2c = pump(
        ur,
        dw,
        faults.clone(),
        stats.clone(),
        started,
        StdRng::seed_from_u64(seed_b),
    );
    let both = async { tokio::join!(c2s, s2c) };
    let cut = async {
        match cut_at {
            // Dropping the pumps drops both sockets: bytes still held are lost.
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = both => {}
        () = cut => {}
        _ = stop.changed() => {}
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Copies `from` to `to` until EOF or an error, injecting delays and splits while armed.
/// Returns the write half so the caller decides how it is closed.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: Arc<Faults>,
    stats: Arc<Stats>,
    started: Instant,
    mut rng: StdRng,
) -> OwnedWriteHalf {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let mut data = &buf[..n];
        let on = armed(&faults, started);
        if on && rng.gen_bool(faults.delay_probability) {
            stats.delays.fetch_add(1, Ordering::Relaxed);
            let d = rng.gen_range(Duration::ZERO..=faults.max_delay);
            tokio::time::sleep(d).await;
        }
        let split = on && rng.gen_bool(faults.split_probability);
        if split {
            stats.splits.fetch_add(1, Ordering::Relaxed);
        }
        while !data.is_empty() {
            let piece = if split {
                rng.gen_range(1..=faults.max_piece.max(1)).min(data.len())
            } else {
                data.len()
            };
            if to.write_all(&data[..piece]).await.is_err() {
                return to;
            }
            data = &data[piece..];
            if split && rng.gen_bool(0.3) {
                tokio::task::yield_now().await;
            }
        }
    }
    let _ = to.shutdown().await;
    to
}
