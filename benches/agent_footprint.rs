//! Footprint of the agent against a real dockerd and a kubelet stand-in:
//! steady-state RSS with 1 s probe intervals, `/metrics` latency under `wrk`
//! (8 connections, 10 s) and whether the load disturbs the probes' own timing,
//! CPU use at default intervals over 60 s, and the RSS the Kubernetes client
//! adds (the same probes reporting to the API server stand-in, conditions and
//! a heartbeat every 10 s) over the RSS of step 1.
//!
//! `cargo bench --bench agent_footprint` measures; under `cargo test` (no
//! `--bench` argument) it runs every step briefly as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;
use support::dockerd::Dockerd;
use support::kube_api::KubeApi;
use support::kubelet::FakeKubelet;
use support::{short_tempdir, AgentProcess};

/// The runtime and kubelet probes at `interval`; remediation keeps its state in
/// `state_dir`. DNS is off: its default servers are the host's nameservers,
/// and a benchmark sends no traffic off loopback (it is measured on its own by
/// `scripts/bench-dns.sh`).
fn config(endpoint: &str, kubelet: &str, interval: &str, state_dir: &str) -> String {
    format!(
        r#"
[paths]
state_dir = "{state_dir}"

[dns]
enabled = false

[[runtime]]
kind = "docker"
endpoint = "{endpoint}"
interval = "{interval}"
timeout = "1s"

[kubelet]
enabled = true
url = "{kubelet}"
interval = "{interval}"
timeout = "1s"
"#
    )
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time of a process in seconds, at nanosecond resolution: the sum of its
/// threads' `schedstat` run time (`/proc/PID/stat` ticks are too coarse for an
/// agent that uses milliseconds per minute).
fn cpu_seconds(pid: i32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

fn mean_ping_seconds(agent: &AgentProcess) -> (f64, f64) {
    let m = agent.metrics();
    let l = [("runtime", "docker"), ("operation", "ping")];
    (
        m.get("nodevitals_runtime_request_duration_seconds_sum", &l)
            .unwrap_or(0.0),
        m.get("nodevitals_runtime_request_duration_seconds_count", &l)
            .unwrap_or(0.0),
    )
}

/// The agent probing `d` and `kubelet` every `interval`, its state in `dir`.
fn start(
    dir: &tempfile::TempDir,
    d: &Dockerd,
    kubelet: &FakeKubelet,
    interval: &str,
    extra: &str,
) -> AgentProcess {
    let state_dir = dir.path().to_string_lossy();
    let config = config(&d.endpoint(), &kubelet.url(), interval, &state_dir) + extra;
    AgentProcess::start(dir.path(), &config, &[])
}

#[allow(clippy::disallowed_methods)]
fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = |secs: u64| Duration::from_secs(if full { secs } else { 2 });
    let d = Dockerd::start("bench-footprint");
    let kubelet = FakeKubelet::start();
    let dir = short_tempdir("bench");

    // 1. Steady-state RSS, probes at 1 s.
    let agent = start(&dir, &d, &kubelet, "1s", "");
    std::thread::sleep(scale(60));
    let (rss_off, hwm) = rss_kib(agent.pid());
    println!("rss_steady_kib={rss_off} rss_peak_kib={hwm} (docker+kubelet probes at 1s)");

    // 2. /metrics under wrk; probe latency before vs during the load.
    let (s0, c0) = mean_ping_seconds(&agent);
    std::thread::sleep(scale(10));
    let (s1, c1) = mean_ping_seconds(&agent);
    let url = format!("http://{}/metrics", agent.addr);
    let secs = scale(10).as_secs().to_string();
    let out = Command::new("wrk")
        .args(["-t2", "-c8", "-d", &format!("{secs}s"), "--latency", &url])
        .output()
        .expect("wrk is not installed: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let (s2, c2) = mean_ping_seconds(&agent);
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .unwrap_or("99% ?");
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec"))
        .unwrap_or("?");
    println!("metrics_under_wrk: {} | {rps}", p99.trim());
    let mean = |s: f64, c: f64| if c > 0.0 { s / c * 1e3 } else { f64::NAN };
    println!(
        "docker_ping_mean_ms idle={:.3} under_load={:.3}",
        mean(s1 - s0, c1 - c0),
        mean(s2 - s1, c2 - c1)
    );
    let (rss, hwm) = rss_kib(agent.pid());
    println!("rss_after_load_kib={rss} rss_peak_kib={hwm}");
    drop(agent);

    // 3. CPU at default intervals (10 s).
    let dir = short_tempdir("bench");
    let agent = start(&dir, &d, &kubelet, "10s", "");
    std::thread::sleep(Duration::from_secs(1));
    let cpu0 = cpu_seconds(agent.pid());
    let window = scale(60);
    std::thread::sleep(window);
    let used = cpu_seconds(agent.pid()) - cpu0;
    println!(
        "cpu_default_intervals: {:.4}% of one core over {}s ({:.1} ms CPU)",
        used / window.as_secs_f64() * 100.0,
        window.as_secs(),
        used * 1e3
    );
    drop(agent);

    // 4. The same probes as step 1, reporting to the API server (stand-in:
    // none can be installed here, see tests/support/kube_apiserver.py).
    let api = KubeApi::start(&["bench-node"]);
    let dir = short_tempdir("bench");
    let section = api.config_section("bench-node", "heartbeat = \"10s\"");
    let agent = start(&dir, &d, &kubelet, "1s", &section);
    std::thread::sleep(scale(60));
    let (rss_on, hwm) = rss_kib(agent.pid());
    let writes = agent
        .metrics()
        .all("nodevitals_kubernetes_requests_total", &[])
        .iter()
        .sum::<f64>();
    println!(
        "rss_with_kubernetes_kib={rss_on} rss_peak_kib={hwm} ({writes} API requests); the client adds {} KiB (budget 4096)",
        rss_on.saturating_sub(rss_off)
    );
}
