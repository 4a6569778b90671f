//! The full `/metrics` of an agent in a fixed state, compared with the
//! checked-in `tests/golden/metrics.txt`, so that no metric name, label or
//! help text (the public contract) changes unnoticed. The state: a Docker
//! runtime that answers at once (a stand-in: a real dockerd's container counts
//! and latencies vary), the v2 cgroup fixture tree (this host runs cgroup v1),
//! remediation of that runtime turned off, all under tokio's paused clock so
//! every duration is exact.
//!
//! After an intended change, regenerate the file and review its diff:
//! `UPDATE_GOLDEN=1 cargo test --test golden_metrics`.

use nodevitals::config::{Config, RuntimeConfig};
use nodevitals::health::Health;
use nodevitals::kubernetes::Cluster;
use nodevitals::metrics::{Metrics, NodeLabels};
use nodevitals::probe::cpu::{CpuProbe, CpuProbeConfig};
use nodevitals::probe::runtime::RuntimeProbe;
use nodevitals::probe::Probe;
use nodevitals::remediation::{Histories, Remediation};
use nodevitals::runtime::{Answer, CallError, CallFuture, RuntimeClient};
use nodevitals::scheduler::{record, run_once, Sinks};
use nodevitals::status::StatusBoard;
use nodevitals::vocabulary::{Operation, RuntimeKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// dockerd with two running containers and one exited, answering at once.
struct Docker {
    socket: PathBuf,
}

impl RuntimeClient for Docker {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    fn operations(&self) -> &'static [Operation] {
        &[Operation::Ping, Operation::ListContainers]
    }

    fn occasional_operations(&self) -> &'static [Operation] {
        &[Operation::Info]
    }

    fn call(&self, op: Operation) -> CallFuture {
        let answer: Result<Answer, CallError> = Ok(match op {
            Operation::ListContainers => {
                Answer::Containers(vec![("created", 0), ("running", 2), ("exited", 1)])
            }
            Operation::Info => Answer::Info {
                live_restore: Some(true),
                root_dir: None,
            },
            _ => Answer::Alive,
        });
        Box::pin(async move { answer })
    }
}

/// The exposition with every family's samples sorted: a family keeps its
/// series in a hash map, so their order differs from one process to the next.
fn normalized(exposition: &str) -> String {
    let mut out = String::new();
    let mut samples: Vec<&str> = Vec::new();
    let flush = |samples: &mut Vec<&str>, out: &mut String| {
        samples.sort_unstable();
        for s in samples.drain(..) {
            out.push_str(s);
            out.push('\n');
        }
    };
    for line in exposition.lines() {
        if line.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    flush(&mut samples, &mut out);
    out
}

#[tokio::test(start_paused = true)]
async fn metrics_of_an_agent_in_a_fixed_state_match_the_golden_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/cpu/v2-systemd");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&socket).unwrap();

    let metrics = Metrics::new();
    let status = Arc::new(StatusBoard::default());
    metrics.agent.set_node_info(NodeLabels {
        node: "node-a".into(),
        kernel: "6.1.0-golden".into(),
        cgroup_version: "v2".into(),
        runtime: "docker".into(),
    });
    metrics.agent.count_reload(true);

    let runtime = RuntimeProbe::new(
        Arc::new(Docker {
            socket: socket.clone(),
        }),
        Duration::from_secs(10),
        Duration::from_secs(5),
        Duration::from_secs(30),
        metrics.runtime.clone(),
    );
    let health = runtime.health();
    let cpu = CpuProbe::new(
        CpuProbeConfig {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            cgroup_root: fixture.clone(),
            proc_root: fixture.join("proc"),
        },
        Vec::new(),
        metrics.cpu.clone(),
        Arc::clone(&status),
    );
    let sinks = Sinks {
        metrics: metrics.agent.clone(),
        status: Arc::clone(&status),
        health: Arc::new(Health::default()),
    };
    let probes: Vec<Arc<dyn Probe>> = vec![Arc::new(runtime), Arc::new(cpu)];
    for probe in probes {
        sinks.metrics.init_probe(probe.name());
        let (result, elapsed) = run_once(Arc::clone(&probe)).await;
        assert!(result.is_ok(), "{}: {result:?}", probe.name());
        record(&sinks, probe.name(), &result, elapsed);
    }

    let mut config = Config::default();
    config.remediation.enabled = false;
    config.paths.state_dir = dir.path().join("state");
    config.paths.proc = fixture.join("proc");
    let rt = RuntimeConfig::detected(RuntimeKind::Docker, format!("unix://{}", socket.display()));
    let remediation = Remediation::start(
        &config,
        vec![(rt, health)],
        &metrics.remediation,
        Arc::clone(&status),
        &Arc::new(Histories::default()),
        &sinks.health,
        &Cluster::off(),
    );
    let disabled = "nodevitals_remediation_state{target=\"docker\",state=\"disabled\"} 1";
    tokio::time::timeout(Duration::from_secs(60), async {
        while !metrics.encode().contains(disabled) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("remediation reports its state");
    remediation.stop();

    let actual = normalized(&metrics.encode());
    let golden = root.join("tests/golden/metrics.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", golden.display()));
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .map(|l| format!("- {l}"))
            .chain(
                actual
                    .lines()
                    .filter(|l| !expected.lines().any(|e| e == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "/metrics differs from {} (UPDATE_GOLDEN=1 regenerates it after an intended change):\n{}",
            golden.display(),
            diff.join("\n")
        );
    }
}
