//! Finding the runtime's process under `paths.proc` and reading its uptime and
//! the node's. A daemon is found by its pidfile first (checked against the
//! expected executable, since a stale pidfile may name a reused PID), else by
//! the exact executable name: never a prefix match, never `containerd-shim*`,
//! never a process running inside a container. Parsers are pure. Metrics: none.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum ProcError {
    #[error("no process named \"{name}\" under {proc} (pidfile {pidfile})")]
    NotFound {
        name: String,
        proc: PathBuf,
        pidfile: String,
    },
    #[error("{count} processes named \"{name}\" outside containers ({pids:?}); refusing to guess")]
    Ambiguous {
        name: String,
        count: usize,
        pids: Vec<i32>,
    },
    #[error("refusing to touch \"{name}\": shims and container processes are never restarted")]
    Forbidden { name: String },
}

/// A process of interest, with its start time to detect PID reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    pub pid: i32,
    /// Clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

/// The fields of `/proc/<pid>/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub ppid: i32,
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, starttime field 22.
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Parses `/proc/uptime` ("12345.67 8910.11").
pub(crate) fn parse_uptime(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// Parses a pidfile: one positive decimal PID, surrounding whitespace allowed.
pub(crate) fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse().ok().filter(|p| *p > 0)
}

/// Names of processes that host containers; a process below one of them is a
/// container's, whatever its own name.
fn is_container_host(name: &str) -> bool {
    name.starts_with("containerd-shim") || name == "conmon" || name == "crun" || name == "runc"
}

/// The view of one procfs root.
#[derive(Debug, Clone)]
pub(crate) struct Procfs {
    root: PathBuf,
    ticks_per_second: u64,
}

