//! End to end against a real dockerd: the agent binary, read over HTTP.

mod support;

use std::time::Duration;
use support::dockerd::Dockerd;
use support::kubelet::FakeKubelet;
use support::{short_tempdir, wait_until, AgentProcess};
use tokio::time::Instant;

/// Probes only the Docker daemon at `endpoint`, and optionally a kubelet.
fn config(endpoint: &str, kubelet: Option<&str>) -> String {
    let base = support::docker_config(endpoint);
    match kubelet {
        None => base,
        Some(url) => base.replace(
            "[kubelet]\nenabled = false",
            &format!("[kubelet]\nenabled = true\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"500ms\""),
        ),
    }
}

const UP: &str = "nodevitals_runtime_up";
const DOCKER: &[(&str, &str)] = &[("runtime", "docker")];

fn requests(m: &support::Metrics, op: &str, result: &str) -> f64 {
    m.get(
        "nodevitals_runtime_requests_total",
        &[("runtime", "docker"), ("operation", op), ("result", result)],
    )
    .unwrap_or(0.0)
}

#[test]
fn healthy_dockerd_reports_up_and_its_containers() {
    let d = Dockerd::start("probe-healthy");
    d.build_busybox_image();
    let id = d.run_sleeper(&[]);
    assert!(!id.is_empty());
    assert_eq!(d.running_containers(), 1);
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&d.endpoint(), None), &[]);
    let m = agent.wait_metrics(Duration::from_secs(10), "runtime_up 1", |m| {
        m.get(UP, DOCKER) == Some(1.0)
    });
    assert_eq!(
        m.get(
            "nodevitals_runtime_containers",
            &[("runtime", "docker"), ("state", "running")]
        ),
        Some(d.running_containers() as f64)
    );
    assert_eq!(
        m.get("nodevitals_probe_success", &[("probe", "docker")]),
        Some(1.0)
    );
    assert!(requests(&m, "ping", "ok") >= 1.0);
    assert!(requests(&m, "list_containers", "ok") >= 1.0);
    let (status, body) = agent.get("/status");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["probes"]["docker"]["outcome"], "ok");
    wait_until(Duration::from_secs(5), "readyz 200", || {
        agent.get("/readyz").0 == 200
    });
}

/// A frozen dockerd is detected as `timeout` while everything else in the agent
/// keeps answering promptly; SIGCONT brings it back.
#[test]
#[allow(clippy::disallowed_methods)]
fn frozen_dockerd_times_out_without_blocking_the_agent() {
    let d = Dockerd::start("probe-frozen");
    let kubelet = FakeKubelet::start();
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(
        dir.path(),
        &config(&d.endpoint(), Some(&kubelet.url())),
        &[],
    );
    agent.wait_metrics(Duration::from_secs(10), "docker and kubelet up", |m| {
        m.get(UP, DOCKER) == Some(1.0) && m.get("nodevitals_kubelet_up", &[]) == Some(1.0)
    });

    support::process::signal(d.pid(), libc::SIGSTOP);
    let frozen_at = Instant::now();
    let m = agent.wait_metrics(Duration::from_secs(6), "runtime_up 0 after SIGSTOP", |m| {
        m.get(UP, DOCKER) == Some(0.0)
    });
    // Within one interval (1 s) + the deadline (1 s), plus slack for polling.
    let detected = frozen_at.elapsed();
    assert!(
        detected < Duration::from_millis(3000),
        "hang took {detected:?} to detect"
    );
    assert!(requests(&m, "ping", "timeout") >= 1.0, "{}", m.text);

    // While dockerd is frozen, the agent's own endpoints and the other probe
    // answer promptly. Measure a few rounds over several probe intervals.
    let before = agent.metrics().probe_runs("kubelet");
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for path in ["/metrics", "/healthz", "/status"] {
            let t = Instant::now();
            let (code, _) = agent.get(path);
            slowest = slowest.max(t.elapsed());
            assert_eq!(code, 200, "{path} during the hang");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "an endpoint took {slowest:?} while dockerd was frozen"
    );
    let m = agent.metrics();
    assert!(
        m.probe_runs("kubelet") >= before + 2.0,
        "kubelet probe stalled during the docker hang"
    );
    assert_eq!(m.get("nodevitals_kubelet_up", &[]), Some(1.0));
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status").1).unwrap();
    assert_eq!(status["probes"]["docker"]["outcome"], "timeout");
    assert!(status["probes"]["docker"]["consecutive_failures"].as_u64() >= Some(2));

    support::process::signal(d.pid(), libc::SIGCONT);
    // Requests that missed their deadline were kept running: once dockerd thaws
    // they are answered late, which proves it was slow rather than dead.
    agent.wait_metrics(Duration::from_secs(10), "runtime_up 1 after SIGCONT", |m| {
        m.get(UP, DOCKER) == Some(1.0)
            && m.get("nodevitals_runtime_consecutive_failures", DOCKER) == Some(0.0)
            && m.get(
                "nodevitals_runtime_late_answers_total",
                &[("runtime", "docker"), ("operation", "ping")],
            ) >= Some(1.0)
    });

    // A request stuck on the frozen socket does not hold up shutdown either.
    support::process::signal(d.pid(), libc::SIGSTOP);
    agent.wait_metrics(Duration::from_secs(6), "runtime_up 0 again", |m| {
        m.get(UP, DOCKER) == Some(0.0)
    });
    let mut agent = agent;
    agent.signal(libc::SIGTERM);
    let mut code = None;
    wait_until(
        Duration::from_secs(6),
        "agent exit while dockerd is frozen",
        || {
            code = agent.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        },
    );
    assert_eq!(code.unwrap(), Some(0), "{}", agent.logs());
    support::process::signal(d.pid(), libc::SIGCONT);
}

