//! How the engine reports: label values, the log line of a held-back restart,
//! and the `/status` entry of a target. Metrics: none (the engine sets them).

use super::diagnosis::storage::RootSpace;
use super::diagnosis::Diagnosis;
use super::history::{Event, History};
use super::machine::{Policy, SkipReason, State};
use crate::config::RestartMethod;
use std::path::Path;

/// The `method` label value.
pub(crate) fn method_name(m: RestartMethod) -> &'static str {
    match m {
        RestartMethod::Signal => "signal",
        RestartMethod::Systemd => "systemd",
        RestartMethod::Command => "command",
    }
}

/// Logs a held-back restart; an exhausted budget and an unkillable runtime at
/// error level, every round.
pub(crate) fn log_skip(
    target: &str,
    reason: SkipReason,
    failures: u32,
    policy: &Policy,
    diagnosis: Option<&Diagnosis>,
) {
    let diagnosis = diagnosis.map_or_else(|| "none".to_owned(), Diagnosis::summary);
    match reason {
        SkipReason::Budget => tracing::error!(
            target,
            max_restarts = policy.max_restarts,
            window = ?policy.window,
            consecutive_failures = failures,
            "RUNTIME HUNG AND RESTART BUDGET EXHAUSTED: not restarting; the node needs a human"
        ),
        SkipReason::Unkillable => tracing::error!(
            target,
            consecutive_failures = failures,
            diagnosis,
            "RUNTIME BLOCKED IN THE KERNEL: a restart cannot help, none is spent; the node needs a human"
        ),
        SkipReason::DiskFull => tracing::error!(
            target,
            consecutive_failures = failures,
            diagnosis,
            "RUNTIME ROOT FULL: restart held back (on_disk_full = \"skip\"); free space first"
        ),
        SkipReason::Misconfigured => tracing::warn!(
            target,
            "runtime unreachable because of the agent's setup: reported, never remediated"
        ),
        SkipReason::NotAHang => tracing::info!(
            target,
            consecutive_failures = failures,
            "runtime failing but it answered within hang_after: not a hang (yet)"
        ),
        _ => tracing::warn!(
            target,
            reason = reason.as_str(),
            consecutive_failures = failures,
            diagnosis,
            "runtime hung; restart held back"
        ),
    }
}

/// One target's entry in the `remediation` section of `/status`.
pub(crate) struct Status<'a> {
    pub state: State,
    pub method: &'static str,
    pub dry_run: bool,
    pub next_allowed_unix: Option<f64>,
    pub history: &'a History,
    pub policy: &'a Policy,
    pub last_decision: &'static str,
    pub running_containers: Option<u64>,
    pub live_restore: Option<bool>,
    pub preflight: &'a str,
    pub state_file: &'a Path,
    pub state_file_error: Option<&'a str>,
    pub events: &'a [Event],
    pub last_hang: Option<&'a (f64, Diagnosis)>,
    pub runtime_root: Option<&'a RootSpace>,
    pub dumps_kept: usize,
}

impl Status<'_> {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "state": self.state.as_str(),
            "method": self.method,
            "dry_run": self.dry_run,
            "next_allowed_unix": self.next_allowed_unix,
            "backoff_seconds": self.history.step.as_secs_f64(),
            "restarts_in_window": self.history.restarts.len(),
            "max_restarts": self.policy.max_restarts,
            "window_seconds": self.policy.window.as_secs_f64(),
            "last_decision": self.last_decision,
            "running_containers": self.running_containers,
            "live_restore": self.live_restore,
            "preflight": self.preflight,
            "state_file": self.state_file.display().to_string(),
            "state_file_error": self.state_file_error,
            "history": self.events,
            "last_hang": self.last_hang.map(|(at, d)| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["at_unix"] = serde_json::json!(at);
                v
            }),
            "runtime_root": self.runtime_root,
            "dumps_kept": self.dumps_kept,
        })
    }
}
