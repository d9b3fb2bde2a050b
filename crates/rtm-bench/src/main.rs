//! `rtm-bench`: the load generator of rtm's benchmarks (BENCHMARKS.md).
//!
//! * `fanout`: N clients in one room, broadcasts at a sweep of rates; deliveries per second
//!   and delivery latency, against rtm-server, the Socket.IO 4 reference or the bare server.
//! * `relay`: M clients sending `SendServer` to a business server run inside this process;
//!   messages per second and round trips.
//! * `idle`: N connected, logged-in clients; the server's resident memory per connection.
//! * `table`: the side-by-side table of the JSON results the others wrote.
//!
//! Load goes to loopback only, is bounded in count and time, and stops by itself.

mod conn;
mod publish;
mod stats;
mod table;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use rtm_protocol::frame::ClientFrame;
use serde_json::{json, Value};

use conn::{Hello, Kind, Target};
use stats::{recorder, CpuMark};

#[derive(Debug, Parser)]
#[command(
    name = "rtm-bench",
    about = "Load generator for rtm's benchmarks (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N clients in one room; broadcasts at each rate; deliveries/s and latency.
    Fanout(FanoutArgs),
    /// M clients sending SendServer to a business server inside this process.
    Relay(RelayArgs),
    /// N connected, logged-in clients; server memory per connection.
    Idle(IdleArgs),
    /// Prints the comparison table of JSON result files.
    Table {
        /// Result files written with --json.
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Which server the URL points at.
    #[arg(long, value_enum, default_value = "rtm")]
    server: Kind,
    /// The server's base URL (loopback only), e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process id for CPU and memory figures (default: the process listening
    /// on the URL's port).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Number of client connections.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Spread clients over this many source addresses 127.0.0.2, 127.0.0.3, ...
    /// (about 28k ports each).
    #[arg(long, default_value_t = 4)]
    source_ips: u8,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// rtm app id.
    #[arg(long, default_value = "0123456789abcdef01234567")]
    app_id: String,
    /// rtm app key (signs the join and login tokens).
    #[arg(long, default_value = "benchkey")]
    app_key: String,
    /// rtm OpenAPI access key.
    #[arg(long, default_value = "AKB")]
    access_key: String,
    /// rtm OpenAPI secret key.
    #[arg(long, default_value = "SKB")]
    secret_key: String,
    /// The room the clients join.
    #[arg(long, default_value = "bench")]
    room: String,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Broadcasts per second; with several (comma-separated), a sweep in increasing order
    /// that stops after the first step past the knee (loss, a dropped client, or p99 >= 1 s).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    rate: Vec<f64>,
    /// Seconds of publishing per rate.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of publishing at the first (lowest) rate, the one whose latency is compared
    /// (default: `--duration`). At 10,000 clients and 2/s, 4 s are 8 bursts of 10,000
    /// deliveries, and the p99 of 8 bursts is little more than the worst one.
    #[arg(long)]
    first_duration: Option<f64>,
    /// Message size in bytes (at least 16: the send timestamp).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Seconds of unmeasured publishing at the lowest rate first (JIT, caches, pools).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// rtm clients join invisible (`setUserVisibility(false)`: an audience, told nothing
    /// about each other), so filling the room costs no Member frames.
    #[arg(long)]
    invisible: bool,
}

#[derive(Debug, Args)]
struct RelayArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Where the business server inside this process listens (the rtm server must allow
    /// http://ADDR/ as a callback prefix).
    #[arg(long, default_value = "127.0.0.1:9300")]
    biz_listen: SocketAddr,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to let the server settle after the last connection, before reading its memory.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(async move {
        match cli.command {
            Command::Fanout(a) => fanout(a).await,
            Command::Relay(a) => relay(a).await,
            Command::Idle(a) => idle(a).await,
            Command::Table { files } => table::print(&files),
        }
    });
    // Connections and tasks end with the process.
    rt.shutdown_background();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the URL is on loopback and builds the target; finds the server's pid.
fn setup(c: &Common) -> Result<(Target, Option<u32>), String> {
    let rest = c
        .url
        .strip_prefix("http://")
        .or_else(|| c.url.strip_prefix("ws://"))
        .ok_or("--url must be http://HOST:PORT")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|_| format!("--url must name an IP address and port: {hostport}"))?;
    if !addr.ip().is_loopback() {
        return Err("the benchmark only targets loopback addresses".into());
    }
    let limit = stats::raise_fd_limit();
    if (c.clients as u64) + 64 > limit {
        return Err(format!(
            "{} clients need more open files than the limit {limit}",
            c.clients
        ));
    }
    let sources = (0..c.source_ips)
        .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k)))
        .collect();
    let pid = c.server_pid.or_else(|| stats::find_listener(addr.port()));
    if pid.is_none() {
        eprintln!("note: server process not found; its CPU and memory are not reported");
    }
    Ok((
        Target {
            kind: c.server,
            addr,
            app_id: c.app_id.clone(),
            app_key: c.app_key.clone(),
            room: c.room.clone(),
            visible: true,
            sources,
        },
        pid,
    ))
}

