//! Wiring: builds the probes a config asks for, runs them with the HTTP server,
//! and handles signals (TERM/INT drain and exit, HUP reloads the config); tells
//! systemd about readiness and progress when it runs under it (`notify`).

use crate::config::RuntimeKind;
use crate::config::{Config, ConfigSource, RuntimeConfig};
use crate::config_status::ConfigStatus;
use crate::endpoint::EndpointError;
use crate::health::Health;
use crate::kubernetes::Cluster;
use crate::metrics::{Metrics, NodeLabels};
use crate::notify;
use crate::probe::cpu::hierarchy;
use crate::probe::cpu::identity::ContainerDirectory;
use crate::probe::cpu::{CpuProbe, CpuProbeConfig};
use crate::probe::dns::DnsProbe;
use crate::probe::kubelet::{on_kubernetes_node, KubeletProbe};
use crate::probe::runtime::RuntimeProbe;
use crate::probe::unusable::Unusable;
use crate::probe::Probe;
use crate::remediation::{self, Histories, Remediation};
use crate::runtime::cri::CriClient;
use crate::runtime::docker::DockerClient;
use crate::runtime::{detect, RuntimeClient};
use crate::scheduler::{Scheduler, Sinks};
use crate::server::{self, AppState};
use crate::status::StatusBoard;
use crate::vocabulary::{NodeService, RuntimeHealth, ServiceRound};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Everything one config produces: the probes to schedule, and the health
/// channel of each runtime probe for remediation.
pub struct Built {
    pub probes: Vec<Arc<dyn Probe>>,
    pub runtimes: Vec<RuntimeConfig>,
    pub health: Vec<(RuntimeConfig, watch::Receiver<RuntimeHealth>)>,
    /// The kubelet's and DNS's probe rounds (and their interval), for their
    /// node conditions.
    pub services: Vec<(NodeService, Duration, watch::Receiver<Option<ServiceRound>>)>,
}

/// The runtimes to probe: the configured ones, else those detected on the host.
pub fn runtimes_of(config: &Config) -> Vec<RuntimeConfig> {
    if config.runtimes.is_empty() {
        detect::detect_host()
    } else {
        config.runtimes.clone()
    }
}

/// Builds every enabled probe of `config`. A runtime whose endpoint cannot be
/// used (e.g. `DOCKER_HOST=tcp://...`) is probed as `misconfigured`; other
/// probes that cannot be built are logged and skipped.
pub fn build(config: &Config, metrics: &Metrics, status: &Arc<StatusBoard>) -> Built {
    let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
    let mut health = Vec::new();
    let mut services = Vec::new();
    let runtimes = runtimes_of(config);
    if runtimes.is_empty() {
        tracing::warn!(
            "no container runtime socket found and none configured; runtime probes are off"
        );
    }
    // One client per runtime, shared by its probe and the CPU probe's naming.
    let mut directories: Vec<Arc<dyn ContainerDirectory>> = Vec::new();
    for rt in &runtimes {
        match runtime_probe(rt, config, metrics) {
            Ok((p, directory)) => {
                health.push((rt.clone(), p.health()));
                probes.push(Arc::new(p));
                directories.push(directory);
            }
            Err(e) => {
                tracing::error!(runtime = %rt.kind, error = %e, "runtime cannot be probed");
                probes.push(Arc::new(Unusable::new(
                    rt.kind.as_str(),
                    rt.interval,
                    e.to_string(),
                )));
            }
        }
    }
    let k = &config.kubelet;
    let kubelet_on = k
        .enabled
        .unwrap_or_else(|| on_kubernetes_node(|v| std::env::var(v).ok()));
    if kubelet_on {
        match KubeletProbe::new(&k.url, k.interval, k.timeout, metrics.kubelet.clone()) {
            Ok(p) => {
                services.push((NodeService::Kubelet, k.interval, p.rounds()));
                probes.push(Arc::new(p));
            }
            Err(e) => tracing::error!(error = %e, "kubelet not probed"),
        }
    }
    if config.dns.enabled {
        let dns = DnsProbe::new(
            &config.dns,
            &config.paths.proc,
            metrics.dns.clone(),
            Arc::clone(status),
        );
        match dns {
            Ok(p) => {
                services.push((NodeService::Dns, config.dns.interval, p.rounds()));
                probes.push(Arc::new(p));
            }
            Err(e) => tracing::error!(error = %e, "dns not probed"),
        }
    }
    if config.cpu.enabled {
        probes.push(Arc::new(cpu_probe(config, directories, metrics, status)));
    } else {
        metrics.cpu.clear();
    }
    Built {
        probes,
        runtimes,
        health,
        services,
    }
}

/// The CPU probe, naming containers through every runtime it can list.
fn cpu_probe(
    config: &Config,
    directories: Vec<Arc<dyn ContainerDirectory>>,
    metrics: &Metrics,
    status: &Arc<StatusBoard>,
) -> CpuProbe {
    CpuProbe::new(
        CpuProbeConfig {
            interval: config.cpu.interval,
            timeout: config.cpu.timeout,
            cgroup_root: config.paths.cgroup.clone(),
            proc_root: config.paths.proc.clone(),
        },
        directories,
        metrics.cpu.clone(),
        Arc::clone(status),
    )
}

