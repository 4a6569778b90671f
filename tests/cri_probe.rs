//! End to end against a real containerd (Debian package) over CRI v1: the
//! agent binary, read over HTTP. CRI-O cannot be installed on the test
//! machines; its detection and defaults are unit-tested in `src/`.

mod support;

use std::time::Duration;
use support::cgroup::QuotaCgroup;
use support::containerd::Containerd;
use support::{short_tempdir, AgentProcess, Metrics};
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(1);

fn config(endpoint: &str) -> String {
    format!(
        "{}{}",
        support::runtime_entry("containerd", endpoint),
        support::ONLY_RUNTIME
    )
}

const UP: &str = "nodevitals_runtime_up";
const CONTAINERD: &[(&str, &str)] = &[("runtime", "containerd")];

fn requests(m: &Metrics, op: &str, result: &str) -> f64 {
    m.get(
        "nodevitals_runtime_requests_total",
        &[
            ("runtime", "containerd"),
            ("operation", op),
            ("result", result),
        ],
    )
    .unwrap_or(0.0)
}

fn condition(m: &Metrics, name: &str) -> Option<f64> {
    m.get(
        "nodevitals_runtime_condition",
        &[("runtime", "containerd"), ("condition", name)],
    )
}

fn outcome_of(agent: &AgentProcess) -> String {
    let (_, body) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["probes"]["containerd"]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn wait_outcome(agent: &AgentProcess, want: &str, timeout: Duration) {
    support::wait_until(timeout, &format!("outcome {want}"), || {
        outcome_of(agent) == want
    });
}

#[test]
fn healthy_containerd_is_up_runtime_ready_and_network_not_ready() {
    let c = Containerd::start("cri-healthy");
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&c.endpoint()), &[]);
    let m = agent.wait_metrics(Duration::from_secs(10), "runtime_up 1", |m| {
        m.get(UP, CONTAINERD) == Some(1.0)
    });
    assert_eq!(condition(&m, "RuntimeReady"), Some(1.0), "{}", m.text);
    // No CNI configuration exists in this containerd's CNI directory.
    assert_eq!(condition(&m, "NetworkReady"), Some(0.0), "{}", m.text);
    for op in ["version", "status", "list_pod_sandbox", "list_containers"] {
        assert!(requests(&m, op, "ok") >= 1.0, "{op} not ok:\n{}", m.text);
    }
    for state in ["created", "running", "exited", "unknown"] {
        assert_eq!(
            m.get(
                "nodevitals_runtime_containers",
                &[("runtime", "containerd"), ("state", state)]
            ),
            Some(0.0),
            "CRI containers in state {state}"
        );
    }
    for state in ["ready", "notready"] {
        assert_eq!(
            m.get(
                "nodevitals_runtime_pod_sandboxes",
                &[("runtime", "containerd"), ("state", state)]
            ),
            Some(0.0)
        );
    }
    assert_eq!(outcome_of(&agent), "ok");
    let (_, body) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["probes"]["containerd"]["detail"],
        "0 running containers; not ready: NetworkReady"
    );
}

/// A frozen containerd still accepts connections (the kernel queues them) but
/// never answers: only the per-request deadline catches it.
#[test]
fn frozen_containerd_times_out_within_interval_plus_deadline() {
    let c = Containerd::start("cri-frozen");
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&c.endpoint()), &[]);
    agent.wait_metrics(Duration::from_secs(10), "runtime_up 1", |m| {
        m.get(UP, CONTAINERD) == Some(1.0)
    });
    let pid = c.pid().expect("containerd pid");
    support::process::signal(pid, libc::SIGSTOP);
    let frozen_at = Instant::now();
    let m = agent.wait_metrics(Duration::from_secs(6), "runtime_up 0 after SIGSTOP", |m| {
        m.get(UP, CONTAINERD) == Some(0.0)
    });
    let detected = frozen_at.elapsed();
    // The scheduler's jitter stays inside the interval; the slack covers
    // scrape polling and a busy test machine, as for dockerd.
    assert!(
        detected < INTERVAL + DEADLINE + Duration::from_secs(1),
        "hang detected after {detected:?}"
    );
    let timeouts: f64 = ["version", "status", "list_pod_sandbox", "list_containers"]
        .iter()
        .map(|op| requests(&m, op, "timeout"))
        .sum();
    assert!(timeouts >= 1.0, "{}", m.text);
    assert_eq!(outcome_of(&agent), "timeout");
    support::process::signal(pid, libc::SIGCONT);
    agent.wait_metrics(Duration::from_secs(10), "runtime_up 1 after SIGCONT", |m| {
        m.get(UP, CONTAINERD) == Some(1.0)
    });
}

/// A containerd that died without removing its socket is down: `refused`.
#[test]
fn killed_containerd_is_refused() {
    let c = Containerd::start("cri-killed");
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&c.endpoint()), &[]);
    wait_outcome(&agent, "ok", Duration::from_secs(10));
    support::process::signal(c.pid().expect("containerd pid"), libc::SIGKILL);
    assert!(c.socket.exists(), "SIGKILL leaves the socket file behind");
    wait_outcome(&agent, "refused", Duration::from_secs(6));
}

