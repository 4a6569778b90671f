//! End to end: a real containerd, frozen with SIGSTOP, is restarted by the
//! agent's `signal` restarter under the test's supervisor loop (as systemd's
//! `Restart=` would), while the shims and the container they serve are never
//! signalled: running workloads survive a containerd restart.

mod support;

use std::time::Duration;
use support::containerd::Containerd;
use support::process::alive;
use support::{short_tempdir, wait_for, AgentProcess, Metrics};

/// The restarter finds containerd by the supervisor's pidfile: matching the
/// executable name would also find other tests' containerds on this machine.
fn config(c: &Containerd, state_dir: &std::path::Path) -> String {
    format!(
        r#"
[paths]
state_dir = "{state}"

[[runtime]]
kind = "containerd"
endpoint = "{endpoint}"
interval = "1s"
timeout = "1s"
  [runtime.restart]
  method = "signal"
  pidfile = "{pidfile}"
  grace = "2s"

[remediation]
enabled = true
failure_threshold = 2
hang_after = "2s"
cooldown = "1s"
boot_grace = "0s"
backoff_initial = "1s"
backoff_max = "10s"
backoff_jitter = 0.0
max_restarts = 3
window = "1h"
reset_after = "1m"
recovery_timeout = "30s"
{only}"#,
        only = support::OTHER_PROBES_OFF,
        state = state_dir.display(),
        endpoint = c.endpoint(),
        pidfile = c.pidfile.display(),
    )
}

fn restarts(m: &Metrics, result: &str) -> f64 {
    m.get(
        "nodevitals_remediation_restarts_total",
        &[
            ("target", "containerd"),
            ("method", "signal"),
            ("result", result),
        ],
    )
    .unwrap_or(0.0)
}

#[test]
fn frozen_containerd_is_restarted_and_its_shims_survive() {
    let c = Containerd::start_supervised("cri-remediate");
    c.run_sleeper("sleeper");
    let (task_pid, running) = c.task("sleeper").expect("task sleeper");
    assert!(running && alive(task_pid));
    let shim_socket = c.shim_socket("sleeper").expect("shim socket path");
    assert!(shim_socket.exists(), "{}", shim_socket.display());
    let shims = c.shim_pids();
    assert!(!shims.is_empty(), "ctr run started no containerd-shim");
    let old = c.pid().expect("containerd pid");
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&c, dir.path()), &[]);
    agent.wait_metrics(Duration::from_secs(10), "containerd up", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "containerd")]) == Some(1.0)
    });
    // Its root directory comes from a verbose CRI status: its free space is watched.
    agent.wait_metrics(Duration::from_secs(20), "the root's free space", |m| {
        m.get(
            "nodevitals_runtime_root_free_bytes",
            &[("runtime", "containerd")],
        )
        .is_some_and(|b| b > 0.0)
    });
    // `/status` shows it from the engine's next publication on, which may
    // come a round after the metric.
    let root = c.dir.path().join("root").display().to_string();
    wait_for(Duration::from_secs(20), "the root on /status", || {
        let (_, status) = agent.get("/status");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let shown = &status["remediation"]["containerd"]["runtime_root"]["path"];
        if *shown == serde_json::Value::String(root.clone()) {
            Ok(())
        } else {
            Err(format!("{status:#}"))
        }
    });

    support::process::signal(old, libc::SIGSTOP);
    let m = agent.wait_metrics(
        Duration::from_secs(40),
        "a successful restart of containerd",
        |m| restarts(m, "success") >= 1.0,
    );
    assert_eq!(restarts(&m, "failure"), 0.0, "{}", m.text);
    assert!(!alive(old), "the frozen containerd {old} is still there");
    // containerd logs its stacks on SIGUSR1: the history says it was sent, and when.
    let (_, status) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let event = &status["remediation"]["containerd"]["history"][0];
    assert!(
        event["detail"]
            .as_str()
            .unwrap()
            .contains("SIGUSR1 sent at unix"),
        "{event:#}"
    );
    let new = c.pid().expect("containerd pid after restart");
    assert_ne!(new, old, "the supervisor did not start a new containerd");
    c.wait_answering(Duration::from_secs(20));
    agent.wait_metrics(Duration::from_secs(10), "containerd up again", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "containerd")]) == Some(1.0)
    });
    assert!(
        m.get(
            "nodevitals_remediation_recovery_seconds_count",
            &[("target", "containerd")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{}",
        m.text
    );

    for pid in &shims {
        assert!(alive(*pid), "shim {pid} was killed by the restart");
    }
    assert_eq!(c.shim_pids(), shims, "shims changed across the restart");
    assert!(shim_socket.exists(), "the shim's socket vanished");
    // The restarted containerd reconnects to the shim: the same container
    // process still runs.
    assert_eq!(c.task("sleeper"), Some((task_pid, true)));
}
