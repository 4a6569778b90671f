//! End to end against a real dockerd: the agent binary over HTTP.

mod support;

use std::time::Duration;
use support::dockerd::Dockerd;
use support::{short_tempdir, AgentProcess};

fn config(endpoint: &str) -> String {
    format!(
        r#"
[[runtime]]
kind = "docker"
endpoint = "{endpoint}"
interval = "1s"
timeout = "1s"

{}
[cpu]
enabled = false
"#,
        support::OTHER_PROBES_OFF
    )
}

const UP: &str = "nodevitals_runtime_up";

#[test]
fn healthy_dockerd_reports_up_and_its_containers() {
    let d = Dockerd::start("probe-healthy");
    d.build_busybox_image();
    let id = d.run_sleeper(&[]);
    assert!(!id.is_empty());
    assert_eq!(d.running_containers(), 1);
    let dir = short_tempdir("agent");
    let agent = AgentProcess::start(dir.path(), &config(&d.endpoint()), &[]);
    let m = agent.wait_metrics(Duration::from_secs(10), "runtime_up 1", |m| {
        m.get(UP, &[("runtime", "docker")]) == Some(1.0)
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
    let (status, body) = agent.get("/status");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["probes"]["docker"]["outcome"], "ok");
    support::wait_until(Duration::from_secs(5), "readyz 200", || {
        agent.get("/readyz").0 == 200
    });
}
