//! Remediation: restarts a hung runtime under backoff, a budget and a persisted
//! history. A pure state machine (`machine`) decides; one engine task per
//! runtime (`engine`) feeds it the probe's `RuntimeHealth` and acts through a
//! `Restarter` (`restart`). See docs/remediation.md.
//!
//! Metrics: `nodevitals_remediation_*` (emitted by `engine`).

mod cluster_report;
mod defaults;
mod diagnosis;
mod engine;
mod history;
mod machine;
mod memory;
mod procfs;
mod report;
mod restart;
mod skips;
mod state_file;

pub use memory::Histories;

use crate::config::{Config, RemediationConfig, RuntimeConfig};
use crate::health::Health;
use crate::kubernetes::Cluster;
use crate::metrics::RemediationMetrics;
use crate::status::StatusBoard;
use crate::vocabulary::RuntimeHealth;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `remediation` section of `/status`: one entry per target.
pub(crate) struct Board {
    status: Arc<StatusBoard>,
    targets: Mutex<BTreeMap<&'static str, serde_json::Value>>,
}

impl Board {
    fn new(status: Arc<StatusBoard>) -> Self {
        Self {
            status,
            targets: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn set(&self, target: &'static str, value: serde_json::Value) {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        targets.insert(target, value);
        let section = serde_json::to_value(&*targets).unwrap_or_default();
        self.status.set_section("remediation", section);
    }
}

/// One diagnosis of process `pid` under `proc_root`, as a hang decision makes
/// it (every thread's state and run count, `wchan` of blocked ones, the
/// kernel stack, the freezer state, statvfs of `runtime_root`, node
/// pressure); returns its class. For benchmarks.
pub fn diagnose_process(
    proc_root: &std::path::Path,
    cgroup_root: &std::path::Path,
    pid: i32,
    runtime_root: &std::path::Path,
) -> Option<&'static str> {
    let procfs = procfs::Procfs::new(proc_root);
    let process = procfs::Process {
        pid,
        start_ticks: procfs.stat(pid)?.start_ticks,
    };
    let mut d = diagnosis::Diagnoser::new(proc_root, cgroup_root, Duration::ZERO);
    let root = diagnosis::storage::root_space(runtime_root);
    Some(d.diagnose(Some(process), root).class.as_str())
}

/// How long a request that missed its deadline may still run to deliver a
/// late answer. Until a hang would be declared a late answer proves the
/// runtime alive; after `hang_after` it no longer changes a decision. Never
/// less than two deadlines, so a slow answer to a short timeout still counts.
pub fn late_answer_window(policy: &RemediationConfig, timeout: Duration) -> Duration {
    policy.hang_after.max(timeout * 2)
}

/// The running engines; stopping them leaves any restart in flight to finish.
pub struct Remediation {
    engines: Vec<JoinHandle<()>>,
}

impl Remediation {
    /// Starts one engine per probed runtime. History comes from `histories`
    /// (engines replaced by a config reload), else from the state files under
    /// `paths.state_dir` (an agent restart), so new engines carry on where the
    /// previous ones stopped. An engine that dies makes `/healthz` fail.
    pub fn start(
        config: &Config,
        runtimes: Vec<(RuntimeConfig, watch::Receiver<RuntimeHealth>)>,
        metrics: &RemediationMetrics,
        status: Arc<StatusBoard>,
        histories: &Arc<Histories>,
        health: &Arc<Health>,
        cluster: &Cluster,
    ) -> Self {
        health.clear_failed();
        let board = Arc::new(Board::new(status));
        let r = &config.remediation;
        let procfs = procfs::Procfs::new(&config.paths.proc);
        let engines = runtimes
            .into_iter()
            .map(|(rt, runtime_health)| {
                let spec = defaults::RestartSpec::resolve(rt.kind, &rt.restart);
                let suffix = if r.dry_run { ".dry-run" } else { "" };
                let state_path = config
                    .paths
                    .state_dir
                    .join(format!("remediation-{}{suffix}.json", rt.kind));
                let mut parts = engine::EngineParts {
                    kind: rt.kind,
                    restarter: restart::build(&spec, &procfs),
                    spec,
                    method_choice: None,
                    policy: machine::Policy::from(r),
                    jitter: r.backoff_jitter,
                    dry_run: r.dry_run,
                    state_path,
                    procfs: procfs.clone(),
                    metrics: metrics.clone(),
                    board: Arc::clone(&board),
                    cluster: cluster.link(),
                    pause_configmap: config.kubernetes.pause_configmap.clone(),
                    histories: Arc::clone(histories),
                    diagnoser: diagnosis::Diagnoser::new(
                        &config.paths.proc,
                        &config.paths.cgroup,
                        r.blocked_after,
                    ),
                    on_disk_full: r.on_disk_full,
                    dumps_dir: config.paths.state_dir.join("dumps"),
                    keep_dumps: r.keep_dumps as usize,
                };
                let watch = Watch {
                    target: rt.kind.as_str(),
                    metrics: metrics.clone(),
                    board: Arc::clone(&board),
                    health: Arc::clone(health),
                };
                tokio::spawn(watch.run(async move {
                    // A method left to the agent is chosen from what the
                    // node shows (the runtime's cgroup, the system bus).
                    if parts.spec.method_chosen_by_agent {
                        let (spec, why) = restart::choose(parts.spec.clone(), &parts.procfs).await;
                        parts.restarter = restart::build(&spec, &parts.procfs);
                        parts.spec = spec;
                        parts.method_choice = why;
                    }
                    tracing::info!(
                        target = %parts.kind,
                        enabled = parts.policy.enabled,
                        dry_run = parts.dry_run,
                        method = report::method_name(parts.spec.method),
                        method_choice = parts.method_choice.as_deref().unwrap_or("configured"),
                        "remediation engine started"
                    );
                    engine::Engine::new(parts).run(runtime_health).await
                }))
            })
            .collect();
        Self { engines }
    }

