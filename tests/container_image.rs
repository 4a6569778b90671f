//! The image as shipped: `scripts/build-image.sh` builds it against the test's
//! own dockerd (FROM scratch: nothing is pulled), and the agent runs from it the
//! way daemonset.yaml runs it (read-only root, every capability dropped, host
//! network, config mounted at the default path) with the Docker socket mounted
//! where the node has it, and reports that dockerd healthy.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::dockerd::Dockerd;
use support::{http_get, listen_addr, wait_until, Metrics};

const TAG: &str = "nodevitals-test/agent:latest";

#[test]
#[allow(clippy::disallowed_methods)]
fn image_builds_without_pulling_and_its_agent_reports_dockerd_up() {
    support::require("ldd", "libc-bin");
    let d = Dockerd::start("image");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(repo.join("scripts/build-image.sh"))
        .arg(TAG)
        .env("DOCKER_HOST", d.endpoint())
        .env("DOCKER_CONFIG", d.dir.path().join("cli"))
        .output()
        .expect("run scripts/build-image.sh");
    assert!(
        built.status.success(),
        "scripts/build-image.sh failed:\n{}\ndockerd log:\n{}",
        String::from_utf8_lossy(&built.stderr),
        d.log()
    );
    // One layer, the binary and its mount points: no base image came along.
    let layers = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        TAG,
    ]);
    assert_eq!(layers, "1", "the image must be FROM scratch plus one COPY");

    let config = d.dir.path().join("agent.toml");
    // No [[runtime]]: the socket is auto-detected, as in the DaemonSet.
    std::fs::write(&config, support::ONLY_RUNTIME).unwrap();
    let id = d.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-e",
        "NODE_NAME=image-test-node",
        "-v",
        &format!("{}:/run/docker.sock:ro", d.socket.display()),
        "-v",
        &format!("{}:/etc/nodevitals/config.toml:ro", config.display()),
        TAG,
        "--config",
        "/etc/nodevitals/config.toml",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "text",
    ]);
    // The agent logs to stderr, which `docker logs` passes on as its stderr.
    let logs = || {
        Command::new("docker")
            .args(["--host", &d.endpoint(), "logs", &id])
            .env("DOCKER_CONFIG", d.dir.path().join("cli"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_else(|e| e.to_string())
    };
    let mut addr = None;
    wait_until(
        Duration::from_secs(30),
        "the agent in the image to listen",
        || {
            addr = logs().lines().find_map(listen_addr);
            addr.is_some()
        },
    );
    let addr = addr.unwrap();
    let mut last = String::new();
    wait_until(
        Duration::from_secs(30),
        "runtime_up 1 from the image",
        || {
            last = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
            Metrics::parse(&last).get("nodevitals_runtime_up", &[("runtime", "docker")])
                == Some(1.0)
        },
    );
    let m = Metrics::parse(&last);
    assert_eq!(
        m.get(
            "nodevitals_node_info",
            &[("node", "image-test-node"), ("runtime", "docker")]
        ),
        Some(1.0),
        "{last}\n{}",
        logs()
    );
    wait_until(Duration::from_secs(10), "readyz 200", || {
        http_get(addr, "/readyz").is_ok_and(|r| r.0 == 200)
    });
}
