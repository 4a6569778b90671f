//! A real cgroup v1 with a CFS quota, made by a test under the host's `cpu`
//! (and `cpuacct`) hierarchies with a unique name, and a bounded busy loop
//! inside it. Dropping it kills the loop by PID and removes the cgroup.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const ROOT: &str = "/sys/fs/cgroup";

pub struct QuotaCgroup {
    /// Top-level directory name, unique per test process and call.
    pub parent: String,
    /// A 64-hex leaf, named like a container so the agent tracks it.
    pub id: String,
    /// The leaf in every hierarchy it was made in (cpu first).
    dirs: Vec<PathBuf>,
    busy: Option<Child>,
}

/// The v1 `cpu` and `cpuacct` hierarchy roots (one directory when co-mounted).
fn hierarchies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (name, marker) in [("cpu", "cpu.cfs_quota_us"), ("cpuacct", "cpuacct.usage")] {
        let dir = Path::new(ROOT).join(name);
        assert!(
            dir.join(marker).is_file(),
            "{} has no {marker}: this test needs cgroup v1 with the {name} controller mounted at {}",
            dir.display(),
            dir.display()
        );
        let real = dir.canonicalize().expect("canonicalize hierarchy");
        if !out.contains(&real) {
            out.push(real);
        }
    }
    out
}

impl QuotaCgroup {
    /// Creates `<parent>/<id>` with `quota_us` of CPU per `period_us`.
    pub fn create(tag: &str, quota_us: u64, period_us: u64) -> QuotaCgroup {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let parent = format!("nv-cputest-{pid}-{seq}-{tag}");
        let id = format!("{:0>64}", format!("{pid:x}{seq:04x}"));
        let mut cg = QuotaCgroup {
            parent,
            id,
            dirs: Vec::new(),
            busy: None,
        };
        for h in hierarchies() {
            let dir = h.join(&cg.parent).join(&cg.id);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e} (run as root)", dir.display()));
            cg.dirs.push(dir);
        }
        cg.write("cpu.cfs_period_us", &period_us.to_string());
        cg.write("cpu.cfs_quota_us", &quota_us.to_string());
        cg
    }

    fn write(&self, file: &str, value: &str) {
        let p = self.dirs[0].join(file);
        std::fs::write(&p, value).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    pub fn read(&self, file: &str) -> String {
        let dir = self
            .dirs
            .iter()
            .find(|d| d.join(file).exists())
            .unwrap_or_else(|| panic!("no {file} in {:?}", self.dirs));
        std::fs::read_to_string(dir.join(file)).expect("read cgroup file")
    }

    /// A `cpu.stat` field as the kernel reports it now.
    pub fn stat(&self, field: &str) -> u64 {
        self.read("cpu.stat")
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {field} in cpu.stat"))
    }

    /// Starts `while :; do :; done` inside the cgroup, bounded by `timeout 120`.
    /// The child joins the cgroup before exec, so nothing it forks escapes.
    pub fn start_busy_loop(&mut self) {
        let procs: Vec<std::fs::File> = self
            .dirs
            .iter()
            .map(|d| {
                OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .expect("open cgroup.procs")
            })
            .collect();
        let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new("timeout");
        cmd.args(["120", "sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (write, prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                for &fd in &fds {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        self.busy = Some(
            cmd.spawn()
                .expect("start the busy loop (coreutils timeout, sh)"),
        );
        drop(procs);
    }

    /// Kills the busy loop and everything in the cgroup, by PID.
    pub fn stop_busy_loop(&mut self) {
        if let Some(mut child) = self.busy.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for d in &self.dirs {
            super::process::kill_procs_in(d);
        }
        super::wait_until(
            std::time::Duration::from_secs(10),
            "the cgroup to empty",
            || {
                self.dirs.iter().all(|d| {
                    std::fs::read_to_string(d.join("cgroup.procs"))
                        .map_or(true, |p| p.trim().is_empty())
                })
            },
        );
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        if let Some(mut child) = self.busy.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        super::process::remove_cgroup(&self.parent);
    }
}
