//! The agent as a Prometheus scrape target, and the shipped alert rules, against
//! the real Prometheus tools (Debian `prometheus`): promtool validates and
//! unit-tests the rules; a real Prometheus server on loopback loads them,
//! scrapes the agent every second and sees the test's dockerd up; promtool
//! lints a real scrape.

mod support;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::dockerd::Dockerd;
use support::prometheus::Prometheus;
use support::{short_tempdir, wait_until, AgentProcess};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

#[allow(clippy::disallowed_methods)] // runs promtool, a real tool
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    support::require("promtool", "prometheus");
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn rules_are_valid_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "nodevitals-rules.yml"], None);
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool check rules:\n{out}"
    );
    let (ok, out) = promtool(&["test", "rules", "nodevitals-rules.test.yml"], None);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_dockerd_up() {
    let d = Dockerd::start("prom");
    let dir = short_tempdir("prom-agent");
    let agent = AgentProcess::start(dir.path(), &support::docker_config(&d.endpoint()), &[]);
    let prom = Prometheus::start(&[agent.addr], &[&rules_dir().join("nodevitals-rules.yml")]);
    let ctx = || {
        format!(
            "prometheus log:\n{}\nagent log:\n{}",
            prom.log(),
            agent.logs()
        )
    };

    wait_until(Duration::from_secs(30), "up == 1", || {
        prom.query(r#"up{job="nodevitals"}"#) == [1.0]
    });
    wait_until(
        Duration::from_secs(30),
        "nodevitals_runtime_up == 1",
        || prom.query(r#"nodevitals_runtime_up{job="nodevitals",runtime="docker"}"#) == [1.0],
    );
    // Counters reach Prometheus under their exposed names (OpenMetrics scrape).
    assert_eq!(
        prom.query(r#"nodevitals_probe_success{probe="docker"}"#),
        [1.0],
        "{}",
        ctx()
    );
    assert!(
        !prom.query("nodevitals_config_reloads_total").is_empty(),
        "{}",
        ctx()
    );

    // Every shipped rule loads and evaluates cleanly against real data.
    wait_until(Duration::from_secs(20), "every rule evaluated", || {
        let rules = prom.api("/api/v1/rules");
        let all: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        !all.is_empty()
            && all.iter().all(|r| {
                assert_ne!(r["health"], "err", "rule failed: {r}");
                r["health"] == "ok"
            })
    });
    // Nothing is wrong, so nothing fires.
    assert!(prom.query("ALERTS").is_empty(), "alerts fired:\n{}", ctx());

    // A hang as in production: dockerd stops answering (SIGSTOP; the guard
    // resumes it). The shipped expressions, on what the agent really exports,
    // call it hung, not down (their `for:` is left to promtool's unit tests).
    support::process::signal(d.pid(), libc::SIGSTOP);
    let hung = rule_expr("NodevitalsRuntimeHung");
    wait_until(
        Duration::from_secs(30),
        "the hung-runtime expression to match",
        || prom.query(&hung) == [0.0],
    );
    assert!(
        prom.query(&rule_expr("NodevitalsRuntimeDown")).is_empty(),
        "a hung runtime is not down\n{}",
        ctx()
    );
}

/// The expression of the shipped alert `name`.
fn rule_expr(name: &str) -> String {
    let text = std::fs::read_to_string(rules_dir().join("nodevitals-rules.yml")).unwrap();
    let rules: Value = serde_norway::from_str(&text).expect("rules are YAML");
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| r["alert"] == name)
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no alert {name}"))
        .to_owned()
}

#[test]
fn promtool_finds_no_problem_in_a_real_scrape() {
    let d = Dockerd::start("lint");
    let dir = short_tempdir("lint-agent");
    let agent = AgentProcess::start(dir.path(), &support::docker_config(&d.endpoint()), &[]);
    let m = agent.wait_metrics(Duration::from_secs(10), "runtime_up", |m| {
        m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
    });
    let (ok, out) = promtool(&["check", "metrics"], Some(&m.text));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\nscrape:\n{}",
        m.text
    );
}
