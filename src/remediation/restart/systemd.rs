//! The `systemd` restarter: `systemctl restart <unit>` under `restart.timeout`.
//! Before anything else it reads the unit's `Restart=` policy and warns loudly
//! when a runtime that dies (or is killed) would stay dead. The systemctl
//! binary is configurable so a DaemonSet can use a host wrapper.

use super::{run_command, RestartError, RestartFuture, Restarter};
use crate::remediation::defaults::RestartSpec;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) struct SystemdRestarter {
    systemctl: PathBuf,
    unit: String,
    timeout: Duration,
}

impl SystemdRestarter {
    pub(crate) fn new(spec: &RestartSpec) -> Self {
        Self {
            systemctl: spec.systemctl.clone(),
            unit: spec.unit.clone(),
            timeout: spec.timeout,
        }
    }
}

/// Whether a unit with this `Restart=` value is started again after it dies.
/// `on-success` and `on-abort` do not cover SIGTERM/SIGKILL deaths.
pub(crate) fn restarts_after_kill(policy: &str) -> bool {
    matches!(policy, "always" | "on-failure" | "on-abnormal")
}

/// Reads the unit's `Restart=` and warns loudly when a killed runtime would
/// stay dead.
pub(crate) async fn check_unit_policy(
    systemctl: PathBuf,
    unit: String,
    timeout: Duration,
) -> Result<String, RestartError> {
    let argv = [
        systemctl.to_string_lossy().into_owned(),
        "show".into(),
        "-p".into(),
        "Restart".into(),
        "--value".into(),
        unit.clone(),
    ];
    let policy = run_command(&argv, timeout).await?;
    if restarts_after_kill(&policy) {
        return Ok(format!("{unit} has Restart={policy}"));
    }
    tracing::warn!(
        unit,
        restart = %policy,
        "UNIT WILL STAY DEAD IF KILLED: the runtime's unit does not restart it after it dies; set Restart=always"
    );
    Ok(format!(
        "{unit} has Restart={policy}: a killed runtime stays dead"
    ))
}

impl Restarter for SystemdRestarter {
    fn preflight(&self) -> RestartFuture {
        Box::pin(check_unit_policy(
            self.systemctl.clone(),
            self.unit.clone(),
            self.timeout,
        ))
    }

    fn restart(&self) -> RestartFuture {
        let argv = vec![
            self.systemctl.to_string_lossy().into_owned(),
            "restart".into(),
            self.unit.clone(),
        ];
        let timeout = self.timeout;
        Box::pin(async move {
            run_command(&argv, timeout).await?;
            Ok(argv.join(" "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_survival_by_policy() {
        assert!(restarts_after_kill("always"));
        assert!(restarts_after_kill("on-failure"));
        assert!(!restarts_after_kill("no"));
        assert!(!restarts_after_kill("on-success"));
        assert!(!restarts_after_kill(""));
    }
}