    pub fn stop(self) {
        for e in self.engines {
            e.abort();
        }
    }
}

/// Runs one engine and makes its death visible: a panic is logged, the
/// target's state metric drops to no state at all, `/status` says why, and
/// `/healthz` fails (the agent is restarted rather than left looking healthy
/// with no remediation).
struct Watch {
    target: &'static str,
    metrics: RemediationMetrics,
    board: Arc<Board>,
    health: Arc<Health>,
}

impl Watch {
    async fn run(self, engine: impl std::future::Future<Output = ()>) {
        let Err(panic) = AssertUnwindSafe(engine).catch_unwind().await else {
            return;
        };
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        tracing::error!(
            target = self.target,
            error = why,
            "remediation engine stopped"
        );
        let states = machine::State::ALL.map(machine::State::as_str);
        self.metrics.set_state(self.target, "stopped", &states);
        self.board.set(
            self.target,
            serde_json::json!({ "state": "stopped", "error": why }),
        );
        self.health.fail(&format!("remediation/{}", self.target));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn a_dead_engine_fails_healthz_and_leaves_no_state_looking_healthy() {
        let metrics = Metrics::new();
        let status = Arc::new(StatusBoard::default());
        let health = Arc::new(Health::default());
        let states = machine::State::ALL.map(machine::State::as_str);
        metrics.remediation.set_state("docker", "healthy", &states);
        let watch = Watch {
            target: "docker",
            metrics: metrics.remediation.clone(),
            board: Arc::new(Board::new(Arc::clone(&status))),
            health: Arc::clone(&health),
        };
        watch
            .run(async { panic!("overflow when adding durations") })
            .await;
        assert_eq!(health.stuck(), vec!["remediation/docker"]);
        let text = metrics.encode();
        assert!(
            !text.contains("nodevitals_remediation_state{target=\"docker\",state=\"healthy\"} 1"),
            "{text}"
        );
        let json = status.to_json();
        assert_eq!(json["remediation"]["docker"]["state"], "stopped", "{json}");
        assert!(json["remediation"]["docker"]["error"]
            .as_str()
            .unwrap()
            .contains("overflow"));
        health.clear_failed();
        assert!(health.stuck().is_empty(), "replaced by a reload");
    }
}