/// Connects `n` clients (handshake included) and starts their receive loops. Returns how
/// many connected and the first error.
async fn connect_all(
    t: &Target,
    n: usize,
    hello: Hello,
    concurrency: usize,
) -> (Vec<conn::Ws>, Option<String>) {
    let mut ok = Vec::with_capacity(n);
    let mut first = None;
    let mut s = futures::stream::iter(0..n)
        .map(|i| conn::connect(t, i, hello))
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = s.next().await {
        match r {
            Ok(ws) => ok.push(ws),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    (ok, first)
}

/// Waits until no frame has arrived for `quiet`, at most `max`.
async fn wait_quiet(quiet: Duration, max: Duration) {
    let rec = recorder();
    let start = Instant::now();
    let mut last = (rec.other.load(Ordering::Relaxed), rec.delivered());
    let mut since = Instant::now();
    while start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (rec.other.load(Ordering::Relaxed), rec.delivered());
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

fn write_json(path: &Option<PathBuf>, v: &Value) -> Result<(), String> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_string_pretty(v).unwrap())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn pct(h: &hdrhistogram::Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn fanout(a: FanoutArgs) -> Result<(), String> {
    let c = &a.common;
    let (mut t, pid) = setup(c)?;
    t.visible = !a.invisible;
    if a.payload < 16 {
        return Err("--payload must be at least 16 bytes".into());
    }
    let mut rates = a.rate.clone();
    rates.sort_by(f64::total_cmp);
    let first_duration = a.first_duration.unwrap_or(a.duration);
    println!(
        "fanout: server {} at {}, {} {}clients in one room, {}-byte messages, rates {:?}/s for {} s each (the first for {first_duration} s)",
        t.kind.name(),
        t.addr,
        c.clients,
        if a.invisible { "invisible " } else { "" },
        a.payload,
        rates,
        a.duration
    );

    let mark = CpuMark::now(pid);
    let (clients, err) = connect_all(&t, c.clients, Hello::Join, c.connect_concurrency).await;
    let connected = clients.len();
    for ws in clients {
        tokio::spawn(conn::receive(t.kind, ws));
    }
    // Membership notices (rtm's Member frames) settle before measuring.
    wait_quiet(Duration::from_secs(1), Duration::from_secs(300)).await;
    let (connect_secs, gen_cpu, srv_cpu) = mark.since(pid);
    println!(
        "connected {connected}/{} in {connect_secs:.1} s (until quiet; server CPU {srv_cpu:.1} s, generator CPU {gen_cpu:.1} s, {} other frames)",
        c.clients,
        recorder().other.load(Ordering::Relaxed)
    );
    if let Some(e) = &err {
        println!("first connect error: {e}");
    }
    if connected == 0 {
        return Err("no client connected".into());
    }

    // The publisher runs on a runtime (and thread) of its own, so that its sends keep their
    // schedule however busy the clients' runtime is: a send delayed here would be counted as
    // the server's latency.
    let prt = Background(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("publisher")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?,
    ));
    let keys = publish::Keys {
        access_key: c.access_key.clone(),
        secret_key: c.secret_key.clone(),
    };
    let target = t.clone();
    let publisher = Arc::new(
        prt.handle()
            .spawn(async move { publish::Publisher::new(&target, keys).await })
            .await
            .map_err(|e| e.to_string())??,
    );
    let publish = |rate: f64, secs: f64| {
        let p = publisher.clone();
        let payload = a.payload;
        let run = prt
            .handle()
            .spawn(async move { p.run(rate, Duration::from_secs_f64(secs), payload).await });
        async move { run.await.expect("the publisher does not panic") }
    };
    if a.warmup > 0.0 {
        publish(rates[0], a.warmup).await;
        wait_quiet(Duration::from_millis(500), Duration::from_secs(10)).await;
    }
    let rec = recorder();
    let mut steps = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        rec.reset();
        let closed0 = rec.closed();
        let mark = CpuMark::now(pid);
        let sent = publish(rate, if i == 0 { first_duration } else { a.duration }).await;
        let expected = sent.ok * connected as u64;
        // Drain: until everything arrived, or nothing more arrives for 2 s (at most 30 s).
        let drain_start = Instant::now();
        let mut last = rec.delivered();
        let mut since = Instant::now();
        while last < expected && drain_start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let d = rec.delivered();
            if d != last {
                last = d;
                since = Instant::now();
            } else if since.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        let (secs, gen_cpu, srv_cpu) = mark.since(pid);
        let snap = rec.snapshot();
        let closed = rec.closed() - closed0;
        let (p50, p99, max) = (pct(&snap.hist, 0.5), pct(&snap.hist, 0.99), snap.hist.max());
        // The fastest deliveries: how long a message takes to reach its first receivers
        // (the publishing path), apart from how long the fan-out to the rest takes.
        let (min, p1) = (snap.hist.min(), pct(&snap.hist, 0.01));
        let per_sec = snap.delivered as f64 / secs;
        let ok = snap.delivered >= expected
            && closed == 0
            && sent.failed == 0
            && p99 < 1_000_000
            && sent.rate >= 0.9 * rate;
        println!(
            "rate {rate:>7.0}/s (sent {:>7.0}/s, {} failed, answered p50 {:.1} p99 {:.1} ms): delivered {}/{} = {:>9.0}/s  min {:>6.2} p1 {:>6.2} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  CPU server {:.2} s ({:.0}%), generator {:.2} s ({:.0}%)  closed {closed}{}",
            sent.rate,
            sent.failed,
            ms(sent.answer_p50),
            ms(sent.answer_p99),
            snap.delivered,
            expected,
            per_sec,
            ms(min),
            ms(p1),
            ms(p50),
            ms(p99),
            ms(max),
            srv_cpu,
            100.0 * srv_cpu / secs,
            gen_cpu,
            100.0 * gen_cpu / secs,
            if ok { "" } else { "  <- past the knee" }
        );
        if let Some(e) = publisher.first_error() {
            if sent.failed > 0 {
                println!("  first broadcast error: {e}");
            }
        }
        steps.push(json!({
            "rate": rate,
            "sent_rate": sent.rate,
            "sent": sent.ok,
            "failed": sent.failed,
            "answer_p50_us": sent.answer_p50,
            "answer_p99_us": sent.answer_p99,
            "expected": expected,
            "delivered": snap.delivered,
            "secs": secs,
            "deliveries_per_sec": per_sec,
            "min_us": min,
            "p1_us": p1,
            "p50_us": p50,
            "p99_us": p99,
            "max_us": max,
            "server_cpu": srv_cpu,
            "generator_cpu": gen_cpu,
            "closed": closed,
            "ok": ok,
        }));
        if !ok {
            break;
        }
        // Let anything late arrive before the next step.
        wait_quiet(Duration::from_millis(500), Duration::from_secs(10)).await;
    }
    let best = steps
        .iter()
        .filter(|s| s["ok"] == true)
        .map(|s| s["deliveries_per_sec"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max);
    println!("knee: {best:.0} deliveries/s (best step without loss, drops or p99 >= 1 s)");
    write_json(
        &c.json,
        &json!({
            "mode": "fanout",
            "server": t.kind.name(),
            "clients": c.clients,
            "connected": connected,
            "payload": a.payload,
            "invisible": a.invisible,
            "duration": a.duration,
            "first_duration": first_duration,
            "connect_secs": connect_secs,
            "connect_server_cpu": srv_cpu,
            "steps": steps,
            "knee_deliveries_per_sec": best,
        }),
    )
}

async fn relay(a: RelayArgs) -> Result<(), String> {
    let c = &a.common;
    let (t, pid) = setup(c)?;
    if t.kind != Kind::Rtm {
        return Err("relay runs against rtm-server only".into());
    }
    let listener = tokio::net::TcpListener::bind(a.biz_listen)
        .await
        .map_err(|e| format!("business server on {}: {e}", a.biz_listen))?;
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{}/cb", a.biz_listen);
    println!(
        "relay: {} clients -> rtm at {} -> business server {url}, {}-byte messages, {} s",
        c.clients, t.addr, a.payload, a.duration
    );

    let (clients, err) = connect_all(&t, c.clients, Hello::Login, c.connect_concurrency).await;
    if let Some(e) = &err {
        println!("first connect error: {e}");
    }
    let mut ready = Vec::new();
    for mut ws in clients {
        let f = ClientFrame::SetServerParams {
            req: 2,
            signature: "bench",
            url: &url,
        };
        conn::send_frame(&mut ws, &f).await?;
        conn::expect_reply(&mut ws, 2)
            .await
            .map_err(|e| format!("setServerParams: {e}"))?;
        ready.push(ws);
    }
    let n = ready.len();
    println!("{n} clients logged in with server params set");
    let rec = recorder();
    rec.reset();
    let duration = Duration::from_secs_f64(a.duration);
    let body = conn::payload(0, a.payload.max(16));
    let mark = CpuMark::now(pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in ready {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = 10u32;
            let mut errors = 0u64;
            while start.elapsed() < duration {
                req += 1;
                let f = ClientFrame::SendServer {
                    req,
                    msg_id: u64::from(req),
                    binary: false,
                    payload: body.as_bytes(),
                };
                let sent = Instant::now();
                if conn::send_frame(&mut ws, &f).await.is_err() {
                    return errors + 1;
                }
                match conn::expect_reply(&mut ws, req).await {
                    Ok(_) => recorder().latency(sent.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap_or(1);
    }
    let (secs, gen_cpu, srv_cpu) = mark.since(pid);
    let snap = rec.snapshot();
    let (p50, p99, max) = (pct(&snap.hist, 0.5), pct(&snap.hist, 0.99), snap.hist.max());
    let per_sec = snap.delivered as f64 / secs;
    println!(
        "relayed {} in {secs:.1} s = {per_sec:.0} messages/s, {errors} errors; round trip p50 {:.2} ms p99 {:.2} ms max {:.2} ms; CPU server {srv_cpu:.2} s ({:.0}%), generator+business server {gen_cpu:.2} s ({:.0}%)",
        snap.delivered,
        ms(p50),
        ms(p99),
        ms(max),
        100.0 * srv_cpu / secs,
        100.0 * gen_cpu / secs,
    );
    write_json(
        &c.json,
        &json!({
            "mode": "relay",
            "server": t.kind.name(),
            "clients": n,
            "payload": a.payload,
            "secs": secs,
            "messages": snap.delivered,
            "messages_per_sec": per_sec,
            "errors": errors,
            "p50_us": p50,
            "p99_us": p99,
            "max_us": max,
            "server_cpu": srv_cpu,
            "generator_cpu": gen_cpu,
        }),
    )
}

async fn idle(a: IdleArgs) -> Result<(), String> {
    let c = &a.common;
    let (t, pid) = setup(c)?;
    let pid = pid.ok_or("idle needs the server's pid (--server-pid)")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stats::rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
    let (clients, err) = connect_all(&t, c.clients, Hello::Login, c.connect_concurrency).await;
    let n = clients.len();
    for ws in clients {
        tokio::spawn(conn::receive(t.kind, ws));
    }
    if let Some(e) = &err {
        println!("first connect error: {e}");
    }
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let after = stats::rss_kib(pid).ok_or("cannot read the server's VmRSS")?;
    let closed = recorder().closed();
    let per_conn = (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64;
    println!(
        "idle: server {} with {n} connected{} clients (closed meanwhile: {closed}): VmRSS {before} KiB -> {after} KiB = {per_conn:.0} bytes per connection",
        t.kind.name(),
        if t.kind == Kind::Rtm { ", logged-in" } else { "" },
    );
    write_json(
        &c.json,
        &json!({
            "mode": "idle",
            "server": t.kind.name(),
            "clients": n,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "bytes_per_conn": per_conn,
            "closed": closed,
        }),
    )
}

/// A runtime owned by async code: shut down in the background when dropped (dropping it in
/// place would block the runtime that runs the dropping task).
struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("runtime until dropped").handle()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
