//! The `signal` restarter: finds the daemon (pidfile, else exact executable
//! name; never shims or container processes), sends the diagnostic signal if
//! any (dockerd dumps its goroutine stacks on SIGUSR1), then SIGTERM, waits
//! `grace`, then SIGKILL. Its supervisor (systemd `Restart=`, a DaemonSet)
//! starts it again. Before each signal the PID's start time is checked, so a
//! PID reused by another process is never signalled.
//!
//! A stopped daemon (`T`) acts on no signal but SIGCONT and SIGKILL, so the
//! TERM grace would only be waited out: it gets SIGCONT, the diagnostic signal
//! (so it still leaves its stack dump), then SIGKILL at once. SIGCONT followed
//! by TERM and the grace was not chosen: the hang is already confirmed, a
//! clean shutdown of a daemon that was frozen mid-work buys nothing, and the
//! grace would be paid a second time. A traced daemon (`t`) is held by its
//! tracer, which SIGCONT does not undo: SIGKILL at once. After SIGKILL the
//! death is verified within `KILL_WAIT`; a survivor is an error
//! (`RestartError::Survived`) that the engine reports as unkillable.

use super::systemd::{restart_instead_of_a_fatal_kill, unit_policy};
use super::{RestartError, RestartFuture, Restarter};
use crate::remediation::defaults::RestartSpec;
use crate::remediation::procfs::{Process, Procfs};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// Time given to the daemon to write its diagnostic dump before SIGTERM.
const DIAGNOSTIC_PAUSE: Duration = Duration::from_millis(500);
/// Deadline of the look at the runtime's systemd unit made once at start.
const UNIT_CHECK_DEADLINE: Duration = Duration::from_secs(5);
/// How long SIGKILL may take to remove the process.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub(crate) struct SignalRestarter {
    procfs: Procfs,
    pidfile: Option<PathBuf>,
    process: String,
    diagnostic: Option<i32>,
    grace: Duration,
    timeout: Duration,
    unit: String,
}

impl SignalRestarter {
    pub(crate) fn new(spec: &RestartSpec, procfs: Procfs) -> Self {
        Self {
            procfs,
            pidfile: spec.pidfile.clone(),
            process: spec.process.clone(),
            diagnostic: spec.diagnostic_signal,
            grace: spec.grace,
            timeout: spec.timeout,
            unit: spec.unit.clone(),
        }
    }
}

/// Sends `sig` to `p` unless it is gone or its PID now belongs to another process.
fn send(procfs: &Procfs, p: Process, sig: i32) -> Result<bool, RestartError> {
    if !procfs.alive(p) {
        return Ok(false);
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(p.pid, sig) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(false);
    }
    Err(RestartError::Signal {
        pid: p.pid,
        signal: sig,
        source: e,
    })
}

