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
use std::io::Read;
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
    node_pressure: PathBuf,
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
            node_pressure: proc_root.join("pressure").join("cpu"),
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
        let node_pressure = {
            self.path.clone_from(&self.node_pressure);
            self.read_parsed(CgroupFile::NodePressure, parse_pressure)
                .ok()
        };
        Scan {
            containers,
            node_pressure,
            errors: std::mem::take(&mut self.errors),
        }
    }

    /// Reads one container; `None` when its cgroup vanished mid-scan.
    fn read_container(&mut self, found: Found) -> Option<Reading> {
        let version = self.layout.version();
        let stat = match self.read_at(CgroupFile::CpuStat, &found.rel, |t| {
            parse_cpu_stat(t, version)
        }) {
            Got::Absent => return None,
            got => got.ok(),
        };
        let (usage_ns, limit, pressure) = match version {
            CgroupVersion::V2 => (
                stat.and_then(|s| s.usage_ns),
                self.read_at(CgroupFile::CpuMax, &found.rel, parse_cpu_max)
                    .ok(),
                self.read_at(CgroupFile::CpuPressure, &found.rel, parse_pressure)
                    .ok(),
            ),
            CgroupVersion::V1 => (
                self.read_cpuacct_usage(&found.rel),
                self.read_v1_limit(&found.rel),
                None,
            ),
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

    fn read_cpuacct_usage(&mut self, rel: &str) -> Option<u64> {
        let Layout::V1 {
            cpuacct: Some(root),
            ..
        } = &self.layout
        else {
            return None;
        };
        set_path(&mut self.path, root, rel, CgroupFile::CpuacctUsage);
        self.read_parsed(CgroupFile::CpuacctUsage, parse_cpuacct_usage)
            .ok()
    }

    fn read_v1_limit(&mut self, rel: &str) -> Option<Limit> {
        let quota = self
            .read_at(CgroupFile::CfsQuota, rel, parse_cfs_quota)
            .ok()?;
        let period_us = self
            .read_at(CgroupFile::CfsPeriod, rel, parse_cfs_period)
            .ok()?;
        Some(Limit {
            quota_us: quota,
            period_us,
        })
    }

    /// Reads `file` of the container at `rel` in the walked hierarchy.
    fn read_at<T>(
        &mut self,
        file: CgroupFile,
        rel: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Got<T> {
        set_path(&mut self.path, self.layout.walk_root(), rel, file);
        self.read_parsed(file, parse)
    }

    /// Reads and parses the file at `self.path`.
    fn read_parsed<T>(
        &mut self,
        file: CgroupFile,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Got<T> {
        self.buf.clear();
        let read = std::fs::File::open(&self.path).and_then(|mut f| f.read_to_end(&mut self.buf));
        if let Err(e) = read {
            return if gone(&e) {
                Got::Absent
            } else {
                self.errors.push(CpuError::Read {
                    path: self.path.clone(),
                    file,
                    source: e,
                });
                Got::Failed
            };
        }
        let parsed = std::str::from_utf8(&self.buf)
            .map_err(|_| ParseError::NotUtf8)
            .and_then(parse);
        match parsed {
            Ok(v) => Got::Value(v),
            Err(source) => {
                self.errors.push(CpuError::Parse {
                    path: self.path.clone(),
                    file,
                    source,
                });
                Got::Failed
            }
        }
    }
}

fn set_path(path: &mut PathBuf, root: &Path, rel: &str, file: CgroupFile) {
    path.as_mut_os_string().clear();
    path.push(root);
    path.push(rel);
    path.push(file.as_str());
}

/// Errors that mean "not there": the cgroup was removed (ENOENT, ENODEV on a
/// cgroup deleted while open) or the kernel lacks the file (EOPNOTSUPP when
/// PSI is disabled with `psi=0`).
fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ENODEV | libc::EOPNOTSUPP))
}
