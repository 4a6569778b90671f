//! Remediation metrics: the state of each target (one-hot), restarts by method
//! and result, skipped restarts by reason, recovery time, the next time a
//! restart is allowed, and state-file errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
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
struct SkipLabels {
    target: &'static str,
    reason: &'static str,
}

/// `result` of a restart: the runtime came back, did not (or the restarter
/// failed), or nothing was done (dry run).
pub const RESTART_RESULTS: &[&str] = &["success", "failure", "dry_run"];

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
        m
    }

    /// Creates every series of a target at start (the label sets are closed).
    pub fn init(
        &self,
        target: &'static str,
        method: &'static str,
        states: &[&'static str],
        reasons: &[&'static str],
    ) {
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
}
