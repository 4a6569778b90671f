//! The command line and signals: config errors exit 2 before binding a port,
//! SIGHUP reloads (keeping the last good config), SIGTERM exits promptly.

mod support;

use std::process::Command;
use std::time::Duration;
use support::kubelet::FakeKubelet;
use support::{short_tempdir, wait_until, AgentProcess};

#[allow(clippy::disallowed_methods)]
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nodevitals"));
    cmd.args(args)
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("DOCKER_HOST");
    cmd
}

fn nodevitals(args: &[&str]) -> std::process::Output {
    command(args).output().expect("run nodevitals")
}

/// A runtime whose socket does not exist: a probe that needs no daemon.
fn quiet() -> String {
    format!(
        r#"
[[runtime]]
kind = "docker"
endpoint = "unix:///nonexistent/nodevitals-test.sock"
interval = "1s"
timeout = "500ms"
{}"#,
        support::ONLY_RUNTIME
    )
}

#[test]
fn invalid_config_exits_2_naming_file_key_and_line() {
    let dir = short_tempdir("cli");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[dns]\nenabled = true\ninterval = \"10 parsecs\"\n").unwrap();
    let listen = "127.0.0.1:0";
    let out = nodevitals(&["--config", path.to_str().unwrap(), "--listen", listen]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("dns.interval"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("serving"), "a port was bound: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

#[test]
fn explicit_missing_config_is_an_error_and_semantic_errors_name_the_key() {
    let out = nodevitals(&["--config", "/nonexistent/nodevitals.toml", "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/nodevitals.toml"));

    let dir = short_tempdir("cli");
    let path = dir.path().join("timing.toml");
    std::fs::write(&path, "[kubelet]\ninterval = \"1s\"\ntimeout = \"5s\"\n").unwrap();
    let out = nodevitals(&["--config", path.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubelet.timeout"));
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = short_tempdir("cli");
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, "[cpu]\ninterval = \"42s\"\n").unwrap();
    let out = nodevitals(&["--config", path.to_str().unwrap(), "check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("interval = \"42s\""), "{text}");
    // Defaults of untouched sections are printed too, and the output reparses.
    assert!(text.contains("failure_threshold = 3"), "{text}");
    nodevitals::config::Config::parse(std::path::Path::new("printed"), &text)
        .expect("printed config parses back");
}

#[test]
fn sighup_reloads_and_keeps_the_last_good_config() {
    let dir = short_tempdir("cli");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    let reloads = |result: &str| {
        agent
            .metrics()
            .get("nodevitals_config_reloads_total", &[("result", result)])
            .unwrap_or(-1.0)
    };
    assert_eq!(reloads("failure"), 0.0);

    // An invalid file: rejected, counted, the docker probe keeps running.
    std::fs::write(&agent.config_path, "[dns]\nbogus = 1\n").unwrap();
    agent.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(5), "failed reload counted", || {
        reloads("failure") == 1.0
    });
    assert!(agent.logs().contains("bogus"), "{}", agent.logs());
    let before = agent.metrics().probe_runs("docker");
    agent.wait_metrics(Duration::from_secs(5), "docker probe still running", |m| {
        m.probe_runs("docker") >= before + 1.0
    });

    // A valid file that enables the kubelet probe: applied.
    let kubelet = FakeKubelet::start();
    let with_kubelet = quiet().replace(
        "[kubelet]\nenabled = false",
        &format!(
            "[kubelet]\nenabled = true\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"",
            kubelet.url()
        ),
    );
    std::fs::write(&agent.config_path, with_kubelet).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_metrics(Duration::from_secs(5), "kubelet probe after reload", |m| {
        m.get("nodevitals_config_reloads_total", &[("result", "success")]) == Some(1.0)
            && m.get("nodevitals_kubelet_up", &[]) == Some(1.0)
    });
}

#[test]
fn sigterm_exits_promptly_and_cleanly() {
    let dir = short_tempdir("cli");
    let mut agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    agent.signal(libc::SIGTERM);
    let code = agent.wait_exit(Duration::from_secs(6));
    assert_eq!(code, Some(0), "{}", agent.logs());
}

#[test]
fn endpoints_answer_and_readiness_follows_first_runs() {
    let dir = short_tempdir("cli");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    wait_until(Duration::from_secs(5), "readyz", || {
        agent.get("/readyz").0 == 200
    });
    assert_eq!(agent.get("/healthz").0, 200);
    let (code, index) = agent.get("/");
    assert_eq!(code, 200);
    assert!(index.contains("/metrics"));
    assert_eq!(agent.get("/nope").0, 404);
    let m = agent.metrics();
    assert_eq!(
        m.get(
            "nodevitals_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(
        m.has("nodevitals_node_info", &[("runtime", "docker")]),
        "{}",
        m.text
    );
}

/// curl (a real HTTP client that decodes gzip itself) against the agent:
/// gzip only when `Accept-Encoding` allows it, in both formats, and the
/// decoded body is a whole exposition.
#[test]
#[allow(clippy::disallowed_methods)]
fn metrics_are_gzipped_when_the_client_accepts_it() {
    let dir = short_tempdir("cli");
    let agent = AgentProcess::start(dir.path(), &quiet(), &[]);
    let url = format!("http://{}/metrics", agent.addr);
    let om = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    // (headers, body) of one GET with these extra curl arguments.
    support::require("curl", "curl");
    let curl = |args: &[&str]| {
        let raw = support::process::output(
            Command::new("curl")
                .args(["-sS", "--max-time", "5", "-D", "-"])
                .args(args)
                .arg(&url),
        )
        .unwrap_or_else(|e| panic!("curl {args:?}: {e}"));
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        (head.to_ascii_lowercase(), body.to_owned())
    };
    // The body is whole: OpenMetrics ends with `# EOF`; the text format
    // declares counters under their sample name.
    let whole = |body: &str, openmetrics: bool| {
        body.contains("nodevitals_build_info{")
            && (body.lines().last() == Some("# EOF")) == openmetrics
            && body.contains("# TYPE nodevitals_runtime_late_answers_total counter\n")
                != openmetrics
    };
    for (accept, openmetrics) in [(om, true), ("Accept: text/plain", false)] {
        for (encoding, gzip) in [
            ("Accept-Encoding: gzip", true),
            ("Accept-Encoding: deflate, GZIP;q=0.5", true),
            ("Accept-Encoding: *", true),
            ("Accept-Encoding: gzip;q=0, *", false),
            ("Accept-Encoding: identity", false),
        ] {
            // --compressed decodes whatever the agent sends; the header it
            // would add is replaced by ours.
            let (head, body) = curl(&["--compressed", "-H", accept, "-H", encoding]);
            let what = format!("{accept} / {encoding}:\n{head}");
            assert!(head.contains("\r\nvary: accept-encoding"), "{what}");
            assert_eq!(head.contains("\r\ncontent-encoding: gzip"), gzip, "{what}");
            assert!(whole(&body, openmetrics), "{what}\n{body}");
        }
        // Without --compressed curl sends no Accept-Encoding: plain text.
        let (head, body) = curl(&["-H", accept]);
        assert!(!head.contains("content-encoding"), "{head}");
        assert!(whole(&body, openmetrics), "{body}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = short_tempdir("cli");
    let agent = AgentProcess::start(dir.path(), &quiet(), &["--log-format", "json"]);
    wait_until(Duration::from_secs(5), "a probe failure logged", || {
        agent.logs().contains("probe failed")
    });
    for line in agent.logs().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
}

/// `DOCKER_HOST` pointing at TCP is not a local runtime socket: reported as
/// misconfigured, not silently ignored.
#[test]
fn docker_host_over_tcp_is_reported_misconfigured() {
    let dir = short_tempdir("cli");
    let path = dir.path().join("no-runtime.toml");
    std::fs::write(&path, support::ONLY_RUNTIME).unwrap();
    let out = command(&["once", "--config", path.to_str().unwrap()])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains("docker") && table.contains("misconfigured"),
        "{table}"
    );
    assert!(table.contains("tcp://127.0.0.1:2375"), "{table}");
}
