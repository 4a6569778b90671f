//! Soak of the HTTP front: the agent under a mix of normal scrapes and hostile
//! clients (2,000 idle, 300 slowloris and 64 non-reading connections, held
//! and reopened as the agent closes them) for `SOAK_SECONDS` (default 600).
//! A normal client asks `/healthz` on a new connection ten times a second, as
//! a kubelet would, and a scraper takes `/metrics` every second. Reports, per
//! 30 s and overall, the `/healthz` p50/p99/max, the agent's RSS and fds, its
//! idle RSS before and after; budgets: `/healthz` p99 <= 100 ms, RSS <= 16 MiB
//! at every point and within 1 MiB of idle after.
//!
//! `scripts/bench-soak.sh` runs it on the shipped static binary; under
//! `cargo test` (no `--bench` argument) it runs for 5 s as a smoke test.

// A load generator paces its clients and lets the agent settle in wall time.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::hostile::{
    fd_count, quantile, raise_fd_limit, rss_kib, timed_healthz, Behaviour, HostileSet,
};
use support::{short_tempdir, AgentProcess};
use tokio::time::Instant;

const QUIET: &str = "[[runtime]]\nkind = \"docker\"\nendpoint = \"unix:///nonexistent/nv.sock\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n";

/// RSS and fds of the agent once it has settled, in KiB and count.
fn settled(pid: i32) -> (u64, usize) {
    std::thread::sleep(Duration::from_secs(5));
    (rss_kib(pid), fd_count(pid))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: u64 = match std::env::var("SOAK_SECONDS") {
        Ok(s) => s.parse().expect("SOAK_SECONDS is a number of seconds"),
        Err(_) if full => 600,
        Err(_) => 5,
    };
    raise_fd_limit(8_192);
    let program = std::env::var_os("NODEVITALS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nodevitals")));
    let dir = short_tempdir("soak");
    let config = format!("{QUIET}{}", support::ONLY_RUNTIME);
    let agent = AgentProcess::start_program(&program, dir.path(), &config, &[], |_| {});
    let pid = agent.pid();
    let (idle_rss, idle_fds) = settled(pid);
    println!(
        "soak: {} for {secs} s; idle RSS {idle_rss} KiB, {idle_fds} fds",
        program.display()
    );

    let hostile = [
        HostileSet::start(agent.addr, Behaviour::Idle, 2_000),
        HostileSet::start(agent.addr, Behaviour::Slowloris, 300),
        HostileSet::start(agent.addr, Behaviour::NonReading, 64),
    ];
    let addr = agent.addr;
    let scraper = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut failed = 0u64;
        while Instant::now() < end {
            if !matches!(support::http_get(addr, "/metrics"), Ok((200, _))) {
                failed += 1;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        failed
    });

    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let (mut all, mut window) = (Vec::new(), Vec::new());
    let (mut max_rss, mut max_fds, mut failures) = (0u64, 0usize, 0u64);
    let mut next_report = start + Duration::from_secs(30.min(secs));
    while Instant::now() < end {
        match timed_healthz(addr, Duration::from_secs(5)) {
            Ok((200, took)) => window.push(took),
            Ok((status, _)) => panic!("/healthz answered {status}"),
            Err(e) => {
                failures += 1;
                eprintln!("soak: /healthz failed: {e}");
            }
        }
        max_rss = max_rss.max(rss_kib(pid));
        max_fds = max_fds.max(fd_count(pid));
        if Instant::now() >= next_report {
            println!(
                "soak: t={:>4}s healthz n={} p50={:?} p99={:?} max={:?} rss={} KiB (max {max_rss}) fds={}",
                start.elapsed().as_secs(),
                window.len(),
                quantile(&mut window, 0.5),
                quantile(&mut window, 0.99),
                quantile(&mut window, 1.0),
                rss_kib(pid),
                fd_count(pid),
            );
            all.append(&mut window);
            next_report += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    all.append(&mut window);
    let scrape_failures = scraper.join().unwrap();
    drop(hostile);
    let (after_rss, after_fds) = settled(pid);
    println!(
        "MEASURE soak_seconds={secs} healthz_n={} healthz_p50_ms={:.2} healthz_p99_ms={:.2} healthz_max_ms={:.2} healthz_failures={failures} metrics_scrape_failures={scrape_failures}",
        all.len(),
        quantile(&mut all, 0.5).as_secs_f64() * 1e3,
        quantile(&mut all, 0.99).as_secs_f64() * 1e3,
        quantile(&mut all, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "MEASURE idle_rss_kib={idle_rss} max_rss_kib={max_rss} after_rss_kib={after_rss} idle_fds={idle_fds} max_fds={max_fds} after_fds={after_fds}"
    );
}
