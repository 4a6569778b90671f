//! Kubernetes API metrics: requests by operation and result, their latency,
//! the node conditions as last written, whether a fleet restart slot is held,
//! restart decisions taken while the API server could not be asked, and
//! events dropped because the queue to the API server was full.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

/// `result` of one API request.
pub const REQUEST_RESULTS: &[&str] = &["ok", "conflict", "not_found", "timeout", "error"];
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

#[derive(Clone)]
pub struct KubernetesMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<OperationLabels, Histogram>,
    condition: Family<ConditionLabels, Gauge>,
    slot_held: Gauge,
    unreachable: Family<ActionLabels, Counter>,
    events_dropped: Counter,
}

impl KubernetesMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(super::latency_histogram),
            condition: Family::default(),
            slot_held: Gauge::default(),
            unreachable: Family::default(),
            events_dropped: Counter::default(),
        };
        r.register(
            "kubernetes_requests",
            "Requests to the Kubernetes API server by operation and result (ok|conflict|not_found|timeout|error)",
            m.requests.clone(),
        );
        r.register_with_unit(
            "kubernetes_request_duration",
            "Latency of requests to the Kubernetes API server, failed ones included",
            prometheus_client::registry::Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            "node_condition",
            "The node's nodevitals conditions as last written to the API server, one-hot over True|False|Unknown",
            m.condition.clone(),
        );
        r.register(
            "restart_slot_held",
            "1 while this node holds a fleet-wide restart slot (a Lease)",
            m.slot_held.clone(),
        );
        r.register(
            "kubernetes_unreachable_decisions",
            "Restart decisions taken without an answer from the API server, by what was done (kubernetes.on_unreachable)",
            m.unreachable.clone(),
        );
        r.register(
            "kubernetes_events_dropped",
            "Events not sent because the queue to the API server was full",
            m.events_dropped.clone(),
        );
        m
    }

    /// Creates every series of `operations` at 0, so rates work from the start.
    pub(crate) fn init(&self, operations: &[&'static str], conditions: &[&'static str]) {
        for &operation in operations {
            for &result in REQUEST_RESULTS {
                let _ = self
                    .requests
                    .get_or_create(&RequestLabels { operation, result });
            }
            let _ = self.duration.get_or_create(&OperationLabels { operation });
        }
        for &condition in conditions {
            for status in CONDITION_STATUSES {
                let _ = self
                    .condition
                    .get_or_create(&ConditionLabels { condition, status });
            }
        }
        for action in ["restart", "hold"] {
            let _ = self.unreachable.get_or_create(&ActionLabels { action });
        }
    }

    pub(crate) fn observe_request(
        &self,
        operation: &'static str,
        result: &'static str,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels { operation, result })
            .inc();
        self.duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn set_condition(&self, condition: &'static str, status: &'static str) {
        for s in CONDITION_STATUSES {
            self.condition
                .get_or_create(&ConditionLabels {
                    condition,
                    status: s,
                })
                .set(i64::from(s == status));
        }
    }

    pub(crate) fn set_slot_held(&self, held: bool) {
        self.slot_held.set(i64::from(held));
    }

    pub(crate) fn count_unreachable(&self, action: &'static str) {
        self.unreachable
            .get_or_create(&ActionLabels { action })
            .inc();
    }

    pub(crate) fn count_event_dropped(&self) {
        self.events_dropped.inc();
    }
}
