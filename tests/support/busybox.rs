//! busybox-static as the only binary of test containers and images: no image
//! registry is reachable, so every root filesystem is this one file and the
//! applet links a test needs.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// An uncompressed tar of `bin/` holding busybox and `applets`, made under
/// `dir`: the one layer of a `FROM scratch` image.
pub fn layer_tar(dir: &Path, applets: &[&str]) -> PathBuf {
    let tree = dir.join("layer");
    install(&tree, applets);
    let tar = dir.join("layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg("bin")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed");
    tar
}
