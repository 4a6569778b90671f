//! Finding container cgroups: a walk of the cpu hierarchy that stops at every
//! directory whose name is a container id. Recognised leaves, under any parent
//! (so kubepods QoS tiers, `system.slice`, `/docker` and custom
//! `--cgroup-parent`s all work):
//! - `<64 hex>`: cgroupfs driver (kubelet, dockerd, containerd, CRI-O);
//! - `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//!   `libpod-<id>.scope`: systemd driver. `crio-conmon-<id>.scope` is CRI-O's
//!   monitor process, not the container, and is skipped.
//!
//! Emits no metrics.

use std::path::PathBuf;

/// Directories deeper than this are not walked: the deepest real layout
/// (systemd driver, kubepods.slice/qos.slice/pod.slice/container.scope) is 4.
const MAX_DEPTH: usize = 8;

const SCOPE_PREFIXES: &[&str] = &["docker-", "cri-containerd-", "crio-", "libpod-"];

/// The container id a cgroup directory name stands for, if any.
pub fn container_id(leaf: &str) -> Option<&str> {
    let id = match leaf.strip_suffix(".scope") {
        Some(scope) => SCOPE_PREFIXES.iter().find_map(|p| scope.strip_prefix(p))?,
        None => leaf,
    };
    let is_id = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    is_id.then_some(id)
}

/// A container cgroup: its id and its path relative to the hierarchy root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub rel: String,
}

/// Walks `root` and returns every container cgroup below it. Directories that
/// vanish or cannot be read mid-walk are skipped: containers come and go.
pub fn find_containers(root: &std::path::Path) -> Vec<Found> {
    let mut out = Vec::new();
    let mut dir = root.to_owned();
    let mut rel = String::new();
    walk(&mut dir, &mut rel, 0, &mut out);
    out
}

fn walk(dir: &mut PathBuf, rel: &mut String, depth: usize, out: &mut Vec<Found>) {
    let Ok(entries) = std::fs::read_dir(&*dir) else {
        return;
    };
    for entry in entries.flatten() {
        // cgroupfs reports d_type, so this costs no stat(2).
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let rel_len = rel.len();
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
        if let Some(id) = container_id(name) {
            out.push(Found {
                id: id.to_owned(),
                rel: rel.clone(),
            });
        } else if depth + 1 < MAX_DEPTH {
            dir.push(name);
            walk(dir, rel, depth + 1, out);
            dir.pop();
        }
        rel.truncate(rel_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "3f1c2b0e9d8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";

    #[test]
    fn recognises_every_driver_naming() {
        for leaf in [
            ID.to_owned(),
            format!("docker-{ID}.scope"),
            format!("cri-containerd-{ID}.scope"),
            format!("crio-{ID}.scope"),
            format!("libpod-{ID}.scope"),
        ] {
            assert_eq!(container_id(&leaf), Some(ID), "{leaf}");
        }
    }

    #[test]
    fn rejects_non_containers() {
        for leaf in [
            format!("crio-conmon-{ID}.scope"),
            format!("docker-{ID}.mount"),
            "kubepods-burstable-pod0c6e6c9b_1f2a_4b6c_9d3e_0a1b2c3d4e5f.slice".to_owned(),
            "pod0c6e6c9b-1f2a-4b6c-9d3e-0a1b2c3d4e5f".to_owned(),
            ID.to_uppercase(),
            ID[1..].to_owned(),
            format!("{ID}0"),
            "system.slice".to_owned(),
            "docker-.scope".to_owned(),
        ] {
            assert_eq!(container_id(&leaf), None, "{leaf}");
        }
    }

    #[test]
    fn walk_stops_at_containers_and_keeps_relative_paths() {
        let d = tempfile::tempdir().unwrap();
        let paths = [
            format!("kubepods/burstable/pod1/{ID}"),
            format!("system.slice/docker-{ID}.scope"),
            format!("kubepods/burstable/pod1/{ID}/nested"),
            "kubepods/besteffort/pod2".to_owned(),
        ];
        for p in &paths {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
        }
        std::fs::write(d.path().join("kubepods/cpu.stat"), "").unwrap();
        let mut found: Vec<String> = find_containers(d.path())
            .into_iter()
            .map(|f| {
                assert_eq!(f.id, ID);
                f.rel
            })
            .collect();
        found.sort();
        assert_eq!(found, vec![paths[0].clone(), paths[1].clone()]);
    }

    #[test]
    fn missing_root_finds_nothing() {
        assert!(find_containers(std::path::Path::new("/nonexistent/nv")).is_empty());
    }

    proptest! {
        #[test]
        fn never_panics_and_ids_are_64_hex(s in "\\PC*") {
            if let Some(id) = container_id(&s) {
                prop_assert_eq!(id.len(), 64);
            }
        }
    }
}
