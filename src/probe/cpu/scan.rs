//! One pass over the container cgroups: find them, read their CPU files into
//! [`Reading`]s, and read the node's `/proc/pressure/cpu`. Blocking I/O, run
//! off the async runtime. One reused buffer and path serve every read, so a
//! scan allocates little beyond what it returns. Emits no metrics itself: read
//! and parse problems come back as [`CpuError`]s for the probe to count.

use super::discover::{find_containers, Found};
use super::hierarchy::{detect, Layout};
use super::limit::{parse_cfs_period, parse_cfs_quota, parse_cpu_max, Limit};
use super::pressure::{parse_pressure, Pressure};
use super::stat::{parse_cpu_stat, parse_cpuacct_usage, CgroupVersion, Throttling};
use super::{CgroupFile, CpuError, ParseError};
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What one container cgroup said in one scan. `None` fields were absent or
/// unreadable (the error, if any, is in [`Scan::errors`]), never zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub id: String,
    /// Path relative to the hierarchy root, e.g. `kubepods/burstable/pod<uid>/<id>`.
    pub rel: String,
    pub throttling: Option<Throttling>,
    pub usage_ns: Option<u64>,
    pub limit: Option<Limit>,
    pub pressure: Option<Pressure>,
}

/// The result of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub containers: Vec<Reading>,
    pub node_pressure: Option<Pressure>,
    pub errors: Vec<CpuError>,
}

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
}

pub struct Scanner {
    layout: Layout,
    /// `<proc>/pressure`, the directory of the node's `cpu` pressure file.
    proc_pressure: PathBuf,
    buf: Vec<u8>,
    path: PathBuf,
    errors: Vec<CpuError>,
}

