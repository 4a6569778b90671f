//! Restarters: how a runtime is restarted, behind one small trait. `signal`
//! kills the daemon and relies on its supervisor to start it again, `systemd`
//! restarts its unit over D-Bus, `command` runs an argv. Each restart runs under a
//! deadline; its future is `'static` so it completes even if the engine that
//! started it is replaced by a config reload. Metrics: none.

mod choose;
mod command;
mod signal;
mod systemd;
mod systemd_bus;

use super::defaults::RestartSpec;
use super::procfs::{ProcError, Procfs};
use crate::config::RestartMethod;
use std::future::Future;
use std::pin::Pin;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use choose::choose;
pub(crate) use command::CommandRestarter;
pub(crate) use signal::SignalRestarter;
pub(crate) use systemd::SystemdRestarter;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RestartError {
    #[error(transparent)]
    Process(#[from] ProcError),
    #[error(transparent)]
    Bus(#[from] systemd_bus::BusError),
    #[error("cannot send signal {signal} to PID {pid}: {source}")]
    Signal {
        pid: i32,
        signal: i32,
        source: std::io::Error,
    },
    #[error("PID {pid} still running {waited:?} after SIGKILL")]
    Survived { pid: i32, waited: Duration },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Deadline { program: String, timeout: Duration },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

/// A human-readable account of what was done, for the log and `/status`.
pub(crate) type RestartFuture = Pin<Box<dyn Future<Output = Result<String, RestartError>> + Send>>;

/// How long the runtime has been up, when the restarter knows better than
/// the runtime's process (`None` = ask `/proc`).
pub(crate) type UptimeFuture = Pin<Box<dyn Future<Output = Option<Duration>> + Send>>;

pub(crate) trait Restarter: Send + Sync + 'static {
    /// Checks made once when remediation starts; problems are logged, loudly.
    fn preflight(&self) -> RestartFuture;
    fn restart(&self) -> RestartFuture;
    /// The runtime's age for the cooldown, asked only when a restart is in
    /// reach.
    fn runtime_uptime(&self) -> UptimeFuture {
        Box::pin(std::future::ready(None))
    }
}

/// The restarter `spec` asks for.
pub(crate) fn build(spec: &RestartSpec, procfs: &Procfs) -> Arc<dyn Restarter> {
    match spec.method {
        RestartMethod::Signal => Arc::new(SignalRestarter::new(spec, procfs.clone())),
        RestartMethod::Systemd => Arc::new(SystemdRestarter::new(spec)),
        RestartMethod::Command => Arc::new(CommandRestarter::new(spec)),
    }
}

/// Bytes kept of a restart command's stdout and of its stderr; the rest is
/// read and dropped, so a chatty command neither grows the agent nor blocks.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// The first [`MAX_OUTPUT_BYTES`] of a pipe, then drained to its end.
async fn read_bounded(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = (&mut pipe)
            .take(MAX_OUTPUT_BYTES)
            .read_to_end(&mut kept)
            .await;
        let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    }
    kept
}

/// Runs `argv` with no stdin under `timeout`; kills it at the deadline.
/// Returns its trimmed stdout.
pub(crate) async fn run_command(
    argv: &[String],
    timeout: Duration,
) -> Result<String, RestartError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RestartError::Spawn {
            program: String::new(),
            source: std::io::Error::other("empty command"),
        });
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RestartError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let run = async {
        let (stdout, stderr, status) =
            tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait());
        status.map(|status| Output {
            status,
            stdout,
            stderr,
        })
    };
    // At the deadline `child` is dropped, which kills it.
    let out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| RestartError::Deadline {
            program: program.clone(),
            timeout,
        })?
        .map_err(|source| RestartError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(RestartError::Failed {
            program: program.clone(),
            status: out.status.to_string(),
            stderr: stderr.trim().chars().take(500).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn command_output_failure_and_deadline() {
        assert_eq!(
            run_command(&argv(&["sh", "-c", "echo hi"]), Duration::from_secs(5))
                .await
                .unwrap(),
            "hi"
        );
        let e = run_command(
            &argv(&["sh", "-c", "echo bad >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("bad") && e.contains('3'), "{e}");
        let e = run_command(&argv(&["sleep", "30"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, RestartError::Deadline { .. }), "{e}");
        let e = run_command(&argv(&["/nonexistent/restart-me"]), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, RestartError::Spawn { .. }), "{e}");
        assert!(run_command(&[], Duration::from_secs(1)).await.is_err());
    }

    #[tokio::test]
    async fn a_chatty_command_keeps_only_the_start_of_its_output() {
        let out = run_command(
            &argv(&["sh", "-c", "head -c 30000000 /dev/zero | tr '\\0' y"]),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(out.len() as u64, MAX_OUTPUT_BYTES);
        let e = run_command(&argv(&["yes"]), Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(e, RestartError::Deadline { .. }), "{e}");
    }
}
