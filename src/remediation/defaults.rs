//! Restart defaults per runtime kind, in one place: the daemon's pidfile,
//! executable name, systemd unit and diagnostic signal, and whether restarting
//! it kills running containers. A `[runtime.restart]` key overrides its default.
//! Metrics: none.

use crate::config::{RestartConfig, RestartMethod, RuntimeKind};
use std::path::PathBuf;
use std::time::Duration;

/// What one runtime kind needs to be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KindDefaults {
    pub pidfile: Option<&'static str>,
    pub process: &'static str,
    pub unit: &'static str,
    /// Sent before SIGTERM so the daemon leaves a stack dump behind.
    pub diagnostic_signal: Option<i32>,
}

pub(crate) fn defaults(kind: RuntimeKind) -> KindDefaults {
    match kind {
        // SIGUSR1 makes dockerd write goroutine stacks to a file in its exec root.
        RuntimeKind::Docker => KindDefaults {
            pidfile: Some("/var/run/docker.pid"),
            process: "dockerd",
            unit: "docker.service",
            diagnostic_signal: Some(libc::SIGUSR1),
        },
        RuntimeKind::Containerd => KindDefaults {
            pidfile: None,
            process: "containerd",
            unit: "containerd.service",
            diagnostic_signal: None,
        },
        RuntimeKind::Crio => KindDefaults {
            pidfile: None,
            process: "crio",
            unit: "crio.service",
            diagnostic_signal: None,
        },
    }
}

/// Whether restarting a runtime of `kind` kills its running containers.
/// dockerd without live-restore stops them when it starts again (an unknown
/// setting counts as off); containerd and CRI-O leave them to their shims.
pub(crate) fn restart_kills_containers(kind: RuntimeKind, live_restore: Option<bool>) -> bool {
    match kind {
        RuntimeKind::Docker => live_restore != Some(true),
        RuntimeKind::Containerd | RuntimeKind::Crio => false,
    }
}

/// `[runtime.restart]` with the kind's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RestartSpec {
    pub method: RestartMethod,
    /// The config named no method: `restart::choose` picks it.
    pub method_chosen_by_agent: bool,
    pub pidfile: Option<PathBuf>,
    pub process: String,
    pub unit: String,
    pub command: Vec<String>,
    pub diagnostic_signal: Option<i32>,
    pub grace: Duration,
    pub timeout: Duration,
}

impl RestartSpec {
    pub(crate) fn resolve(kind: RuntimeKind, c: &RestartConfig) -> Self {
        let d = defaults(kind);
        Self {
            method: c.method.unwrap_or(RestartMethod::Signal),
            method_chosen_by_agent: c.method.is_none(),
            pidfile: c.pidfile.clone().or_else(|| d.pidfile.map(PathBuf::from)),
            process: c.process.clone().unwrap_or_else(|| d.process.to_owned()),
            unit: c.unit.clone().unwrap_or_else(|| d.unit.to_owned()),
            command: c.command.clone(),
            diagnostic_signal: match c.diagnostic_signal {
                Some(s) => s.number(),
                None => d.diagnostic_signal,
            },
            grace: c.grace,
            timeout: c.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiagnosticSignal;

    #[test]
    fn docker_defaults_and_overrides() {
        let s = RestartSpec::resolve(RuntimeKind::Docker, &RestartConfig::default());
        assert_eq!(s.pidfile, Some(PathBuf::from("/var/run/docker.pid")));
        assert_eq!(s.process, "dockerd");
        assert_eq!(s.unit, "docker.service");
        assert_eq!(s.diagnostic_signal, Some(libc::SIGUSR1));
        let c = RestartConfig {
            process: Some("my-dockerd".into()),
            diagnostic_signal: Some(DiagnosticSignal::None),
            ..RestartConfig::default()
        };
        let s = RestartSpec::resolve(RuntimeKind::Docker, &c);
        assert_eq!(s.process, "my-dockerd");
        assert_eq!(s.diagnostic_signal, None);
    }

    /// CRI-O cannot be installed on the test machines: its defaults are
    /// covered here only. containerd's are also exercised end to end.
    #[test]
    fn cri_runtime_defaults() {
        let c = RestartSpec::resolve(RuntimeKind::Containerd, &RestartConfig::default());
        // Exactly the daemon: `containerd-shim*` processes host workloads.
        assert_eq!(c.process, "containerd");
        assert_eq!(c.unit, "containerd.service");
        assert_eq!(c.pidfile, None);
        assert_eq!(c.diagnostic_signal, None);
        let o = RestartSpec::resolve(RuntimeKind::Crio, &RestartConfig::default());
        assert_eq!(o.process, "crio");
        assert_eq!(o.unit, "crio.service");
        assert_eq!(o.pidfile, None);
        assert!(!restart_kills_containers(RuntimeKind::Crio, None));
    }

    #[test]
    fn restart_cost() {
        assert!(restart_kills_containers(RuntimeKind::Docker, None));
        assert!(restart_kills_containers(RuntimeKind::Docker, Some(false)));
        assert!(!restart_kills_containers(RuntimeKind::Docker, Some(true)));
        assert!(!restart_kills_containers(RuntimeKind::Containerd, None));
    }
}