/// containerd without its CRI plugin (Docker's own containerd, the upstream
/// `containerd.io` package) answers CRI with `Unimplemented`. As `containerd`
/// it is still probed, through its own version service; a socket that must
/// serve CRI (a `crio` entry pointed at it here) is `misconfigured`, never a
/// dead runtime.
#[test]
fn containerd_without_cri_is_probed_natively_and_a_missing_cri_is_misconfigured() {
    let c = Containerd::start_without_cri("cri-off");
    let dir = short_tempdir("agent");
    let ep = c.endpoint();
    let config = format!("{}\n{}", config(&ep), support::runtime_entry("crio", &ep));
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let m = agent.wait_metrics(Duration::from_secs(10), "containerd up, crio probed", |m| {
        m.get(UP, CONTAINERD) == Some(1.0) && m.probe_runs("crio") >= 1.0
    });
    assert_eq!(m.get(UP, &[("runtime", "crio")]), Some(0.0));
    assert!(requests(&m, "version", "ok") >= 1.0, "{}", m.text);
    // The CRI-only operations were skipped, not sent and not failed.
    for op in ["status", "list_pod_sandbox", "list_containers"] {
        for result in ["ok", "error", "misconfigured", "timeout", "refused"] {
            assert_eq!(requests(&m, op, result), 0.0, "{op} {result}");
        }
    }
    assert_eq!(condition(&m, "RuntimeReady"), None);
    assert_eq!(outcome_of(&agent), "ok");
    let (_, body) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["probes"]["crio"]["outcome"], "misconfigured");
    let error = status["probes"]["crio"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("CRI plugin"), "{body}");
}

/// A Docker node: dockerd's own containerd (CRI disabled) is a runtime of its
/// own, probed alongside dockerd, as auto-detection does on such a node.
#[test]
fn dockerd_and_its_containerd_are_both_probed() {
    let d = support::dockerd::Dockerd::start("cri-docker");
    let socket = d.dir.path().join("exec/containerd/containerd.sock");
    support::wait_until(Duration::from_secs(10), "dockerd's own containerd socket (dockerd starts none when a system containerd answers on /run/containerd/containerd.sock)", || {
        socket.exists()
    });
    let dir = short_tempdir("agent");
    let config = format!(
        "{}\n{}",
        config(&format!("unix://{}", socket.display())),
        support::runtime_entry("docker", &d.endpoint())
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    agent.wait_metrics(Duration::from_secs(10), "docker and containerd up", |m| {
        m.get(UP, CONTAINERD) == Some(1.0) && m.get(UP, &[("runtime", "docker")]) == Some(1.0)
    });
}

/// Runs the CPU probe with `c` as its only runtime and a cgroup named like a
/// container that `c` does not know, until the probe has asked `c` to name it
/// and the cgroup's series is out; every such ask succeeded. Returns the
/// cgroup's limit series line.
fn cgroup_named_through(c: &Containerd) -> String {
    let cg = QuotaCgroup::create("cri-names", 100_000, 100_000);
    let dir = short_tempdir("agent");
    let config = support::cpu_config(&support::runtime_entry("containerd", &c.endpoint()));
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let refreshes = |m: &Metrics, result| {
        m.get(
            "nodevitals_cpu_identity_refreshes_total",
            &[("runtime", "containerd"), ("result", result)],
        )
    };
    const LIMIT: &str = "nodevitals_container_cpu_limit_cores";
    let id = [("id", cg.id.as_str())];
    let m = agent.wait_metrics(
        Duration::from_secs(10),
        "a containerd identity refresh and the cgroup's series",
        |m| refreshes(m, "ok").is_some_and(|n| n >= 1.0) && m.get(LIMIT, &id).is_some(),
    );
    assert_eq!(refreshes(&m, "error"), Some(0.0), "{}", m.text);
    m.text
        .lines()
        .find(|l| l.starts_with(LIMIT) && l.contains(&cg.id))
        .unwrap_or_default()
        .to_owned()
}

/// The CPU probe asks containerd (CRI `ListContainers` and `ListPodSandbox`)
/// about a container cgroup it does not know, and the real daemon's answer
/// decodes: the refresh is ok, and the cgroup, unknown to containerd, keeps
/// its id label. Naming a real CRI pod's cgroups is
/// `tests/cpu_throttling.rs::cri_pod_series_carry_pod_labels_the_sandbox_is_pod_and_all_vanish_with_it`.
#[test]
fn cpu_probe_asks_containerd_to_name_container_cgroups() {
    let c = Containerd::start("cri-cpu-names");
    let line = cgroup_named_through(&c);
    // containerd does not list it, so it keeps its id label only.
    assert!(!line.contains("namespace="), "{line}");
}

/// containerd without CRI (a Docker node's) has no CRI containers to name:
/// its `Unimplemented` is an empty list, not a failed refresh every 30 s.
#[test]
fn cpu_probe_finds_no_containers_in_containerd_without_cri() {
    let c = Containerd::start_without_cri("cri-cpu-off");
    cgroup_named_through(&c);
}
