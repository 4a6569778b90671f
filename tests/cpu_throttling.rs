//! CPU throttling end to end: the agent binary reading real CFS quotas in the
//! host's cgroup v1 hierarchies, from a cgroup the test makes, from a
//! container a real dockerd starts with `--cpus 0.1` and kubelet labels, and
//! from a pod made through a real containerd's CRI API as the kubelet makes it.

mod support;

use std::time::Duration;
use support::cgroup::QuotaCgroup;
use support::containerd::Containerd;
use support::cri_pod::{CriPod, Quota};
use support::dockerd::{Dockerd, IMAGE};
use support::{short_tempdir, AgentProcess, Metrics};

const PERIODS: &str = "nodevitals_container_cpu_periods_total";
const THROTTLED: &str = "nodevitals_container_cpu_throttled_periods_total";
const THROTTLED_S: &str = "nodevitals_container_cpu_throttled_seconds_total";
const USAGE_S: &str = "nodevitals_container_cpu_usage_seconds_total";
const LIMIT: &str = "nodevitals_container_cpu_limit_cores";
const RATIO: &str = "nodevitals_container_cpu_throttled_ratio";

#[test]
fn counters_equal_the_kernels_cpu_stat_of_a_real_quota() {
    let mut cg = QuotaCgroup::create("kernel", 10_000, 100_000);
    cg.start_busy_loop();
    let dir = short_tempdir("cpu-kernel");
    // No runtime: the cgroup is named like a container, so it gets an id label.
    let agent = AgentProcess::start(dir.path(), &support::cpu_config(""), &[]);
    let cid = cg.id.clone();
    let id = [("id", cid.as_str())];
    let m = agent.wait_metrics(
        Duration::from_secs(30),
        "a throttled ratio above 0.5",
        |m| m.get(RATIO, &id).is_some_and(|r| r > 0.5),
    );
    assert_eq!(m.get(LIMIT, &id), Some(0.1), "quota 10ms per 100ms");
    assert!(m.get(THROTTLED, &id).unwrap() > 0.0);

    // Stopped, the cgroup's counters freeze (the period timer runs a couple
    // more idle periods first): a scan after that must equal them exactly.
    cg.stop_busy_loop();
    let m = agent.wait_metrics(Duration::from_secs(10), "the frozen counters", |m| {
        m.get(PERIODS, &id) == Some(cg.stat("nr_periods") as f64)
    });
    assert_eq!(m.get(THROTTLED, &id), Some(cg.stat("nr_throttled") as f64));
    let throttled_s = cg.stat("throttled_time") as f64 / 1e9;
    let got = m.get(THROTTLED_S, &id).unwrap();
    assert!((got - throttled_s).abs() < 1e-9, "{got} vs {throttled_s}");
    let usage_s = cg.read("cpuacct.usage").trim().parse::<f64>().unwrap() / 1e9;
    let got = m.get(USAGE_S, &id).unwrap();
    assert!((got - usage_s).abs() < 1e-9, "{got} vs {usage_s}");
    assert!(m.get(PERIODS, &id).unwrap() > 0.0);

    let (_, body) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["cpu"]["cgroup_version"], "v1", "{body}");
    assert_eq!(status["probes"]["cpu"]["outcome"], "ok", "{body}");
}

