//! Latency of one full CRI probe round (Version + Status + ListPodSandbox +
//! ListContainers, plus the socket check) against a real local containerd,
//! through the same `RuntimeProbe` + `CriClient` the agent runs, over one
//! kept-alive connection as in production. Budget: under 5 ms.
//!
//! `cargo bench --bench cri_round` measures 2000 rounds; under `cargo test`
//! (no `--bench` argument) it runs 20 as a smoke test.

#[path = "../tests/support/mod.rs"]
mod support;

use nodevitals::config::RuntimeKind;
use nodevitals::metrics::Metrics;
use nodevitals::probe::runtime::RuntimeProbe;
use nodevitals::probe::Probe;
use nodevitals::runtime::cri::CriClient;
use std::sync::Arc;
use std::time::Duration;
use support::containerd::Containerd;
use tokio::time::Instant;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 2000 } else { 20 };
    let c = Containerd::start("bench-cri");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let samples = rt.block_on(async {
        let metrics = Metrics::new();
        let client = CriClient::new(RuntimeKind::Containerd, c.socket.clone());
        let probe = RuntimeProbe::new(
            Arc::new(client),
            Duration::from_secs(10),
            Duration::from_secs(5),
            Duration::from_secs(10),
            metrics.runtime.clone(),
        );
        let first = Instant::now();
        probe.run().await.expect("first round");
        println!(
            "cri_round_first_ms={:.3} (includes connecting)",
            first.elapsed().as_secs_f64() * 1e3
        );
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            probe.run().await.expect("round");
            samples.push(t.elapsed());
        }
        samples
    });
    let mut sorted = samples.clone();
    sorted.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cri_round_ms rounds={rounds} mean={:.3} p50={:.3} p90={:.3} p99={:.3} max={:.3} (budget 5 ms)",
        ms(mean),
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.9)),
        ms(percentile(&sorted, 0.99)),
        ms(*sorted.last().unwrap()),
    );
}
