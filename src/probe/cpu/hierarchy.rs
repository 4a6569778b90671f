//! Where the cpu controller lives under the configured cgroup root
//! (`paths.cgroup`): the unified v2 hierarchy, or v1 with `cpu` and `cpuacct`
//! combined (`cpu,cpuacct`) or mounted separately, as on hybrid hosts whose
//! `unified/` mount carries no cpu controller. Emits no metrics.

use super::stat::CgroupVersion;
use std::path::{Path, PathBuf};

/// The directories one scan reads, all under the configured root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy with the cpu controller: `cpu.stat`, `cpu.max`, `cpu.pressure`.
    V2 { root: PathBuf },
    /// v1: `cpu.stat` and the CFS quota in `cpu`, `cpuacct.usage` in `cpuacct`
    /// (the same directory when the controllers are co-mounted).
    V1 {
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
    },
}

impl Layout {
    pub fn version(&self) -> CgroupVersion {
        match self {
            Layout::V2 { .. } => CgroupVersion::V2,
            Layout::V1 { .. } => CgroupVersion::V1,
        }
    }

    /// The hierarchy that is walked to find container cgroups.
    pub fn walk_root(&self) -> &Path {
        match self {
            Layout::V2 { root } => root,
            Layout::V1 { cpu, .. } => cpu,
        }
    }
}

/// v1 mount names of the cpu controller, most common first. systemd hosts mount
/// `cpu,cpuacct` and symlink `cpu` and `cpuacct` to it.
const V1_CPU: &[&str] = &["cpu,cpuacct", "cpuacct,cpu", "cpu"];
const V1_CPUACCT: &[&str] = &["cpu,cpuacct", "cpuacct,cpu", "cpuacct"];

fn has_cpu_controller(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_ascii_whitespace().any(|w| w == "cpu"))
}

/// No cpu controller where the agent was told to look.
#[derive(Debug, thiserror::Error)]
#[error("no cpu controller under {}: neither cgroup.controllers listing \"cpu\" (v2) nor a v1 cpu hierarchy (cpu,cpuacct or cpu); set paths.cgroup to the host's cgroup mount", root.display())]
pub struct NoCpuController {
    pub root: PathBuf,
}

/// Finds the cpu controller under `root`, or says where it looked.
pub fn detect(root: &Path) -> Result<Layout, NoCpuController> {
    if has_cpu_controller(root) {
        return Ok(Layout::V2 {
            root: root.to_owned(),
        });
    }
    let find = |names: &[&str], marker: &str| {
        names
            .iter()
            .map(|n| root.join(n))
            .find(|d| d.join(marker).is_file())
    };
    if let Some(cpu) = find(V1_CPU, "cpu.cfs_quota_us") {
        return Ok(Layout::V1 {
            cpuacct: find(V1_CPUACCT, "cpuacct.usage"),
            cpu,
        });
    }
    // A hybrid host whose cpu controller was given to the unified hierarchy.
    let unified = root.join("unified");
    if has_cpu_controller(&unified) {
        return Ok(Layout::V2 { root: unified });
    }
    Err(NoCpuController {
        root: root.to_owned(),
    })
}

/// How cgroups are mounted at `root`, for `nodevitals_node_info`: `v2`
/// (unified), `hybrid` (v1 controllers plus a unified mount) or `v1`.
pub fn mount_kind(root: &Path) -> &'static str {
    if root.join("cgroup.controllers").exists() {
        "v2"
    } else if root.join("unified").join("cgroup.controllers").exists() {
        "hybrid"
    } else {
        "v1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn unified_with_cpu_controller() {
        let d = tempfile::tempdir().unwrap();
        touch(
            d.path(),
            "cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        assert_eq!(
            detect(d.path()).unwrap(),
            Layout::V2 {
                root: d.path().to_owned()
            }
        );
    }

    #[test]
    fn hybrid_with_separate_cpu_and_cpuacct() {
        // The layout of this project's CI machines: separate v1 mounts plus an
        // unified mount without the cpu controller.
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "cpu/cpu.cfs_quota_us", "-1\n");
        touch(d.path(), "cpuacct/cpuacct.usage", "0\n");
        touch(d.path(), "unified/cgroup.controllers", "");
        let l = detect(d.path()).unwrap();
        assert_eq!(
            l,
            Layout::V1 {
                cpu: d.path().join("cpu"),
                cpuacct: Some(d.path().join("cpuacct"))
            }
        );
        assert_eq!(l.version(), CgroupVersion::V1);
    }

    #[test]
    fn combined_v1_mount() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        touch(d.path(), "cpu,cpuacct/cpuacct.usage", "0\n");
        let both = d.path().join("cpu,cpuacct");
        assert_eq!(
            detect(d.path()).unwrap(),
            Layout::V1 {
                cpu: both.clone(),
                cpuacct: Some(both)
            }
        );
    }

    #[test]
    fn cpu_controller_on_the_unified_mount_of_a_hybrid_host() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "unified/cgroup.controllers", "cpu memory\n");
        assert_eq!(
            detect(d.path()).unwrap().walk_root(),
            d.path().join("unified")
        );
    }

    #[test]
    fn nothing_found_names_the_root() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "cgroup.controllers", "memory pids\n");
        let e = detect(d.path()).unwrap_err().to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
    }
}