/// Waits up to `limit` for `p` to exit; true if it did.
async fn wait_gone(procfs: &Procfs, p: Process, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while procfs.alive(p) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// SIGKILL, then verifies within `KILL_WAIT` that the process is gone.
async fn kill(procfs: &Procfs, p: Process, how: String) -> Result<String, RestartError> {
    send(procfs, p, libc::SIGKILL)?;
    if wait_gone(procfs, p, KILL_WAIT).await {
        Ok(format!("PID {} killed: {how}", p.pid))
    } else {
        Err(RestartError::Survived {
            pid: p.pid,
            waited: KILL_WAIT,
        })
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        other => format!("signal {other}"),
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Restarter for SignalRestarter {
    fn preflight(&self) -> RestartFuture {
        let found = self.procfs.find(self.pidfile.as_deref(), &self.process);
        let unit = self.unit.clone();
        Box::pin(async move {
            // A killed runtime only comes back if its supervisor restarts it; when
            // systemd supervises it, its Restart= policy says whether it will.
            let unit = match unit_policy(unit, UNIT_CHECK_DEADLINE).await {
                Ok(policy) => policy,
                Err(e) => format!("no systemd unit to check ({e})"),
            };
            let p = found?;
            Ok(format!("runtime process is PID {}; {unit}", p.pid))
        })
    }

    fn restart(&self) -> RestartFuture {
        let procfs = self.procfs.clone();
        let found = procfs.find(self.pidfile.as_deref(), &self.process);
        let (diagnostic, grace, timeout) = (self.diagnostic, self.grace, self.timeout);
        Box::pin(async move {
            let p = found?;
            // Under systemd, a kill is only a restart if the unit's Restart=
            // starts it again: look before killing.
            let cgroup = procfs.cgroup_of(p.pid);
            if let Some(done) =
                restart_instead_of_a_fatal_kill(cgroup, UNIT_CHECK_DEADLINE, timeout).await?
            {
                return Ok(done);
            }
            let state = procfs.state(p.pid);
            if state == Some('t') {
                return kill(&procfs, p, "traced (t): SIGKILL at once".into()).await;
            }
            let stopped = state == Some('T');
            if stopped {
                send(&procfs, p, libc::SIGCONT)?;
            }
            let mut notes = String::new();
            if let Some(sig) = diagnostic {
                if send(&procfs, p, sig)? {
                    notes = format!("{} sent at unix {:.3}; ", signal_name(sig), unix_now());
                    tokio::time::sleep(DIAGNOSTIC_PAUSE).await;
                }
            }
            if stopped {
                notes.push_str("stopped (T): SIGCONT, then SIGKILL without the TERM grace");
                return kill(&procfs, p, notes).await;
            }
            send(&procfs, p, libc::SIGTERM)?;
            if wait_gone(&procfs, p, grace).await {
                return Ok(format!("{notes}PID {} exited after SIGTERM", p.pid));
            }
            kill(
                &procfs,
                p,
                format!("{notes}SIGKILL after a {grace:?} grace"),
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RestartConfig, RuntimeKind};
    use std::path::Path;

    /// A real process standing in for the daemon, found by its pidfile.
    fn restarter_for(child: &std::process::Child, dir: &Path, grace: Duration) -> SignalRestarter {
        let procfs = Procfs::new(Path::new("/proc"));
        let pid = child.id() as i32;
        let pidfile = dir.join("daemon.pid");
        std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
        let config = RestartConfig {
            pidfile: Some(pidfile),
            process: Some(procfs.exe_name(pid).unwrap()),
            diagnostic_signal: Some(crate::config::DiagnosticSignal::None),
            grace,
            ..RestartConfig::default()
        };
        SignalRestarter::new(&RestartSpec::resolve(RuntimeKind::Docker, &config), procfs)
    }

    #[tokio::test]
    async fn sigterm_ends_a_daemon_that_handles_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let r = restarter_for(&child, dir.path(), Duration::from_secs(5));
        let detail = r.restart().await.unwrap();
        assert!(detail.contains("after SIGTERM"), "{detail}");
        assert!(child.wait().unwrap().code().is_none(), "ended by a signal");
    }

    /// A stopped process that would ignore SIGTERM is killed without waiting
    /// out the (long) grace.
    #[tokio::test]
    async fn a_stopped_daemon_is_killed_without_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let procfs = Procfs::new(Path::new("/proc"));
        let start = Instant::now();
        while procfs.state(pid) != Some('T') && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = restarter_for(&child, dir.path(), Duration::from_secs(60));
        let begun = Instant::now();
        let detail = r.restart().await.unwrap();
        assert!(detail.contains("without the TERM grace"), "{detail}");
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "{:?}",
            begun.elapsed()
        );
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }

    /// Whether a `/proc/PID/status` text shows `sig` in the ignored mask (other
    /// bits may be inherited, so test this one).
    fn ignores(status: &str, sig: i32) -> bool {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
    }

    #[tokio::test]
    async fn sigkill_after_the_grace_when_sigterm_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
            .spawn()
            .unwrap();
        // Let the shell install its trap before it is signalled.
        let pid = child.id() as i32;
        let start = Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !ignores(&s, libc::SIGTERM))
            .unwrap_or(true)
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = restarter_for(&child, dir.path(), Duration::from_millis(300));
        let detail = r.restart().await.unwrap();
        assert!(detail.contains("SIGKILL"), "{detail}");
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
}
