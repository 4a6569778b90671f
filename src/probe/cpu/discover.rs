//! Finding container cgroups: a walk of the cpu hierarchy that stops at every
//! directory whose name is a container id. Recognised leaves, under any parent
//! (so kubepods QoS tiers, `system.slice`, `/docker` and custom
//! `--cgroup-parent`s all work):
//! - `<64 hex>`: cgroupfs driver (kubelet, dockerd, containerd, CRI-O);
//! - `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//!   `libpod-<id>.scope`: systemd driver. `crio-conmon-<id>.scope` is CRI-O's
//!   monitor process, not the container, and is skipped.
//!
//! The walk opens each directory relative to its parent's descriptor and reads
//! it with `getdents64` into buffers it keeps between scans, and it hands every
//! container to its caller together with the parent's descriptor, so the
//! container's files are opened with one `openat` each and no path walk from
//! the root. Emits no metrics.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Directories deeper than this are not walked: the deepest real layout
/// (systemd driver, kubepods.slice/qos.slice/pod.slice/container.scope) is 4.
const MAX_DEPTH: usize = 8;

/// `getdents64` buffer per depth: a pod directory of containers fits in one call.
const DENTS_BUF: usize = 8 * 1024;

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

/// A container cgroup met by the walk, valid for the duration of the visit.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The directory that contains the container's cgroup directory.
    pub parent: BorrowedFd<'a>,
    /// The container's directory name in `parent`.
    pub leaf: &'a str,
    pub id: &'a str,
    /// Path relative to the hierarchy root, e.g. `kubepods/burstable/pod<uid>/<id>`.
    pub rel: &'a str,
}

/// Walks hierarchies; keeps its directory buffers from one scan to the next.
#[derive(Default)]
pub struct Walker {
    bufs: Vec<Vec<MaybeUninit<u8>>>,
    rel: String,
}

impl Walker {
    /// Calls `visit` for every container cgroup below `root`. Directories that
    /// vanish or cannot be read mid-walk are skipped: containers come and go.
    /// A missing or unreadable `root` finds nothing.
    pub fn walk(&mut self, root: &Path, mut visit: impl FnMut(Found<'_>)) {
        let Ok(dir) = open_dir(rustix::fs::CWD, root) else {
            return;
        };
        self.rel.clear();
        self.walk_dir(&dir, 0, &mut visit);
    }

    fn walk_dir<F: FnMut(Found<'_>)>(&mut self, dir: &OwnedFd, depth: usize, visit: &mut F) {
        if self.bufs.len() <= depth {
            self.bufs.resize_with(depth + 1, Vec::new);
        }
        let mut buf = std::mem::take(&mut self.bufs[depth]);
        buf.resize(DENTS_BUF, MaybeUninit::uninit());
        let mut entries = RawDir::new(dir, &mut buf);
        // An error (the directory was removed mid-walk) ends this directory.
        while let Some(Ok(entry)) = entries.next() {
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." || !is_dir(dir, name, entry.file_type()) {
                continue;
            }
            let rel_len = self.rel.len();
            if rel_len > 0 {
                self.rel.push('/');
            }
            self.rel.push_str(name);
            if let Some(id) = container_id(name) {
                visit(Found {
                    parent: dir.as_fd(),
                    leaf: name,
                    id,
                    rel: &self.rel,
                });
            } else if depth + 1 < MAX_DEPTH {
                if let Ok(child) = open_dir(dir, name) {
                    self.walk_dir(&child, depth + 1, visit);
                }
            }
            self.rel.truncate(rel_len);
        }
        self.bufs[depth] = buf;
    }
}

/// cgroupfs and tmpfs report the type in the directory entry, so this costs
/// no `stat(2)`; other filesystems may not.
fn is_dir(parent: &OwnedFd, name: &str, file_type: FileType) -> bool {
    match file_type {
        FileType::Unknown => rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
        t => t == FileType::Directory,
    }
}

/// Opens a directory for reading its entries, relative to `at`.
pub fn open_dir<P: rustix::path::Arg>(at: impl AsFd, path: P) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
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
        let mut found = Vec::new();
        Walker::default().walk(d.path(), |f| {
            assert_eq!(f.id, ID);
            assert_eq!(f.rel.rsplit('/').next(), Some(f.leaf));
            found.push(f.rel.to_owned());
        });
        found.sort();
        assert_eq!(found, vec![paths[0].clone(), paths[1].clone()]);
    }

    #[test]
    fn walk_reads_directories_larger_than_its_buffer_again_and_again() {
        let d = tempfile::tempdir().unwrap();
        // 300 entries of about 90 bytes: several getdents64 calls per walk.
        for i in 0..300 {
            std::fs::create_dir_all(d.path().join(format!("pod/docker-{i:064x}.scope"))).unwrap();
        }
        let mut walker = Walker::default();
        for _ in 0..2 {
            let mut ids = std::collections::HashSet::new();
            walker.walk(d.path(), |f| assert!(ids.insert(f.id.to_owned())));
            assert_eq!(ids.len(), 300);
        }
    }

    #[test]
    fn missing_root_finds_nothing() {
        Walker::default().walk(std::path::Path::new("/nonexistent/nv"), |f| {
            panic!("found {f:?} under a missing root")
        });
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
