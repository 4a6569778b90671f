//! Tells systemd (sd_notify(3)) how the agent is doing; the `sd-notify` crate
//! speaks the wire protocol (one datagram per message to the unix socket path
//! in `$NOTIFY_SOCKET`), this module decides what to say. The agent sends `READY=1` once every
//! probe has run once, `WATCHDOG=1` every half `$WATCHDOG_USEC` but only while
//! no probe loop is stuck (so systemd restarts a wedged agent), `STATUS=` lines
//! for `systemctl status`, and `STOPPING=1` on shutdown. Emits no metrics.
//!
//! The notifier runs on a thread of its own, not on the tokio runtime it
//! watches: whether to ping is decided from `Health` alone, so a runtime whose
//! workers are wedged cannot keep the watchdog fed, and a notifier that is
//! slow to send cannot delay a probe.

use crate::health::Health;
use sd_notify::NotifyState;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often readiness is checked before `READY=1` has been sent.
const READY_POLL: Duration = Duration::from_millis(200);
/// `sun_path` holds 108 bytes, one of which is the path's NUL.
const MAX_ADDR_LEN: usize = 107;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("NOTIFY_SOCKET=\"{value}\": {reason}")]
    Address { value: String, reason: &'static str },
    #[error("WATCHDOG_USEC=\"{value}\": {reason}")]
    Watchdog { value: String, reason: &'static str },
}

/// Checks the value of `$NOTIFY_SOCKET` before notifying: an absolute path.
/// The abstract namespace (`@name`) and other socket families (`vsock:`) are
/// not supported by the protocol client; they are reported, not guessed at.
pub(crate) fn parse_notify_socket(value: &str) -> Result<PathBuf, NotifyError> {
    let bad = |reason| NotifyError::Address {
        value: value.to_owned(),
        reason,
    };
    if value.starts_with('@') {
        return Err(bad(
            "abstract socket names are not supported; use a socket path",
        ));
    }
    if !value.starts_with('/') {
        return Err(bad("must be an absolute socket path"));
    }
    if value.len() > MAX_ADDR_LEN || value.contains('\0') {
        return Err(bad("not a usable socket path"));
    }
    Ok(value.into())
}

/// The watchdog ping period from `$WATCHDOG_USEC` and `$WATCHDOG_PID`: half the
/// timeout, as sd_watchdog_enabled(3) advises. `None` when no watchdog is set,
/// or when it is meant for another process (`WATCHDOG_PID` names another PID).
pub(crate) fn watchdog_period(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(value) = usec else {
        return Ok(None);
    };
    let bad = |reason| NotifyError::Watchdog {
        value: value.to_owned(),
        reason,
    };
    let micros: u64 = value
        .trim()
        .parse()
        .map_err(|_| bad("not a number of microseconds"))?;
    if micros == 0 {
        return Err(bad("must be more than 0"));
    }
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own_pid)) {
        return Ok(None);
    }
    Ok(Some(
        Duration::from_micros(micros / 2).max(Duration::from_millis(1)),
    ))
}

/// Sends notifications to the socket of `$NOTIFY_SOCKET`.
pub(crate) struct Notifier {
    shown: PathBuf,
}

impl Notifier {
    fn send_logged(&self, state: NotifyState<'_>) {
        if let Err(e) = sd_notify::notify(false, &[state]) {
            tracing::warn!(socket = %self.shown.display(), error = %e, "systemd notification not sent");
        }
    }
}

/// The notification thread; `stop` sends `STOPPING=1` and joins it.
pub(crate) struct Supervisor {
    notifier: Arc<Notifier>,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Supervisor {
    /// Starts notifying when the agent runs under systemd (`$NOTIFY_SOCKET` is
    /// set); `None` otherwise or when the environment is unusable (logged).
    pub fn start_from_env(health: Arc<Health>) -> Option<Supervisor> {
        let value = std::env::var("NOTIFY_SOCKET").ok()?;
        let setup = || -> Result<(Notifier, Option<Duration>), NotifyError> {
            let notifier = Notifier {
                shown: parse_notify_socket(&value)?,
            };
            let period = watchdog_period(
                std::env::var("WATCHDOG_USEC").ok().as_deref(),
                std::env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            )?;
            Ok((notifier, period))
        };
        let (notifier, period) = match setup() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "not notifying systemd");
                return None;
            }
        };
        tracing::info!(socket = %notifier.shown.display(), watchdog_period = ?period, "notifying systemd");
        let notifier = Arc::new(notifier);
        let (stop, stopped) = mpsc::channel();
        let worker = Arc::clone(&notifier);
        let thread = std::thread::Builder::new()
            .name("nodevitals-notify".into())
            .spawn(move || notify_loop(&worker, &health, period, &stopped));
        match thread {
            Ok(thread) => Some(Supervisor {
                notifier,
                stop,
                thread,
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the systemd notification thread");
                None
            }
        }
    }

    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
        self.notifier.send_logged(NotifyState::Stopping);
    }
}

