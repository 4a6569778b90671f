//! Hostile HTTP clients for the agent's port: idle connections that never send
//! a byte, slowloris connections that trickle a header forever, and clients
//! that pipeline requests but never read the answers. Each set keeps its
//! connection count up (reconnecting when the agent closes one) until it is
//! dropped, and is bounded in count and time. Also reads the agent's fd count
//! and RSS from /proc, and timed `/healthz` requests of a normal client.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::time::Instant;

/// What each connection of a hostile set does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    /// Connects and sends nothing.
    Idle,
    /// Sends a request line, then one header byte every `TRICKLE`.
    Slowloris,
    /// Pipelines many `GET /metrics` and never reads.
    NonReading,
}

const TRICKLE: Duration = Duration::from_millis(500);
/// Pipelined requests each non-reading connection sends (a few MB of answers).
const PIPELINED: usize = 2_000;

/// `count` connections of one behaviour, held (reopened when closed) by one
/// thread until dropped.
pub struct HostileSet {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostileSet {
    pub fn start(addr: SocketAddr, behaviour: Behaviour, count: usize) -> HostileSet {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || hold(addr, behaviour, count, &flag));
        HostileSet {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileSet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(addr: SocketAddr, behaviour: Behaviour) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
    match behaviour {
        Behaviour::Idle => {}
        Behaviour::Slowloris => s.write_all(b"GET /healthz HTTP/1.1\r\nX-a: ").ok()?,
        Behaviour::NonReading => {
            let burst = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(PIPELINED);
            // The kernel buffers take what they can; the rest is not needed.
            let _ = s.write_all(burst.as_bytes());
        }
    }
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Whether the agent closed `s` (EOF or reset); drains what it sent, except
/// for non-reading clients, which by definition read nothing.
fn closed_by_peer(s: &mut TcpStream, behaviour: Behaviour) -> bool {
    let mut buf = [0u8; 1024];
    if behaviour == Behaviour::NonReading {
        // The agent closing with requests unread resets the connection.
        return match s.peek(&mut buf[..1]) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        };
    }
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn hold(addr: SocketAddr, behaviour: Behaviour, count: usize, stop: &AtomicBool) {
    let mut conns: Vec<TcpStream> = Vec::with_capacity(count);
    // Bounded in time whatever the caller does: no test or bench runs longer.
    let give_up = Instant::now() + Duration::from_secs(30 * 60);
    let mut last_trickle = Instant::now();
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        conns.retain_mut(|s| !closed_by_peer(s, behaviour));
        // At most 200 new connections per pass: a reconnect storm is not the
        // point, holding the set is.
        for _ in 0..(count - conns.len()).min(200) {
            match open(addr, behaviour) {
                Some(s) => conns.push(s),
                None => break,
            }
        }
        if behaviour == Behaviour::Slowloris && last_trickle.elapsed() >= TRICKLE {
            last_trickle = Instant::now();
            conns.retain_mut(
                |s| !matches!(s.write(b"a"), Err(e) if e.kind() != ErrorKind::WouldBlock),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One `GET /healthz` on a new connection, as the kubelet sends it: its status
/// and how long the whole exchange took, or why it failed within `deadline`.
pub fn timed_healthz(addr: SocketAddr, deadline: Duration) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, deadline).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(deadline))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(deadline))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read after {:?}: {e}", start.elapsed()))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer after {:?}: {text:.100}", start.elapsed()))?;
    Ok((status, start.elapsed()))
}

/// The `q` quantile (0..=1) of `samples`.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}

/// Raises this process's soft fd limit to its hard limit; fails the test when
/// even that cannot hold `needed` sockets.
pub fn raise_fd_limit(needed: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(
        lim.rlim_max >= needed,
        "the hard fd limit ({}) is below the {needed} sockets this test holds: raise it (ulimit -Hn)",
        lim.rlim_max
    );
}
