//! A real `containerd` (Debian package) with a config of its own: root, state,
//! gRPC and ttrpc sockets under a temp dir, the CRI plugin enabled with an
//! empty CNI directory of its own (so `NetworkReady` is false whatever the
//! host has), stream server on loopback. It runs under a small `sh` supervisor
//! loop that records each containerd PID in a pidfile and, when asked for
//! restarts, starts containerd again after it exits (as systemd would).
//! Containers are started with `ctr run --rootfs` on a busybox-static tree (no
//! image, no registry) in a cgroup of the test's own; CRI pods (see
//! `cri_pod.rs`) run a locally built pause image, imported into the `k8s.io`
//! namespace. Dropping it stops the
//! supervisor, containerd, shims and containers by PID, unmounts what is under
//! the temp dir and removes the cgroup.

use super::process;
use super::{require, short_tempdir, wait_until};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// Holds the PID of the current containerd (rewritten on every restart).
    pub pidfile: PathBuf,
    cgroup_parent: String,
    supervisor: std::process::Child,
    /// Containers started with `run_sleeper`, deleted through containerd on drop.
    containers: std::sync::Mutex<Vec<String>>,
}

/// The sandbox (pause) image the CRI plugin is configured with, built locally.
pub const PAUSE_IMAGE: &str = "nodevitals.test/pause:1";

/// The containerd namespace the CRI plugin keeps its images and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// Restarts the supervisor loop allows, so a crash-looping containerd cannot
/// spin forever.
const MAX_SUPERVISED_RESTARTS: u32 = 5;

impl Containerd {
    /// Starts containerd (not restarted when it exits) and waits until it answers.
    pub fn start(name: &str) -> Containerd {
        Self::spawn(name, 0, true)
    }

    /// Starts containerd under a supervisor that starts it again when it exits.
    pub fn start_supervised(name: &str) -> Containerd {
        Self::spawn(name, MAX_SUPERVISED_RESTARTS, true)
    }

    /// Starts containerd with its CRI plugin disabled, as Docker's own
    /// containerd and the upstream `containerd.io` package ship it.
    pub fn start_without_cri(name: &str) -> Containerd {
        Self::spawn(name, 0, false)
    }

    fn spawn(name: &str, restarts: u32, cri: bool) -> Containerd {
        require("containerd", "containerd");
        require("ctr", "containerd");
        let dir = short_tempdir(name);
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let pidfile = root.join("containerd.pid");
        let config = root.join("config.toml");
        std::fs::create_dir_all(root.join("cni/net.d")).unwrap();
        std::fs::create_dir_all(root.join("cni/bin")).unwrap();
        std::fs::write(&config, config_toml(root, cri)).expect("write containerd config");
        let log = std::fs::File::create(root.join("containerd.log")).expect("containerd log");
        // $1 config, $2 pidfile, $3 restarts allowed.
        let script = r#"i=0
while :; do
  containerd --config "$1" & echo $! > "$2.tmp" && mv "$2.tmp" "$2"
  wait $!
  i=$((i+1)); [ "$i" -gt "$3" ] && exit 0
done"#;
        let supervisor = Command::new("sh")
            .args(["-c", script, "containerd-supervisor"])
            .arg(&config)
            .arg(&pidfile)
            .arg(restarts.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd supervisor");
        let cgroup_parent = format!(
            "nodevitals-test-{}",
            root.file_name().unwrap().to_string_lossy()
        );
        let c = Containerd {
            socket,
            pidfile,
            cgroup_parent,
            supervisor,
            containers: std::sync::Mutex::new(Vec::new()),
            dir,
        };
        c.wait_answering(Duration::from_secs(60));
        c
    }

    /// The cgroup (cgroupfs syntax, under every hierarchy's root) that holds
    /// everything this containerd's containers run in; removed on drop.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Imports [`PAUSE_IMAGE`], the sandbox image this containerd's CRI
    /// plugin is configured with (busybox-static running `sleep`), into the
    /// `k8s.io` namespace CRI uses, and waits until CRI knows it.
    pub fn import_pause_image(&self, cri: &super::cri_client::CriClient) {
        let dir = self.dir.path().join("pause-image");
        std::fs::create_dir_all(&dir).unwrap();
        let tar = super::oci_image::write_archive(&dir, PAUSE_IMAGE, &["/bin/sleep", "3600"]);
        self.ctr(&[
            "-n",
            CRI_NAMESPACE,
            "images",
            "import",
            "--snapshotter",
            "native",
            &tar.to_string_lossy(),
        ])
        .unwrap_or_else(|e| {
            panic!(
                "ctr images import failed: {e}\ncontainerd log:\n{}",
                self.log()
            )
        });
        wait_until(
            Duration::from_secs(10),
            "CRI to know the pause image",
            || {
                cri.has_image(PAUSE_IMAGE)
                    .unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", self.log()))
            },
        );
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The PID of the containerd running now, from the supervisor's pidfile.
    pub fn pid(&self) -> Option<i32> {
        process::read_pid(&self.pidfile)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Blocks until `ctr version` succeeds or panics with containerd's log.
    pub fn wait_answering(&self, timeout: Duration) {
        wait_until(timeout, "containerd to answer", || {
            assert!(
                process::alive(self.supervisor.id() as i32),
                "containerd exited and its supervisor gave up:\n{}",
                self.log()
            );
            self.ctr(&["version"]).is_ok()
        });
    }

    /// Runs `ctr` against this containerd with a deadline; Err carries stderr.
    pub fn ctr(&self, args: &[&str]) -> Result<String, String> {
        process::output(
            Command::new("timeout")
                .args(["20", "ctr", "--address"])
                .arg(&self.socket)
                .args(args),
        )
    }

    /// Starts a detached container running `sleep` from a busybox-static root
    /// filesystem, in this test's cgroup, with no network (a fresh netns).
    pub fn run_sleeper(&self, id: &str) {
        let rootfs = self.dir.path().join("rootfs");
        if !rootfs.exists() {
            super::busybox::install(&rootfs, &["sleep"]);
        }
        let cgroup = format!("/{}/{id}", self.cgroup_parent);
        let rootfs = rootfs.to_string_lossy().into_owned();
        // runc's state goes under the temp dir, not the host-wide /run/containerd/runc.
        let runc_root = self.dir.path().join("runc").to_string_lossy().into_owned();
        self.containers.lock().unwrap().push(id.to_owned());
        // --null-io: no FIFOs under the host-wide /run/containerd/fifo.
        self.ctr(&[
            "run",
            "-d",
            "--null-io",
            "--rootfs",
            "--runc-root",
            &runc_root,
            "--cgroup",
            &cgroup,
            &rootfs,
            id,
            "/bin/sleep",
            "3600",
        ])
        .unwrap_or_else(|e| panic!("ctr run failed: {e}\ncontainerd log:\n{}", self.log()));
    }

    /// The PID of task `id` and whether it is RUNNING, from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(i32, bool)> {
        let out = self.ctr(&["task", "ls"]).ok()?;
        out.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            if f.next()? != id {
                return None;
            }
            let pid = f.next()?.parse().ok()?;
            Some((pid, f.next()? == "RUNNING"))
        })
    }

