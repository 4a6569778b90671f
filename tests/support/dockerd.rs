//! A real `dockerd` on a private socket under a temp dir
//! (`--iptables=false --bridge=none --storage-driver=vfs`), with its own data
//! root, exec root, pidfile and cgroup parent, so tests can run in parallel.
//! Dropping it removes containers, stops dockerd, its containerd and shims by
//! PID, unmounts what it mounted and removes its cgroups.

use super::process;
use super::{require, short_tempdir, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The locally built image every test container runs (no registry is reachable).
pub const IMAGE: &str = "nodevitals-test/busybox:latest";

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub cgroup_parent: String,
    pid: i32,
    child: std::process::Child,
}

impl Dockerd {
    /// Starts dockerd and waits until it answers `_ping`.
    pub fn start(name: &str) -> Dockerd {
        require("dockerd", "docker.io");
        require("docker", "docker.io");
        let dir = short_tempdir(name);
        let root = dir.path();
        let socket = root.join("docker.sock");
        let pidfile = root.join("docker.pid");
        let cgroup_parent = format!(
            "nodevitals-test-{}",
            root.file_name().unwrap().to_string_lossy()
        );
        let log = std::fs::File::create(root.join("dockerd.log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .arg(format!("--host=unix://{}", socket.display()))
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--data-root={}", root.join("data").display()))
            .arg(format!("--exec-root={}", root.join("exec").display()))
            .arg(format!("--cgroup-parent={cgroup_parent}"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--exec-opt=native.cgroupdriver=cgroupfs",
                "--log-level=warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Dockerd {
            socket,
            pidfile,
            cgroup_parent,
            pid: child.id() as i32,
            child,
            dir,
        };
        d.wait_answering(Duration::from_secs(60));
        d
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Blocks until `docker version` succeeds or panics with dockerd's log.
    pub fn wait_answering(&self, timeout: Duration) {
        wait_until(timeout, "dockerd to answer", || {
            assert!(
                process::alive(self.pid) || self.pid_from_file().is_some_and(process::alive),
                "dockerd died:\n{}",
                self.log()
            );
            self.try_docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
        });
    }

    /// The PID in dockerd's pidfile, if it has written one.
    pub fn pid_from_file(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Adopts the PID of a dockerd restarted by someone else (a supervisor).
    pub fn set_pid(&mut self, pid: i32) {
        self.pid = pid;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the docker CLI against this daemon; Err carries stderr.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .arg("--host")
            .arg(self.endpoint())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {args:?} failed: {e}\ndockerd log:\n{}", self.log()))
    }

    /// Imports a `FROM scratch` image holding only busybox-static.
    pub fn build_busybox_image(&self) {
        require("busybox", "busybox-static");
        let ctx = self.dir.path().join("image");
        let bin = ctx.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(busybox_path(), bin.join("busybox")).expect("copy busybox");
        for applet in ["sh", "sleep", "true", "cat"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let tar = self.dir.path().join("image.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&ctx)
            .arg("-cf")
            .arg(&tar)
            .arg("bin")
            .status()
            .expect("run tar");
        assert!(status.success(), "tar failed");
        self.docker(&[
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            &tar.to_string_lossy(),
            IMAGE,
        ]);
    }

    /// Starts a detached container running `sleep` and returns its id.
    pub fn run_sleeper(&self, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "/bin/sleep", "3600"]);
        self.docker(&args)
    }

    /// Number of running containers as dockerd reports them.
    pub fn running_containers(&self) -> usize {
        self.docker(&["ps", "-q"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    }

    fn cleanup(&self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Some(pid) = self.pid_from_file() {
            process::signal(pid, libc::SIGCONT);
        }
        process::signal(self.pid, libc::SIGCONT);
        if process::alive(self.pid) || self.pid_from_file().is_some_and(process::alive) {
            if let Ok(ids) = self.try_docker(&["ps", "-aq"]) {
                let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = self.try_docker(&args);
                }
            }
        }
        // Container processes first (they outlive their shim), then the daemons.
        process::remove_cgroup(&self.cgroup_parent);
        for pid in [Some(self.pid), self.pid_from_file()].into_iter().flatten() {
            process::stop(pid, Duration::from_secs(15));
        }
        for pid in process::pids_mentioning(&root) {
            process::stop(pid, Duration::from_secs(5));
        }
        process::remove_cgroup(&self.cgroup_parent);
        process::unmount_under(Path::new(&root));
    }
}

fn busybox_path() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is not installed: run scripts/test.sh")
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.cleanup();
        // Reap the first dockerd (already stopped) so it does not linger as a zombie.
        let _ = self.child.try_wait();
    }
}