impl Procfs {
    pub(crate) fn new(root: &Path) -> Self {
        // SAFETY: sysconf has no memory-safety preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            root: root.to_owned(),
            ticks_per_second: u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100),
        }
    }

    pub(crate) fn node_uptime(&self) -> Option<Duration> {
        parse_uptime(&std::fs::read_to_string(self.root.join("uptime")).ok()?)
    }

    pub(crate) fn stat(&self, pid: i32) -> Option<Stat> {
        parse_stat(&std::fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?)
    }

    /// How long `p` has been running; `None` if it is gone or was replaced.
    pub(crate) fn uptime_of(&self, p: Process) -> Option<Duration> {
        let stat = self.stat(p.pid)?;
        if stat.start_ticks != p.start_ticks {
            return None;
        }
        let started =
            Duration::from_secs_f64(stat.start_ticks as f64 / self.ticks_per_second as f64);
        Some(self.node_uptime()?.saturating_sub(started))
    }

    /// Whether `p` still runs (same PID, same start time, not a zombie).
    pub(crate) fn alive(&self, p: Process) -> bool {
        let Ok(text) = std::fs::read_to_string(self.root.join(p.pid.to_string()).join("stat"))
        else {
            return false;
        };
        let zombie = text
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
        !zombie && parse_stat(&text).is_some_and(|s| s.start_ticks == p.start_ticks)
    }

    /// `/proc/PID/cgroup`, at most 64 KiB.
    pub(crate) fn cgroup_of(&self, pid: i32) -> Option<String> {
        use std::io::Read;
        let mut out = String::new();
        std::fs::File::open(self.root.join(pid.to_string()).join("cgroup"))
            .ok()?
            .take(64 << 10)
            .read_to_string(&mut out)
            .ok()?;
        Some(out)
    }

    /// The state letter of `pid` (`R`, `S`, `D`, `T`, `t`, ...).
    pub(crate) fn state(&self, pid: i32) -> Option<char> {
        let text = std::fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?;
        super::diagnosis::parse_state(&text)
    }

    /// The NUL-separated command line of `pid`, at most 64 KiB.
    pub(crate) fn cmdline(&self, pid: i32) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        std::fs::File::open(self.root.join(pid.to_string()).join("cmdline"))
            .ok()?
            .take(64 << 10)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }

    /// The executable name: the basename of `exe`, else of argv[0].
    pub(crate) fn exe_name(&self, pid: i32) -> Option<String> {
        let dir = self.root.join(pid.to_string());
        if let Ok(target) = std::fs::read_link(dir.join("exe")) {
            let name = target.file_name()?.to_string_lossy().into_owned();
            return Some(name.trim_end_matches(" (deleted)").to_owned());
        }
        let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
        let argv0 = cmdline.split(|b| *b == 0).next()?;
        let argv0 = String::from_utf8_lossy(argv0);
        Some(argv0.rsplit('/').next()?.to_owned()).filter(|n| !n.is_empty())
    }

    /// Whether an ancestor of `pid` hosts containers (a shim, conmon, runc).
    fn in_container(&self, pid: i32) -> bool {
        let mut current = pid;
        for _ in 0..64 {
            let Some(stat) = self.stat(current) else {
                return false;
            };
            if stat.ppid <= 1 {
                return false;
            }
            if self
                .exe_name(stat.ppid)
                .is_some_and(|n| is_container_host(&n))
            {
                return true;
            }
            current = stat.ppid;
        }
        false
    }

    fn process(&self, pid: i32) -> Option<Process> {
        Some(Process {
            pid,
            start_ticks: self.stat(pid)?.start_ticks,
        })
    }

    /// Finds the daemon: the pidfile's PID if it runs `name`, else the one
    /// process outside containers whose executable is exactly `name`.
    pub(crate) fn find(&self, pidfile: Option<&Path>, name: &str) -> Result<Process, ProcError> {
        if is_container_host(name) {
            return Err(ProcError::Forbidden { name: name.into() });
        }
        if let Some(pid) = pidfile
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| parse_pid(&t))
        {
            if self.exe_name(pid).as_deref() == Some(name) && !self.in_container(pid) {
                if let Some(p) = self.process(pid) {
                    return Ok(p);
                }
            } else {
                tracing::debug!(
                    pid,
                    name,
                    "pidfile names another process; searching by name"
                );
            }
        }
        let pids: Vec<i32> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| self.exe_name(*pid).as_deref() == Some(name))
            .filter(|pid| !self.in_container(*pid))
            .collect();
        match pids.as_slice() {
            [pid] => self
                .process(*pid)
                .ok_or_else(|| self.not_found(pidfile, name)),
            [] => Err(self.not_found(pidfile, name)),
            _ => Err(ProcError::Ambiguous {
                name: name.into(),
                count: pids.len(),
                pids,
            }),
        }
    }

    fn not_found(&self, pidfile: Option<&Path>, name: &str) -> ProcError {
        ProcError::NotFound {
            name: name.into(),
            proc: self.root.clone(),
            pidfile: pidfile.map_or("none".into(), |p| p.display().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STAT: &str = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 12 0 98765 123456789 2000 18446744073709551615";

    #[test]
    fn stat_fields_after_a_tricky_comm() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                ppid: 1,
                start_ticks: 98765
            })
        );
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn uptime_and_pid_parse() {
        assert_eq!(
            parse_uptime("350.25 600.00\n"),
            Some(Duration::from_millis(350_250))
        );
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("-1 2"), None);
        assert_eq!(parse_uptime("abc"), None);
        assert_eq!(parse_pid(" 1234\n"), Some(1234));
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("-5"), None);
        assert_eq!(parse_pid("12ab"), None);
    }

    #[test]
    fn shim_names_are_forbidden_targets() {
        let p = Procfs::new(Path::new("/proc"));
        for name in ["containerd-shim", "containerd-shim-runc-v2", "conmon"] {
            assert!(matches!(
                p.find(None, name),
                Err(ProcError::Forbidden { .. })
            ));
        }
    }

    /// Against the real /proc: this test process is found by its exact name and
    /// not by a prefix of it.
    #[test]
    fn finds_exactly_by_name_and_validates_pidfiles() {
        let p = Procfs::new(Path::new("/proc"));
        let me = std::process::id() as i32;
        let name = p.exe_name(me).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("x.pid");
        std::fs::write(&pidfile, format!("{me}\n")).unwrap();
        let found = p.find(Some(&pidfile), &name).unwrap();
        assert_eq!(found.pid, me);
        assert!(p.alive(found));
        assert!(p.uptime_of(found).is_some());
        let prefix = &name[..name.len() - 1];
        assert!(p.find(Some(&pidfile), prefix).is_err(), "prefix matched");
        // A stale pidfile naming PID 1 (another executable) is not trusted.
        std::fs::write(&pidfile, "1\n").unwrap();
        assert_eq!(p.find(Some(&pidfile), &name).map(|f| f.pid), Ok(me));
        let replaced = Process {
            pid: me,
            start_ticks: found.start_ticks + 1,
        };
        assert!(!p.alive(replaced));
        assert!(p.uptime_of(replaced).is_none());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse_stat(&s);
            let _ = parse_uptime(&s);
            let _ = parse_pid(&s);
        }
    }
}
