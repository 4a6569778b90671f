//! Remediation end to end: the agent binary against a real dockerd run under a
//! supervisor thread (standing in for systemd's `Restart=always`), hung the way
//! it hangs in production: SIGSTOP. Every test has its own dockerd, agent and
//! state directory, so they run in parallel.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::agent_config::DockerAgentConfig;
use support::dockerd::Dockerd;
use support::{process, short_tempdir, wait_until, AgentProcess, Metrics};

const RESTARTS: &str = "nodevitals_remediation_restarts_total";
const SKIPPED: &str = "nodevitals_remediation_skipped_total";
const STATE: &str = "nodevitals_remediation_state";
const MINUTE: Duration = Duration::from_secs(60);

/// Remediation policy of these tests: fast probes, short hang detection.
const POLICY: &[(&str, &str)] = &[
    ("failure_threshold", "3"),
    ("hang_after", "\"1500ms\""),
    ("cooldown", "\"1s\""),
    ("boot_grace", "\"0s\""),
    ("backoff_initial", "\"30s\""),
    ("backoff_max", "\"1m\""),
    ("max_restarts", "3"),
    ("window", "\"1h\""),
    ("reset_after", "\"10m\""),
    ("recovery_timeout", "\"30s\""),
    ("backoff_jitter", "0.0"),
];

/// An agent config probing `endpoint` every 300 ms (deadline 250 ms), with
/// state under `state_dir`; `policy` and `restart` override keys.
fn config(
    endpoint: &str,
    state_dir: &Path,
    policy: &[(&str, &str)],
    restart: &[(&str, &str)],
) -> String {
    let merge = |base: &[(&str, &str)], over: &[(&str, &str)]| {
        let mut keys: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .chain(over)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        keys.sort();
        keys.iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
    };
    DockerAgentConfig {
        state_dir,
        endpoint,
        paths: "",
        restart: &merge(&[("method", "\"signal\""), ("grace", "\"1s\"")], restart),
        remediation: &merge(POLICY, policy),
        rest: support::OTHER_PROBES_OFF,
    }
    .render()
}

fn pidfile_key(d: &Dockerd) -> String {
    format!("\"{}\"", d.pidfile.display())
}

fn restarts(m: &Metrics, result: &str) -> f64 {
    m.all(RESTARTS, &[("target", "docker"), ("result", result)])
        .iter()
        .sum()
}

fn all_restarts(m: &Metrics) -> f64 {
    m.all(RESTARTS, &[("target", "docker")]).iter().sum()
}

fn skipped(m: &Metrics, reason: &str) -> f64 {
    m.get(SKIPPED, &[("target", "docker"), ("reason", reason)])
        .unwrap_or(0.0)
}

fn in_state(m: &Metrics, state: &str) -> bool {
    m.get(STATE, &[("target", "docker"), ("state", state)]) == Some(1.0)
}

fn status(agent: &AgentProcess) -> serde_json::Value {
    let (code, body) = agent.get("/status");
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
    s["remediation"]["docker"].clone()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn wait_healthy(agent: &AgentProcess) -> Metrics {
    agent.wait_metrics(MINUTE, "docker up and remediation healthy", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
            && in_state(m, "healthy")
    })
}