/// `/status` lists container `id` of `pod` among the most throttled.
fn assert_top_throttled(agent: &AgentProcess, pod: &str, id: &str) {
    let (_, body) = agent.get("/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let top = status["cpu"]["top_throttled"].as_array().unwrap();
    assert!(
        top.iter().any(|c| c["pod"] == pod && c["id"] == id),
        "{body}"
    );
}

fn pod_labels() -> [(&'static str, &'static str); 3] {
    [
        ("namespace", "shop"),
        ("pod", "checkout-7d9f8"),
        ("container", "api"),
    ]
}

fn throttled_pod(m: &Metrics) -> bool {
    let l = pod_labels();
    m.get(THROTTLED, &l).is_some_and(|t| t > 0.0) && m.get(RATIO, &l).is_some_and(|r| r > 0.5)
}

#[test]
fn kubernetes_container_series_carry_pod_labels_and_vanish_with_it() {
    let d = Dockerd::start("cpu-k8s");
    d.build_busybox_image();
    let id = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--cpus",
        "0.1",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=checkout-7d9f8",
        "--label",
        "io.kubernetes.container.name=api",
        IMAGE,
        "/bin/sh",
        "-c",
        "while :; do :; done",
    ]);
    let plain = d.run_sleeper(&["--name", "plain-sleeper", "--cpus", "0.5"]);
    // The pod's pause container, labelled as dockershim and cri-dockerd label it.
    d.run_sleeper(&[
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=checkout-7d9f8",
        "--label",
        "io.kubernetes.docker.type=podsandbox",
    ]);
    let dir = short_tempdir("cpu-k8s-agent");
    let runtime = support::runtime_entry("docker", &d.endpoint());
    let agent = AgentProcess::start(dir.path(), &support::cpu_config(&runtime), &[]);
    let m = agent.wait_metrics(
        Duration::from_secs(40),
        "the pod's throttling",
        throttled_pod,
    );
    assert_eq!(m.get(LIMIT, &pod_labels()), Some(0.1), "--cpus 0.1");
    // Outside Kubernetes: the id, and the name Docker knows it by.
    let plain_labels = [("id", plain.as_str()), ("name", "plain-sleeper")];
    let m = agent.wait_metrics(Duration::from_secs(10), "the plain container", |m| {
        m.get(LIMIT, &plain_labels) == Some(0.5)
    });
    assert!(m.get(USAGE_S, &pod_labels()).unwrap() > 0.0);
    let sandbox = [
        ("namespace", "shop"),
        ("pod", "checkout-7d9f8"),
        ("container", "POD"),
    ];
    assert!(m.has(USAGE_S, &sandbox), "{}", m.text);
    assert!(
        !m.has(PERIODS, &[("id", id.as_str())]),
        "a Kubernetes container is labelled by name, not id"
    );
    assert_top_throttled(&agent, "checkout-7d9f8", &id);

    d.docker(&["rm", "-f", &id]);
    agent.wait_metrics(Duration::from_secs(10), "the pod's series to vanish", |m| {
        !m.has(PERIODS, &pod_labels()) && !m.has(RATIO, &pod_labels())
    });
}

#[test]
fn cri_pod_series_carry_pod_labels_the_sandbox_is_pod_and_all_vanish_with_it() {
    let c = Containerd::start("cpu-cri");
    let mut pod = CriPod::run(&c, "shop", "cart-5c6d7", "4f1e2d3c-cpu-cri");
    let quota = Quota {
        quota_us: 10_000,
        period_us: 100_000,
    };
    let busy = [
        "/bin/timeout",
        "120",
        "/bin/sh",
        "-c",
        "while :; do :; done",
    ];
    let id = pod.start_container("web", &busy, quota);
    let dir = short_tempdir("cpu-cri-agent");
    let runtime = support::runtime_entry("containerd", &c.endpoint());
    let agent = AgentProcess::start(dir.path(), &support::cpu_config(&runtime), &[]);
    let web = [
        ("namespace", "shop"),
        ("pod", "cart-5c6d7"),
        ("container", "web"),
    ];
    let sandbox = [
        ("namespace", "shop"),
        ("pod", "cart-5c6d7"),
        ("container", "POD"),
    ];
    let m = agent.wait_metrics(Duration::from_secs(40), "the pod's throttling", |m| {
        m.get(THROTTLED, &web).is_some_and(|t| t > 0.0)
            && m.get(RATIO, &web).is_some_and(|r| r > 0.5)
    });
    assert_eq!(m.get(LIMIT, &web), Some(0.1), "cpu_quota 10000 per 100000");
    assert!(m.get(USAGE_S, &web).unwrap() > 0.0);
    // The pause container's cgroup: the pod's, as the container POD.
    let m = agent.wait_metrics(Duration::from_secs(10), "the sandbox's series", |m| {
        m.has(USAGE_S, &sandbox)
    });
    for cid in [id.as_str(), pod.sandbox.as_str()] {
        assert!(
            !m.has(USAGE_S, &[("id", cid)]),
            "{cid}: a pod's cgroups are labelled by name, not id:\n{}",
            m.text
        );
    }
    assert_top_throttled(&agent, "cart-5c6d7", &id);

    pod.remove();
    agent.wait_metrics(Duration::from_secs(10), "the pod's series to vanish", |m| {
        !m.has(USAGE_S, &web) && !m.has(USAGE_S, &sandbox)
    });
}
