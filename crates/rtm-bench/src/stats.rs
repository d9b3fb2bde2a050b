//! What the generator measures: delivery latencies and counts (recorded per worker thread,
//! merged on demand), and the CPU time and memory of processes read from `/proc`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;

/// The instant all send timestamps are measured from (publisher and clients share a process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since the process's epoch: the timestamp a publisher puts in a message.
pub fn now_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// One worker thread's share of the figures.
struct Shard {
    hist: Histogram<u64>,
    delivered: u64,
}

fn new_hist() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// Latency (µs) and delivery counts, recorded without contention across worker threads.
#[derive(Default)]
pub struct Recorder {
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    /// Clients whose connection ended while the run went on.
    pub closed: AtomicU64,
    /// Frames received that carried no timestamp (member events, replies, pings).
    pub other: AtomicU64,
}

thread_local! {
    static SHARD: RefCell<Option<Arc<Mutex<Shard>>>> = const { RefCell::new(None) };
}

/// The one recorder of the process.
pub fn recorder() -> &'static Recorder {
    static R: OnceLock<Recorder> = OnceLock::new();
    R.get_or_init(Recorder::default)
}

/// A snapshot of the recorded figures.
pub struct Snapshot {
    pub delivered: u64,
    pub hist: Histogram<u64>,
}

impl Recorder {
    /// Records one delivery of a message sent at `sent_micros`.
    pub fn delivery(&self, sent_micros: u64) {
        self.latency(now_micros().saturating_sub(sent_micros));
    }

    /// Records one delivery (or round trip) that took `micros`.
    pub fn latency(&self, micros: u64) {
        let lat = micros.clamp(1, 600_000_000);
        SHARD.with(|s| {
            let mut s = s.borrow_mut();
            let shard = s.get_or_insert_with(|| {
                let shard = Arc::new(Mutex::new(Shard {
                    hist: new_hist(),
                    delivered: 0,
                }));
                self.shards.lock().unwrap().push(shard.clone());
                shard
            });
            let mut g = shard.lock().unwrap();
            g.delivered += 1;
            let _ = g.hist.record(lat);
        });
    }

    /// Clears the counts and latencies.
    pub fn reset(&self) {
        for s in self.shards.lock().unwrap().iter() {
            let mut g = s.lock().unwrap();
            g.hist.reset();
            g.delivered = 0;
        }
    }

    /// The deliveries counted since the last reset.
    pub fn delivered(&self) -> u64 {
        self.shards
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.lock().unwrap().delivered)
            .sum()
    }

    /// Everything recorded since the last reset.
    pub fn snapshot(&self) -> Snapshot {
        let mut hist = new_hist();
        let mut delivered = 0;
        for s in self.shards.lock().unwrap().iter() {
            let g = s.lock().unwrap();
            delivered += g.delivered;
            let _ = hist.add(&g.hist);
        }
        Snapshot { delivered, hist }
    }

    pub fn closed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds used so far by `pid` (`None`: this process).
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec())
}

/// The resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process listening on TCP `port` (IPv4 or IPv6), found through the socket inode.
pub fn find_listener(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if *state == "0A" && p == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Raises this process's soft open-file limit to its hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        }
    }
    l.rlim_cur
}

/// A CPU reading of the generator and the server at one instant.
#[derive(Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    me: f64,
    server: f64,
}

impl CpuMark {
    pub fn now(server: Option<u32>) -> Self {
        CpuMark {
            at: Instant::now(),
            me: cpu_secs(None).unwrap_or(0.0),
            server: server.and_then(|p| cpu_secs(Some(p))).unwrap_or(0.0),
        }
    }

    /// (wall seconds, generator CPU seconds, server CPU seconds) since `self`.
    pub fn since(&self, server: Option<u32>) -> (f64, f64, f64) {
        let now = CpuMark::now(server);
        (
            now.at.duration_since(self.at).as_secs_f64(),
            now.me - self.me,
            now.server - self.server,
        )
    }
}