impl Scanner {
    /// Finds the cpu controller under `cgroup_root`; `proc_root` is where
    /// `pressure/cpu` is read.
    pub fn new(cgroup_root: &Path, proc_root: &Path) -> Result<Scanner, String> {
        Ok(Scanner {
            layout: detect(cgroup_root)?,
            proc_pressure: proc_root.join("pressure"),
            buf: Vec::with_capacity(1024),
            path: PathBuf::new(),
            errors: Vec::new(),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn scan(&mut self) -> Scan {
        let found = find_containers(self.layout.walk_root());
        let mut containers = Vec::with_capacity(found.len());
        for f in found {
            if let Some(r) = self.read_container(f) {
                containers.push(r);
            }
        }
        let node_pressure = self.read_node_pressure();
        Scan {
            containers,
            node_pressure,
            errors: std::mem::take(&mut self.errors),
        }
    }

    /// `/proc/pressure/cpu`; absent on kernels without PSI.
    fn read_node_pressure(&mut self) -> Option<Pressure> {
        self.path.clone_from(&self.proc_pressure);
        let dir = match open_path(&self.path) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => return None,
            Err(source) => {
                self.errors.push(CpuError::Read {
                    path: self.path.clone(),
                    file: CgroupFile::NodePressure,
                    source,
                });
                return None;
            }
        };
        self.read_in(&dir, CgroupFile::NodePressure, parse_pressure)
            .ok()
    }

    /// Reads one container; `None` when its cgroup vanished mid-scan.
    fn read_container(&mut self, found: Found) -> Option<Reading> {
        let version = self.layout.version();
        let dir = self.open_dir(DirOf::Walked, &found.rel)?;
        let stat = match self.read_in(&dir, CgroupFile::CpuStat, |t| parse_cpu_stat(t, version)) {
            Got::Absent => return None,
            got => got.ok(),
        };
        let (usage_ns, limit, pressure) = match version {
            CgroupVersion::V2 => (
                stat.and_then(|s| s.usage_ns),
                self.read_in(&dir, CgroupFile::CpuMax, parse_cpu_max).ok(),
                self.read_in(&dir, CgroupFile::CpuPressure, parse_pressure)
                    .ok(),
            ),
            CgroupVersion::V1 => {
                let limit = self.read_v1_limit(&dir);
                (self.read_cpuacct_usage(dir, &found.rel), limit, None)
            }
        };
        Some(Reading {
            id: found.id,
            rel: found.rel,
            throttling: stat.and_then(|s| s.throttling),
            usage_ns,
            limit,
            pressure,
        })
    }

    /// `cpuacct.usage`, from the cpu directory when the controllers are
    /// co-mounted, else from the same path in the cpuacct hierarchy.
    fn read_cpuacct_usage(&mut self, cpu_dir: OwnedFd, rel: &str) -> Option<u64> {
        let Layout::V1 {
            cpu,
            cpuacct: Some(cpuacct),
        } = &self.layout
        else {
            return None;
        };
        let dir = if cpu == cpuacct {
            cpu_dir
        } else {
            drop(cpu_dir);
            self.open_dir(DirOf::Cpuacct, rel)?
        };
        self.read_in(&dir, CgroupFile::CpuacctUsage, parse_cpuacct_usage)
            .ok()
    }

    fn read_v1_limit(&mut self, dir: &OwnedFd) -> Option<Limit> {
        let quota = self
            .read_in(dir, CgroupFile::CfsQuota, parse_cfs_quota)
            .ok()?;
        let period_us = self
            .read_in(dir, CgroupFile::CfsPeriod, parse_cfs_period)
            .ok()?;
        Some(Limit {
            quota_us: quota,
            period_us,
        })
    }

    /// Opens a cgroup directory (`O_PATH`) so its files are opened relative to
    /// it: one path walk per container instead of one per file, the main cost
    /// of a scan. Sets `self.path` to it for error messages. `None` when the
    /// cgroup is gone (or unreadable, which is recorded).
    fn open_dir(&mut self, of: DirOf, rel: &str) -> Option<OwnedFd> {
        let root = match (&self.layout, of) {
            (
                Layout::V1 {
                    cpuacct: Some(c), ..
                },
                DirOf::Cpuacct,
            ) => c.as_path(),
            (layout, _) => layout.walk_root(),
        };
        self.path.as_mut_os_string().clear();
        self.path.push(root);
        self.path.push(rel);
        match open_path(&self.path) {
            Ok(fd) => Some(fd),
            Err(e) if gone(&e) => None,
            Err(source) => {
                self.errors.push(CpuError::Read {
                    path: self.path.clone(),
                    file: CgroupFile::CpuStat,
                    source,
                });
                None
            }
        }
    }

    /// Reads and parses `file` in `dir` (whose path is `self.path`).
    fn read_in<T>(
        &mut self,
        dir: &OwnedFd,
        file: CgroupFile,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Got<T> {
        let len = match open_in(dir, file.c_name()).and_then(|f| read_all(f, &mut self.buf)) {
            Ok(len) => len,
            Err(e) if gone(&e) => return Got::Absent,
            Err(source) => {
                self.errors.push(CpuError::Read {
                    path: self.path.join(file.file_name()),
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
                    path: self.path.join(file.file_name()),
                    file,
                    source,
                });
                Got::Failed
            }
        }
    }
}

/// Which hierarchy a container directory is opened in.
#[derive(Clone, Copy)]
enum DirOf {
    Walked,
    Cpuacct,
}

fn open_path(path: &Path) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(path)
        .map(OwnedFd::from)
}

/// `openat(2)` relative to an open directory.
fn open_in(dir: &OwnedFd, name: &CStr) -> std::io::Result<std::fs::File> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor for the
    // duration of the call; a non-negative result is a new descriptor we own.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Reads a whole small file into `buf` (grown as needed) and returns its
/// length. Unlike `read_to_end` it makes no fstat/lseek calls, and a short read
/// ends it: cgroup and proc files hand out their whole content in one read, and
/// a scan opens thousands of them.
fn read_all(mut f: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        let n = match f.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
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
