//! Agent-level metrics: build and node info, per-probe success and duration,
//! config reloads, connections the HTTP front shed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
    pub kernel: String,
    pub cgroup_version: String,
    pub runtime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why the HTTP front closed a connection to make room for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// The table of open connections was full.
    Capacity,
    /// The process ran out of file descriptors.
    Descriptors,
}

impl ShedReason {
    const ALL: [ShedReason; 2] = [ShedReason::Capacity, ShedReason::Descriptors];

    fn label(self) -> &'static str {
        match self {
            ShedReason::Capacity => "capacity",
            ShedReason::Descriptors => "descriptors",
        }
    }
}

#[derive(Clone)]
pub struct AgentMetrics {
    node_info: Family<NodeLabels, Gauge>,
    probe_success: Family<ProbeLabels, Gauge>,
    probe_duration: Family<ProbeLabels, Histogram>,
    config_reloads: Family<ResultLabels, Counter>,
    connections_shed: Family<ReasonLabels, Counter>,
}

impl AgentMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        r.register("build_info", "nodevitals build, value 1", build_info);
        let m = Self {
            node_info: Family::default(),
            probe_success: Family::default(),
            probe_duration: Family::new_with_constructor(super::latency_histogram),
            config_reloads: Family::default(),
            connections_shed: Family::default(),
        };
        r.register(
            "node_info",
            "The node this agent runs on, value 1",
            m.node_info.clone(),
        );
        r.register(
            "probe_success",
            "Whether the last run of the probe succeeded (1) or not (0)",
            m.probe_success.clone(),
        );
        r.register(
            "probe_duration_seconds",
            "Duration of probe runs, failed and timed-out runs included",
            m.probe_duration.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads on SIGHUP by result",
            m.config_reloads.clone(),
        );
        for result in ["success", "failure"] {
            let _ = m.config_reloads.get_or_create(&ResultLabels { result });
        }
        r.register(
            "http_connections_shed",
            "Connections the HTTP front closed to let a newer one in: the connection cap was reached (capacity), or file descriptors ran out (descriptors)",
            m.connections_shed.clone(),
        );
        for reason in ShedReason::ALL {
            let _ = m.connections_shed.get_or_create(&ReasonLabels {
                reason: reason.label(),
            });
        }
        m
    }

    pub fn set_node_info(&self, labels: NodeLabels) {
        self.node_info.clear();
        self.node_info.get_or_create(&labels).set(1);
    }

    /// Creates the probe's series at 0 so dashboards see it before its first run.
    pub fn init_probe(&self, probe: &str) {
        let l = ProbeLabels {
            probe: probe.to_owned(),
        };
        let _ = self.probe_success.get_or_create(&l);
        let _ = self.probe_duration.get_or_create(&l);
    }

    pub fn observe_probe(&self, probe: &str, success: bool, elapsed: Duration) {
        let l = ProbeLabels {
            probe: probe.to_owned(),
        };
        self.probe_success.get_or_create(&l).set(i64::from(success));
        self.probe_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn count_shed(&self, reason: ShedReason) {
        self.connections_shed
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }
}
