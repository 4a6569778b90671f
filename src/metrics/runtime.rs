//! Runtime and kubelet metrics.

use crate::vocabulary::{Operation, Outcome, RuntimeKind};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    runtime: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    runtime: &'static str,
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    runtime: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    runtime: &'static str,
    condition: String,
}

const RESULTS: &[Outcome] = &[
    Outcome::Ok,
    Outcome::Timeout,
    Outcome::Refused,
    Outcome::Error,
    Outcome::Misconfigured,
];

#[derive(Clone)]
pub struct RuntimeMetrics {
    up: Family<RuntimeLabels, Gauge>,
    consecutive_failures: Family<RuntimeLabels, Gauge>,
    request_duration: Family<OperationLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
    late_answers: Family<OperationLabels, Counter>,
    containers: Family<StateLabels, Gauge>,
    pod_sandboxes: Family<StateLabels, Gauge>,
    condition: Family<ConditionLabels, Gauge>,
    live_restore: Family<RuntimeLabels, Gauge>,
}

impl RuntimeMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            up: Family::default(),
            consecutive_failures: Family::default(),
            request_duration: Family::new_with_constructor(super::latency_histogram),
            requests: Family::default(),
            late_answers: Family::default(),
            containers: Family::default(),
            pod_sandboxes: Family::default(),
            condition: Family::default(),
            live_restore: Family::default(),
        };
        r.register(
            "runtime_up",
            "Whether the container runtime answered its last probe round (1) or not (0)",
            m.up.clone(),
        );
        r.register(
            "runtime_consecutive_failures",
            "Probe rounds in a row that failed",
            m.consecutive_failures.clone(),
        );
        r.register(
            "runtime_request_duration_seconds",
            "Latency of requests to the runtime, timed-out ones at their deadline",
            m.request_duration.clone(),
        );
        r.register(
            "runtime_requests",
            "Requests to the runtime by result",
            m.requests.clone(),
        );
        r.register(
            "runtime_late_answers",
            "Requests that missed their deadline but were answered later: slow, not hung",
            m.late_answers.clone(),
        );
        r.register(
            "runtime_containers",
            "Containers known to the runtime by state",
            m.containers.clone(),
        );
        r.register(
            "runtime_pod_sandboxes",
            "Pod sandboxes known to a CRI runtime by state (ready, notready)",
            m.pod_sandboxes.clone(),
        );
        r.register(
            "runtime_condition",
            "Runtime conditions reported by the runtime (1 true, 0 false)",
            m.condition.clone(),
        );
        r.register(
            "runtime_live_restore",
            "Whether running containers survive a restart of the runtime (Docker live-restore), as last reported",
            m.live_restore.clone(),
        );
        m
    }

    /// Creates every series of a runtime at 0 before its first round.
    pub fn init(&self, kind: RuntimeKind, operations: &[Operation]) {
        let runtime = kind.as_str();
        let _ = self.up.get_or_create(&RuntimeLabels { runtime });
        let _ = self
            .consecutive_failures
            .get_or_create(&RuntimeLabels { runtime });
        for op in operations {
            let operation = op.as_str();
            let _ = self
                .request_duration
                .get_or_create(&OperationLabels { runtime, operation });
            let _ = self
                .late_answers
                .get_or_create(&OperationLabels { runtime, operation });
            for r in RESULTS {
                let _ = self.requests.get_or_create(&RequestLabels {
                    runtime,
                    operation,
                    result: r.as_str(),
                });
            }
        }
    }

    pub fn set_up(&self, kind: RuntimeKind, up: bool, consecutive_failures: u32) {
        let l = RuntimeLabels {
            runtime: kind.as_str(),
        };
        self.up.get_or_create(&l).set(i64::from(up));
        self.consecutive_failures
            .get_or_create(&l)
            .set(i64::from(consecutive_failures));
    }

    pub fn observe_request(
        &self,
        kind: RuntimeKind,
        op: Operation,
        result: Outcome,
        elapsed: Duration,
    ) {
        let (runtime, operation) = (kind.as_str(), op.as_str());
        self.request_duration
            .get_or_create(&OperationLabels { runtime, operation })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                runtime,
                operation,
                result: result.as_str(),
            })
            .inc();
    }

    pub fn count_late_answer(&self, kind: RuntimeKind, op: Operation) {
        self.late_answers
            .get_or_create(&OperationLabels {
                runtime: kind.as_str(),
                operation: op.as_str(),
            })
            .inc();
    }

    pub fn set_containers(&self, kind: RuntimeKind, states: &[(&'static str, u64)]) {
        set_counts(&self.containers, kind, states);
    }

    pub fn set_sandboxes(&self, kind: RuntimeKind, states: &[(&'static str, u64)]) {
        set_counts(&self.pod_sandboxes, kind, states);
    }

    pub fn set_live_restore(&self, kind: RuntimeKind, on: bool) {
        self.live_restore
            .get_or_create(&RuntimeLabels {
                runtime: kind.as_str(),
            })
            .set(i64::from(on));
    }

    pub fn set_conditions(&self, kind: RuntimeKind, conditions: &[(String, bool)]) {
        for (condition, value) in conditions {
            self.condition
                .get_or_create(&ConditionLabels {
                    runtime: kind.as_str(),
                    condition: condition.clone(),
                })
                .set(i64::from(*value));
        }
    }
}

fn set_counts(
    family: &Family<StateLabels, Gauge>,
    kind: RuntimeKind,
    states: &[(&'static str, u64)],
) {
    for (state, n) in states {
        family
            .get_or_create(&StateLabels {
                runtime: kind.as_str(),
                state,
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
}

/// The kubelet series have no labels; they live in families keyed by an empty
/// label set so they only appear once the kubelet probe runs (a disabled probe
/// must not look like a dead kubelet).
type Unlabelled = Vec<(&'static str, &'static str)>;

#[derive(Clone)]
pub struct KubeletMetrics {
    up: Family<Unlabelled, Gauge>,
    duration: Family<Unlabelled, Histogram>,
}

impl KubeletMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            up: Family::default(),
            duration: Family::new_with_constructor(super::latency_histogram),
        };
        r.register(
            "kubelet_up",
            "Whether the kubelet healthz endpoint answered 2xx (1) or not (0)",
            m.up.clone(),
        );
        r.register(
            "kubelet_request_duration_seconds",
            "Latency of the kubelet healthz request",
            m.duration.clone(),
        );
        m
    }

    pub fn observe(&self, up: bool, elapsed: Duration) {
        self.up.get_or_create(&Vec::new()).set(i64::from(up));
        self.duration
            .get_or_create(&Vec::new())
            .observe(elapsed.as_secs_f64());
    }
}
