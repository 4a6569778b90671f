//! Looks before a restart: while a runtime fails, samples its process under
//! `paths.proc` (its state and every thread's from `task/*/stat` and
//! `schedstat`, the `wchan` of threads blocked in the kernel, the main
//! thread's kernel `stack`, whether its cgroup is frozen) and the node signals
//! a restart does not fix (free space and inodes of the runtime's root, I/O and
//! memory pressure). The pure classifier (`classify`) turns the samples into a
//! [`Class`]; the engine holds a restart back for a blocked process
//! (`unkillable`) or a full root (`disk_full`), and attaches the diagnosis to
//! the decision's log line and `/status`. `dumps` keeps the runtime's stack
//! dump after a restart. Metrics: none here (the engine sets
//! `nodevitals_remediation_hang_class`, `nodevitals_runtime_root_free_*`,
//! `nodevitals_node_{io,memory}_pressure_seconds_total`,
//! `nodevitals_remediation_dumps_kept`).

mod classify;
pub(crate) mod dumps;
mod parse;
pub(crate) mod storage;

pub(crate) use classify::Class;
pub(crate) use parse::parse_state;

use super::procfs::Process;
use classify::{Sample, Thread};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;
use storage::{NodePressure, RootSpace, StallShare};
use tokio::time::Instant;

/// Samples kept to look back `blocked_after` (one per failing round).
const MAX_SAMPLES: usize = 32;
/// Threads whose `wchan` is read per sample: enough for a summary.
const MAX_WCHAN_READS: usize = 64;
/// Frames of the main thread's kernel stack kept.
const STACK_FRAMES: usize = 8;
/// Threads read per sample; a runtime with more is judged on these.
const MAX_THREADS: usize = 4096;
const GIB: f64 = (1u64 << 30) as f64;

/// What a diagnosis found, as the log and `/status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Diagnosis {
    pub class: Class,
    pub pid: Option<i32>,
    /// The process's own state letter (`R`, `S`, `D`, `T`, `t`, ...).
    pub state: Option<char>,
    /// Threads per state letter.
    pub threads: BTreeMap<String, usize>,
    /// Where threads in `D` wait (`wchan`), with how many wait there.
    pub blocked_in: BTreeMap<String, usize>,
    /// The main thread's kernel stack, innermost first (root only).
    pub stack: Vec<String>,
    pub cgroup_frozen: bool,
    pub runtime_root: Option<RootSpace>,
    pub runtime_root_full: bool,
    /// Stall shares since the previous sample.
    pub io_pressure: Option<StallShare>,
    pub memory_pressure: Option<StallShare>,
}

impl Diagnosis {
    /// A one-line summary for the log and the Event: class, states, where
    /// threads block, then the runtime's root and the node's stall shares.
    pub(crate) fn summary(&self) -> String {
        let counts = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut s = format!("{} (threads {}", self.class.as_str(), counts(&self.threads));
        if self.cgroup_frozen {
            s.push_str("; cgroup frozen");
        }
        if !self.blocked_in.is_empty() {
            s.push_str(&format!("; blocked in {}", counts(&self.blocked_in)));
        }
        if !self.stack.is_empty() {
            s.push_str(&format!("; stack {}", self.stack.join(" < ")));
        }
        s.push(')');
        if let Some(root) = &self.runtime_root {
            s.push_str(&format!(
                "; root {} {:.1} GiB free of {:.1}, {} inodes free of {}{}",
                root.path.display(),
                root.free_bytes as f64 / GIB,
                root.size_bytes as f64 / GIB,
                root.free_inodes,
                root.total_inodes,
                if self.runtime_root_full {
                    " (full)"
                } else {
                    ""
                }
            ));
        }
        for (name, share) in [("io", &self.io_pressure), ("memory", &self.memory_pressure)] {
            if let Some(share) = share {
                s.push_str(&format!("; {name} stall {:.0}%", share.some * 100.0));
            }
        }
        s
    }
}

/// The sampler of one runtime's process, with the samples of the current
/// failing streak.
pub(crate) struct Diagnoser {
    proc_root: PathBuf,
    cgroup_root: PathBuf,
    blocked_after: Duration,
    history: VecDeque<Sample>,
    pressure: Option<(Instant, NodePressure)>,
}

