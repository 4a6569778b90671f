//! Reads one container's CPU files as the walk meets it, each with one
//! `openat` relative to the container's parent directory and one `read`:
//! `cpu.stat` and `cpu.pressure` (v2) or `cpu.stat` and `cpuacct.usage` (v1)
//! every scan, the limit when [`LimitCache`] says it is due. One reused buffer
//! and name serve every read, so a scan allocates little beyond what it
//! returns. Emits no metrics: problems are collected as [`CpuError`]s.

use super::discover::{open_dir, Found};
use super::hierarchy::Layout;
use super::limit::{parse_cfs_period, parse_cfs_quota, parse_cpu_max, Limit};
use super::limit_cache::{Cached, LimitCache};
use super::pressure::{parse_pressure, Pressure};
use super::scan::{Reading, Scan};
use super::stat::{parse_cpu_stat, parse_cpuacct_usage, CgroupVersion};
use super::{CpuError, ParseError};
use crate::vocabulary::CgroupFile;
use rustix::fs::{Mode, OFlags};
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How reading one file went.
enum Got<T> {
    Value(T),
    /// The file does not exist (the container is gone, or the kernel lacks it).
    Absent,
    /// Unreadable or unparsable; the error was recorded.
    Failed,
}

impl<T> Got<T> {
    fn ok(self) -> Option<T> {
        match self {
            Got::Value(v) => Some(v),
            Got::Absent | Got::Failed => None,
        }
    }

    fn and_then<U>(self, f: impl FnOnce(T) -> Got<U>) -> Got<U> {
        match self {
            Got::Value(v) => f(v),
            Got::Absent => Got::Absent,
            Got::Failed => Got::Failed,
        }
    }
}

/// Which root a file's path starts from, for error messages.
#[derive(Clone, Copy)]
enum Root {
    Walked,
    Cpuacct,
    Proc,
}

/// Where a file is: `sub/<file>` relative to `dir`; `root` and `rel` name it
/// in errors.
#[derive(Clone, Copy)]
struct Place<'a> {
    dir: BorrowedFd<'a>,
    sub: &'a Path,
    root: Root,
    rel: &'a str,
}

/// Reads containers' files as the walk meets them. One reused buffer and name
/// serve every read, so a scan allocates little beyond what it returns.
pub(super) struct Reader {
    version: CgroupVersion,
    /// v1 with `cpu` and `cpuacct` co-mounted: `cpuacct.usage` is next to `cpu.stat`.
    usage_in_cpu_dir: bool,
    walk_root: PathBuf,
    /// v1 with `cpuacct` mounted on its own: its root, and that root opened for
    /// the duration of a scan.
    cpuacct_root: Option<PathBuf>,
    cpuacct_dir: Option<OwnedFd>,
    /// `<proc>/pressure`, the directory of the node's `cpu` pressure file.
    proc_pressure: PathBuf,
    buf: Vec<u8>,
    name: OsString,
    limits: LimitCache,
    containers: Vec<Reading>,
    /// How many containers the last scan found.
    found_last: usize,
    errors: Vec<CpuError>,
}

impl Reader {
    pub(super) fn new(layout: &Layout, proc_root: &Path) -> Reader {
        let (usage_in_cpu_dir, cpuacct_root) = match layout {
            Layout::V1 {
                cpu,
                cpuacct: Some(cpuacct),
            } => (cpu == cpuacct, (cpu != cpuacct).then(|| cpuacct.clone())),
            _ => (false, None),
        };
        Reader {
            version: layout.version(),
            usage_in_cpu_dir,
            walk_root: layout.walk_root().to_owned(),
            cpuacct_root,
            cpuacct_dir: None,
            proc_pressure: proc_root.join("pressure"),
            buf: Vec::with_capacity(4096),
            name: OsString::new(),
            limits: LimitCache::default(),
            containers: Vec::new(),
            found_last: 0,
            errors: Vec::new(),
        }
    }

    pub(super) fn begin_scan(&mut self) {
        // This scan likely finds as many as the last: no regrowing on the way,
        // and nothing held between scans.
        self.containers = Vec::with_capacity(self.found_last);
        self.cpuacct_dir = None;
        if let Some(root) = &self.cpuacct_root {
            match open_dir(rustix::fs::CWD, root) {
                Ok(dir) => self.cpuacct_dir = Some(dir),
                Err(e) if gone(&e) => {}
                // Unopenable, not merely gone: every container's usage is
                // missing, so say why, once per scan.
                Err(source) => self.errors.push(CpuError::Read {
                    path: root.clone(),
                    file: CgroupFile::CpuacctUsage,
                    source,
                }),
            }
        }
        self.limits.begin_scan();
    }

    /// Ends a scan with the node's pressure; hands over what it read.
    pub(super) fn end_scan(&mut self) -> Scan {
        self.limits.end_scan();
        self.cpuacct_dir = None;
        let node_pressure = self.read_node_pressure();
        self.found_last = self.containers.len();
        Scan {
            containers: std::mem::take(&mut self.containers),
            node_pressure,
            errors: std::mem::take(&mut self.errors),
        }
    }

