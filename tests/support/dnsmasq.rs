//! A real dnsmasq on a loopback address and port of the test's choosing,
//! serving only local records: `--host-record` names answer, every other name
//! under `test.` is NXDOMAIN. Stopped by PID on drop.

use super::{process, short_tempdir, wait_until};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";

pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A UDP port free on `ip` right now (dnsmasq binds TCP too; a clash fails loudly).
pub fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free UDP port on {ip}: {e}"))
}

impl Dnsmasq {
    /// `records`: (name, address) pairs; names should end in `.test`.
    pub fn start(ip: &str, records: &[(&str, &str)]) -> Dnsmasq {
        let args: Vec<String> = records
            .iter()
            .map(|(name, addr)| format!("--host-record={name},{addr}"))
            .collect();
        Self::start_with(ip, &args)
    }

    /// Starts with extra record options (`--txt-record=...`, ...).
    pub fn start_with(ip: &str, records: &[String]) -> Dnsmasq {
        Self::spawn(ip, records, false)
    }

    /// Starts on 127.0.0.1 inside a new network namespace of its own (only
    /// `lo`, brought up); the namespace is `/proc/<pid>/ns/net` and goes away
    /// with the process.
    pub fn start_in_new_netns(records: &[(&str, &str)]) -> Dnsmasq {
        let args: Vec<String> = records
            .iter()
            .map(|(name, addr)| format!("--host-record={name},{addr}"))
            .collect();
        Self::spawn("127.0.0.1", &args, true)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(ip: &str, records: &[String], new_netns: bool) -> Dnsmasq {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: apt-get install dnsmasq-base (scripts/test.sh does)"
        );
        let dir = short_tempdir("dnsmasq");
        let pidfile = dir.path().join("dnsmasq.pid");
        let port = free_port(ip);
        // unshare(1) and sh exec in place: the child's PID is dnsmasq's.
        let mut cmd = if new_netns {
            let mut c = Command::new("unshare");
            c.args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
                DNSMASQ,
            ]);
            c
        } else {
            Command::new(DNSMASQ)
        };
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--bind-interfaces",
            "--local=/test/",
            "--log-facility=-",
        ])
        .arg(format!("--listen-address={ip}"))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", pidfile.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd.args(records);
        let mut child = cmd.spawn().expect("start dnsmasq");
        wait_until(
            Duration::from_secs(10),
            "dnsmasq to write its pidfile",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("dnsmasq exited with {status} (port {port} taken?)");
                }
                std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
            },
        );
        Dnsmasq {
            addr: format!("{ip}:{port}").parse().unwrap(),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        process::stop(self.child.id() as i32, Duration::from_secs(5));
        let _ = self.child.wait();
    }
}
