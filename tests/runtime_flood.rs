//! A runtime socket that floods: `/containers/json` answered with a body that
//! does not end. The agent must bound what it reads, report the reply as an
//! error, keep serving, and give the memory back. A real dockerd never sends
//! such a reply, so the socket here is a stand-in speaking just enough of the
//! Engine API (`/_ping` and the flood); everything else in the test is real.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::hostile::rss_kib;
use support::{short_tempdir, AgentProcess};

/// What one flooded reply sends at most (the test's own bound), far above
/// the agent's reply limit.
const FLOOD_BYTES: usize = 300 << 20;

/// Serves `socket` until dropped: `_ping` answers OK, any other request gets
/// a chunked JSON array that goes on for [`FLOOD_BYTES`].
struct FloodingDocker {
    stop: Arc<AtomicBool>,
}

impl FloodingDocker {
    fn start(socket: &Path) -> FloodingDocker {
        let listener = UnixListener::bind(socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        std::thread::spawn(move || answer(conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FloodingDocker { stop }
    }
}

impl Drop for FloodingDocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(conn: std::os::unix::net::UnixStream) {
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        while line.trim() != "" || line.is_empty() {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
        }
        if path.ends_with("/_ping") {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK",
            );
            continue;
        }
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        let item = "{\"Id\":\"0123456789abcdef\",\"State\":\"running\",\"Names\":[\"/flood\"]},"
            .repeat(1000);
        let chunk = format!("{:x}\r\n[{item}\r\n", item.len() + 1);
        let mut sent = 0;
        while sent < FLOOD_BYTES && out.write_all(chunk.as_bytes()).is_ok() {
            sent += chunk.len();
        }
        return;
    }
}

#[test]
fn an_endless_container_list_is_cut_off_and_its_memory_given_back() {
    let dir = short_tempdir("flood");
    let socket = dir.path().join("docker.sock");
    let _docker = FloodingDocker::start(&socket);
    let config = support::docker_config(&format!("unix://{}", socket.display()));
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let list_errors = |m: &support::Metrics| {
        m.get(
            "nodevitals_runtime_requests_total",
            &[
                ("runtime", "docker"),
                ("operation", "list_containers"),
                ("result", "error"),
            ],
        )
        .unwrap_or(0.0)
    };
    let m = agent.wait_metrics(
        Duration::from_secs(60),
        "three flooded lists cut off",
        |m| list_errors(m) >= 3.0,
    );
    assert_eq!(
        m.get("nodevitals_runtime_up", &[("runtime", "docker")]),
        Some(0.0),
        "a reply that never ends is a bad answer"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let peak: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB while flooded");
    assert!(rss_kib(agent.pid()) < 48 * 1024, "RSS after the floods");
    assert_eq!(agent.get("/healthz").0, 200);
    let (_, body) = agent.get("/status");
    assert!(body.contains("larger than"), "{body}");
}
