//! busybox-static as the only binary of test containers and images: no image
//! registry is reachable, so every root filesystem is this one file and the
//! applet links a test needs.

use std::path::{Path, PathBuf};

pub fn busybox_path() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is not installed: run scripts/test.sh")
}

/// Makes `root/bin/busybox` and a link to it for each applet.
pub fn install(root: &Path, applets: &[&str]) {
    super::require("busybox", "busybox-static");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox_path(), bin.join("busybox")).expect("copy busybox");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
}
