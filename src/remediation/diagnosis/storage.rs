//! Free space and inodes of the runtime's root directory (statvfs) and the
//! node's I/O and memory pressure (`/proc/pressure/io`, `/proc/pressure/memory`):
//! the node signals that say a restart will not help. Metrics: none here (the
//! engine sets `nodevitals_runtime_root_free_bytes`, `_free_inodes` and
//! `nodevitals_node_{io,memory}_pressure_seconds_total`).

use crate::probe::cpu::{parse_pressure, Pressure};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A root counts as full below this share of free bytes or free inodes.
pub(crate) const FULL_BELOW: f64 = 0.01;

/// What statvfs says about the runtime's root directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RootSpace {
    pub path: PathBuf,
    /// Bytes available to unprivileged users (`f_bavail`), as the runtime's
    /// own writes see them.
    pub free_bytes: u64,
    pub size_bytes: u64,
    pub free_inodes: u64,
    pub total_inodes: u64,
}

impl RootSpace {
    /// Below [`FULL_BELOW`] free bytes or inodes. A filesystem without
    /// inode accounting (total 0, e.g. btrfs) is judged on bytes only.
    pub(crate) fn full(&self) -> bool {
        let short = |free: u64, total: u64| total > 0 && (free as f64) < total as f64 * FULL_BELOW;
        short(self.free_bytes, self.size_bytes) || short(self.free_inodes, self.total_inodes)
    }
}

/// statvfs(3) of `path`; `None` if it cannot be read.
pub(crate) fn root_space(path: &Path) -> Option<RootSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `st` is plain data the call fills in; `c_path` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some(RootSpace {
        path: path.to_owned(),
        free_bytes: (st.f_bavail as u64).saturating_mul(frsize),
        size_bytes: (st.f_blocks as u64).saturating_mul(frsize),
        free_inodes: st.f_favail as u64,
        total_inodes: st.f_files as u64,
    })
}

/// The node's I/O and memory stall totals (`None` each where the kernel has
/// no PSI or the file is malformed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodePressure {
    pub io: Option<Pressure>,
    pub memory: Option<Pressure>,
}

pub(crate) fn node_pressure(proc_root: &Path) -> NodePressure {
    let read = |name: &str| {
        let text = std::fs::read_to_string(proc_root.join("pressure").join(name)).ok()?;
        parse_pressure(&text).ok()
    };
    NodePressure {
        io: read("io"),
        memory: read("memory"),
    }
}

/// The share of `seconds` in which some (and all) tasks stalled between two
/// readings: what a person reading the decision wants (the totals are metrics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct StallShare {
    pub some: f64,
    pub full: Option<f64>,
}

pub(crate) fn stall_share(before: Pressure, after: Pressure, seconds: f64) -> Option<StallShare> {
    if seconds <= 0.0 {
        return None;
    }
    let share = |b: u64, a: u64| (a.saturating_sub(b) as f64 / 1e6 / seconds).clamp(0.0, 1.0);
    Some(StallShare {
        some: share(before.some_us, after.some_us),
        full: before.full_us.zip(after.full_us).map(|(b, a)| share(b, a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(free_bytes: u64, free_inodes: u64, total_inodes: u64) -> RootSpace {
        RootSpace {
            path: "/x".into(),
            free_bytes,
            size_bytes: 1000,
            free_inodes,
            total_inodes,
        }
    }

    #[test]
    fn full_by_bytes_or_by_inodes() {
        assert!(!space(500, 500, 1000).full());
        assert!(space(9, 500, 1000).full());
        assert!(space(500, 9, 1000).full());
        assert!(!space(500, 0, 0).full(), "no inode accounting");
    }

    #[test]
    fn statvfs_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = root_space(dir.path()).unwrap();
        assert!(s.size_bytes > 0 && s.free_bytes <= s.size_bytes, "{s:?}");
        assert!(root_space(Path::new("/nonexistent/nodevitals")).is_none());
        assert!(root_space(Path::new("a\0b")).is_none());
    }

    #[test]
    fn stall_shares() {
        let p = |some_us, full_us| Pressure { some_us, full_us };
        let s = stall_share(p(0, Some(0)), p(500_000, Some(250_000)), 1.0).unwrap();
        assert_eq!((s.some, s.full), (0.5, Some(0.25)));
        assert_eq!(stall_share(p(0, None), p(1, None), 0.0), None);
        let wrapped = stall_share(p(9, None), p(1, None), 1.0).unwrap();
        assert_eq!((wrapped.some, wrapped.full), (0.0, None));
    }
}
