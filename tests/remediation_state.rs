//! The restart budget against a state file that is corrupt, cannot be written
//! or is huge: the budget is never reset by a config reload (`SIGHUP`) or an
//! agent restart, a restart that cannot be recorded is not issued, and a huge
//! file costs neither memory nor a huge `/status`.

mod support;

use std::path::Path;
use std::time::Duration;
use support::agent_config::{signal_restart, DockerAgentConfig};
use support::dockerd::Dockerd;
use support::hostile::rss_kib;
use support::{process, short_tempdir, wait_until, AgentProcess};

const MINUTE: Duration = Duration::from_secs(60);
const STATE_FILE: &str = "remediation-docker.json";

/// Probes `endpoint` every 300 ms with state under `state_dir`; a budget of 3
/// restarts an hour, a hang declared after about a second.
fn config(endpoint: &str, state_dir: &Path, pidfile: &str) -> String {
    DockerAgentConfig {
        state_dir,
        endpoint,
        paths: "",
        restart: &signal_restart(Path::new(pidfile)),
        remediation: "failure_threshold = 3\nhang_after = \"1s\"\ncooldown = \"1s\"\nboot_grace = \"0s\"\n\
                      backoff_initial = \"30s\"\nbackoff_max = \"1m\"\nmax_restarts = 3\nwindow = \"1h\"\n\
                      backoff_jitter = 0.0",
        rest: support::OTHER_PROBES_OFF,
    }
    .render()
}

/// An endpoint nothing listens on: remediation runs, nothing is ever hung.
fn nowhere(state_dir: &Path) -> String {
    config(
        "unix:///nonexistent/nv.sock",
        state_dir,
        "/nonexistent/nv.pid",
    )
}

fn remediation_status(agent: &AgentProcess) -> serde_json::Value {
    let (code, body) = agent.get("/status");
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
    s["remediation"]["docker"].clone()
}

fn restarts_in_window(agent: &AgentProcess) -> u64 {
    let mut n = None;
    wait_until(MINUTE, "the remediation engine on /status", || {
        n = remediation_status(agent)["restarts_in_window"].as_u64();
        n.is_some()
    });
    n.unwrap()
}

fn reload(agent: &AgentProcess, nth: f64) {
    agent.signal(libc::SIGHUP);
    agent.wait_metrics(MINUTE, "the reload", |m| {
        m.get("nodevitals_config_reloads_total", &[("result", "success")]) == Some(nth)
    });
}

#[test]
fn a_corrupt_state_file_spends_the_budget_across_reloads_and_agent_restarts() {
    for garbage in [
        &b"\x00\x01 not json"[..],
        br#"{"version": 1, "restarts": []}"#,
        br#"{"version": 99, "restarts_unix": [], "backoff_step_seconds": 0, "next_allowed_unix": null, "events": []}"#,
    ] {
        let dir = short_tempdir("state-corrupt");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join(STATE_FILE), garbage).unwrap();
        let mut agent = AgentProcess::start(dir.path(), &nowhere(&state), &[]);
        assert_eq!(restarts_in_window(&agent), 3, "read as a spent budget");
        reload(&agent, 1.0);
        assert_eq!(restarts_in_window(&agent), 3, "still spent after SIGHUP");
        agent.signal(libc::SIGTERM);
        agent.wait_exit(MINUTE);
        let agent = AgentProcess::start(dir.path(), &nowhere(&state), &[]);
        assert_eq!(restarts_in_window(&agent), 3, "still spent after a restart");
        assert!(
            remediation_status(&agent)["state_file_error"].is_null(),
            "the conservative history was written back: {}",
            agent.logs()
        );
    }
}

#[test]
fn a_huge_well_formed_state_file_costs_no_memory_and_no_huge_status() {
    let dir = short_tempdir("state-huge");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let event = r#"{"at_unix":1700000000.0,"method":"signal","result":"success","recovery_seconds":1.5,"running_before":2,"running_after":0,"detail":"SIGTERM to 4242; would kill 2 running containers; padding padding padding padding padding padding"}"#;
    let events = vec![event; 200_000].join(",");
    let file = format!(
        r#"{{"version":1,"restarts_unix":[],"backoff_step_seconds":0,"next_allowed_unix":null,"events":[{events}]}}"#
    );
    assert!(file.len() > 40 << 20);
    std::fs::write(state.join(STATE_FILE), file).unwrap();
    let agent = AgentProcess::start(dir.path(), &nowhere(&state), &[]);
    restarts_in_window(&agent);
    let (_, body) = agent.get("/status");
    assert!(body.len() < 64 * 1024, "/status is {} bytes", body.len());
    let peak = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let hwm: u64 = peak
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        hwm < 64 * 1024,
        "peak RSS {hwm} KiB reading the file (now {} KiB)",
        rss_kib(agent.pid())
    );
}

/// A read-only filesystem, unmounted on drop however the test ends.
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    #[allow(clippy::disallowed_methods)]
    fn at(dir: &Path) -> ReadOnlyMount {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = process::output(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
                .arg(dir),
        );
        assert!(
            mounted.is_ok(),
            "mount a read-only tmpfs (needs root): {mounted:?}"
        );
        ReadOnlyMount(dir.to_owned())
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        process::unmount_under(&self.0);
    }
}

/// The state directory is a read-only filesystem. A hang is then not
/// restarted (it could not be recorded) but counted as a failed restart, and
/// that stays spent after a reload.
#[test]
fn a_restart_that_cannot_be_recorded_is_not_issued_and_reloads_keep_the_budget() {
    let d = Dockerd::start_supervised("state-ro");
    let dir = short_tempdir("state-ro-agent");
    let state = dir.path().join("state");
    let _ro = ReadOnlyMount::at(&state);
    let pidfile = d.pidfile.display().to_string();
    let agent = AgentProcess::start(dir.path(), &config(&d.endpoint(), &state, &pidfile), &[]);
    agent.wait_metrics(MINUTE, "docker up", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
    });
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let failed = |m: &support::Metrics| {
        m.all(
            "nodevitals_remediation_restarts_total",
            &[("target", "docker"), ("result", "failure")],
        )
        .iter()
        .sum::<f64>()
    };
    agent.wait_metrics(MINUTE, "the unrecorded restart counted as failed", |m| {
        failed(m) == 1.0
    });
    assert_eq!(d.pid(), pid, "dockerd was not touched");
    assert_eq!(d.starts(), 1);
    assert_eq!(restarts_in_window(&agent), 1);
    reload(&agent, 1.0);
    assert_eq!(
        restarts_in_window(&agent),
        1,
        "a reload keeps the budget spent"
    );
    let s = remediation_status(&agent);
    assert!(s["state_file_error"].as_str().is_some(), "{s:#}");
    process::signal(pid, libc::SIGCONT);
    assert_eq!(d.starts(), 1);
}
