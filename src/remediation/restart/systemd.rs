//! The `systemd` restarter, natively over D-Bus (`systemd_bus`, no
//! `systemctl`). A hung runtime whose unit has a `Restart=` policy that
//! starts it again after a kill is ended with `KillUnit(main, SIGKILL)`: a
//! `RestartUnit` would first wait out the unit's stop timeout on a daemon
//! that no longer handles SIGTERM. A unit that a kill would leave dead is
//! restarted with `RestartUnit`, and the agent says so. Either way the
//! restart waits, under `restart.timeout`, until systemd reports the unit
//! active again with a new start time. The unit's start time is also the
//! runtime's age for the cooldown. Metrics: none.

use super::choose::unit_of_cgroup;
use super::systemd_bus::{BusError, Systemd, UnitState};
use super::{RestartError, RestartFuture, Restarter, UptimeFuture};
use crate::remediation::defaults::RestartSpec;
use std::time::Duration;

/// How often the unit is read while waiting for systemd to start it again.
const POLL: Duration = Duration::from_millis(200);

pub(crate) struct SystemdRestarter {
    unit: String,
    timeout: Duration,
}

impl SystemdRestarter {
    pub(crate) fn new(spec: &RestartSpec) -> Self {
        Self {
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

/// How the restarter ends a hung unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `KillUnit` the main process; systemd's `Restart=` starts it again.
    Kill,
    /// `RestartUnit`: a kill would leave the unit dead.
    Restart,
}

pub(crate) fn plan(unit: &UnitState) -> Action {
    if restarts_after_kill(&unit.restart) {
        Action::Kill
    } else {
        Action::Restart
    }
}

/// Whether systemd started the unit again since `before` was read.
pub(crate) fn restarted(before: &UnitState, now: &UnitState) -> bool {
    now.active_state == "active" && now.active_enter_monotonic_us > before.active_enter_monotonic_us
}

/// How long the unit has been active at `now_us` (`CLOCK_MONOTONIC` µs);
/// `None` while it is not active.
pub(crate) fn active_for(unit: &UnitState, now_us: u64) -> Option<Duration> {
    (unit.active_state == "active" && unit.active_enter_monotonic_us > 0)
        .then(|| Duration::from_micros(now_us.saturating_sub(unit.active_enter_monotonic_us)))
}

/// One line for the log and `/status` on what preflight found.
pub(crate) fn describe_policy(name: &str, unit: &UnitState) -> String {
    if unit.load_state != "loaded" {
        return format!(
            "{name} is {} for systemd: set runtime.restart.unit",
            unit.load_state
        );
    }
    match plan(unit) {
        Action::Kill => format!(
            "{name} has Restart={}: a hang is ended with KillUnit (SIGKILL to its main process) and systemd starts it again",
            unit.restart
        ),
        Action::Restart => format!(
            "{name} has Restart={}: a kill would leave it dead, so a hang is restarted with RestartUnit",
            display_policy(&unit.restart)
        ),
    }
}

fn display_policy(policy: &str) -> &str {
    if policy.is_empty() {
        "(none)"
    } else {
        policy
    }
}

fn monotonic_now_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1_000
}

/// Reads the unit's `Restart=` and says (loudly, when a kill would leave it
/// dead or the unit is unknown) what a restart will do.
pub(crate) async fn unit_policy(unit: String, timeout: Duration) -> Result<String, RestartError> {
    deadline(timeout, &unit, preflight(unit.clone())).await
}

async fn preflight(unit: String) -> Result<String, RestartError> {
    let state = Systemd::connect().await?.unit(&unit).await?;
    let line = describe_policy(&unit, &state);
    if state.load_state != "loaded" {
        tracing::warn!(unit, load_state = state.load_state, "{line}");
    } else if plan(&state) == Action::Restart {
        tracing::warn!(unit, restart = state.restart, "{line}");
    } else {
        tracing::info!(unit, restart = state.restart, "{line}");
    }
    Ok(line)
}

async fn restart(unit: String) -> Result<String, RestartError> {
    let bus = Systemd::connect().await?;
    let before = bus.unit(&unit).await?;
    if before.load_state != "loaded" {
        return Err(BusError::NotLoaded {
            unit,
            load_state: before.load_state,
        }
        .into());
    }
    let mut action = plan(&before);
    let mut done = match action {
        Action::Kill => {
            bus.kill_main(&unit, libc::SIGKILL).await?;
            format!(
                "KillUnit {unit} main SIGKILL (MainPID {}); Restart={} starts it again",
                before.main_pid, before.restart
            )
        }
        Action::Restart => {
            tracing::warn!(
                unit,
                restart = display_policy(&before.restart),
                "restarting with RestartUnit, not killing: with this Restart= a killed runtime would stay dead"
            );
            bus.restart(&unit).await?;
            format!(
                "RestartUnit {unit} (Restart={}: a kill would leave it dead)",
                display_policy(&before.restart)
            )
        }
    };
    loop {
        tokio::time::sleep(POLL).await;
        let now = bus.unit(&unit).await?;
        if restarted(&before, &now) {
            done.push_str(&format!(
                "; active again: MainPID {} -> {}, NRestarts {} -> {}",
                before.main_pid, now.main_pid, before.n_restarts, now.n_restarts
            ));
            return Ok(done);
        }
        // Killed, but systemd gave up starting it (e.g. its start limit): a
        // unit left failed is started once by hand.
        if action == Action::Kill && now.active_state == "failed" {
            tracing::warn!(
                unit,
                "unit failed after the kill instead of restarting: RestartUnit"
            );
            bus.restart(&unit).await?;
            done.push_str("; unit failed after the kill, so RestartUnit");
            action = Action::Restart;
        }
    }
}

/// For the `signal` method, before it kills `pid`: when the process runs in
/// a systemd service whose `Restart=` would leave it dead after a kill, the
/// unit is restarted with `RestartUnit` instead, and the agent says so.
/// `None`: the kill may go ahead (no such unit, no bus, or a policy that
/// starts the unit again).
pub(crate) async fn restart_instead_of_a_fatal_kill(
    cgroup: Option<String>,
    check: Duration,
    timeout: Duration,
) -> Result<Option<String>, RestartError> {
    let Some(unit) = cgroup
        .as_deref()
        .and_then(unit_of_cgroup)
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let read = async { Systemd::connect().await?.unit(&unit).await };
    let Ok(Ok(state)) = tokio::time::timeout(check, read).await else {
        return Ok(None);
    };
    if state.load_state != "loaded" || plan(&state) == Action::Kill {
        return Ok(None);
    }
    tracing::warn!(
        unit,
        restart = display_policy(&state.restart),
        "the runtime's unit would stay dead if killed: restarting the unit instead of signalling"
    );
    let done = deadline(timeout, &unit, restart(unit.clone())).await?;
    Ok(Some(format!("signal method: not killed; {done}")))
}

impl Restarter for SystemdRestarter {
    fn preflight(&self) -> RestartFuture {
        Box::pin(unit_policy(self.unit.clone(), self.timeout))
    }

