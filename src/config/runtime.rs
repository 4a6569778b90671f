//! The `[[runtime]]` entries, how to restart each, and the `[remediation]`
//! policy shared by all runtimes.

use super::DiagnosticSignal;
use crate::vocabulary::RuntimeKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    pub endpoint: String,
    #[serde(default = "default_runtime_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_runtime_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub restart: RestartConfig,
}

fn default_runtime_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_runtime_timeout() -> Duration {
    Duration::from_secs(5)
}

impl RuntimeConfig {
    /// A runtime entry with the defaults of its kind, as auto-detection builds it.
    pub fn detected(kind: RuntimeKind, endpoint: String) -> Self {
        Self {
            kind,
            endpoint,
            interval: default_runtime_interval(),
            timeout: default_runtime_timeout(),
            restart: RestartConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartMethod {
    Signal,
    Systemd,
    Command,
}

/// How to restart one runtime. Unset fields take the defaults of the runtime's
/// kind (`remediation::defaults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// Unset = chosen by the agent: `systemd` when the runtime runs in a
    /// systemd service and systemd answers on the bus, else `signal`.
    pub method: Option<RestartMethod>,
    pub pidfile: Option<PathBuf>,
    pub process: Option<String>,
    pub unit: Option<String>,
    pub command: Vec<String>,
    /// `signal`: sent first so the daemon dumps its state (dockerd: SIGUSR1 writes
    /// goroutine stacks); "none" disables it. Unset = the kind's default.
    pub diagnostic_signal: Option<DiagnosticSignal>,
    /// `signal`: how long SIGTERM may take before SIGKILL.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// `systemd` and `command`: deadline of the restart (for `systemd`, until
    /// the unit is active again).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            method: None,
            pidfile: None,
            process: None,
            unit: None,
            command: Vec::new(),
            diagnostic_signal: None,
            grace: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    pub enabled: bool,
    pub dry_run: bool,
    pub failure_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub hang_after: Duration,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub boot_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub reset_after: Duration,
    #[serde(with = "humantime_serde")]
    pub recovery_timeout: Duration,
    /// Random extra delay on each backoff step, as a fraction of the step (0..=1).
    pub backoff_jitter: f64,
    /// Refuse a restart that would kill running containers (dockerd without
    /// live-restore), reporting `skipped_total{reason="kills_workloads"}`.
    pub refuse_if_kills_workloads: bool,
    /// Most threads in `D` this long without running: the runtime is blocked
    /// in the kernel, a restart cannot help (`skipped_total{reason="unkillable"}`).
    #[serde(with = "humantime_serde")]
    pub blocked_after: Duration,
    /// What a hang does while the runtime's root directory is full.
    pub on_disk_full: DiskFullPolicy,
    /// Stack dumps kept per runtime under `<state_dir>/dumps`.
    pub keep_dumps: u32,
}

/// `[remediation] on_disk_full`: restart a hung runtime whose root directory
/// is full, or hold the restart back (`skipped_total{reason="disk_full"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiskFullPolicy {
    Restart,
    #[default]
    Skip,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            failure_threshold: 3,
            hang_after: Duration::from_secs(30),
            cooldown: Duration::from_secs(120),
            boot_grace: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(1800),
            max_restarts: 3,
            window: Duration::from_secs(3600),
            reset_after: Duration::from_secs(600),
            recovery_timeout: Duration::from_secs(120),
            backoff_jitter: 0.2,
            refuse_if_kills_workloads: false,
            blocked_after: Duration::from_secs(10),
            on_disk_full: DiskFullPolicy::Skip,
            keep_dumps: 5,
        }
    }
}

impl RemediationConfig {
    /// `hang_after` must leave a slow runtime room to prove itself alive: one
    /// that answers every round late (after its deadline, before the next
    /// round's) is silent for up to `interval + timeout` between two answers,
    /// and must not be declared hung for it. Runtimes left to auto-detection
    /// are probed with the default timing. Returns (key, message).
    pub(super) fn check_hang_after(
        &self,
        runtimes: &[RuntimeConfig],
    ) -> Result<(), (String, String)> {
        let key = "remediation.hang_after";
        if self.hang_after.is_zero() {
            return Err((key.into(), "must be longer than 0s".into()));
        }
        let timing = |rt: &RuntimeConfig| (rt.interval + rt.timeout, rt.kind);
        let slowest = if runtimes.is_empty() {
            Some((default_runtime_interval() + default_runtime_timeout(), None))
        } else {
            runtimes
                .iter()
                .map(timing)
                .max()
                .map(|(silence, kind)| (silence, Some(kind)))
        };
        match slowest {
            Some((silence, kind)) if self.hang_after < silence => Err((
                key.into(),
                format!(
                    "{} is shorter than the interval + timeout of {} ({}): a runtime that answers every round late would be declared hung between two answers",
                    humantime::format_duration(self.hang_after),
                    kind.map_or_else(|| "an auto-detected runtime".to_owned(), |k| format!("runtime \"{k}\"")),
                    humantime::format_duration(silence)
                ),
            )),
            _ => Ok(()),
        }
    }
}