fn outcome_of(agent: &AgentProcess) -> String {
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status").1).unwrap();
    status["probes"]["docker"]["outcome"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn wait_outcome(agent: &AgentProcess, want: &str) {
    wait_until(Duration::from_secs(10), &format!("outcome {want}"), || {
        outcome_of(agent) == want
    });
    let m = agent.metrics();
    assert_eq!(m.get(UP, DOCKER), Some(0.0));
    assert_eq!(
        m.get("nodevitals_probe_success", &[("probe", "docker")]),
        Some(0.0)
    );
}

#[test]
fn absent_socket_is_refused() {
    let dir = short_tempdir("agent");
    let sock = dir.path().join("absent.sock");
    let agent = AgentProcess::start(
        dir.path(),
        &config(&format!("unix://{}", sock.display()), None),
        &[],
    );
    wait_outcome(&agent, "refused");
}

#[test]
fn regular_file_socket_is_misconfigured() {
    let dir = short_tempdir("agent");
    let sock = dir.path().join("file.sock");
    std::fs::write(&sock, b"not a socket").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &config(&format!("unix://{}", sock.display()), None),
        &[],
    );
    wait_outcome(&agent, "misconfigured");
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status").1).unwrap();
    assert!(status["probes"]["docker"]["error"]
        .as_str()
        .unwrap()
        .contains("not a socket"));
}

/// A socket the agent may not open: the agent runs as `nobody` against a
/// root-only socket of a real dockerd.
#[test]
fn inaccessible_socket_is_misconfigured() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let d = Dockerd::start("probe-perm");
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    // nobody must be able to reach the socket's directory, and read its config.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = short_tempdir("agent");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = AgentProcess::start_with(dir.path(), &config(&d.endpoint(), None), &[], |cmd| {
        cmd.uid(65534).gid(65534);
    });
    wait_outcome(&agent, "misconfigured");
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status").1).unwrap();
    let error = status["probes"]["docker"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("ermission denied"), "{error}");
}

/// Runs `nodevitals once` with `config`; returns its exit code and table.
#[allow(clippy::disallowed_methods)]
fn once(dir: &std::path::Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("once.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodevitals"))
        .args(["once", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `nodevitals once` is the doctor command: a table and an exit code.
#[test]
fn once_reports_a_table_and_exit_code() {
    let d = Dockerd::start("probe-once");
    let dir = short_tempdir("once");
    let (code, table) = once(dir.path(), &config(&d.endpoint(), None));
    assert_eq!(code, Some(0), "{table}");
    assert!(
        table.contains("docker") && table.contains(" ok "),
        "{table}"
    );

    let absent = dir.path().join("absent.sock");
    let (code, table) = once(
        dir.path(),
        &config(&format!("unix://{}", absent.display()), None),
    );
    assert_eq!(code, Some(1), "{table}");
    assert!(table.contains("refused"), "{table}");
}