    /// Reads one container; skips it when its cgroup vanished mid-scan.
    pub(super) fn read_container(&mut self, found: Found<'_>) {
        let version = self.version;
        let at = Place {
            dir: found.parent,
            sub: Path::new(found.leaf),
            root: Root::Walked,
            rel: found.rel,
        };
        let stat = match self.read(at, CgroupFile::CpuStat, |t| parse_cpu_stat(t, version)) {
            Got::Absent => return,
            got => got.ok(),
        };
        let (usage_ns, pressure) = match version {
            CgroupVersion::V2 => (
                stat.and_then(|s| s.usage_ns),
                self.read(at, CgroupFile::CpuPressure, parse_pressure).ok(),
            ),
            CgroupVersion::V1 => (self.read_cpuacct_usage(at), None),
        };
        let limit = match self.limits.lookup(found.rel) {
            Cached::Fresh(limit) => limit,
            Cached::Due(previous) => match self.read_limit(at, previous) {
                Got::Value(limit) => {
                    self.limits.store(found.rel, Some(limit));
                    Some(limit)
                }
                Got::Absent => {
                    self.limits.store(found.rel, None);
                    None
                }
                Got::Failed => None,
            },
        };
        self.containers.push(Reading {
            id: found.id.to_owned(),
            rel: found.rel.to_owned(),
            throttling: stat.and_then(|s| s.throttling),
            usage_ns,
            limit,
            pressure,
        });
    }

    /// `cpuacct.usage`, from the cpu directory when the controllers are
    /// co-mounted, else from the same path in the cpuacct hierarchy.
    fn read_cpuacct_usage(&mut self, at: Place<'_>) -> Option<u64> {
        if self.usage_in_cpu_dir {
            return self
                .read(at, CgroupFile::CpuacctUsage, parse_cpuacct_usage)
                .ok();
        }
        let dir = self.cpuacct_dir.take()?;
        let usage = self
            .read(
                Place {
                    dir: dir.as_fd(),
                    sub: Path::new(at.rel),
                    root: Root::Cpuacct,
                    rel: at.rel,
                },
                CgroupFile::CpuacctUsage,
                parse_cpuacct_usage,
            )
            .ok();
        self.cpuacct_dir = Some(dir);
        usage
    }

    /// `cpu.max` (v2), or the CFS quota and period (v1); `previous` is the
    /// limit read last time.
    fn read_limit(&mut self, at: Place<'_>, previous: Option<Limit>) -> Got<Limit> {
        if self.version == CgroupVersion::V2 {
            return self.read(at, CgroupFile::CpuMax, parse_cpu_max);
        }
        self.read(at, CgroupFile::CfsQuota, parse_cfs_quota)
            .and_then(|quota_us| match previous {
                // The period is set when the container is created (the
                // kubelet's node-wide CFS period); a resize changes the quota.
                // So it is read again only along with a changed quota.
                Some(p) if p.quota_us == quota_us => Got::Value(p),
                _ => self
                    .read(at, CgroupFile::CfsPeriod, parse_cfs_period)
                    .and_then(|period_us| {
                        Got::Value(Limit {
                            quota_us,
                            period_us,
                        })
                    }),
            })
    }

    /// `/proc/pressure/cpu`; absent on kernels without PSI.
    fn read_node_pressure(&mut self) -> Option<Pressure> {
        let dir = std::mem::take(&mut self.proc_pressure);
        let pressure = self
            .read(
                Place {
                    dir: rustix::fs::CWD,
                    sub: &dir,
                    root: Root::Proc,
                    rel: "",
                },
                CgroupFile::NodePressure,
                parse_pressure,
            )
            .ok();
        self.proc_pressure = dir;
        pressure
    }

    /// Reads and parses `file` at `at`, recording what went wrong.
    fn read<T>(
        &mut self,
        at: Place<'_>,
        file: CgroupFile,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Got<T> {
        self.name.clear();
        self.name.push(at.sub);
        self.name.push("/");
        self.name.push(file.file_name());
        let opened = rustix::fs::openat(
            at.dir,
            self.name.as_os_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let len = match opened
            .map_err(std::io::Error::from)
            .and_then(|f| read_all(&f, &mut self.buf))
        {
            Ok(len) => len,
            Err(e) if gone(&e) => return Got::Absent,
            Err(source) => {
                self.errors.push(CpuError::Read {
                    path: self.path_of(at, file),
                    file,
                    source,
                });
                return Got::Failed;
            }
        };
        let parsed = std::str::from_utf8(&self.buf[..len])
            .map_err(|_| ParseError::NotUtf8)
            .and_then(parse);
        match parsed {
            Ok(v) => Got::Value(v),
            Err(source) => {
                self.errors.push(CpuError::Parse {
                    path: self.path_of(at, file),
                    file,
                    source,
                });
                Got::Failed
            }
        }
    }

    /// The full path of a file, built only for error messages.
    fn path_of(&self, at: Place<'_>, file: CgroupFile) -> PathBuf {
        let root = match at.root {
            Root::Walked => &self.walk_root,
            Root::Cpuacct => self.cpuacct_root.as_ref().unwrap_or(&self.walk_root),
            Root::Proc => return at.sub.join(file.file_name()),
        };
        root.join(at.rel).join(file.file_name())
    }
}

/// Reads a whole small file into `buf` (grown as needed) and returns its
/// length. Unlike `read_to_end` it makes no fstat/lseek calls, and a short read
/// ends it: cgroup and proc files hand out their whole content in one read, and
/// a scan opens thousands of them.
fn read_all(f: &OwnedFd, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        let n = match rustix::io::read(f, &mut buf[len..]) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        len += n;
        if len < buf.len() {
            return Ok(len);
        }
        // Full buffer: there may be more. Cap what hostile input can cost.
        if buf.len() >= MAX_FILE {
            return Err(std::io::Error::other(format!(
                "larger than {MAX_FILE} bytes"
            )));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// No file the probe reads is anywhere near this; a bigger one is not ours.
const MAX_FILE: usize = 64 * 1024;

/// Errors that mean "not there": the cgroup was removed (ENOENT, ENODEV on a
/// cgroup deleted while open) or the kernel lacks the file (EOPNOTSUPP when
/// PSI is disabled with `psi=0`).
fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EOPNOTSUPP))
}
