//! The HTTP front under hostile clients: connections that never read their
//! answers, idle connections and slowloris connections must not keep a normal
//! client's `/healthz` (the kubelet's liveness probe) from answering, and the
//! agent's file descriptors stay bounded while they are held. Latency budgets
//! are measured by `scripts/bench-soak.sh`; these tests assert that every
//! request is answered within a deadline far above the budget.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::hostile::{fd_count, raise_fd_limit, timed_healthz, Behaviour, HostileSet};
use support::{short_tempdir, wait_until, AgentProcess};

/// A runtime whose socket does not exist: an agent that needs no daemon.
fn quiet() -> String {
    format!(
        "[[runtime]]\nkind = \"docker\"\nendpoint = \"unix:///nonexistent/nv.sock\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n{}",
        support::ONLY_RUNTIME
    )
}

/// Every one of `n` fresh `/healthz` requests answers 200 within `deadline`.
fn healthz_keeps_answering(agent: &AgentProcess, n: usize, deadline: Duration) {
    for i in 0..n {
        match timed_healthz(agent.addr, deadline) {
            Ok((200, _)) => {}
            Ok((status, took)) => panic!("/healthz #{i}: status {status} after {took:?}"),
            Err(e) => panic!(
                "/healthz #{i} not answered within {deadline:?}: {e}\n{}",
                agent.logs()
            ),
        }
    }
}

#[test]
fn clients_that_never_read_neither_block_healthz_nor_keep_their_descriptors() {
    raise_fd_limit(4_096);
    let dir = short_tempdir("front");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    let idle_fds = fd_count(agent.pid());
    let hostile = HostileSet::start(agent.addr, Behaviour::NonReading, 64);
    wait_until(
        Duration::from_secs(30),
        "64 non-reading connections",
        || fd_count(agent.pid()) >= idle_fds + 64,
    );
    healthz_keeps_answering(&agent, 50, Duration::from_secs(10));
    drop(hostile);
    // Closed by the client now; the agent must not keep the sockets either.
    wait_until(Duration::from_secs(30), "the agent to close them", || {
        fd_count(agent.pid()) <= idle_fds + 2
    });
}

#[test]
#[allow(clippy::disallowed_methods)]
fn a_stalled_reader_is_disconnected_while_it_still_holds_its_socket() {
    let dir = short_tempdir("front");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    let idle_fds = fd_count(agent.pid());
    let mut deaf = TcpStream::connect(agent.addr).unwrap();
    deaf.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let burst = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2_000);
    let _ = deaf.write_all(burst.as_bytes());
    wait_until(Duration::from_secs(30), "the agent to accept it", || {
        fd_count(agent.pid()) > idle_fds
    });
    // This end stays open and reads nothing: only a write deadline in the
    // agent frees its descriptor.
    wait_until(
        Duration::from_secs(30),
        "the agent to drop the stalled reader",
        || fd_count(agent.pid()) <= idle_fds,
    );
    drop(deaf);
}

#[test]
fn idle_and_slowloris_connections_do_not_starve_healthz_and_fds_stay_bounded() {
    raise_fd_limit(8_192);
    let dir = short_tempdir("front");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    let idle_fds = fd_count(agent.pid());
    let _idle = HostileSet::start(agent.addr, Behaviour::Idle, 2_000);
    let _slow = HostileSet::start(agent.addr, Behaviour::Slowloris, 300);
    let _deaf = HostileSet::start(agent.addr, Behaviour::NonReading, 64);
    let mut max_fds = 0;
    for round in 0..10 {
        healthz_keeps_answering(&agent, 10, Duration::from_secs(10));
        max_fds = max_fds.max(fd_count(agent.pid()));
        assert!(
            max_fds <= idle_fds + 600,
            "round {round}: the agent holds {max_fds} descriptors (idle: {idle_fds}) for 2,364 hostile connections"
        );
    }
    // 2,364 hostile connections for 256 places: the table sheds, and counts it.
    wait_until(
        Duration::from_secs(30),
        "nodevitals_http_connections_shed_total{reason=\"capacity\"} above 0",
        || shed_total(&agent, "capacity") > 0,
    );
}

/// `nodevitals_http_connections_shed_total{reason}` as the agent reports it.
fn shed_total(agent: &AgentProcess, reason: &str) -> u64 {
    let (status, body) = support::http_get(agent.addr, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    let series = format!("nodevitals_http_connections_shed_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {series}in /metrics:\n{body}"))
}