    /// PIDs of the `containerd-shim*` processes serving this containerd.
    pub fn shim_pids(&self) -> Vec<i32> {
        process::pids_mentioning(&self.socket.to_string_lossy())
            .into_iter()
            .filter(|p| process::comm(*p).starts_with("containerd-shim"))
            .collect()
    }

    /// Where containerd 1.6 puts the shim socket of container `id` in the
    /// `default` namespace: `/run/containerd/s/` + sha256(address/namespace/id).
    pub fn shim_socket(&self, id: &str) -> Option<PathBuf> {
        self.namespaced_shim_socket("default", id)
    }

    /// The shim socket of `id` in `namespace` (for CRI, `k8s.io` and the
    /// sandbox id: a pod's containers share their sandbox's shim).
    pub fn namespaced_shim_socket(&self, namespace: &str, id: &str) -> Option<PathBuf> {
        let key = format!("{}/{namespace}/{id}", self.socket.display());
        let out = Command::new("sh")
            .args(["-c", "printf %s \"$1\" | sha256sum", "sha"])
            .arg(key)
            .output()
            .ok()?;
        let hex = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()?
            .to_owned();
        Some(PathBuf::from("/run/containerd/s").join(hex))
    }

    /// Deletes the test's containers through containerd, so their shims exit
    /// cleanly and remove their sockets; a shim killed instead leaves its
    /// socket behind in the host-wide `/run/containerd/s`, removed here too.
    fn delete_containers(&self) {
        if let Some(pid) = self.pid() {
            process::signal(pid, libc::SIGCONT);
        }
        let ids = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            let _ = self.ctr(&["task", "delete", "--force", &id]);
            let _ = self.ctr(&["container", "delete", &id]);
            if let Some(path) = self.shim_socket(&id) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn cleanup(&mut self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        // The supervisor first, so nothing restarts what is being stopped.
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
        self.delete_containers();
        process::remove_cgroup(&self.cgroup_parent);
        if let Some(pid) = self.pid() {
            process::stop(pid, Duration::from_secs(15));
        }
        for pid in process::pids_mentioning(&root) {
            process::stop(pid, Duration::from_secs(5));
        }
        process::remove_cgroup(&self.cgroup_parent);
        process::unmount_under(std::path::Path::new(&root));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn config_toml(root: &std::path::Path, cri: bool) -> String {
    let r = root.display();
    let cri = if cri {
        ""
    } else {
        "  \"io.containerd.grpc.v1.cri\",\n"
    };
    format!(
        r#"version = 2
root = "{r}/root"
state = "{r}/state"
# Snapshotters that need kernel features or tools this machine may lack.
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
{cri}]

[grpc]
  address = "{r}/containerd.sock"

[ttrpc]
  address = "{r}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Built and imported by the test (no registry): see `import_pause_image`.
  sandbox_image = "{PAUSE_IMAGE}"
  # Loading containerd's AppArmor profile would change the host; the test
  # containers need no confinement.
  disable_apparmor = true
  # A sandbox's oom_score_adj is -998; lowering one needs CAP_SYS_RESOURCE,
  # which the test machines (and rootless or nested setups) may not grant:
  # never below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    # Copies instead of overlay mounts: nothing to unmount but the rootfs.
    snapshotter = "native"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's state under the temp dir, not the host-wide /run/containerd/runc.
        Root = "{r}/runc-cri"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r}/cni/bin"
    conf_dir = "{r}/cni/net.d"
"#
    )
}
