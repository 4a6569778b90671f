//! One node in the states an operator looks at: an agent watching a real
//! dockerd (under a supervisor standing in for systemd) that hung (SIGSTOP),
//! was restarted, hung again inside the backoff and was held back, then
//! resumed; a DNS server answering after a delay; and a container throttled
//! by a real CFS quota, carrying kubelet labels with markup in them (the
//! labels are user data). Used by the status page and dashboard tests.

use super::agent_config::{signal_restart, DockerAgentConfig};
use super::dns_responder::{Responder, Zone};
use super::dockerd::{Dockerd, IMAGE};
use super::{process, short_tempdir, AgentProcess, Metrics};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// The kubelet labels of the throttled container: namespace, pod, container.
pub const POD: [(&str, &str); 3] = [
    ("namespace", "shop"),
    ("pod", "checkout-<script>window.__nv_pwned=1</script>"),
    ("container", "<img src=x onerror=window.__nv_pwned=2>api"),
];

/// The name the DNS probe asks the delaying server for.
pub const DNS_NAME: &str = "svc.nodevitals.test.";
/// How long the DNS server waits before each answer.
pub const DNS_DELAY: Duration = Duration::from_millis(150);

pub struct OperatorView {
    pub dockerd: Dockerd,
    pub dns: Responder,
    pub agent: AgentProcess,
    /// The throttled container's id.
    pub throttled: String,
    _dir: tempfile::TempDir,
}

fn agent_config(d: &Dockerd, dns: &Responder, state_dir: &std::path::Path) -> String {
    let probes = format!(
        "[kubelet]\nenabled = false\n\n[dns]\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         servers = [\"{}\"]\nnames = [\"{DNS_NAME}\"]\n\n[cpu]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
        dns.addr
    );
    DockerAgentConfig {
        state_dir,
        endpoint: &d.endpoint(),
        paths: "cgroup = \"/sys/fs/cgroup\"\n",
        restart: &signal_restart(&d.pidfile),
        remediation: "failure_threshold = 3\nhang_after = \"1500ms\"\ncooldown = \"1s\"\nboot_grace = \"0s\"\n\
                      backoff_initial = \"30s\"\nbackoff_max = \"1m\"\nmax_restarts = 3\nwindow = \"1h\"\n\
                      reset_after = \"10m\"\nrecovery_timeout = \"30s\"\nbackoff_jitter = 0.0\n",
        rest: &probes,
    }
    .render()
}

fn restarts(m: &Metrics, result: &str) -> f64 {
    m.restarts("docker", result)
}

fn state(m: &Metrics, state: &str) -> bool {
    m.get(
        "nodevitals_remediation_state",
        &[("target", "docker"), ("state", state)],
    ) == Some(1.0)
}

impl OperatorView {
    /// The node with its runtime healthy: dockerd, the DNS server, the agent.
    pub fn start(name: &str) -> OperatorView {
        let dockerd = Dockerd::start_supervised(name);
        dockerd.build_busybox_image();
        dockerd.run_sleeper(&[]);
        let dns = Responder::start("127.0.0.1:0".parse().unwrap(), Zone::new(&[DNS_NAME], &[]));
        dns.set_delay(DNS_DELAY);
        let dir = short_tempdir(&format!("{name}-agent"));
        let config = agent_config(&dockerd, &dns, &dir.path().join("state"));
        let agent = AgentProcess::start(dir.path(), &config, &[]);
        agent.wait_metrics(MINUTE, "docker healthy", |m| {
            state(m, "healthy")
                && m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
        });
        OperatorView {
            dockerd,
            dns,
            agent,
            throttled: String::new(),
            _dir: dir,
        }
    }

    /// Brings the node through a hang and its restart, a second hang held
    /// back by the backoff (`during_hang` runs while it lasts), then starts
    /// the throttled container and waits until the agent reports it
    /// throttled. Takes a minute or two.
    pub fn play(&mut self, during_hang: impl FnOnce()) {
        let (dockerd, agent) = (&self.dockerd, &self.agent);
        process::signal(dockerd.pid(), libc::SIGSTOP);
        agent.wait_metrics(MINUTE, "the hung dockerd restarted", |m| {
            restarts(m, "success") == 1.0
        });
        dockerd.wait_answering(MINUTE);
        // Hung again inside the 30 s backoff: held back, then it resumes.
        let second = dockerd.pid();
        process::signal(second, libc::SIGSTOP);
        agent.wait_metrics(MINUTE, "the second hang held back", |m| {
            m.get(
                "nodevitals_remediation_skipped_total",
                &[("target", "docker"), ("reason", "backoff")],
            )
            .is_some_and(|n| n >= 1.0)
        });
        during_hang();
        process::signal(second, libc::SIGCONT);
        dockerd.wait_answering(MINUTE);

        let mut run = vec!["run", "-d", "--network", "none", "--cpus", "0.1"];
        let labels: Vec<String> = [
            "io.kubernetes.pod.namespace",
            "io.kubernetes.pod.name",
            "io.kubernetes.container.name",
        ]
        .iter()
        .zip(POD)
        .map(|(key, (_, value))| format!("{key}={value}"))
        .collect();
        for l in &labels {
            run.extend(["--label", l.as_str()]);
        }
        run.extend([IMAGE, "/bin/sh", "-c", "while :; do :; done"]);
        let throttled = dockerd.docker(&run);
        agent.wait_metrics(MINUTE, "the container throttled", |m| {
            m.get("nodevitals_container_cpu_throttled_ratio", &POD)
                .is_some_and(|r| r > 0.5)
                && m.get("nodevitals_runtime_up", &[("runtime", "docker")]) == Some(1.0)
        });
        self.throttled = throttled;
    }
}