impl Diagnoser {
    pub(crate) fn new(proc_root: &Path, cgroup_root: &Path, blocked_after: Duration) -> Self {
        Self {
            proc_root: proc_root.to_owned(),
            cgroup_root: cgroup_root.to_owned(),
            blocked_after,
            history: VecDeque::new(),
            pressure: None,
        }
    }

    /// Forgets the streak's samples (the runtime answered again).
    pub(crate) fn reset(&mut self) {
        self.history.clear();
    }

    /// Samples `process` (`None` = not found) and the node now;
    /// `runtime_root` is the statvfs of the runtime's root taken this round.
    pub(crate) fn diagnose(
        &mut self,
        process: Option<Process>,
        runtime_root: Option<RootSpace>,
    ) -> Diagnosis {
        let now = Instant::now();
        let dir = process.map(|p| self.proc_root.join(p.pid.to_string()));
        let sample = match &dir {
            Some(dir) => self.sample(dir, now),
            None => Sample {
                at: now,
                state: None,
                threads: Vec::new(),
                frozen: false,
            },
        };
        let history = self.history.make_contiguous();
        let class = classify::classify(&sample, history, self.blocked_after);
        let (blocked_in, stack) = match &dir {
            Some(dir) => (wchans(dir, &sample.threads), kernel_stack(dir)),
            None => (BTreeMap::new(), Vec::new()),
        };
        let (io_pressure, memory_pressure) = self.pressure_since_last(now);
        let d = Diagnosis {
            class,
            pid: process.map(|p| p.pid),
            state: sample.state,
            threads: sample.state_counts(),
            blocked_in,
            stack,
            cgroup_frozen: sample.frozen,
            runtime_root_full: runtime_root.as_ref().is_some_and(RootSpace::full),
            runtime_root,
            io_pressure,
            memory_pressure,
        };
        if self.history.len() >= MAX_SAMPLES {
            self.history.pop_front();
        }
        self.history.push_back(sample);
        d
    }

    /// The node's pressure totals now (for the metrics), and the stall shares
    /// since the previous reading.
    pub(crate) fn node_pressure(&self) -> NodePressure {
        storage::node_pressure(&self.proc_root)
    }

    fn pressure_since_last(&mut self, now: Instant) -> (Option<StallShare>, Option<StallShare>) {
        let current = self.node_pressure();
        let shares = match self.pressure {
            Some((at, before)) => {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                let share = |b: Option<_>, a: Option<_>| {
                    b.zip(a).and_then(|(b, a)| storage::stall_share(b, a, secs))
                };
                (
                    share(before.io, current.io),
                    share(before.memory, current.memory),
                )
            }
            None => (None, None),
        };
        self.pressure = Some((now, current));
        shares
    }

    fn sample(&self, dir: &Path, at: Instant) -> Sample {
        let state = read(&dir.join("stat")).and_then(|s| parse::parse_state(&s));
        // One buffer for every file; the run count is read only for threads
        // in `D`, the only ones it is compared for: half the reads per thread.
        let mut buf = String::with_capacity(512);
        let threads = std::fs::read_dir(dir.join("task"))
            .into_iter()
            .flatten()
            .flatten()
            .take(MAX_THREADS)
            .filter_map(|e| {
                let tid: i32 = e.file_name().to_str()?.parse().ok()?;
                let mut task = e.path();
                task.push("stat");
                let state = read_into(&task, &mut buf).and_then(parse::parse_state)?;
                task.set_file_name("schedstat");
                let timeslices = (state == 'D')
                    .then(|| read_into(&task, &mut buf).and_then(parse::parse_timeslices))
                    .flatten();
                Some(Thread {
                    tid,
                    state,
                    timeslices,
                })
            })
            .collect();
        Sample {
            at,
            state,
            threads,
            frozen: self.frozen(dir),
        }
    }

