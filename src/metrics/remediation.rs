//! Remediation metrics: the state of each target (one-hot), restarts by method
//! and result, skipped restarts by reason, recovery time, the next time a
//! restart is allowed, state-file errors, and what the diagnosis before a
//! restart found: the class of the last hang (one-hot), stack dumps kept, free
//! bytes and inodes of the runtime's root, the node's I/O and memory pressure.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    target: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestartLabels {
    target: &'static str,
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    target: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    target: &'static str,
    reason: &'static str,
}

/// `result` of a restart: the runtime came back, did not (or the restarter
/// failed), or nothing was done (dry run).
/// `unkillable`: the process survived SIGKILL (blocked in the kernel).
pub const RESTART_RESULTS: &[&str] = &["success", "failure", "dry_run", "unkillable"];

/// A node pressure resource: `io` or `memory`.
type Resource = &'static str;

/// Restart-to-healthy times: a daemon start takes from under a second to minutes.
const RECOVERY_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone)]
pub struct RemediationMetrics {
    state: Family<StateLabels, Gauge>,
    restarts: Family<RestartLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
    recovery: Family<TargetLabels, Histogram>,
    next_allowed: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    state_file_errors: Family<TargetLabels, Counter>,
    hang_class: Family<ClassLabels, Gauge>,
    dumps_kept: Family<TargetLabels, Gauge>,
    root_free_bytes: Family<RuntimeLabels, Gauge>,
    root_free_inodes: Family<RuntimeLabels, Gauge>,
    io_pressure: Family<KindLabels, Counter<f64, AtomicU64>>,
    memory_pressure: Family<KindLabels, Counter<f64, AtomicU64>>,
    /// The last pressure totals counted, so engines reading the same node
    /// files count each stall second once.
    pressure_seen: Arc<Mutex<HashMap<(Resource, &'static str), f64>>>,
}

impl RemediationMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            state: Family::default(),
            restarts: Family::default(),
            skipped: Family::default(),
            recovery: Family::new_with_constructor(|| {
                Histogram::new(RECOVERY_BUCKETS.iter().copied())
            }),
            next_allowed: Family::default(),
            state_file_errors: Family::default(),
            hang_class: Family::default(),
            dumps_kept: Family::default(),
            root_free_bytes: Family::default(),
            root_free_inodes: Family::default(),
            io_pressure: Family::default(),
            memory_pressure: Family::default(),
            pressure_seen: Arc::default(),
        };
        r.register(
            "remediation_state",
            "Remediation state of a target, one-hot over healthy|failing|restarting|recovering|backoff|exhausted|disabled",
            m.state.clone(),
        );
        r.register(
            "remediation_restarts",
            "Restarts of a runtime by method and result (success: answering again within recovery_timeout)",
            m.restarts.clone(),
        );
        r.register(
            "remediation_skipped",
            "Rounds in which a failing runtime was not restarted, by reason",
            m.skipped.clone(),
        );
        r.register(
            "remediation_recovery_seconds",
            "Time from a restart being issued to the runtime answering again",
            m.recovery.clone(),
        );
        r.register(
            "remediation_next_allowed_timestamp_seconds",
            "Unix time before which backoff or the budget forbid a restart (0: allowed now)",
            m.next_allowed.clone(),
        );
        r.register(
            "remediation_state_file_errors",
            "State file reads or writes that failed (a bad file is read as a spent budget)",
            m.state_file_errors.clone(),
        );
        r.register(
            "remediation_hang_class",
            "What the runtime's process was doing at the last hang, one-hot over running|stopped|traced|blocked|unknown (all 0 before the first)",
            m.hang_class.clone(),
        );
        r.register(
            "remediation_dumps_kept",
            "Stack dumps of the runtime kept under state_dir/dumps",
            m.dumps_kept.clone(),
        );
        r.register(
            "runtime_root_free_bytes",
            "Bytes available in the runtime's root directory (Docker's DockerRootDir)",
            m.root_free_bytes.clone(),
        );
        r.register(
            "runtime_root_free_inodes",
            "Inodes available in the runtime's root directory",
            m.root_free_inodes.clone(),
        );
        r.register(
            "node_io_pressure_seconds",
            "Time some (or all) non-idle tasks of the node were stalled on I/O (/proc/pressure/io)",
            m.io_pressure.clone(),
        );
        r.register(
            "node_memory_pressure_seconds",
            "Time some (or all) non-idle tasks of the node were stalled on memory (/proc/pressure/memory)",
            m.memory_pressure.clone(),
        );
        m
    }

    /// Creates every series of a target at start (the label sets are closed).
    pub fn init(
        &self,
        target: &'static str,
        method: &'static str,
        states: &[&'static str],
        reasons: &[&'static str],
        classes: &[&'static str],
    ) {
        for class in classes {
            let _ = self
                .hang_class
                .get_or_create(&ClassLabels { target, class });
        }
        for state in states {
            let _ = self.state.get_or_create(&StateLabels { target, state });
        }
        for result in RESTART_RESULTS {
            let _ = self.restarts.get_or_create(&RestartLabels {
                target,
                method,
                result,
            });
        }
        for reason in reasons {
            let _ = self.skipped.get_or_create(&SkipLabels { target, reason });
        }
        let l = TargetLabels { target };
        let _ = self.recovery.get_or_create(&l);
        let _ = self.next_allowed.get_or_create(&l);
        let _ = self.state_file_errors.get_or_create(&l);
        let _ = self.dumps_kept.get_or_create(&l);
    }

    /// Sets `state` to 1 and every other state of `all` to 0.
    pub fn set_state(&self, target: &'static str, state: &str, all: &[&'static str]) {
        for s in all {
            self.state
                .get_or_create(&StateLabels { target, state: s })
                .set(i64::from(*s == state));
        }
    }

    pub fn count_restart(&self, target: &'static str, method: &'static str, result: &'static str) {
        self.restarts
            .get_or_create(&RestartLabels {
                target,
                method,
                result,
            })
            .inc();
    }

    pub fn count_skip(&self, target: &'static str, reason: &'static str) {
        self.skipped
            .get_or_create(&SkipLabels { target, reason })
            .inc();
    }

    pub fn observe_recovery(&self, target: &'static str, after: Duration) {
        self.recovery
            .get_or_create(&TargetLabels { target })
            .observe(after.as_secs_f64());
    }

    pub fn set_next_allowed(&self, target: &'static str, unix: f64) {
        self.next_allowed
            .get_or_create(&TargetLabels { target })
            .set(unix);
    }

    pub fn count_state_file_error(&self, target: &'static str) {
        self.state_file_errors
            .get_or_create(&TargetLabels { target })
            .inc();
    }

    /// Sets `class` to 1 and every other class of `all` to 0.
    pub fn set_hang_class(&self, target: &'static str, class: &str, all: &[&'static str]) {
        for c in all {
            self.hang_class
                .get_or_create(&ClassLabels { target, class: c })
                .set(i64::from(*c == class));
        }
    }

    pub fn set_dumps_kept(&self, target: &'static str, n: usize) {
        self.dumps_kept
            .get_or_create(&TargetLabels { target })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_root_space(&self, runtime: &'static str, free_bytes: u64, free_inodes: u64) {
        let l = RuntimeLabels { runtime };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.root_free_bytes
            .get_or_create(&l)
            .set(clamp(free_bytes));
        self.root_free_inodes
            .get_or_create(&l)
            .set(clamp(free_inodes));
    }

    /// Brings `nodevitals_node_<resource>_pressure_seconds_total{kind}` to the
    /// kernel's cumulative `total_seconds` (a total that went back is ignored).
    pub fn set_node_pressure(&self, resource: Resource, kind: &'static str, total_seconds: f64) {
        let family = if resource == "io" {
            &self.io_pressure
        } else {
            &self.memory_pressure
        };
        let mut seen = self.pressure_seen.lock().unwrap_or_else(|e| e.into_inner());
        let last = seen.entry((resource, kind)).or_insert(0.0);
        if total_seconds > *last {
            family
                .get_or_create(&KindLabels { kind })
                .inc_by(total_seconds - *last);
            *last = total_seconds;
        }
    }
}