/// A supervised dockerd running one container, and an agent (with `policy`)
/// that sees it healthy, knows the container and has read live-restore.
fn agent_with_one_container(
    name: &str,
    policy: &[(&str, &str)],
) -> (Dockerd, tempfile::TempDir, AgentProcess, Metrics) {
    let d = Dockerd::start_supervised(name);
    d.build_busybox_image();
    d.run_sleeper(&[]);
    let dir = short_tempdir(&format!("{name}-agent"));
    let cfg = config(
        &d.endpoint(),
        &dir.path().join("state"),
        policy,
        &[("pidfile", &pidfile_key(&d))],
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    let m = agent.wait_metrics(MINUTE, "healthy with one running container", |m| {
        in_state(m, "healthy")
            && m.get(
                "nodevitals_runtime_containers",
                &[("runtime", "docker"), ("state", "running")],
            ) == Some(1.0)
            && m.has("nodevitals_runtime_live_restore", &[("runtime", "docker")])
    });
    (d, dir, agent, m)
}

/// One hang: detected, dockerd killed via its pidfile and brought back by its
/// supervisor, recovery measured, the running container accounted for. A
/// second hang inside the backoff is held back.
#[test]
fn hang_is_restarted_by_signal_then_held_by_backoff() {
    let (d, _dir, agent, m) = agent_with_one_container("rem-hang", &[]);
    // dockerd runs without live-restore: a restart will kill the container.
    assert_eq!(
        m.get("nodevitals_runtime_live_restore", &[("runtime", "docker")]),
        Some(0.0)
    );
    assert_eq!(all_restarts(&m), 0.0);

    let hung = d.pid();
    let stopped_at = unix_now();
    process::signal(hung, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "one successful restart", |m| {
        restarts(m, "success") == 1.0
    });
    assert_ne!(d.pid(), hung, "dockerd was replaced");
    assert_eq!(d.starts(), 2, "{}", d.log());
    assert_eq!(restarts(&m, "failure"), 0.0);
    assert_eq!(
        m.get(
            "nodevitals_remediation_recovery_seconds_count",
            &[("target", "docker")]
        ),
        Some(1.0)
    );
    d.wait_answering(MINUTE);
    let s = status(&agent);
    let event = &s["history"][0];
    assert_eq!(event["result"], "success", "{s:#}");
    assert_eq!(event["method"], "signal");
    assert_eq!(event["running_before"], 1, "{s:#}");
    let after = d.running_containers() as u64;
    assert_eq!(event["running_after"], after, "{s:#}");
    let issued = event["at_unix"].as_f64().unwrap();
    let recovery = event["recovery_seconds"].as_f64().unwrap();
    assert!(recovery > 0.0);
    eprintln!(
        "MEASURE sigstop_to_restart_issued_seconds={:.3} restart_to_healthy_seconds={recovery:.3} running_before=1 running_after={after}",
        issued - stopped_at
    );
    let log = agent.logs();
    assert!(
        log.contains("will kill 1 running containers"),
        "the cost of the restart is logged:\n{log}"
    );

    // Hangs again at once: the 30 s backoff holds the restart back.
    let second = d.pid();
    process::signal(second, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "the second hang held by backoff", |m| {
        skipped(m, "backoff") >= 2.0 && in_state(m, "backoff")
    });
    assert_eq!(all_restarts(&m), 1.0);
    assert_eq!(d.pid(), second);
    assert_eq!(d.starts(), 2);
    assert!(
        m.get(
            "nodevitals_remediation_next_allowed_timestamp_seconds",
            &[("target", "docker")]
        )
        .unwrap()
            > unix_now()
    );
    process::signal(second, libc::SIGCONT);
}

/// SIGSTOPs every dockerd its pidfile names, so each restarted daemon hangs
/// again: a permanent hang.
struct Freezer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Freezer {
    #[allow(clippy::disallowed_methods)]
    fn start(pidfile: &Path) -> Freezer {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, pidfile) = (Arc::clone(&stop), pidfile.to_owned());
        let thread = std::thread::spawn(move || {
            let mut frozen = 0;
            while !flag.load(Ordering::SeqCst) {
                let pid = process::read_pid(&pidfile);
                if let Some(pid) = pid.filter(|p| *p != frozen && process::alive(*p)) {
                    process::signal(pid, libc::SIGSTOP);
                    frozen = pid;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Freezer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A permanent hang: restarts follow the backoff (2 s, then 3 s at the cap)
/// and stop at the budget of 3. The agent is killed after two restarts and a
/// new one carries on from the state file: one more restart, then exhausted.
#[test]
fn permanent_hang_backs_off_to_the_budget_across_agent_restarts() {
    let d = Dockerd::start_supervised("rem-perm");
    let state = short_tempdir("rem-perm-state");
    let cfg = config(
        &d.endpoint(),
        state.path(),
        &[
            ("hang_after", "\"1s\""),
            ("cooldown", "\"0s\""),
            ("recovery_timeout", "\"2s\""),
            ("backoff_initial", "\"2s\""),
            ("backoff_max", "\"3s\""),
        ],
        &[("pidfile", &pidfile_key(&d)), ("grace", "\"500ms\"")],
    );
    let dir_a = short_tempdir("rem-perm-a");
    let agent_a = AgentProcess::start(dir_a.path(), &cfg, &[]);
    wait_healthy(&agent_a);
    let freezer = Freezer::start(&d.pidfile);
    wait_until(MINUTE, "two restarts by the first agent", || {
        d.starts() == 3
    });
    drop(agent_a);
    let saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.path().join("remediation-docker.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["restarts_unix"].as_array().unwrap().len(), 2);

    let dir_b = short_tempdir("rem-perm-b");
    let agent_b = AgentProcess::start(dir_b.path(), &cfg, &[]);
    wait_until(MINUTE, "the new agent's status", || {
        !status(&agent_b)["state"].is_null()
    });
    assert_eq!(
        status(&agent_b)["restarts_in_window"],
        2,
        "budget survives the agent"
    );
    let m = agent_b.wait_metrics(MINUTE, "exhausted", |m| {
        in_state(m, "exhausted") && skipped(m, "budget") >= 3.0
    });
    assert_eq!(all_restarts(&m), 1.0, "the new agent restarted once");
    assert_eq!(d.starts(), 4);
    let history = status(&agent_b)["history"].clone();
    let at: Vec<f64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_unix"].as_f64().unwrap())
        .collect();
    assert_eq!(at.len(), 3, "{history:#}");
    assert!(at[1] - at[0] >= 2.0, "first backoff step: {at:?}");
    assert!(at[2] - at[1] >= 3.0, "capped backoff step: {at:?}");
    assert!(
        agent_b
            .logs()
            .contains("RUNTIME HUNG AND RESTART BUDGET EXHAUSTED"),
        "exhaustion is logged at error level"
    );
    // Exhausted stays exhausted: more rounds, no more restarts.
    let m = agent_b.wait_metrics(MINUTE, "more rounds while exhausted", |m| {
        skipped(m, "budget") >= 8.0
    });
    assert_eq!(all_restarts(&m), 1.0);
    assert_eq!(d.starts(), 4);
    drop(freezer);
}

/// Slow is not hung. For three times `hang_after`, every round misses its
/// 250 ms deadline: dockerd is stopped, and let run only after a round has
/// timed out, long enough to answer that round's ping late, then stopped
/// again before the next round. Failures pile up past `failure_threshold` and
/// no request is answered in time, so the late answers alone keep the silence
/// under `hang_after`: nothing may be restarted.
#[test]
fn slow_but_alive_is_not_restarted() {
    let d = Dockerd::start_supervised("rem-slow");
    let dir = short_tempdir("rem-slow-agent");
    // Rounds a second apart leave 750 ms between a round's deadline and the
    // next round for the late answer.
    let cfg = config(
        &d.endpoint(),
        &dir.path().join("state"),
        &[("hang_after", "\"2s\"")],
        &[("pidfile", &pidfile_key(&d))],
    )
    .replace("interval = \"300ms\"", "interval = \"1s\"");
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    let before = wait_healthy(&agent);
    let ping = |m: &Metrics, result: &str| {
        m.get(
            "nodevitals_runtime_requests_total",
            &[
                ("runtime", "docker"),
                ("operation", "ping"),
                ("result", result),
            ],
        )
        .unwrap_or(0.0)
    };
    let late = |m: &Metrics| {
        m.all(
            "nodevitals_runtime_late_answers_total",
            &[("runtime", "docker")],
        )
        .iter()
        .sum::<f64>()
    };
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let slow_since = tokio::time::Instant::now();
    let (mut timeouts, mut answered_late) = (ping(&before, "timeout"), late(&before));
    while slow_since.elapsed() < Duration::from_secs(6) {
        let m = agent.wait_metrics(MINUTE, "a round past its deadline", |m| {
            ping(m, "timeout") > timeouts || all_restarts(m) > 0.0
        });
        assert_eq!(all_restarts(&m), 0.0, "restarted while slow but alive");
        timeouts = ping(&m, "timeout");
        process::signal(pid, libc::SIGCONT);
        let m = agent.wait_metrics(MINUTE, "its late answer", |m| late(m) > answered_late);
        process::signal(pid, libc::SIGSTOP);
        answered_late = late(&m);
    }
    process::signal(pid, libc::SIGCONT);
    let m = agent.metrics();
    assert_eq!(
        ping(&m, "ok"),
        ping(&before, "ok"),
        "a ping was answered in time while dockerd was slow: nothing was proven"
    );
    assert!(ping(&m, "timeout") - ping(&before, "timeout") >= 5.0);
    assert!(
        skipped(&m, "not_a_hang") >= 1.0,
        "failures reached the threshold and only late answers said it was no hang"
    );
    assert_eq!(all_restarts(&m), 0.0, "{}", agent.logs());

    let runs = |m: &Metrics| {
        m.get(
            "nodevitals_probe_duration_seconds_count",
            &[("probe", "docker")],
        )
        .unwrap_or(0.0)
    };
    let m = agent.wait_metrics(MINUTE, "up again", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
    });
    let seen = runs(&m);
    let m = agent.wait_metrics(MINUTE, "three more rounds", |m| runs(m) >= seen + 3.0);
    assert_eq!(all_restarts(&m), 0.0);
    assert!(in_state(&m, "healthy"));
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);
}

/// A wrong socket path, a regular file, and permission denied (the agent runs
/// as `nobody`): reported, never remediated, although each agent's pidfile
/// names a real dockerd.
#[test]
fn misconfiguration_is_never_remediated() {
    let d = Dockerd::start_supervised("rem-misconf");
    let scratch = short_tempdir("rem-misconf");
    let file = scratch.path().join("not-a-socket");
    std::fs::write(&file, b"").unwrap();
    let missing = format!("unix://{}/missing/docker.sock", scratch.path().display());
    let regular = format!("unix://{}", file.display());
    let pidfile = pidfile_key(&d);
    let start = |name: &str, endpoint: &str, as_nobody: bool| {
        let dir = short_tempdir(name);
        // `nobody` must read its config; the state dir is never written here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let cfg = config(
            endpoint,
            &dir.path().join("state"),
            &[("failure_threshold", "2"), ("hang_after", "\"1s\"")],
            &[("pidfile", &pidfile)],
        );
        let agent = AgentProcess::start_with(dir.path(), &cfg, &[], |cmd| {
            if as_nobody {
                std::os::unix::process::CommandExt::uid(cmd, 65534);
                std::os::unix::process::CommandExt::gid(cmd, 65534);
            }
        });
        (dir, agent)
    };
    let agents = [
        ("refused", start("rem-mis-path", &missing, false)),
        ("misconfigured", start("rem-mis-file", &regular, false)),
        ("misconfigured", start("rem-mis-perm", &d.endpoint(), true)),
    ];
    for (outcome, (_, agent)) in &agents {
        // Eight rounds at 300 ms reach well past hang_after.
        let m = agent.wait_metrics(MINUTE, "misconfiguration skips", |m| {
            skipped(m, "misconfigured") >= 8.0
        });
        assert_eq!(all_restarts(&m), 0.0, "{}", agent.logs());
        assert!(in_state(&m, "failing"));
        let (_, body) = agent.get("/status");
        let s: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["probes"]["docker"]["outcome"], *outcome, "{s:#}");
    }
    assert_eq!(d.starts(), 1, "dockerd was never touched");
    assert!(!process::stopped(d.pid()));
}

/// Dry run: the restart decision is taken and recorded, dockerd is untouched.
#[test]
fn dry_run_records_the_decision_and_leaves_dockerd_alone() {
    let d = Dockerd::start_supervised("rem-dry");
    let dir = short_tempdir("rem-dry-agent");
    let state = dir.path().join("state");
    let cfg = config(&d.endpoint(), &state, &[], &[("pidfile", &pidfile_key(&d))]);
    let agent = AgentProcess::start(dir.path(), &cfg, &["--dry-run"]);
    wait_healthy(&agent);
    // --dry-run outlives a reload of a file that does not say dry_run.
    agent.signal(libc::SIGHUP);
    agent.wait_metrics(MINUTE, "the reload", |m| {
        m.get("nodevitals_config_reloads_total", &[("result", "success")]) == Some(1.0)
    });
    wait_healthy(&agent);
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "a dry-run restart", |m| {
        restarts(m, "dry_run") == 1.0
    });
    assert_eq!(restarts(&m, "success") + restarts(&m, "failure"), 0.0);
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);
    assert!(process::stopped(pid), "dockerd got no signal but ours");
    let s = status(&agent);
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["history"][0]["result"], "dry_run", "{s:#}");
    assert!(state.join("remediation-docker.dry-run.json").exists());
    assert!(!state.join("remediation-docker.json").exists());
    process::signal(pid, libc::SIGCONT);
}