/// The probe of one runtime, and the same client as a container directory.
fn runtime_probe(
    rt: &RuntimeConfig,
    config: &Config,
    metrics: &Metrics,
) -> Result<(RuntimeProbe, Arc<dyn ContainerDirectory>), EndpointError> {
    let socket = crate::endpoint::socket_path(&rt.endpoint)?;
    let late_window = remediation::late_answer_window(&config.remediation, rt.timeout);
    let (client, directory): (Arc<dyn RuntimeClient>, Arc<dyn ContainerDirectory>) = match rt.kind {
        RuntimeKind::Docker => {
            let c = Arc::new(DockerClient::new(socket, late_window));
            (c.clone(), c)
        }
        kind @ (RuntimeKind::Containerd | RuntimeKind::Crio) => {
            let c = Arc::new(CriClient::new(kind, socket));
            (c.clone(), c)
        }
    };
    let probe = RuntimeProbe::new(
        client,
        rt.interval,
        rt.timeout,
        late_window,
        metrics.runtime.clone(),
    );
    Ok((probe, directory))
}

/// `nodevitals_node_info` labels, read from the host.
pub fn node_labels(config: &Config, runtimes: &[RuntimeConfig]) -> NodeLabels {
    let proc = &config.paths.proc;
    let read = |rel: &str| {
        std::fs::read_to_string(proc.join(rel))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let node = std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| read("sys/kernel/hostname"));
    let mut kinds: Vec<&str> = runtimes.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort_unstable();
    NodeLabels {
        node,
        kernel: read("sys/kernel/osrelease"),
        cgroup_version: hierarchy::mount_kind(&config.paths.cgroup).to_owned(),
        runtime: if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(",")
        },
    }
}

/// How long SIGTERM may take before the agent exits regardless.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Agent {
    source: ConfigSource,
    config: Config,
    /// `--dry-run` holds across reloads, whatever the new file says.
    dry_run_flag: bool,
    metrics: Arc<Metrics>,
    status: Arc<StatusBoard>,
    health: Arc<Health>,
    config_status: ConfigStatus,
    /// Restart histories, kept across reloads.
    histories: Arc<Histories>,
}

impl Agent {
    pub fn new(source: ConfigSource, config: Config) -> Self {
        Self {
            source,
            config,
            dry_run_flag: false,
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(StatusBoard::default()),
            health: Arc::new(Health::default()),
            config_status: ConfigStatus::default(),
            histories: Arc::new(Histories::default()),
        }
    }

    /// Forces `remediation.dry_run` on, now and after every reload (`--dry-run`).
    pub fn force_dry_run(mut self, on: bool) -> Self {
        self.dry_run_flag = on;
        self.config.remediation.dry_run |= on;
        self
    }

    fn sinks(&self) -> Sinks {
        Sinks {
            metrics: self.metrics.agent.clone(),
            status: Arc::clone(&self.status),
            health: Arc::clone(&self.health),
        }
    }

    fn publish_config(&self) {
        self.status.set_section(
            "config",
            self.config_status.section(&self.source, &self.config),
        );
    }

    fn start(&self) -> (Scheduler, Remediation, Cluster) {
        self.publish_config();
        let built = build(&self.config, &self.metrics, &self.status);
        let labels = node_labels(&self.config, &built.runtimes);
        let mut cluster = Cluster::start(
            &self.config.kubernetes,
            labels.node.clone(),
            &self.metrics.kubernetes,
            Arc::clone(&self.status),
        );
        for (service, interval, rounds) in built.services {
            cluster.watch_service(&self.config.kubernetes, service, interval, rounds);
        }
        self.metrics.agent.set_node_info(labels);
        let names: Vec<&str> = built.probes.iter().map(|p| p.name()).collect();
        tracing::info!(probes = ?names, "probes scheduled");
        let remediation = Remediation::start(
            &self.config,
            built.health,
            &self.metrics.remediation,
            Arc::clone(&self.status),
            &self.histories,
            &self.health,
            &cluster,
        );
        (
            Scheduler::start(built.probes, self.sinks(), true),
            remediation,
            cluster,
        )
    }

    /// Serves and probes until SIGTERM or SIGINT.
    pub async fn run(mut self, listener: TcpListener) -> std::io::Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        crate::ignored_signals::ignore()?;
        let state = AppState {
            metrics: Arc::clone(&self.metrics),
            status: Arc::clone(&self.status),
            health: Arc::clone(&self.health),
        };
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics /healthz /readyz /status");
        let server = tokio::spawn(server::serve(listener, state));
        self.config_status.applied();
        let (mut scheduler, mut remediation, mut cluster) = self.start();
        // Under systemd: READY=1 after the first round, WATCHDOG=1 while progressing.
        let systemd = notify::Supervisor::start_from_env(Arc::clone(&self.health));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    if self.reload() {
                        scheduler.stop();
                        remediation.stop();
                        cluster.stop();
                        (scheduler, remediation, cluster) = self.start();
                    }
                }
            }
        }
        tracing::info!("shutting down");
        if let Some(s) = systemd {
            s.stop();
        }
        scheduler.stop();
        remediation.stop();
        cluster.stop();
        server.abort();
        Ok(())
    }

    /// Loads the config again; an invalid file is rejected and the current one
    /// stays in force. Returns whether the new config was applied.
    fn reload(&mut self) -> bool {
        match Config::load(&self.source) {
            Ok(mut new) => {
                new.remediation.dry_run |= self.dry_run_flag;
                if new.server.listen != self.config.server.listen {
                    tracing::warn!(
                        current = %self.config.server.listen,
                        configured = %new.server.listen,
                        "server.listen changes take effect on restart only"
                    );
                }
                self.config = new;
                self.config_status.reloaded();
                self.metrics.agent.count_reload(true);
                tracing::info!(path = %self.source.path().display(), "config reloaded");
                true
            }
            Err(e) => {
                self.config_status.rejected(e.to_string());
                self.publish_config();
                self.metrics.agent.count_reload(false);
                tracing::error!(error = %e, "config reload rejected; keeping the last good config");
                false
            }
        }
    }
}
