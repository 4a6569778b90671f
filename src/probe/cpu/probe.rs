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
use crate::probe::{Probe, ProbeFuture};
use crate::status::StatusBoard;
use crate::vocabulary::{CgroupFile, Outcome, ProbeError, ProbeResult};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, TryLockError};
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
    scanner: ScannerSlot,
    state: tokio::sync::Mutex<State>,
}

/// What a scan returns besides its readings: where it read.
struct Scanned {
    scan: Scan,
    version: &'static str,
    hierarchy: String,
}

/// The scanner, built on first use. A scan holds it on the blocking pool even
/// when its run was cut off at the deadline, so a slow filesystem costs one
/// blocked thread, never a pile of them.
type ScannerSlot = Arc<std::sync::Mutex<Option<Scanner>>>;

struct State {
    identities: IdentityCache,
    history: History,
    /// Error kinds already logged at warn level; repeats go to debug.
    warned: HashSet<(bool, CgroupFile)>,
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
            scanner: ScannerSlot::default(),
            state: tokio::sync::Mutex::new(State {
                identities,
                history: History::default(),
                warned: HashSet::new(),
            }),
        }
    }

    async fn scan(&self) -> Result<Scanned, ProbeError> {
        let slot = Arc::clone(&self.scanner);
        let (cgroup_root, proc_root) = (self.cgroup_root.clone(), self.proc_root.clone());
        let scanned = tokio::task::spawn_blocking(move || {
            let mut guard = match slot.try_lock() {
                Ok(g) => g,
                // A scan panicked: start over with a fresh scanner.
                Err(TryLockError::Poisoned(p)) => {
                    let mut g = p.into_inner();
                    *g = None;
                    g
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(ProbeError::new(
                        Outcome::Error,
                        "the previous cgroup scan is still running",
                    ))
                }
            };
            let scanner = match &mut *guard {
                Some(s) => s,
                empty => empty.insert(
                    Scanner::new(&cgroup_root, &proc_root)
                        .map_err(|e| ProbeError::new(Outcome::Misconfigured, e.to_string()))?,
                ),
            };
            Ok(Scanned {
                scan: scanner.scan(),
                version: match scanner.layout().version() {
                    super::CgroupVersion::V1 => "v1",
                    super::CgroupVersion::V2 => "v2",
                },
                hierarchy: scanner.layout().walk_root().display().to_string(),
            })
        })
        .await;
        scanned.unwrap_or_else(|e| {
            Err(ProbeError::new(
                Outcome::Error,
                format!("cgroup scan failed: {e}"),
            ))
        })
    }

    fn count_errors(&self, errors: &[CpuError], warned: &mut HashSet<(bool, CgroupFile)>) {
        for e in errors {
            let key = match e {
                CpuError::Read { file, .. } => {
                    self.metrics.count_read_error(*file);
                    (true, *file)
                }
                CpuError::Parse { file, .. } => {
                    self.metrics.count_parse_error(*file);
                    (false, *file)
                }
            };
            if warned.insert(key) {
                tracing::warn!(error = %e, "cpu probe: file rejected (repeats are logged at debug level)");
            } else {
                tracing::debug!(error = %e, "cpu probe: file rejected");
            }
        }
    }

    async fn round(&self, state: &mut State) -> ProbeResult {
        let Scanned {
            scan,
            version,
            hierarchy,
        } = self.scan().await?;
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
            "containers: {}, throttled in the last interval: {}, file errors: {}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeKind;
    use crate::metrics::Metrics;
    use crate::probe::cpu::identity::{DirectoryFuture, Identity};
    use std::path::Path;

    const CONTAINERD_ID: &str = "6b1f0c1e2d3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c";
    const CRIO_ID: &str = "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8";
    const DOCKER_ID: &str = "0d5e3c1f7a9b2e4d6c8a0f1e3d5c7b9a2e4f6d8c0b1a3f5e7d9c2b4a6f8e0d1c";
    const V1_POD_ID: &str = "3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d";

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cpu")
            .join(name)
    }

    /// Stands in for a CRI runtime's ListContainers: containerd and CRI-O with
    /// the systemd cgroup driver and cgroup v2 cannot run on this machine.
    struct FakeCri(Vec<(String, Identity)>);

    impl ContainerDirectory for FakeCri {
        fn runtime(&self) -> RuntimeKind {
            RuntimeKind::Containerd
        }
        fn list(&self) -> DirectoryFuture {
            let list = self.0.clone();
            Box::pin(async move { Ok(list) })
        }
    }

    fn pod(id: &str, ns: &str, pod: &str, container: &str) -> (String, Identity) {
        let labels = [
            (super::super::identity::NAMESPACE_LABEL, ns),
            (super::super::identity::POD_LABEL, pod),
            (super::super::identity::CONTAINER_LABEL, container),
        ];
        let identity = Identity::from_labels(
            |k| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v),
            None,
            1,
        );
        (id.to_owned(), identity)
    }

    fn probe(root: &str, known: Vec<(String, Identity)>) -> (CpuProbe, Metrics, Arc<StatusBoard>) {
        let metrics = Metrics::new();
        let status = Arc::new(StatusBoard::default());
        let p = CpuProbe::new(
            CpuProbeConfig {
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                cgroup_root: fixture(root),
                proc_root: fixture(root).join("proc"),
            },
            vec![Arc::new(FakeCri(known))],
            metrics.cpu.clone(),
            Arc::clone(&status),
        );
        (p, metrics, status)
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    /// Asserts the five counter/limit lines of one container, values in that order.
    fn assert_container(text: &str, labels: &str, values: [&str; 5]) {
        let lines: Vec<String> = [
            "periods_total",
            "throttled_periods_total",
            "throttled_seconds_total",
            "usage_seconds_total",
            "limit_cores",
        ]
        .iter()
        .zip(values)
        .map(|(m, v)| format!("nodevitals_container_cpu_{m}{labels} {v}"))
        .collect();
        assert_lines(text, &lines);
    }

    /// The probe over a fixture tree after its first run, and that scrape,
    /// checked for the lines of the container labelled `labels`.
    async fn first_scrape(
        root: &str,
        known: Vec<(String, Identity)>,
        (labels, values): (&str, [&str; 5]),
    ) -> (CpuProbe, Metrics, Arc<StatusBoard>, String) {
        let (p, metrics, status) = probe(root, known);
        p.run().await.unwrap();
        let text = metrics.encode();
        assert_container(&text, labels, values);
        (p, metrics, status, text)
    }

    fn assert_lines(text: &str, lines: &[String]) {
        for line in lines {
            assert!(has_line(text, line), "missing {line}\n{text}");
        }
    }

    #[tokio::test]
    async fn v2_systemd_and_crio_layouts_from_fixtures() {
        let known = vec![
            pod(CONTAINERD_ID, "shop", "checkout-7d9f8", "api"),
            pod(CRIO_ID, "kube-system", "coredns-5d78c", "coredns"),
        ];
        let api = r#"{namespace="shop",pod="checkout-7d9f8",container="api"}"#;
        let values = ["1204", "1180", "106.293785", "8.419503", "0.2"];
        let (p, metrics, status, text) = first_scrape("v2-systemd", known, (api, values)).await;
        assert_lines(
            &text,
            &[
            r#"nodevitals_container_cpu_pressure_seconds_total{namespace="shop",pod="checkout-7d9f8",container="api",kind="full"} 97.650121"#.to_owned(),
            r#"nodevitals_container_cpu_periods_total{namespace="kube-system",pod="coredns-5d78c",container="coredns"} 0"#.to_owned(),
            format!(r#"nodevitals_container_cpu_limit_cores{{id="{DOCKER_ID}"}} 1.5"#),
            r#"nodevitals_node_cpu_pressure_seconds_total{kind="some"} 73.120394"#.to_owned(),
            r#"nodevitals_cpu_parse_errors_total{file="cpu.stat"} 1"#.to_owned(),
            "nodevitals_cpu_containers 4".to_owned(),
        ],
        );
        // CRI-O's conmon scope is not a container; an unlimited container has
        // no limit series; the torn cpu.stat gives no zeros.
        assert!(!text.contains("conmon"), "{text}");
        assert!(!text.contains(r#"nodevitals_container_cpu_limit_cores{namespace="kube-system""#));
        assert!(!text.contains("f00dfeed"), "{text}");
        assert!(
            !text.contains("throttled_ratio{"),
            "no ratio before a second scan"
        );

        p.run().await.unwrap();
        let text = metrics.encode();
        assert!(
            has_line(
                &text,
                &format!("nodevitals_container_cpu_throttled_ratio{api} 0.0")
            ),
            "unchanged counters: nothing throttled in the interval\n{text}"
        );
        // The text format pre-rendered per snapshot is the per-scrape conversion.
        assert_eq!(
            String::from_utf8(metrics.exposition(false).to_vec()).unwrap(),
            crate::metrics::exposition::to_prometheus_text(&text)
        );
        let s = status.to_json();
        assert_eq!(s["cpu"]["cgroup_version"], "v2");
        assert!(
            s["cpu"]["file_errors"][0]
                .as_str()
                .unwrap()
                .contains("f00dfeed"),
            "{s}"
        );
    }

    #[tokio::test]
    async fn v1_cgroupfs_layout_from_fixtures() {
        let known = vec![pod(V1_POD_ID, "shop", "web-0", "nginx")];
        let web = r#"{namespace="shop",pod="web-0",container="nginx"}"#;
        let values = ["5231", "812", "40.213985513", "301.23456789", "0.5"];
        let (_, _, _, text) = first_scrape("v1-cgroupfs", known, (web, values)).await;
        assert_lines(
            &text,
            &[format!(
                r#"nodevitals_container_cpu_usage_seconds_total{{id="{DOCKER_ID}"}} 1.5"#
            )],
        );
        assert!(
            !text.contains("container_cpu_pressure_seconds_total{"),
            "v1 has no per-cgroup PSI"
        );
        assert!(!text.contains(&format!(
            r#"nodevitals_container_cpu_limit_cores{{id="{DOCKER_ID}"}}"#
        )));
    }

    #[tokio::test]
    async fn no_cpu_controller_is_misconfigured() {
        let (p, _, _) = probe("nonexistent", Vec::new());
        let e = p.run().await.unwrap_err();
        assert_eq!(e.outcome, Outcome::Misconfigured);
        assert!(e.message.contains("nonexistent"), "{e}");
    }
}
