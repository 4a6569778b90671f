//! `FROM scratch` images holding busybox-static, made without any image tool
//! or registry: the layer tar alone (for `docker import`), or an OCI image
//! layout tar (what `ctr images import` and `docker load` read) with that
//! layer, a config naming the entrypoint, a manifest and an index carrying the
//! image's name.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The applets the image links to busybox.
const APPLETS: &[&str] = &["sh", "sleep", "timeout"];

/// Writes the image `name` (`registry/repo:tag`) running `entrypoint` as an
/// OCI layout under `dir` and returns the path of its tar.
pub fn write_archive(dir: &Path, name: &str, entrypoint: &[&str]) -> PathBuf {
    let layout = dir.join("oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = blob(&blobs, &std::fs::read(layer_tar(dir, APPLETS)).unwrap());
    let config = blob(
        &blobs,
        &serde_json::to_vec(&json!({
            "architecture": oci_arch(),
            "os": "linux",
            "config": { "Entrypoint": entrypoint },
            // Uncompressed, so the layer's digest is its diff id.
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
        }))
        .unwrap(),
    );
    let manifest = blob(
        &blobs,
        &serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor("application/vnd.oci.image.config.v1+json"),
            "layers": [layer.descriptor("application/vnd.oci.image.layer.v1.tar")],
        }))
        .unwrap(),
    );
    let mut entry = manifest.descriptor("application/vnd.oci.image.manifest.v1+json");
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    // containerd names the image after the first annotation, others after the second.
    entry["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": tag,
    });
    let index = json!({ "schemaVersion": 2, "manifests": [entry] });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = dir.join("image.tar");
    tar_of(&layout, &["oci-layout", "index.json", "blobs"], &tar);
    tar
}

/// An uncompressed tar of `bin/` holding busybox and `applets`, made under
/// `dir`: the one layer of a `FROM scratch` image (what `docker import` takes).
pub fn layer_tar(dir: &Path, applets: &[&str]) -> PathBuf {
    let tree = dir.join("layer");
    super::busybox::install(&tree, applets);
    let tar = dir.join("layer.tar");
    tar_of(&tree, &["bin"], &tar);
    tar
}

/// Writes the tar `out` of `entries` of `dir`.
fn tar_of(dir: &Path, entries: &[&str], out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .args(entries)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of {} failed", dir.display());
}

/// A content-addressed blob of the layout.
struct Blob {
    digest: String,
    size: usize,
}

impl Blob {
    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.size })
    }
}

/// Stores `bytes` under `blobs/sha256/<hex>`.
fn blob(blobs: &Path, bytes: &[u8]) -> Blob {
    let tmp = blobs.join("incoming");
    std::fs::write(&tmp, bytes).unwrap();
    let out = super::process::output(Command::new("sha256sum").arg(&tmp)).expect("sha256sum");
    let hex = out.split_whitespace().next().expect("a digest").to_owned();
    std::fs::rename(&tmp, blobs.join(&hex)).unwrap();
    Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    }
}

/// The OCI name of this machine's architecture (containerd imports only the
/// images of its own platform).
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
