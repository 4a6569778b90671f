//! The metrics registry. Every metric name, help text and label rule lives in
//! this module (one file per area); probes get typed handles and never touch
//! the registry.
//!
//! One ownership pattern everywhere: this module depends on no probe and no
//! remediation code. A handle's methods take the shared vocabulary
//! (`crate::vocabulary`) or input types defined here (the CPU probe hands its
//! scan over as a [`CpuSeries`]), so a probe knows its handle and the handle
//! knows no probe. Why this one: the names and labels are the public contract,
//! so they stay in one place that can be read (and checked against
//! `tests/golden/metrics.txt`) without reading the probes; and the probes stay
//! free to reshape their own types.

mod agent;
mod cpu;
mod dns;
pub(crate) mod exposition;
mod kubernetes;
mod remediation;
mod runtime;

pub use agent::{AgentMetrics, NodeLabels, ShedReason};
pub use cpu::{
    ContainerName, ContainerValues, CpuMetrics, CpuSeries, PressureTotals, ThrottleCounts,
};
pub use dns::DnsMetrics;
pub(crate) use dns::QueryLabels;
pub use kubernetes::KubernetesMetrics;
pub use remediation::RemediationMetrics;
pub use runtime::{KubeletMetrics, RuntimeMetrics};

use crate::body::Chunks;
use hyper::body::Bytes;
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
    pub kubernetes: KubernetesMetrics,
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
        let kubernetes = KubernetesMetrics::register(&mut registry);
        Self {
            registry,
            agent,
            runtime,
            kubelet,
            cpu,
            remediation,
            dns,
            kubernetes,
        }
    }

    /// The OpenMetrics text exposition of every metric, in one string.
    pub fn encode(&self) -> String {
        String::from_utf8_lossy(&self.exposition(true).to_vec()).into_owned()
    }

    /// The OpenMetrics exposition as one gzip member, in one buffer: a copy,
    /// for benchmarks (the first call after a snapshot is published pays for
    /// compressing its series, as the first gzip scrape does).
    pub fn encode_gzip(&self) -> Option<Vec<u8>> {
        self.exposition_gzip(true).map(|body| body.to_vec())
    }

    /// Every metric in OpenMetrics, or in the Prometheus 0.0.4 text format
    /// (see `exposition`), as the body of a response. Only the registry's
    /// metrics (a few KB) are encoded per scrape; the per-container CPU series
    /// (and the OpenMetrics `# EOF`) are rendered once per snapshot and shared,
    /// not copied.
    pub(crate) fn exposition(&self, openmetrics: bool) -> Chunks {
        let cpu = self.cpu.rendered();
        let series = if openmetrics {
            cpu.openmetrics()
        } else {
            cpu.text()
        };
        Chunks::new([Bytes::from(self.registry_part(openmetrics)), series])
    }

    /// The same body as `exposition`, as one gzip member: only the registry's
    /// metrics are compressed per scrape, the CPU series once per snapshot
    /// and format (see `crate::gzip`). `None` if the compressor failed.
    pub(crate) fn exposition_gzip(&self, openmetrics: bool) -> Option<Chunks> {
        let series = self.cpu.rendered().deflated(openmetrics)?;
        crate::gzip::member(self.registry_part(openmetrics).as_bytes(), &series)
    }

    /// The registry's metrics, encoded for this scrape.
    fn registry_part(&self, openmetrics: bool) -> String {
        let mut head = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::text::encode_registry(&mut head, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        if !openmetrics {
            head = exposition::to_prometheus_text(&head);
        }
        head
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A scan of containers known by id only, each 40% throttled.
    #[derive(Debug)]
    struct Containers(Vec<String>);

    impl CpuSeries for Containers {
        fn container_count(&self) -> usize {
            self.0.len()
        }

        fn containers(&self) -> Vec<ContainerValues<'_>> {
            let values = |id| ContainerValues {
                name: ContainerName::Runtime { id, name: None },
                throttling: Some(ThrottleCounts {
                    periods: 10,
                    throttled_periods: 4,
                    throttled_ns: 0,
                }),
                usage_ns: Some(1_500_000_000),
                limit_cores: None,
                throttled_ratio: Some(0.4),
                pressure: None,
            };
            self.0.iter().map(|id| values(id.as_str())).collect()
        }

        fn node_pressure(&self) -> Option<PressureTotals> {
            None
        }
    }

    fn snapshot(ids: &[&str]) -> Arc<Containers> {
        Arc::new(Containers(ids.iter().map(|id| (*id).to_owned()).collect()))
    }

    fn scrape(m: &Metrics, openmetrics: bool) -> String {
        String::from_utf8(m.exposition(openmetrics).to_vec()).unwrap()
    }

    /// A response is the registry's metrics then the shared series: two
    /// chunks, which hyper writes in one go. (A small chunk after the big one
    /// would go out in a write of its own, and Nagle's algorithm would hold it
    /// until the client's delayed ACK: 40 ms.)
    #[tokio::test]
    async fn a_response_is_two_chunks_the_series_shared_between_scrapes() {
        let m = Metrics::new();
        m.cpu.publish(snapshot(&["a", "b"]));
        for om in [true, false] {
            let first = crate::body::frames(m.exposition(om)).await;
            let second = crate::body::frames(m.exposition(om)).await;
            assert_eq!((first.len(), second.len()), (2, 2));
            assert_eq!(
                first[1].as_ptr(),
                second[1].as_ptr(),
                "series rendered again"
            );
            let series = String::from_utf8_lossy(&first[1]);
            assert!(series.contains("nodevitals_container_cpu_throttled_ratio{id=\"b\"} 0.4\n"));
            assert_eq!(series.ends_with("\n# EOF\n"), om, "{series}");
        }
    }

    /// Every scrape shows the latest published snapshot in both formats: the
    /// bodies rendered for an older one are never served again.
    #[test]
    fn a_new_snapshot_replaces_the_rendered_series_in_both_formats() {
        let m = Metrics::new();
        let line = |id: &str| format!("nodevitals_container_cpu_periods_total{{id=\"{id}\"}} 10\n");
        m.cpu.publish(snapshot(&["gone", "stays"]));
        for om in [true, false] {
            let body = scrape(&m, om);
            assert!(body.contains(&line("gone")) && body.contains(&line("stays")));
        }
        // A response being sent keeps the bytes it started with.
        let in_flight = m.exposition(true);

        m.cpu.publish(snapshot(&["stays", "new"]));
        for om in [true, false] {
            let body = scrape(&m, om);
            assert!(!body.contains("\"gone\""), "stale series served:\n{body}");
            assert!(body.contains(&line("stays")) && body.contains(&line("new")));
            assert!(body.contains("nodevitals_cpu_containers 2\n"));
            assert_eq!(body.ends_with("# EOF\n"), om);
        }
        assert!(String::from_utf8(in_flight.to_vec())
            .unwrap()
            .contains("\"gone\""));

        m.cpu.clear();
        for om in [true, false] {
            let body = scrape(&m, om);
            assert!(!body.contains("container_cpu"), "{body}");
            assert!(body.contains("nodevitals_cpu_parse_errors_total{"));
        }
    }

    /// The text format is the per-scrape conversion of the OpenMetrics body,
    /// however the registry part and the pre-rendered part are split.
    #[test]
    fn text_format_is_the_conversion_of_openmetrics() {
        let m = Metrics::new();
        for ids in [&[][..], &["a"], &["a", "b", "c"]] {
            m.cpu.publish(snapshot(ids));
            let om = scrape(&m, true);
            assert_eq!(scrape(&m, false), exposition::to_prometheus_text(&om));
            assert_eq!(om.matches("# EOF").count(), 1);
        }
    }

    /// A gzip body decodes (by flate2 and by the system's gzip, which check
    /// the CRC and length) to exactly the plain body of the same snapshot, in
    /// both formats, with no containers, a few, many, and after `clear`.
    #[test]
    fn gzip_bodies_decode_to_the_plain_body() {
        use crate::gzip::tests::{gunzip, system_gunzip};
        let m = Metrics::new();
        let many: Vec<String> = (0..1000).map(|i| format!("{i:064x}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for ids in [&[][..], &["a"], &many] {
            m.cpu.publish(snapshot(ids));
            for om in [true, false] {
                let plain = m.exposition(om).to_vec();
                let gz = m.exposition_gzip(om).unwrap().to_vec();
                assert_eq!(gunzip(&gz), plain, "openmetrics: {om}, {} ids", ids.len());
                assert_eq!(system_gunzip(&gz), plain);
                if ids.len() == 1000 {
                    assert!(
                        gz.len() * 5 < plain.len(),
                        "{} -> {}",
                        plain.len(),
                        gz.len()
                    );
                }
            }
        }
        m.cpu.clear();
        for om in [true, false] {
            let plain = m.exposition(om).to_vec();
            assert_eq!(
                system_gunzip(&m.exposition_gzip(om).unwrap().to_vec()),
                plain
            );
        }
    }

    /// The series are compressed once per snapshot and format: every gzip
    /// scrape sends the same compressed bytes until a new snapshot replaces
    /// them.
    #[tokio::test]
    async fn compressed_series_are_shared_until_the_next_snapshot() {
        let m = Metrics::new();
        m.cpu.publish(snapshot(&["old"]));
        let m = &m;
        let series = |om| async move { crate::body::frames(m.exposition_gzip(om).unwrap()).await };
        let (om1, om2) = (series(true).await, series(true).await);
        let (text1, text2) = (series(false).await, series(false).await);
        assert_eq!((om1.len(), text1.len()), (3, 3), "head, series, trailer");
        assert_eq!(om1[1].as_ptr(), om2[1].as_ptr(), "compressed again");
        assert_eq!(text1[1].as_ptr(), text2[1].as_ptr(), "compressed again");
        assert_ne!(om1[1], text1[1], "the formats are compressed apart");

        m.cpu.publish(snapshot(&["new"]));
        for (om, before) in [(true, &om1), (false, &text1)] {
            let after = series(om).await;
            assert_ne!(after[1].as_ptr(), before[1].as_ptr());
            let body = crate::gzip::tests::gunzip(&after.concat());
            let body = String::from_utf8(body).unwrap();
            assert!(
                body.contains("{id=\"new\"}") && !body.contains("\"old\""),
                "{body}"
            );
        }
    }
}
