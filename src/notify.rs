//! The systemd notification protocol (sd_notify(3)), spoken directly: one
//! datagram per message to the unix socket named by `$NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace). The agent sends `READY=1` once every
//! probe has run once, `WATCHDOG=1` every half `$WATCHDOG_USEC` but only while
//! no probe loop is stuck (so systemd restarts a wedged agent), `STATUS=` lines
//! for `systemctl status`, and `STOPPING=1` on shutdown. Emits no metrics.
//!
//! The notifier runs on a thread of its own, not on the tokio runtime it
//! watches: whether to ping is decided from `Health` alone, so a runtime whose
//! workers are wedged cannot keep the watchdog fed, and a notifier that is
//! slow to send cannot delay a probe.

use crate::health::Health;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often readiness is checked before `READY=1` has been sent.
const READY_POLL: Duration = Duration::from_millis(200);
/// A send that cannot complete in this time is dropped (systemd not reading).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// `sun_path` holds 108 bytes, one of which is the path's NUL or the abstract
/// name's leading NUL.
const MAX_ADDR_LEN: usize = 107;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("NOTIFY_SOCKET=\"{value}\": {reason}")]
    Address { value: String, reason: &'static str },
    #[error("WATCHDOG_USEC=\"{value}\": {reason}")]
    Watchdog { value: String, reason: &'static str },
    #[error("notification socket {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
}

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifyAddr {
    Path(PathBuf),
    /// The name without the leading `@`.
    Abstract(Vec<u8>),
}

/// Parses the value of `$NOTIFY_SOCKET`: an absolute path, or `@name` for the
/// abstract namespace. Other socket families (`vsock:`) are not supported.
pub(crate) fn parse_notify_socket(value: &str) -> Result<NotifyAddr, NotifyError> {
    let bad = |reason| NotifyError::Address {
        value: value.to_owned(),
        reason,
    };
    if value.len() > MAX_ADDR_LEN + 1 {
        return Err(bad("longer than a unix socket address can be"));
    }
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err(bad("an abstract socket needs a name after '@'"));
        }
        Ok(NotifyAddr::Abstract(name.as_bytes().to_vec()))
    } else if value.starts_with('/') {
        if value.len() > MAX_ADDR_LEN || value.contains('\0') {
            return Err(bad("not a usable socket path"));
        }
        Ok(NotifyAddr::Path(value.into()))
    } else {
        Err(bad("must be an absolute path or an '@' abstract name"))
    }
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

/// An unbound datagram socket that sends to the notification address.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    shown: String,
}

impl Notifier {
    pub fn connect(addr: &NotifyAddr) -> Result<Notifier, NotifyError> {
        let shown = match addr {
            NotifyAddr::Path(p) => p.display().to_string(),
            NotifyAddr::Abstract(n) => format!("@{}", String::from_utf8_lossy(n)),
        };
        let io = |source| NotifyError::Io {
            addr: shown.clone(),
            source,
        };
        let addr = match addr {
            NotifyAddr::Path(p) => SocketAddr::from_pathname(p),
            NotifyAddr::Abstract(n) => SocketAddr::from_abstract_name(n),
        }
        .map_err(io)?;
        let socket = UnixDatagram::unbound().map_err(io)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT)).map_err(io)?;
        Ok(Notifier {
            socket,
            addr,
            shown,
        })
    }

    /// Sends one message (newline-separated `KEY=value` assignments).
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|source| NotifyError::Io {
                addr: self.shown.clone(),
                source,
            })
    }

    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            tracing::warn!(error = %e, "systemd notification not sent");
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
            let notifier = Notifier::connect(&parse_notify_socket(&value)?)?;
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
        tracing::info!(socket = %notifier.shown, watchdog_period = ?period, "notifying systemd");
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
        self.notifier.send_logged("STOPPING=1");
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
            notifier.send_logged("READY=1");
        }
        if now != last {
            match &now {
                Decision::Stuck(loops) => {
                    tracing::error!(?loops, "probe loops stuck; withholding the watchdog ping");
                    notifier
                        .send_logged(&format!("STATUS=probe loops stuck: {}", loops.join(", ")));
                }
                _ => notifier.send_logged("STATUS=probing; every probe loop is progressing"),
            }
        }
        if now == Decision::Alive && period.is_some() {
            notifier.send_logged("WATCHDOG=1");
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn socket_paths_and_abstract_names() {
        assert_eq!(
            parse_notify_socket("/run/systemd/notify").unwrap(),
            NotifyAddr::Path("/run/systemd/notify".into())
        );
        assert_eq!(
            parse_notify_socket("@/org/freedesktop/systemd1/notify/42").unwrap(),
            NotifyAddr::Abstract(b"/org/freedesktop/systemd1/notify/42".to_vec())
        );
        for bad in ["", "@", "relative/sock", "vsock:2:1234", "/a\0b"] {
            let e = parse_notify_socket(bad).unwrap_err().to_string();
            assert!(e.starts_with("NOTIFY_SOCKET="), "{bad:?}: {e}");
        }
        let long = format!("/{}", "x".repeat(MAX_ADDR_LEN));
        assert!(parse_notify_socket(&long).is_err());
        let longest = format!("@{}", "x".repeat(MAX_ADDR_LEN));
        assert!(parse_notify_socket(&longest).is_ok());
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

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(&NotifyAddr::Path(path.clone())).unwrap();
        n.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        drop(rx);
        let e = n.send("WATCHDOG=1").unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        let name = format!("nodevitals-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(&parse_notify_socket(&format!("@{name}")).unwrap()).unwrap();
        n.send("STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*", pid in "\\PC{0,8}") {
            let _ = parse_notify_socket(&s);
            let _ = watchdog_period(Some(&s), Some(&pid), 1);
        }
    }
}