/// An agent restarting the supervised `d` with `method` (and `keys`): it sees
/// dockerd healthy, dockerd hangs (SIGSTOP), and one restart succeeds, after
/// which a new dockerd runs.
fn restart_one_hang_with(
    d: &Dockerd,
    dir: &Path,
    method: &str,
    keys: &[(&str, &str)],
) -> AgentProcess {
    let method_key = format!("{method:?}");
    let restart: Vec<(&str, &str)> = [("method", method_key.as_str())]
        .into_iter()
        .chain(keys.iter().copied())
        .collect();
    let cfg = config(&d.endpoint(), &dir.join("state"), &[], &restart);
    let agent = AgentProcess::start(dir, &cfg, &[]);
    wait_healthy(&agent);
    let hung = d.pid();
    process::signal(hung, libc::SIGSTOP);
    let labels = [
        ("target", "docker"),
        ("method", method),
        ("result", "success"),
    ];
    let m = agent.wait_metrics(MINUTE, &format!("a successful {method} restart"), |m| {
        m.get(RESTARTS, &labels) == Some(1.0)
    });
    assert_eq!(all_restarts(&m), 1.0);
    assert_ne!(d.pid(), hung, "dockerd was replaced");
    assert_eq!(d.starts(), 2, "{}", d.log());
    agent
}

