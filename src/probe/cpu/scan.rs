//! One pass over the container cgroups: find them (`discover`), read their
//! CPU files into [`Reading`]s (`reader`), and read the node's
//! `/proc/pressure/cpu`. Blocking I/O, run off the async runtime. Emits no
//! metrics itself: read and parse problems come back as [`CpuError`]s for the
//! probe to count.

use super::discover::Walker;
use super::hierarchy::{detect, Layout, NoCpuController};
use super::limit::Limit;
use super::pressure::Pressure;
use super::reader::Reader;
use super::stat::Throttling;
use super::CpuError;
use std::path::Path;

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

pub struct Scanner {
    layout: Layout,
    walker: Walker,
    reader: Reader,
}

impl Scanner {
    /// Finds the cpu controller under `cgroup_root`; `proc_root` is where
    /// `pressure/cpu` is read.
    pub fn new(cgroup_root: &Path, proc_root: &Path) -> Result<Scanner, NoCpuController> {
        let layout = detect(cgroup_root)?;
        Ok(Scanner {
            reader: Reader::new(&layout, proc_root),
            layout,
            walker: Walker::default(),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn scan(&mut self) -> Scan {
        let reader = &mut self.reader;
        reader.begin_scan();
        self.walker.walk(self.layout.walk_root(), |found| {
            reader.read_container(found)
        });
        reader.end_scan()
    }
}

#[cfg(test)]
mod tests {
    use super::super::limit_cache::REFRESH_SCANS;
    use super::*;
    use crate::vocabulary::CgroupFile;
    use std::path::PathBuf;

    const ID: &str = "3f1c2b0e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";

    /// A cgroup v2 tree with one container; returns the container's directory.
    fn v2_tree(root: &Path, cpu_max: &str) -> PathBuf {
        std::fs::write(root.join("cgroup.controllers"), "cpu memory\n").unwrap();
        let dir = root.join(format!("system.slice/docker-{ID}.scope"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cpu.stat"),
            "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
        )
        .unwrap();
        std::fs::write(dir.join("cpu.max"), cpu_max).unwrap();
        dir
    }

    fn only(scan: Scan) -> (Reading, Vec<CpuError>) {
        let [reading]: [Reading; 1] = scan.containers.try_into().expect("one container");
        (reading, scan.errors)
    }

    #[test]
    fn a_changed_limit_is_seen_within_the_refresh_period() {
        let root = tempfile::tempdir().unwrap();
        let dir = v2_tree(root.path(), "50000 100000\n");
        let mut scanner = Scanner::new(root.path(), root.path()).unwrap();
        let (first, errors) = only(scanner.scan());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(first.limit.unwrap().quota_us, Some(50_000));
        assert_eq!(first.rel, format!("system.slice/docker-{ID}.scope"));
        assert_eq!(first.id, ID);
        std::fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
        let quotas: Vec<Option<u64>> = (0..REFRESH_SCANS)
            .map(|_| only(scanner.scan()).0.limit.unwrap().quota_us)
            .collect();
        assert_eq!(
            quotas.last(),
            Some(&None),
            "resized to no limit: {quotas:?}"
        );
    }

    /// A cgroup v1 tree, cpu and cpuacct co-mounted, with one container
    /// limited to `quota`/`period`; returns the container's directory.
    fn v1_tree(root: &Path, quota: &str, period: &str) -> PathBuf {
        let mount = root.join("cpu,cpuacct");
        let dir = mount.join(format!("kubepods/burstable/pod1/{ID}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(mount.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        std::fs::write(mount.join("cpuacct.usage"), "0\n").unwrap();
        for (file, text) in [
            (
                "cpu.stat",
                "nr_periods 4\nnr_throttled 1\nthrottled_time 7\n",
            ),
            ("cpuacct.usage", "1000\n"),
            ("cpu.cfs_quota_us", quota),
            ("cpu.cfs_period_us", period),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    fn limit(scanner: &mut Scanner) -> (Option<Limit>, Vec<CpuError>) {
        let (reading, errors) = only(scanner.scan());
        (reading.limit, errors)
    }

    #[test]
    fn v1_period_is_read_again_only_with_a_changed_quota() {
        let root = tempfile::tempdir().unwrap();
        let dir = v1_tree(root.path(), "50000\n", "100000\n");
        let mut scanner = Scanner::new(root.path(), root.path()).unwrap();
        let (first, errors) = limit(&mut scanner);
        assert!(errors.is_empty(), "{errors:?}");
        let first = first.unwrap();
        assert_eq!((first.quota_us, first.period_us), (Some(50_000), 100_000));
        // Same quota: the period file is not read (its garbage goes unseen).
        std::fs::write(dir.join("cpu.cfs_period_us"), "garbage\n").unwrap();
        for _ in 0..REFRESH_SCANS {
            let (l, errors) = limit(&mut scanner);
            assert_eq!(l, Some(first));
            assert!(errors.is_empty(), "{errors:?}");
        }
        // A resize: the new quota comes with its period, within one refresh.
        std::fs::write(dir.join("cpu.cfs_quota_us"), "20000\n").unwrap();
        std::fs::write(dir.join("cpu.cfs_period_us"), "50000\n").unwrap();
        let limits: Vec<Option<Limit>> =
            (0..REFRESH_SCANS).map(|_| limit(&mut scanner).0).collect();
        let resized = Limit {
            quota_us: Some(20_000),
            period_us: 50_000,
        };
        assert_eq!(limits.last(), Some(&Some(resized)), "{limits:?}");
    }

    #[test]
    fn an_unopenable_cpuacct_hierarchy_is_reported_not_silent() {
        let root = tempfile::tempdir().unwrap();
        let cpu = root.path().join("cpu");
        let dir = cpu.join(format!("docker/{ID}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        std::fs::write(
            dir.join("cpu.stat"),
            "nr_periods 1\nnr_throttled 0\nthrottled_time 0\n",
        )
        .unwrap();
        let cpuacct = root.path().join("cpuacct");
        std::fs::create_dir_all(cpuacct.join(format!("docker/{ID}"))).unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), "0\n").unwrap();
        std::fs::write(cpuacct.join(format!("docker/{ID}/cpuacct.usage")), "1000\n").unwrap();
        let mut scanner = Scanner::new(root.path(), root.path()).unwrap();
        let (reading, errors) = only(scanner.scan());
        assert_eq!(reading.usage_ns, Some(1000), "{errors:?}");
        // The cpuacct mount point turns into something that is no directory.
        std::fs::remove_dir_all(&cpuacct).unwrap();
        std::fs::write(&cpuacct, "").unwrap();
        let (reading, errors) = only(scanner.scan());
        assert_eq!(reading.usage_ns, None);
        assert!(
            reading.throttling.is_some(),
            "the cpu hierarchy is still read"
        );
        let [CpuError::Read { path, file, .. }] = &errors[..] else {
            panic!("{errors:?}")
        };
        assert_eq!((path, *file), (&cpuacct, CgroupFile::CpuacctUsage));
    }

    #[test]
    fn a_limit_that_failed_to_parse_is_read_again_next_scan() {
        let root = tempfile::tempdir().unwrap();
        let dir = v2_tree(root.path(), "fifty 100000\n");
        let mut scanner = Scanner::new(root.path(), root.path()).unwrap();
        for _ in 0..2 {
            let (reading, errors) = only(scanner.scan());
            assert_eq!(reading.limit, None, "never a made-up limit");
            assert!(reading.throttling.is_some(), "the counters still count");
            let [CpuError::Parse { path, file, .. }] = &errors[..] else {
                panic!("{errors:?}")
            };
            assert_eq!((path, *file), (&dir.join("cpu.max"), CgroupFile::CpuMax));
        }
        std::fs::write(dir.join("cpu.max"), "20000 100000\n").unwrap();
        let (reading, _) = only(scanner.scan());
        assert_eq!(reading.limit.unwrap().quota_us, Some(20_000));
    }

    #[test]
    fn a_container_removed_between_scans_is_gone_without_errors() {
        let root = tempfile::tempdir().unwrap();
        let dir = v2_tree(root.path(), "50000 100000\n");
        let mut scanner = Scanner::new(root.path(), root.path()).unwrap();
        assert_eq!(scanner.scan().containers.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        let scan = scanner.scan();
        assert!(scan.containers.is_empty());
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    }
}