    /// Whether the process's v1 freezer cgroup or v2 cgroup is frozen.
    fn frozen(&self, dir: &Path) -> bool {
        let Some(text) = read(&dir.join("cgroup")) else {
            return false;
        };
        let paths = parse::parse_cgroup_paths(&text);
        let under = |hierarchy: &Path, path: &str, file: &str| {
            read(&hierarchy.join(path.trim_start_matches('/')).join(file))
        };
        let v1 = paths.freezer.as_deref().is_some_and(|p| {
            under(&self.cgroup_root.join("freezer"), p, "freezer.state")
                .is_some_and(|s| parse::freezer_frozen(&s))
        });
        // v2 is the cgroup root itself, or `unified` on a hybrid host.
        let v2 = paths.unified.as_deref().is_some_and(|p| {
            [self.cgroup_root.clone(), self.cgroup_root.join("unified")]
                .iter()
                .any(|h| under(h, p, "cgroup.events").is_some_and(|e| parse::events_frozen(&e)))
        });
        v1 || v2
    }
}

/// Where the process's threads in `D` wait, counted per kernel function.
fn wchans(dir: &Path, threads: &[Thread]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in threads
        .iter()
        .filter(|t| t.state == 'D')
        .take(MAX_WCHAN_READS)
    {
        let path = dir.join("task").join(t.tid.to_string()).join("wchan");
        if let Some(w) = read(&path).filter(|w| !w.is_empty() && w != "0") {
            *out.entry(w.chars().take(128).collect()).or_insert(0) += 1;
        }
    }
    out
}

fn kernel_stack(dir: &Path) -> Vec<String> {
    read(&dir.join("stack")).map_or_else(Vec::new, |s| parse::stack_functions(&s, STACK_FRAMES))
}

/// A small `/proc` or cgroup file (at most 64 KiB), trimmed.
fn read(path: &Path) -> Option<String> {
    let mut text = String::new();
    read_into(path, &mut text).map(str::to_owned)
}

/// Reads `path` (at most 64 KiB) into `buf`, reusing its allocation.
fn read_into<'b>(path: &Path, buf: &'b mut String) -> Option<&'b str> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(buf)
        .ok()?;
    Some(buf.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::procfs::Procfs;

    #[test]
    fn the_summary_carries_the_root_and_the_stalls() {
        let d = Diagnosis {
            class: Class::Blocked,
            pid: Some(7),
            state: Some('D'),
            threads: BTreeMap::from([("D".into(), 3), ("S".into(), 1)]),
            blocked_in: BTreeMap::from([("fuse_wait".into(), 3)]),
            stack: vec![],
            cgroup_frozen: false,
            runtime_root: Some(RootSpace {
                path: "/var/lib/docker".into(),
                free_bytes: 1 << 29,
                size_bytes: 10 << 30,
                free_inodes: 12,
                total_inodes: 1000,
            }),
            runtime_root_full: true,
            io_pressure: Some(StallShare {
                some: 0.42,
                full: None,
            }),
            memory_pressure: None,
        };
        assert_eq!(
            d.summary(),
            "blocked (threads D:3 S:1; blocked in fuse_wait:3); root /var/lib/docker 0.5 GiB free of 10.0, \
             12 inodes free of 1000 (full); io stall 42%"
        );
    }

    /// Against the real /proc: a child stopped with SIGSTOP is `stopped`, and
    /// running again once continued.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_real_stopped_process_then_continued() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let procfs = Procfs::new(Path::new("/proc"));
        let p = Process {
            pid,
            start_ticks: procfs.stat(pid).unwrap().start_ticks,
        };
        let mut d = Diagnoser::new(
            Path::new("/proc"),
            Path::new("/sys/fs/cgroup"),
            Duration::ZERO,
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stopped = d.diagnose(Some(p), None);
        while stopped.class != Class::Stopped && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            stopped = d.diagnose(Some(p), None);
        }
        assert_eq!(stopped.class, Class::Stopped, "{stopped:?}");
        assert_eq!(stopped.threads.get("T"), Some(&1), "{stopped:?}");
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let root = || storage::root_space(Path::new("/"));
        let mut running = d.diagnose(Some(p), root());
        while running.class != Class::Running && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            running = d.diagnose(Some(p), root());
        }
        assert_eq!(running.class, Class::Running, "{running:?}");
        assert!(running.runtime_root.is_some());
        assert!(
            running.summary().starts_with("running (threads "),
            "{}",
            running.summary()
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(d.diagnose(None, None).class, Class::Unknown);
    }
}