/// The `command` method: the configured argv runs once per restart. Here it
/// records its run and kills the hung dockerd, which its supervisor starts
/// again, as an operator's own restart script would.
#[test]
fn command_method_runs_the_configured_argv() {
    let d = Dockerd::start_supervised("rem-command");
    let dir = short_tempdir("rem-command-agent");
    let runs = dir.path().join("runs");
    let script = format!(
        "echo \"$0 $1\" >> {runs}; kill -KILL $(cat {pidfile})",
        runs = runs.display(),
        pidfile = d.pidfile.display()
    );
    let command = format!("[\"/bin/sh\", \"-c\", {script:?}, \"restart-docker\", \"now\"]");
    let agent = restart_one_hang_with(&d, dir.path(), "command", &[("command", &command)]);
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "restart-docker now\n"
    );
    d.wait_answering(MINUTE);
    wait_healthy(&agent);
}

/// A corrupt state file is reported, set aside, and read as a spent budget:
/// a hang right after is not restarted.
#[test]
fn corrupt_state_file_is_read_as_a_spent_budget() {
    let d = Dockerd::start_supervised("rem-corrupt");
    let dir = short_tempdir("rem-corrupt-agent");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("remediation-docker.json"),
        b"{\"version\": 1, \"rest",
    )
    .unwrap();
    let cfg = config(&d.endpoint(), &state, &[], &[("pidfile", &pidfile_key(&d))]);
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    let m = wait_healthy(&agent);
    assert_eq!(
        m.get(
            "nodevitals_remediation_state_file_errors_total",
            &[("target", "docker")]
        ),
        Some(1.0)
    );
    assert!(state.join("remediation-docker.json.corrupt").exists());
    let s = status(&agent);
    assert!(
        s["state_file_error"].as_str().unwrap().contains("corrupt"),
        "{s:#}"
    );
    assert_eq!(s["restarts_in_window"], 3, "{s:#}");
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "the hang held by the budget", |m| {
        in_state(m, "exhausted") && skipped(m, "budget") >= 3.0
    });
    assert_eq!(all_restarts(&m), 0.0);
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);
    process::signal(pid, libc::SIGCONT);
}

