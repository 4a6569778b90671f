//! The metrics registry. Every metric name and help text lives in this module
//! (one file per area); probes get typed handles and never touch the registry.

mod agent;
mod cpu;
mod dns;
pub(crate) mod exposition;
mod remediation;
mod runtime;

pub use agent::{AgentMetrics, NodeLabels};
pub use cpu::CpuMetrics;
pub use dns::DnsMetrics;
pub(crate) use dns::QueryLabels;
pub use remediation::RemediationMetrics;
pub use runtime::{KubeletMetrics, RuntimeMetrics};

use prometheus_client::registry::Registry;

/// Latency buckets for requests to local daemons: sub-millisecond to a minute.
pub(crate) const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

pub(crate) fn latency_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// Every metric name starts with `nodevitals_`.
pub(crate) const PREFIX: &str = "nodevitals";

pub struct Metrics {
    registry: Registry,
    pub agent: AgentMetrics,
    pub runtime: RuntimeMetrics,
    pub kubelet: KubeletMetrics,
    pub cpu: CpuMetrics,
    pub remediation: RemediationMetrics,
    pub dns: DnsMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let agent = AgentMetrics::register(&mut registry);
        let runtime = RuntimeMetrics::register(&mut registry);
        let kubelet = KubeletMetrics::register(&mut registry);
        let cpu = CpuMetrics::register(&mut registry);
        let remediation = RemediationMetrics::register(&mut registry);
        let dns = DnsMetrics::register(&mut registry);
        Self {
            registry,
            agent,
            runtime,
            kubelet,
            cpu,
            remediation,
            dns,
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        self.encode_as(true)
    }

    /// Every metric in OpenMetrics, or in the Prometheus 0.0.4 text format
    /// (see `exposition`). Per-container CPU series are pre-rendered once per
    /// snapshot and appended.
    pub fn encode_as(&self, openmetrics: bool) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let cpu = self.cpu.rendered();
        let mut out = String::with_capacity(16 * 1024 + cpu.len());
        if let Err(e) = encode_registry(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        if !openmetrics {
            out = exposition::to_prometheus_text(&out);
            out.reserve(cpu.len());
        }
        cpu.write(&mut out, openmetrics);
        if openmetrics {
            let _ = encode_eof(&mut out);
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
