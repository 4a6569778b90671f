//! [`CpuProbe`]: one scan per run, off the async runtime, then identities,
//! ratios, and the new snapshot published to `/metrics` and `/status`. A run
//! fails only when there is no cpu controller to read (misconfigured); file
//! problems are counted (`nodevitals_cpu_parse_errors_total`,
//! `nodevitals_cpu_read_errors_total`) and listed in `/status`, and a runtime
//! that cannot name containers leaves them labelled by id.

use super::identity::{ContainerDirectory, IdentityCache};
use super::scan::{Scan, Scanner};
use super::snapshot::History;
use super::CpuError;
use crate::metrics::CpuMetrics;
use crate::probe::{Outcome, Probe, ProbeError, ProbeFuture, ProbeResult};
use crate::status::StatusBoard;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Containers listed in the `/status` section.
const STATUS_TOP: usize = 10;
/// Problems listed in the `/status` section.
const STATUS_ERRORS: usize = 5;

pub struct CpuProbe {
    interval: Duration,
    timeout: Duration,
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    metrics: CpuMetrics,
    status: Arc<StatusBoard>,
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// Taken while a scan runs on the blocking pool; rebuilt if that scan is lost.
    scanner: Option<Scanner>,
    identities: IdentityCache,
    history: History,
    /// Error kinds already logged at warn level; repeats go to debug.
    warned: HashSet<(bool, super::CgroupFile)>,
}

pub struct CpuProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
}

impl CpuProbe {
    pub fn new(
        config: CpuProbeConfig,
        directories: Vec<Arc<dyn ContainerDirectory>>,
        metrics: CpuMetrics,
        status: Arc<StatusBoard>,
    ) -> Self {
        for d in &directories {
            metrics.init_runtime(d.runtime());
        }
        // Half the deadline for the runtimes: a hung runtime must not cost the
        // CPU metrics of this round.
        let identities = IdentityCache::new(directories, config.timeout / 2);
        Self {
            interval: config.interval,
            timeout: config.timeout,
            cgroup_root: config.cgroup_root,
            proc_root: config.proc_root,
            metrics,
            status,
            state: tokio::sync::Mutex::new(State {
                scanner: None,
                identities,
                history: History::default(),
                warned: HashSet::new(),
            }),
        }
    }

    async fn scan(&self, scanner: Option<Scanner>) -> Result<(Scanner, Scan), ProbeError> {
        let mut scanner = match scanner {
            Some(s) => s,
            None => Scanner::new(&self.cgroup_root, &self.proc_root)
                .map_err(|e| ProbeError::new(Outcome::Misconfigured, e))?,
        };
        tokio::task::spawn_blocking(move || {
            let scan = scanner.scan();
            (scanner, scan)
        })
        .await
        .map_err(|e| ProbeError::new(Outcome::Error, format!("cgroup scan failed: {e}")))
    }

    fn count_errors(&self, errors: &[CpuError], warned: &mut HashSet<(bool, super::CgroupFile)>) {
        for e in errors {
            self.metrics.count_error(e);
            let key = match e {
                CpuError::Read { file, .. } => (true, *file),
                CpuError::Parse { file, .. } => (false, *file),
            };
            if warned.insert(key) {
                tracing::warn!(error = %e, "cpu probe: file rejected (repeats are logged at debug level)");
            } else {
                tracing::debug!(error = %e, "cpu probe: file rejected");
            }
        }
    }

    async fn round(&self, state: &mut State) -> ProbeResult {
        let (scanner, scan) = self.scan(state.scanner.take()).await?;
        let version = match scanner.layout().version() {
            super::CgroupVersion::V1 => "v1",
            super::CgroupVersion::V2 => "v2",
        };
        let hierarchy = scanner.layout().walk_root().display().to_string();
        state.scanner = Some(scanner);
        self.count_errors(&scan.errors, &mut state.warned);
        let ids: HashSet<&str> = scan.containers.iter().map(|r| r.id.as_str()).collect();
        let mut identity_errors = Vec::new();
        for r in state.identities.resolve(&ids).await {
            self.metrics.count_refresh(r.runtime, r.result.is_ok());
            if let Err(e) = r.result {
                tracing::warn!(error = %e, "cpu probe: containers keep their id labels");
                identity_errors.push(e.to_string());
            }
        }
        drop(ids);
        let State {
            identities,
            history,
            ..
        } = state;
        let snapshot =
            history.snapshot(scan.containers, scan.node_pressure, |id| identities.get(id));
        let mut section = snapshot.status(STATUS_TOP);
        section["cgroup_version"] = version.into();
        section["hierarchy"] = hierarchy.into();
        section["identity_errors"] = identity_errors.into();
        section["file_errors"] = scan
            .errors
            .iter()
            .take(STATUS_ERRORS)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .into();
        let detail = format!(
            "{} containers, {} throttled over the last interval, {} file errors",
            snapshot.containers.len(),
            section["throttled"],
            scan.errors.len()
        );
        self.status.set_section("cpu", section);
        self.metrics.publish(Arc::new(snapshot));
        Ok(detail)
    }
}

impl Probe for CpuProbe {
    fn name(&self) -> &str {
        "cpu"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            // Runs never overlap: ratios are per interval, from one history.
            let Ok(mut state) = self.state.try_lock() else {
                return Err(ProbeError::new(
                    Outcome::Error,
                    "previous scan still running",
                ));
            };
            self.round(&mut state).await
        })
    }
}