/// `refuse_if_kills_workloads`: dockerd runs without live-restore and has a
/// running container, so a restart would kill it: refused, dockerd untouched.
#[test]
fn restart_that_would_kill_workloads_is_refused() {
    let (d, _dir, agent, m) =
        agent_with_one_container("rem-refuse", &[("refuse_if_kills_workloads", "true")]);
    assert_eq!(
        m.get("nodevitals_runtime_live_restore", &[("runtime", "docker")]),
        Some(0.0)
    );
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "the restart refused", |m| {
        skipped(m, "kills_workloads") >= 3.0
    });
    assert_eq!(all_restarts(&m), 0.0);
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);
    process::signal(pid, libc::SIGCONT);
    d.wait_answering(MINUTE);
    assert_eq!(d.running_containers(), 1, "the container survived");
}

/// A dockerd blocked in the kernel (its process in a frozen cgroup v1 freezer
/// cgroup: even SIGKILL waits until it is thawed) is classified blocked and
/// held back as `unkillable`: no restart, no budget spent. Thawed, it answers
/// again and is healthy without a restart.
#[test]
fn frozen_dockerd_is_unkillable_spends_nothing_and_recovers_when_thawed() {
    let d = Dockerd::start_supervised("rem-frozen");
    let dir = short_tempdir("rem-frozen-agent");
    let cfg = config(
        &d.endpoint(),
        &dir.path().join("state"),
        &[("blocked_after", "\"600ms\"")],
        &[("pidfile", &pidfile_key(&d))],
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    wait_healthy(&agent);
    let pid = d.pid();
    let frozen = support::freezer::FrozenCgroup::freeze(pid);
    let m = agent.wait_metrics(MINUTE, "the hang held back as unkillable", |m| {
        skipped(m, "unkillable") >= 3.0 && in_state(m, "unkillable")
    });
    assert_eq!(all_restarts(&m), 0.0);
    assert_eq!(
        m.get(
            "nodevitals_remediation_hang_class",
            &[("target", "docker"), ("class", "blocked")]
        ),
        Some(1.0)
    );
    let s = status(&agent);
    assert_eq!(s["restarts_in_window"], 0, "budget untouched: {s:#}");
    assert_eq!(s["next_allowed_unix"], serde_json::Value::Null, "{s:#}");
    let hang = &s["last_hang"];
    assert_eq!(hang["class"], "blocked", "{s:#}");
    assert_eq!(hang["cgroup_frozen"], true, "{s:#}");
    assert_eq!(hang["pid"], pid, "{s:#}");
    assert!(hang["threads"]["D"].as_u64().unwrap() >= 1, "{s:#}");
    let log = agent.logs();
    assert!(
        log.contains("RUNTIME BLOCKED IN THE KERNEL") && log.contains("cgroup frozen"),
        "the decision is logged with its diagnosis:\n{log}"
    );
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);

    frozen.thaw();
    let m = wait_healthy(&agent);
    assert_eq!(all_restarts(&m), 0.0, "recovered without a restart");
    assert_eq!(d.pid(), pid);
    assert_eq!(d.starts(), 1);
}

