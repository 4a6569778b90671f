//! A real `dockerd` on a private socket under a temp dir
//! (`--iptables=false --bridge=none --storage-driver=vfs`), with its own data
//! root, exec root, pidfile and cgroup parent, so tests can run in parallel.
//! Dropping it removes containers, stops dockerd, its containerd and shims by
//! PID, unmounts what it mounted and removes its cgroups.
//!
//! [`Dockerd::start_supervised`] runs it under a supervisor thread that starts
//! it again with the same arguments whenever it exits, standing in for
//! systemd's `Restart=always`.

use super::process;
use super::{require, short_tempdir, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The locally built image every test container runs (no registry is reachable).
pub const IMAGE: &str = "nodevitals-test/busybox:latest";

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub cgroup_parent: String,
    pid: Arc<AtomicI32>,
    runner: Runner,
}

enum Runner {
    Plain(Child),
    Supervised(Supervisor),
}

/// Restarts dockerd whenever it exits, until stopped.
struct Supervisor {
    stop: Arc<AtomicBool>,
    starts: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dockerd {
    /// Starts dockerd and waits until it answers `_ping`.
    pub fn start(name: &str) -> Dockerd {
        Self::launch(name, false, None)
    }

    /// Starts dockerd under a supervisor that starts it again (same arguments,
    /// pidfile and socket) whenever it exits, as systemd's `Restart=always`
    /// would; waits until it answers.
    pub fn start_supervised(name: &str) -> Dockerd {
        Self::launch(name, true, None)
    }

    /// Like [`Self::start_supervised`], with the data root on a tmpfs of
    /// `size` (mount's `size=` syntax) and `inodes` inodes, that a test can fill.
    pub fn start_supervised_on_tmpfs(name: &str, size: &str, inodes: u32) -> Dockerd {
        Self::launch(name, true, Some((size, inodes)))
    }

    fn launch(name: &str, supervised: bool, tmpfs: Option<(&str, u32)>) -> Dockerd {
        require("dockerd", "docker.io");
        require("docker", "docker.io");
        let dir = short_tempdir(name);
        let root = dir.path().to_owned();
        if let Some((size, inodes)) = tmpfs {
            let data = root.join("data");
            std::fs::create_dir_all(&data).unwrap();
            process::output(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o"])
                    .arg(format!("size={size},nr_inodes={inodes}"))
                    .arg("tmpfs")
                    .arg(&data),
            )
            .unwrap_or_else(|e| panic!("mount a tmpfs on {}: {e} (run as root)", data.display()));
        }
        let socket = root.join("docker.sock");
        let pidfile = root.join("docker.pid");
        let cgroup_parent = format!(
            "nodevitals-test-{}",
            root.file_name().unwrap().to_string_lossy()
        );
        let containerd_pidfile = root.join("exec/containerd/containerd.pid");
        let spawn = {
            let (socket, pidfile, cgroup_parent) =
                (socket.clone(), pidfile.clone(), cgroup_parent.clone());
            move || spawn_dockerd(&root, &socket, &pidfile, &cgroup_parent)
        };
        let pid = Arc::new(AtomicI32::new(0));
        let runner = if supervised {
            Runner::Supervised(Supervisor::start(
                spawn,
                containerd_pidfile,
                Arc::clone(&pid),
            ))
        } else {
            let child = spawn();
            pid.store(child.id() as i32, Ordering::SeqCst);
            Runner::Plain(child)
        };
        wait_until(Duration::from_secs(10), "dockerd to be started", || {
            pid.load(Ordering::SeqCst) != 0
        });
        let d = Dockerd {
            socket,
            pidfile,
            cgroup_parent,
            pid,
            runner,
            dir,
        };
        d.wait_answering(Duration::from_secs(60));
        d
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// How many times dockerd was started (1 + restarts by the supervisor).
    pub fn starts(&self) -> usize {
        match &self.runner {
            Runner::Plain(_) => 1,
            Runner::Supervised(s) => s.starts.load(Ordering::SeqCst),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Blocks until `docker version` succeeds or panics with dockerd's log.
    pub fn wait_answering(&self, timeout: Duration) {
        wait_until(timeout, "dockerd to answer", || {
            assert!(
                process::alive(self.pid())
                    || self.pid_from_file().is_some_and(process::alive)
                    || matches!(self.runner, Runner::Supervised(_)),
                "dockerd died:\n{}",
                self.log()
            );
            self.try_docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
        });
    }

    /// The PID in dockerd's pidfile, if it has written one.
    pub fn pid_from_file(&self) -> Option<i32> {
        process::read_pid(&self.pidfile)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the docker CLI against this daemon; Err carries stderr.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        process::output(
            Command::new("docker")
                .arg("--host")
                .arg(self.endpoint())
                .args(args)
                .env("DOCKER_CONFIG", self.dir.path().join("cli")),
        )
    }

    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {args:?} failed: {e}\ndockerd log:\n{}", self.log()))
    }

    /// Imports a `FROM scratch` image holding only busybox-static.
    pub fn build_busybox_image(&self) {
        let ctx = self.dir.path().join("image");
        std::fs::create_dir_all(&ctx).unwrap();
        let tar = super::oci_image::layer_tar(&ctx, &["sh", "sleep", "true", "cat"]);
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
        if let Runner::Supervised(s) = &self.runner {
            s.stop.store(true, Ordering::SeqCst);
        }
        if let Some(pid) = self.pid_from_file() {
            process::signal(pid, libc::SIGCONT);
        }
        process::signal(self.pid(), libc::SIGCONT);
        if process::alive(self.pid()) || self.pid_from_file().is_some_and(process::alive) {
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
        for pid in [Some(self.pid()), self.pid_from_file()]
            .into_iter()
            .flatten()
        {
            process::stop(pid, Duration::from_secs(15));
        }
        for pid in process::pids_mentioning(&root) {
            process::stop(pid, Duration::from_secs(5));
        }
        process::remove_cgroup(&self.cgroup_parent);
        process::unmount_under(Path::new(&root));
    }
}

fn spawn_dockerd(root: &Path, socket: &Path, pidfile: &Path, cgroup_parent: &str) -> Child {
    // Appended to, so the log of every start of a supervised dockerd is kept.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("dockerd.log"))
        .expect("dockerd log");
    Command::new("dockerd")
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
        .expect("start dockerd")
}

impl Supervisor {
    /// Like systemd, which starts a unit again only once every process of the
    /// old one is gone, waits for the containerd the dead dockerd managed (it
    /// dies with dockerd, slowly) before starting dockerd again: a new dockerd
    /// would otherwise adopt the dying containerd and fail to start.
    fn start(
        spawn: impl Fn() -> Child + Send + 'static,
        containerd_pidfile: PathBuf,
        pid: Arc<AtomicI32>,
    ) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, starts) = (Arc::clone(&stop), Arc::clone(&starts));
            std::thread::spawn(move || loop {
                let mut child = spawn();
                pid.store(child.id() as i32, Ordering::SeqCst);
                starts.fetch_add(1, Ordering::SeqCst);
                // Reaps the child as soon as it exits, like an init system.
                while !matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    if stop.load(Ordering::SeqCst) {
                        // Cleanup stops dockerd by PID; reap it, kill it if it lingers.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                        while matches!(child.try_wait(), Ok(None))
                            && tokio::time::Instant::now() < deadline
                        {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let containerd = process::read_pid(&containerd_pidfile);
                if let Some(old) = containerd {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    while Path::new(&format!("/proc/{old}")).exists()
                        && tokio::time::Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        };
        Supervisor {
            stop,
            starts,
            thread: Some(thread),
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.cleanup();
        match &mut self.runner {
            // Reap the first dockerd (already stopped) so it does not linger as a zombie.
            Runner::Plain(child) => {
                let _ = child.try_wait();
            }
            Runner::Supervised(s) => {
                if let Some(t) = s.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}