    fn restart(&self) -> RestartFuture {
        deadline(self.timeout, &self.unit, restart(self.unit.clone()))
    }

    /// The unit's time since it became active: the runtime's age as systemd
    /// knows it, whatever its pidfile says.
    fn runtime_uptime(&self) -> UptimeFuture {
        let unit = self.unit.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let read = async { Systemd::connect().await?.unit(&unit).await };
            match tokio::time::timeout(timeout, read).await {
                Ok(Ok(state)) => active_for(&state, monotonic_now_us()),
                Ok(Err(e)) => {
                    tracing::debug!(unit, error = %e, "cannot read the unit's start time");
                    None
                }
                Err(_) => None,
            }
        })
    }
}

fn deadline(
    timeout: Duration,
    unit: &str,
    work: impl std::future::Future<Output = Result<String, RestartError>> + Send + 'static,
) -> RestartFuture {
    let program = format!("systemd D-Bus call on {unit}");
    Box::pin(async move {
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| RestartError::Deadline { program, timeout })?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(active: &str, enter: u64, restart: &str, main_pid: u32) -> UnitState {
        UnitState {
            load_state: "loaded".into(),
            active_state: active.into(),
            active_enter_monotonic_us: enter,
            restart: restart.into(),
            n_restarts: 0,
            main_pid,
        }
    }

    #[test]
    fn kill_survival_by_policy() {
        assert!(restarts_after_kill("always"));
        assert!(restarts_after_kill("on-failure"));
        assert!(restarts_after_kill("on-abnormal"));
        assert!(!restarts_after_kill("no"));
        assert!(!restarts_after_kill("on-success"));
        assert!(!restarts_after_kill("on-abort"));
        assert!(!restarts_after_kill(""));
    }

    #[test]
    fn a_unit_a_kill_would_leave_dead_is_restarted_not_killed() {
        assert_eq!(plan(&unit("active", 1, "always", 7)), Action::Kill);
        assert_eq!(plan(&unit("active", 1, "no", 7)), Action::Restart);
        assert_eq!(plan(&unit("active", 1, "on-success", 7)), Action::Restart);
        let said = describe_policy("docker.service", &unit("active", 1, "no", 7));
        assert!(
            said.contains("RestartUnit") && said.contains("Restart=no"),
            "{said}"
        );
        let mut missing = unit("inactive", 0, "", 0);
        missing.load_state = "not-found".into();
        let said = describe_policy("dockr.service", &missing);
        assert!(
            said.contains("not-found") && said.contains("runtime.restart.unit"),
            "{said}"
        );
    }

    #[test]
    fn restarted_means_active_with_a_newer_start() {
        let before = unit("active", 100, "always", 7);
        assert!(!restarted(&before, &unit("activating", 100, "always", 0)));
        assert!(!restarted(&before, &unit("active", 100, "always", 7)));
        assert!(!restarted(&before, &unit("activating", 200, "always", 9)));
        assert!(restarted(&before, &unit("active", 200, "always", 9)));
    }

    #[test]
    fn uptime_from_the_units_start_time() {
        assert_eq!(
            active_for(&unit("active", 1_000_000, "always", 7), 3_500_000),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            active_for(&unit("activating", 1_000_000, "always", 7), 3_500_000),
            None
        );
        assert_eq!(active_for(&unit("active", 0, "always", 7), 3_500_000), None);
        // A clock read before the timestamp (never expected) is age zero.
        assert_eq!(
            active_for(&unit("active", 9_000_000, "always", 7), 3_500_000),
            Some(Duration::ZERO)
        );
    }
}