/// A SIGSTOPped dockerd is killed without waiting out its TERM grace (10 s
/// here, as the default): SIGSTOP to the old process gone stays within
/// `hang_after` + one interval + 2 s.
#[test]
fn stopped_dockerd_is_restarted_without_waiting_out_the_grace() {
    let d = Dockerd::start_supervised("rem-stopped");
    let dir = short_tempdir("rem-stopped-agent");
    let cfg = config(
        &d.endpoint(),
        &dir.path().join("state"),
        &[],
        &[("pidfile", &pidfile_key(&d)), ("grace", "\"10s\"")],
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    wait_healthy(&agent);
    let hung = d.pid();
    let stopped_at = tokio::time::Instant::now();
    process::signal(hung, libc::SIGSTOP);
    wait_until(MINUTE, "the stopped dockerd to be killed", || {
        !process::alive(hung)
    });
    let gone = stopped_at.elapsed();
    eprintln!(
        "MEASURE sigstop_to_process_gone_seconds={:.3} (grace 10s)",
        gone.as_secs_f64()
    );
    // hang_after 1.5 s + one 300 ms interval + 2 s.
    assert!(
        gone <= Duration::from_millis(3800),
        "hang to restart took {gone:?}:\n{}",
        agent.logs()
    );
    let m = agent.wait_metrics(MINUTE, "the restart recovered", |m| {
        restarts(m, "success") == 1.0
    });
    assert_eq!(
        m.get(
            "nodevitals_remediation_hang_class",
            &[("target", "docker"), ("class", "stopped")]
        ),
        Some(1.0)
    );
    let s = status(&agent);
    let detail = s["history"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("without the TERM grace"), "{s:#}");
    assert_eq!(s["last_hang"]["class"], "stopped", "{s:#}");
}

/// The goroutine dump dockerd writes on SIGUSR1 is copied into
/// `state_dir/dumps` at each restart and named in the history on `/status`;
/// after more restarts than `keep_dumps`, only the newest are kept.
#[test]
fn goroutine_dumps_are_kept_in_the_state_dir_within_their_bound() {
    let d = Dockerd::start_supervised("rem-dumps");
    let dir = short_tempdir("rem-dumps-agent");
    let state = dir.path().join("state");
    let cfg = config(
        &d.endpoint(),
        &state,
        &[
            ("keep_dumps", "2"),
            ("cooldown", "\"0s\""),
            ("backoff_initial", "\"1s\""),
            ("backoff_max", "\"1s\""),
            ("max_restarts", "10"),
        ],
        &[("pidfile", &pidfile_key(&d))],
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    wait_healthy(&agent);
    for round in 1..=3 {
        d.wait_answering(MINUTE);
        wait_healthy(&agent);
        process::signal(d.pid(), libc::SIGSTOP);
        agent.wait_metrics(MINUTE, "one more successful restart", |m| {
            restarts(m, "success") == f64::from(round)
        });
        let s = status(&agent);
        let event = s["history"].as_array().unwrap().last().unwrap().clone();
        let dump = event["dump"]
            .as_str()
            .unwrap_or_else(|| panic!("no dump: {s:#}"));
        assert!(
            dump.starts_with(&state.join("dumps").display().to_string()),
            "{dump}"
        );
        let text = std::fs::read_to_string(dump).unwrap();
        assert!(
            text.contains("goroutine"),
            "a goroutine dump: {}",
            &text[..text.len().min(200)]
        );
    }
    let kept = std::fs::read_dir(state.join("dumps")).unwrap().count();
    assert_eq!(kept, 2, "keep_dumps bounds what is kept");
    let m = agent.metrics();
    assert_eq!(
        m.get("nodevitals_remediation_dumps_kept", &[("target", "docker")]),
        Some(2.0)
    );
    assert_eq!(status(&agent)["dumps_kept"], 2);
}

/// dockerd's data root on a small tmpfs the test fills: its free bytes and
/// inodes are reported, the hang decision carries them, and the default
/// policy (`on_disk_full = "skip"`) holds the restart back as `disk_full`.
#[test]
fn full_runtime_root_is_reported_and_holds_the_restart_back() {
    let d = Dockerd::start_supervised_on_tmpfs("rem-full", "64m", 4096);
    let dir = short_tempdir("rem-full-agent");
    let cfg = config(
        &d.endpoint(),
        &dir.path().join("state"),
        &[],
        &[("pidfile", &pidfile_key(&d))],
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    let free = |m: &Metrics, what: &str| {
        m.get(
            &format!("nodevitals_runtime_root_free_{what}"),
            &[("runtime", "docker")],
        )
    };
    let m = agent.wait_metrics(MINUTE, "the root's free space", |m| {
        free(m, "bytes").is_some() && in_state(m, "healthy")
    });
    let before = free(&m, "bytes").unwrap();
    assert!(before > 1e6 && before <= 64.0 * 1024.0 * 1024.0, "{before}");
    assert!(free(&m, "inodes").unwrap() > 0.0);
    fill(&d.dir.path().join("data"));
    let m = agent.wait_metrics(MINUTE, "the root seen full", |m| {
        free(m, "bytes").is_some_and(|b| b < 64.0 * 1024.0 * 1024.0 * 0.01)
    });
    assert!(free(&m, "bytes").unwrap() < before);
    let pid = d.pid();
    process::signal(pid, libc::SIGSTOP);
    let m = agent.wait_metrics(MINUTE, "the hang held back as disk_full", |m| {
        skipped(m, "disk_full") >= 2.0
    });
    assert_eq!(all_restarts(&m), 0.0);
    let s = status(&agent);
    assert_eq!(s["last_hang"]["runtime_root_full"], true, "{s:#}");
    let root = &s["last_hang"]["runtime_root"];
    assert_eq!(
        root["path"],
        d.dir.path().join("data").display().to_string(),
        "{s:#}"
    );
    assert!(root["free_bytes"].as_u64().is_some() && root["free_inodes"].as_u64().is_some());
    assert!(agent.logs().contains("RUNTIME ROOT FULL"));
    assert_eq!(d.starts(), 1);
    process::signal(pid, libc::SIGCONT);
}

/// Writes files into `dir` until the filesystem refuses more (bounded by count).
fn fill(dir: &Path) {
    let chunk = vec![0u8; 1 << 20];
    for i in 0..256 {
        use std::io::Write;
        let Ok(mut f) = std::fs::File::create(dir.join(format!("filler-{i}"))) else {
            return;
        };
        if f.write_all(&chunk).is_err() {
            return;
        }
    }
}
