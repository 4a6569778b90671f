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
mod procfs;
mod report;
mod restart;
mod state_file;

use crate::config::{Config, RemediationConfig, RuntimeConfig};
use crate::kubernetes::Link;
use crate::metrics::RemediationMetrics;
use crate::status::StatusBoard;
use crate::vocabulary::RuntimeHealth;
use std::collections::BTreeMap;
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
    /// Starts one engine per probed runtime. History comes from the state
    /// files under `paths.state_dir`, so engines replaced by a config reload
    /// (or an agent restart) carry on where the previous ones stopped.
    pub(crate) fn start(
        config: &Config,
        runtimes: Vec<(RuntimeConfig, watch::Receiver<RuntimeHealth>)>,
        metrics: &RemediationMetrics,
        status: Arc<StatusBoard>,
        cluster: Link,
    ) -> Self {
        let board = Arc::new(Board::new(status));
        let r = &config.remediation;
        let procfs = procfs::Procfs::new(&config.paths.proc);
        let engines = runtimes
            .into_iter()
            .map(|(rt, health)| {
                let spec = defaults::RestartSpec::resolve(rt.kind, &rt.restart);
                let suffix = if r.dry_run { ".dry-run" } else { "" };
                let state_path = config
                    .paths
                    .state_dir
                    .join(format!("remediation-{}{suffix}.json", rt.kind));
                let parts = engine::EngineParts {
                    kind: rt.kind,
                    restarter: restart::build(&spec, &procfs),
                    spec,
                    policy: machine::Policy::from(r),
                    jitter: r.backoff_jitter,
                    dry_run: r.dry_run,
                    state_path,
                    procfs: procfs.clone(),
                    metrics: metrics.clone(),
                    board: Arc::clone(&board),
                    cluster: cluster.clone(),
                    pause_configmap: config.kubernetes.pause_configmap.clone(),
                    diagnoser: diagnosis::Diagnoser::new(
                        &config.paths.proc,
                        &config.paths.cgroup,
                        r.blocked_after,
                    ),
                    on_disk_full: r.on_disk_full,
                    dumps_dir: config.paths.state_dir.join("dumps"),
                    keep_dumps: r.keep_dumps as usize,
                };
                tracing::info!(
                    target = %rt.kind,
                    enabled = r.enabled,
                    dry_run = r.dry_run,
                    method = report::method_name(parts.spec.method),
                    "remediation engine started"
                );
                tokio::spawn(engine::Engine::new(parts).run(health))
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