/// What to tell systemd after one check of `health`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not every probe has run yet: say nothing.
    Starting,
    /// Every loop is progressing: feed the watchdog.
    Alive,
    /// These loops are stuck: withhold the ping so systemd restarts the agent.
    Stuck(Vec<String>),
}

/// `ready`: READY=1 was sent already. From then on only stuck loops withhold
/// the ping: a probe added by a config reload has not run yet, but it is not
/// stuck until it misses its first run (`Health::reset` gives it an interval).
pub(crate) fn decide(health: &Health, ready: bool) -> Decision {
    if !ready && !health.not_ready().is_empty() {
        return Decision::Starting;
    }
    let stuck = health.stuck();
    if stuck.is_empty() {
        Decision::Alive
    } else {
        Decision::Stuck(stuck)
    }
}

fn notify_loop(
    notifier: &Notifier,
    health: &Health,
    period: Option<Duration>,
    stopped: &mpsc::Receiver<()>,
) {
    let mut ready = false;
    let mut last = Decision::Starting;
    loop {
        let wait = match (ready, period) {
            (false, Some(p)) => p.min(READY_POLL),
            (false, None) => READY_POLL,
            (true, Some(p)) => p,
            // Ready and no watchdog: only STATUS changes are left to report.
            (true, None) => READY_POLL * 5,
        };
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = decide(health, ready);
        if now == Decision::Starting {
            continue;
        }
        if !ready {
            ready = true;
            notifier.send_logged(NotifyState::Ready);
        }
        if now != last {
            match &now {
                Decision::Stuck(loops) => {
                    tracing::error!(?loops, "probe loops stuck; withholding the watchdog ping");
                    let status = format!("probe loops stuck: {}", loops.join(", "));
                    notifier.send_logged(NotifyState::Status(&status));
                }
                _ => notifier.send_logged(NotifyState::Status(
                    "probing; every probe loop is progressing",
                )),
            }
        }
        if now == Decision::Alive && period.is_some() {
            notifier.send_logged(NotifyState::Watchdog);
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_socket_paths_are_accepted() {
        assert_eq!(
            parse_notify_socket("/run/systemd/notify").unwrap(),
            PathBuf::from("/run/systemd/notify")
        );
        for bad in [
            "",
            "@",
            "@/org/freedesktop/systemd1/notify/42",
            "relative/sock",
            "vsock:2:1234",
            "/a\0b",
        ] {
            let e = parse_notify_socket(bad).unwrap_err().to_string();
            assert!(e.starts_with("NOTIFY_SOCKET="), "{bad:?}: {e}");
        }
        let long = format!("/{}", "x".repeat(MAX_ADDR_LEN));
        assert!(parse_notify_socket(&long).is_err());
    }

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_us() {
        let p = |u, pid| watchdog_period(u, pid, 42);
        assert_eq!(p(None, None).unwrap(), None);
        assert_eq!(
            p(Some("30000000"), None).unwrap(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            p(Some("30000000"), Some("42")).unwrap(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(p(Some("30000000"), Some("7")).unwrap(), None);
        assert_eq!(p(Some("1"), None).unwrap(), Some(Duration::from_millis(1)));
        for bad in ["", "0", "-5", "1.5", "ten"] {
            assert!(p(Some(bad), None).is_err(), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pings_only_while_every_loop_progresses() {
        let h = Health::default();
        let d = Duration::from_secs(1);
        h.reset(&[("a".into(), d, d), ("b".into(), d, d)]);
        assert_eq!(decide(&h, false), Decision::Starting);
        h.progressed("a");
        assert_eq!(decide(&h, false), Decision::Starting);
        h.progressed("b");
        assert_eq!(decide(&h, false), Decision::Alive);
        tokio::time::advance(Duration::from_secs(8)).await;
        h.progressed("a");
        assert_eq!(decide(&h, true), Decision::Stuck(vec!["b".into()]));
        h.progressed("b");
        assert_eq!(decide(&h, true), Decision::Alive);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_added_by_reload_pauses_pings_only_once_it_is_stuck() {
        let h = Health::default();
        let d = Duration::from_secs(1);
        h.reset(&[("a".into(), d, d)]);
        h.progressed("a");
        h.reset(&[("a".into(), d, d), ("new".into(), d, d)]);
        assert_eq!(decide(&h, true), Decision::Alive);
        // Its first run may wait an interval; then interval + deadline + slack.
        tokio::time::advance(Duration::from_secs(9)).await;
        h.progressed("a");
        assert_eq!(decide(&h, true), Decision::Stuck(vec!["new".into()]));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*", pid in "\\PC{0,8}") {
            let _ = parse_notify_socket(&s);
            let _ = watchdog_period(Some(&s), Some(&pid), 1);
        }
    }
}
