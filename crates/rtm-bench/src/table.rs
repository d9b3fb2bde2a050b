//! The side-by-side table of result files, with rtm's ratios to the two references and the
//! issue's targets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// The step with the most deliveries/s among those past no knee (else the first step).
fn knee_step(r: &Value) -> Option<&Value> {
    let steps = r["steps"].as_array()?;
    steps
        .iter()
        .filter(|s| s["ok"] == true)
        .max_by(|a, b| f(&a["deliveries_per_sec"]).total_cmp(&f(&b["deliveries_per_sec"])))
        .or(steps.first())
}

pub fn print(files: &[PathBuf]) -> Result<(), String> {
    let mut results = Vec::new();
    for p in files {
        let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v: Value = serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))?;
        results.push(v);
    }
    let by = |mode: &str| -> BTreeMap<u64, BTreeMap<String, Value>> {
        let mut m: BTreeMap<u64, BTreeMap<String, Value>> = BTreeMap::new();
        for r in results.iter().filter(|r| r["mode"] == mode) {
            let clients = r["clients"].as_u64().unwrap_or(0);
            let server = r["server"].as_str().unwrap_or("?").to_owned();
            m.entry(clients).or_default().insert(server, r.clone());
        }
        m
    };
    let order = ["rtm", "bare", "socketio"];

    for (clients, rs) in by("fanout") {
        let payload = rs.values().next().map(|r| f(&r["payload"])).unwrap_or(0.0);
        println!("\n## Fan-out: {clients} clients in one room, {payload:.0}-byte messages\n");
        println!("| server | connected | knee deliveries/s | at rate/s | server CPU | server CPU µs per delivery | generator CPU | moderate rate/s | p50 ms | p99 ms | max ms | server CPU µs per delivery |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut knee = BTreeMap::new();
        let mut p99 = BTreeMap::new();
        for s in order {
            let Some(r) = rs.get(s) else { continue };
            let k = knee_step(r);
            let m = r["steps"].as_array().and_then(|a| a.first());
            let kd = f(&r["knee_deliveries_per_sec"]);
            knee.insert(s, kd);
            if let Some(m) = m {
                p99.insert(s, f(&m["p99_us"]));
            }
            let cpu = |step: Option<&Value>, key: &str| {
                step.map(|x| format!("{:.0}%", 100.0 * f(&x[key]) / f(&x["secs"]).max(1e-9)))
                    .unwrap_or_default()
            };
            // CPU per delivery varies less than throughput when other work shares the cores.
            let per_delivery = |step: Option<&Value>| {
                step.map(|x| {
                    format!(
                        "{:.1}",
                        1e6 * f(&x["server_cpu"]) / f(&x["delivered"]).max(1.0)
                    )
                })
                .unwrap_or_default()
            };
            let name = match r["invisible"].as_bool() {
                Some(true) => format!("{s} (invisible members)"),
                _ => s.to_owned(),
            };
            println!(
                "| {name} | {} | {kd:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} |",
                r["connected"],
                k.map(|x| format!("{:.0}", f(&x["rate"])))
                    .unwrap_or_default(),
                cpu(k, "server_cpu"),
                per_delivery(k),
                cpu(k, "generator_cpu"),
                m.map(|x| format!("{:.0}", f(&x["rate"])))
                    .unwrap_or_default(),
                m.map(|x| f(&x["p50_us"]) / 1000.0).unwrap_or(0.0),
                m.map(|x| f(&x["p99_us"]) / 1000.0).unwrap_or(0.0),
                m.map(|x| f(&x["max_us"]) / 1000.0).unwrap_or(0.0),
                per_delivery(m),
            );
        }
        let g = |m: &BTreeMap<&str, f64>, k: &str| m.get(k).copied();
        println!(
            "\ndeliveries/s at the knee: rtm/bare {} (target >= 0.80x), rtm/socketio {}; p99 at the moderate rate: rtm/bare {} (target <= 1.20x)",
            ratio(g(&knee, "rtm"), g(&knee, "bare")),
            ratio(g(&knee, "rtm"), g(&knee, "socketio")),
            ratio(g(&p99, "rtm"), g(&p99, "bare")),
        );
    }

    for (clients, rs) in by("idle") {
        println!("\n## Idle: {clients} connected clients\n");
        println!("| server | VmRSS before KiB | after KiB | bytes per connection |");
        println!("|---|---|---|---|");
        let mut per = BTreeMap::new();
        for s in order {
            let Some(r) = rs.get(s) else { continue };
            per.insert(s, f(&r["bytes_per_conn"]));
            println!(
                "| {s} | {} | {} | {:.0} |",
                r["rss_before_kib"],
                r["rss_after_kib"],
                f(&r["bytes_per_conn"])
            );
        }
        println!(
            "\nper connection: rtm/bare {}, rtm/socketio {} (target: rtm <= 8192 bytes)",
            ratio(per.get("rtm").copied(), per.get("bare").copied()),
            ratio(per.get("rtm").copied(), per.get("socketio").copied()),
        );
    }

    for (clients, rs) in by("relay") {
        for r in rs.values() {
            println!(
                "\n## Client to business server: {clients} clients\n\n{:.0} messages/s, round trip p50 {:.2} ms, p99 {:.2} ms, {} errors; CPU server {:.0}%, generator and business server {:.0}%",
                f(&r["messages_per_sec"]),
                f(&r["p50_us"]) / 1000.0,
                f(&r["p99_us"]) / 1000.0,
                r["errors"],
                100.0 * f(&r["server_cpu"]) / f(&r["secs"]).max(1e-9),
                100.0 * f(&r["generator_cpu"]) / f(&r["secs"]).max(1e-9),
            );
        }
    }
    Ok(())
}
