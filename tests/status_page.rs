//! The status page at `/` as a person sees it: headless Chromium (Debian
//! `chromium`, driven by playwright-core) loads it from an agent watching a
//! real dockerd that hung (SIGSTOP), was restarted and hung again inside the
//! backoff, a delaying DNS server and a throttled container whose kubelet
//! labels carry markup. The page renders without console errors, shows the
//! restart and the held-back restart, and shows the markup as text without
//! running it. The screenshot is kept at target/artifacts/status-page.png.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::operator_view::{OperatorView, DNS_NAME, POD};

#[test]
fn status_page_in_chromium_shows_the_restart_and_never_runs_user_data() {
    support::require("chromium", "chromium");
    support::node::require_package("playwright-core");
    let mut view = OperatorView::start("page");
    view.play(|| {});
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = support::short_tempdir("chromium");
    let url = format!("http://{}/", view.agent.addr);
    let out = support::node::run(
        "node/status_page.mjs",
        &[
            &url,
            &screenshot.to_string_lossy(),
            &profile.path().to_string_lossy(),
        ],
    )
    .unwrap_or_else(|e| panic!("chromium on {url}: {e}\nagent log:\n{}", view.agent.logs()));
    let page: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = page["text"].as_str().unwrap_or_default();
    let ctx = || format!("{page:#}");

    assert_eq!(page["status"], 200, "{}", ctx());
    assert_eq!(page["consoleErrors"], Value::Array(vec![]), "{}", ctx());
    assert_eq!(page["pageErrors"], Value::Array(vec![]), "{}", ctx());
    // Nothing but the page itself is fetched: no asset, no script.
    assert_eq!(page["requests"], serde_json::json!([url]), "{}", ctx());
    assert!(
        page["csp"]
            .as_str()
            .unwrap_or_default()
            .contains("default-src 'none'"),
        "{}",
        ctx()
    );

    // User data is text: the kubelet labels' markup is shown, never parsed.
    assert_eq!(page["scripts"], 0, "{}", ctx());
    assert_eq!(page["injectedImages"], 0, "{}", ctx());
    assert!(page["pwned"].is_null(), "injected code ran: {}", ctx());
    for (_, value) in POD {
        assert!(
            text.contains(value),
            "label {value:?} shown as text: {}",
            ctx()
        );
    }

    // The hung-then-restarted runtime's history, newest first: the held-back
    // second hang, then the restart and its recovery.
    let held = text
        .find("held back: backoff")
        .unwrap_or_else(|| panic!("{}", ctx()));
    let restart = text
        .find("restart success")
        .unwrap_or_else(|| panic!("{}", ctx()));
    assert!(held < restart, "newest first: {}", ctx());
    assert!(
        page["timelineMarks"].as_u64().unwrap_or(0) >= 2,
        "{}",
        ctx()
    );
    // DNS per server with its latency, conntrack, throttling and the config.
    assert!(text.contains(&view.dns.addr.to_string()), "{}", ctx());
    assert!(text.contains(DNS_NAME), "{}", ctx());
    assert!(text.contains("Conntrack"), "{}", ctx());
    assert!(text.contains("throttled in the last interval"), "{}", ctx());
    assert!(text.contains("Effective config"), "{}", ctx());
    for heading in ["Probes", "Remediation", "DNS", "CPU throttling", "Config"] {
        assert!(
            page["headings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h == heading),
            "{heading}: {}",
            ctx()
        );
    }
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG at {}",
        screenshot.display()
    );
}

/// A rejected reload is on the page (and in `/status`) with its error, and
/// the config in force stays the one that was loaded; a good reload clears it.
#[test]
fn a_rejected_reload_is_shown_with_the_config_in_force() {
    let dir = support::short_tempdir("page-reload");
    let good = support::cpu_config("");
    let agent = support::AgentProcess::start(dir.path(), &good, &[]);
    std::fs::write(&agent.config_path, "[dns]\nbogus_key = 1\n").unwrap();
    agent.signal(libc::SIGHUP);
    let mut status = Value::Null;
    support::wait_until(Duration::from_secs(20), "the rejected reload", || {
        status = serde_json::from_str(&agent.get("/status").1).unwrap();
        status["config"]["last_reload_rejected"] == true
    });
    let error = status["config"]["last_failure"]["error"].as_str().unwrap();
    assert!(error.contains("bogus_key"), "{status:#}");
    let (code, page) = agent.get("/");
    assert_eq!(code, 200);
    assert!(page.contains("The last reload was rejected"), "{page}");
    assert!(page.contains("bogus_key"), "{page}");
    // The effective config shown is the one in force: CPU every second.
    let effective = status["config"]["effective"].as_str().unwrap();
    assert!(effective.contains("interval = \"1s\""), "{effective}");

    std::fs::write(&agent.config_path, &good).unwrap();
    agent.signal(libc::SIGHUP);
    support::wait_until(Duration::from_secs(20), "the good reload", || {
        status = serde_json::from_str(&agent.get("/status").1).unwrap();
        status["config"]["last_reload_rejected"] == false && status["config"]["reloads"] == 2
    });
    assert!(!agent.get("/").1.contains("The last reload was rejected"));
}
