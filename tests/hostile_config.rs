//! A careless operator against a running agent: signals it does not act on,
//! and configs at the extremes sent with SIGHUP or to `check-config`. The agent
//! must neither die nor accept what would make it panic or spin.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{short_tempdir, wait_until, AgentProcess};

/// A runtime whose socket does not exist: an agent that needs no daemon.
fn quiet() -> String {
    format!(
        "[[runtime]]\nkind = \"docker\"\nendpoint = \"unix:///nonexistent/nv.sock\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n{}",
        support::ONLY_RUNTIME
    )
}

fn reloads(agent: &AgentProcess, result: &str) -> f64 {
    agent
        .metrics()
        .get("nodevitals_config_reloads_total", &[("result", result)])
        .unwrap_or(-1.0)
}

#[test]
fn usr1_usr2_and_alrm_are_logged_and_ignored() {
    let dir = short_tempdir("signals");
    let mut agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    for (sig, name) in [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        agent.signal(sig);
        wait_until(Duration::from_secs(10), name, || {
            assert!(
                agent.child.try_wait().unwrap().is_none(),
                "{name} killed the agent:\n{}",
                agent.logs()
            );
            agent.logs().contains(&format!("signal=\"{name}\""))
        });
    }
    assert_eq!(agent.get("/healthz").0, 200);
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Each of these once passed `check-config` and then panicked the agent (on
/// start, or on the SIGHUP that loaded it), or made it spin.
/// (section, what it says, the key the error must name).
const EXTREMES: &[(&str, &str, &str)] = &[
    (
        "cpu",
        "interval = \"18446744073709551615s\"",
        "cpu.interval",
    ),
    (
        "remediation",
        "window = \"18446744073709551615s\"",
        "remediation.window",
    ),
    (
        "remediation",
        "backoff_max = \"18446744073709551615s\"",
        "remediation.backoff_max",
    ),
    (
        "cpu",
        "interval = \"1ns\"\ntimeout = \"1ns\"",
        "cpu.interval",
    ),
];

/// The quiet agent's config with `section` replaced by `body`.
fn with_section(section: &str, body: &str) -> String {
    let mut config = String::from(
        "[[runtime]]\nkind = \"docker\"\nendpoint = \"unix:///nonexistent/nv.sock\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
    );
    for s in ["remediation", "kubelet", "dns", "cpu"] {
        let keys = if s == section {
            body
        } else {
            "enabled = false"
        };
        config.push_str(&format!("\n[{s}]\n{keys}\n"));
    }
    config
}

#[test]
fn extreme_durations_fail_check_config_and_are_rejected_on_reload() {
    let dir = short_tempdir("extremes");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    for (i, (section, extreme, key)) in EXTREMES.iter().enumerate() {
        let config = with_section(section, extreme);
        let path = dir.path().join(format!("extreme-{i}.toml"));
        std::fs::write(&path, &config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_nodevitals"))
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extreme}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(key), "{extreme}: {err}");

        std::fs::write(&agent.config_path, &config).unwrap();
        agent.signal(libc::SIGHUP);
        let nth = (i + 1) as f64;
        wait_until(Duration::from_secs(20), "the reload rejected", || {
            assert!(
                agent_alive(&agent),
                "the reload of {extreme} killed the agent:\n{}",
                agent.logs()
            );
            reloads(&agent, "failure") == nth
        });
    }
    assert_eq!(agent.get("/healthz").0, 200);
}

fn agent_alive(agent: &AgentProcess) -> bool {
    support::process::alive(agent.pid())
}
