//! Budget check for the status page at `/`: the agent's CPU time to render it
//! (the `/status` document plus the HTML) with 1,000 containers tracked by the
//! CPU probe, a full remediation history (20 restarts, 10 held-back runs), 3
//! DNS servers x 2 names x 2 types, and the config; and `/metrics` encoding
//! time alone and while another thread renders the page without pause (the
//! page must never hold up a scrape). Budget: < 5 ms of CPU per render.
//! Run with `cargo bench --bench status_page`.

use nodevitals::metrics::Metrics;
use nodevitals::probe::cpu::identity::{Identity, KubeRef};
use nodevitals::probe::cpu::scan::Reading;
use nodevitals::probe::cpu::snapshot::History;
use nodevitals::probe::cpu::{Limit, Throttling};
use nodevitals::status::StatusBoard;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONTAINERS: usize = 1000;

/// Renders measured under `cargo bench`; `cargo test --all-targets` runs
/// this binary without `--bench` as a quick smoke test.
fn rounds() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        500
    } else {
        5
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn reading(i: usize, periods: u64) -> Reading {
    let id = format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1);
    Reading {
        rel: format!("kubepods/burstable/pod{i:08x}/{id}"),
        id,
        throttling: Some(Throttling {
            periods,
            throttled_periods: periods * (i as u64 % 10) / 10,
            throttled_ns: periods * 1_000_000,
            ..Throttling::default()
        }),
        usage_ns: Some(periods * 5_000_000),
        limit: Some(Limit {
            quota_us: Some(50_000),
            period_us: 100_000,
        }),
        pressure: None,
    }
}

/// Pod names as users write them, markup included: escaping is paid for.
fn identity(id: &str) -> Arc<Identity> {
    let n = id.len() % 97 + id.as_bytes()[63] as usize;
    Arc::new(Identity {
        kubernetes: Some(KubeRef {
            namespace: format!("team-{}", n % 40),
            pod: format!("service-<{n}>-7d9f8c6b5-{id:.5}"),
            container: "app&sidecar".into(),
        }),
        name: None,
        created: 0,
    })
}

/// The board as an agent with a busy node leaves it.
fn board(metrics: &Metrics) -> StatusBoard {
    let board = StatusBoard::default();
    let names: Vec<String> = ["cpu", "dns", "docker"].map(String::from).into();
    board.retain(&names);
    let mut history = History::default();
    for periods in [100, 200] {
        let readings = (0..CONTAINERS).map(|i| reading(i, periods)).collect();
        let snapshot = history.snapshot(readings, None, identity);
        let mut section = snapshot.status(10);
        section["cgroup_version"] = "v1".into();
        section["file_errors"] = json!([]);
        section["identity_errors"] = json!([]);
        board.set_section("cpu", section);
        metrics.cpu.publish(Arc::new(snapshot));
    }
    let events: Vec<_> = (0..20)
        .map(|i| {
            json!({"at_unix": 1.0e9 + f64::from(i) * 60.0, "method": "signal", "result": "success",
                   "recovery_seconds": 2.5, "running_before": 40, "running_after": 40,
                   "detail": "PID 4242 killed with SIGKILL after a 10s grace; would kill 40 running containers"})
        })
        .collect();
    let skips: Vec<_> = (0..10)
        .map(|i| {
            json!({"reason": "backoff", "first_unix": 1.0e9 + f64::from(i) * 90.0,
                        "last_unix": 1.0e9 + f64::from(i) * 90.0 + 30.0, "rounds": 100})
        })
        .collect();
    board.set_section(
        "remediation",
        json!({"docker": {"state": "backoff", "method": "signal", "dry_run": false,
            "next_allowed_unix": 1.0e9 + 3600.0, "backoff_seconds": 1800.0,
            "restarts_in_window": 3, "max_restarts": 3, "window_seconds": 3600.0,
            "last_decision": "backoff", "running_containers": 40, "live_restore": false,
            "preflight": "pidfile /var/run/docker.pid", "state_file": "/var/lib/nodevitals/remediation-docker.json",
            "state_file_error": null, "history": events, "skips": skips}}),
    );
    let mut servers = serde_json::Map::new();
    for s in 0..3 {
        let queries: Vec<_> = (0..4)
            .map(|q| {
                let qtype = ["A", "AAAA"][q % 2];
                json!({"name": format!("name{}.svc.cluster.local.", q / 2),
                       "qtype": qtype, "transport": "udp", "result": "noerror", "seconds": 0.0021})
            })
            .collect();
        servers.insert(
            format!("10.96.0.{}:53", 10 + s),
            json!({"queries": queries, "recent_slowest_seconds": vec![0.003; 20]}),
        );
    }
    board.set_section(
        "dns",
        json!({"servers": servers, "lookups": [], "conntrack": {"insert_failed": 12, "drop": 0},
               "conntrack_error": null}),
    );
    let effective = toml::to_string_pretty(&nodevitals::config::Config::default()).unwrap();
    board.set_section(
        "config",
        json!({"source": "/etc/nodevitals/config.toml", "applied_unix": 1.0e9, "reloads": 3,
               "last_reload_rejected": true,
               "last_failure": {"at_unix": 1.0e9, "error": "line 3: unknown key"},
               "effective": effective}),
    );
    board
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 99 / 100]),
        ms(v[v.len() - 1])
    )
}

fn encode_times(metrics: &Metrics, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = tokio::time::Instant::now();
            std::hint::black_box(metrics.encode());
            t.elapsed()
        })
        .collect()
}

fn main() {
    let metrics = Metrics::new();
    let board = board(&metrics);
    let n = rounds();
    let mut cpu = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let start = thread_cpu();
        let page = nodevitals::page::render(&board.to_json(), 1.0e9 + 3000.0);
        cpu.push(thread_cpu() - start);
        size = page.len();
    }
    println!(
        "status page, {CONTAINERS} containers tracked: CPU per render {} ({size} bytes)",
        summary(cpu.clone())
    );
    let alone = encode_times(&metrics, n.min(200));
    // Scrapes encoded back to back while another thread renders `n` pages;
    // bounded in count should the renderer stall.
    let done = AtomicBool::new(false);
    let busy = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..n {
                std::hint::black_box(nodevitals::page::render(&board.to_json(), 1.0e9));
            }
            done.store(true, Ordering::Relaxed);
        });
        let mut busy = Vec::new();
        while !done.load(Ordering::Relaxed) && busy.len() < 1_000_000 {
            busy.extend(encode_times(&metrics, 1));
        }
        busy
    });
    let renders = n;
    println!("/metrics encode alone: {}", summary(alone));
    println!(
        "/metrics encode while another thread renders {renders} pages ({} scrapes): {}",
        busy.len(),
        summary(busy)
    );
    cpu.sort_unstable();
    let p99 = cpu[cpu.len() * 99 / 100];
    let verdict = if p99 < Duration::from_millis(5) {
        "within"
    } else {
        "OVER"
    };
    println!("budget < 5 ms of CPU per render: p99 {p99:?}, {verdict} budget");
}
