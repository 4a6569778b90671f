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

/// `Restart=` and `LoadState=` from `systemctl show -p Restart -p LoadState`
/// output (`Key=value` lines, in any order); pure.
pub(crate) fn parse_show(text: &str) -> (Option<&str>, Option<&str>) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
    };
    (get("Restart"), get("LoadState"))
}

/// Reads the unit's `Restart=` and warns loudly when a killed runtime would
/// stay dead (or when the unit does not exist at all).
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
        "-p".into(),
        "LoadState".into(),
        unit.clone(),
    ];
    let out = run_command(&argv, timeout).await?;
    let (policy, load_state) = parse_show(&out);
    if load_state == Some("not-found") {
        tracing::warn!(
            unit,
            "systemd has no unit of that name: set runtime.restart.unit"
        );
        return Ok(format!("{unit} not found by systemd"));
    }
    let policy = policy.unwrap_or("unknown");
    if restarts_after_kill(policy) {
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
    fn show_output_parses_in_any_order() {
        assert_eq!(
            parse_show("LoadState=loaded\nRestart=always\n"),
            (Some("always"), Some("loaded"))
        );
        assert_eq!(
            parse_show("Restart=no\nLoadState=not-found"),
            (Some("no"), Some("not-found"))
        );
        assert_eq!(parse_show(""), (None, None));
        assert_eq!(parse_show("Restarts=x\n=\n"), (None, None));
    }

    proptest::proptest! {
        #[test]
        fn parse_show_never_panics(s in "\\PC{0,100}") {
            let _ = parse_show(&s);
        }
    }

    #[test]
    fn kill_survival_by_policy() {
        assert!(restarts_after_kill("always"));
        assert!(restarts_after_kill("on-failure"));
        assert!(!restarts_after_kill("no"));
        assert!(!restarts_after_kill("on-success"));
        assert!(!restarts_after_kill(""));
    }
}
