//! The sd_notify protocol for real: the test plays systemd (a datagram socket
//! named by NOTIFY_SOCKET, WATCHDOG_USEC set), the agent probes a real dockerd.
//! READY=1 comes once the first round is done, WATCHDOG=1 comes periodically,
//! stops while the scheduler is stuck and comes back when it progresses again,
//! and STOPPING=1 comes on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::dockerd::Dockerd;
use support::threads::StoppedThreads;
use support::{short_tempdir, wait_until, AgentProcess};

/// Plays systemd's end of the socket: every datagram received, in order.
struct FakeManager {
    received: Arc<Mutex<Vec<String>>>,
}

impl FakeManager {
    fn bind(path: &std::path::Path) -> FakeManager {
        let socket = UnixDatagram::bind(path).expect("bind NOTIFY_SOCKET");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        // The thread ends when the test process does; it only reads.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push(msg);
            }
        });
        FakeManager { received }
    }

    fn messages(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn count(&self, line: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }

    fn has_line_starting(&self, prefix: &str) -> bool {
        self.messages()
            .iter()
            .any(|m| m.lines().any(|l| l.starts_with(prefix)))
    }
}

const WATCHDOG: &str = "WATCHDOG=1";

#[test]
#[allow(clippy::disallowed_methods)]
fn ready_then_watchdog_only_while_the_scheduler_progresses() {
    let d = Dockerd::start("notify");
    let dir = short_tempdir("notify");
    let sock = dir.path().join("notify.sock");
    let manager = FakeManager::bind(&sock);
    let config = support::docker_config(&d.endpoint());
    // A 1 s watchdog: the agent pings every 500 ms.
    let agent = AgentProcess::start_with(dir.path(), &config, &[], |cmd| {
        cmd.env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "1000000");
    });
    let ctx = |what: &str| {
        format!(
            "{what}\nreceived: {:?}\nagent log:\n{}",
            manager.messages(),
            agent.logs()
        )
    };

    wait_until(Duration::from_secs(20), "READY=1", || {
        manager.count("READY=1") == 1
    });
    // Readiness is monotone: once systemd was told, /readyz agrees.
    assert_eq!(
        agent.get("/readyz").0,
        200,
        "{}",
        ctx("readyz after READY=1")
    );
    assert!(
        manager.messages()[0].lines().any(|l| l == "READY=1"),
        "{}",
        ctx("READY=1 must be the first message")
    );
    let pings = manager.count(WATCHDOG);
    wait_until(Duration::from_secs(10), "three watchdog pings", || {
        manager.count(WATCHDOG) >= pings + 3
    });

    // Stuck for real: the runtime's worker threads (which run every probe loop
    // and the HTTP server) are stopped, as if wedged in an uninterruptible
    // system call; the process, and its notification thread, run on.
    let stopped = StoppedThreads::stop_named(agent.pid(), "tokio-");
    assert!(
        stopped.count() >= 2,
        "expected the agent's two runtime workers"
    );
    // Loops are declared stuck after interval + timeout + 5 s of no progress.
    wait_until(
        Duration::from_secs(20),
        "STATUS naming the stuck loop",
        || manager.has_line_starting("STATUS=probe loops stuck: docker"),
    );
    let withheld = manager.count(WATCHDOG);
    // An observation window, not a wait for an event: four ping periods in
    // which a ping would have come every 500 ms, while the notifier is
    // demonstrably alive (it just reported the stuck loop).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        manager.count(WATCHDOG),
        withheld,
        "{}",
        ctx("watchdog pinged while the scheduler was stuck")
    );

    drop(stopped);
    wait_until(Duration::from_secs(15), "pings to resume", || {
        manager.count(WATCHDOG) >= withheld + 2
    });
    assert_eq!(
        agent.get("/healthz").0,
        200,
        "{}",
        ctx("healthz after resume")
    );

    agent.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(10), "STOPPING=1", || {
        manager.count("STOPPING=1") == 1
    });
}
