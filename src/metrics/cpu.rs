//! CPU metrics. The per-container series are rendered from the probe's latest
//! scan (anything that is [`CpuSeries`]) by a custom collector, once per scan
//! (not per scrape: 1,000 containers are 7,000 series), and `/metrics` appends
//! that text. A container's series vanish with its cgroup: there is no
//! registry of stale series.
//! Kubernetes containers are labelled `namespace,pod,container`; others `id`
//! (and `name` when the runtime has one).

use super::exposition::{to_prometheus_text, EOF};
use crate::gzip::Deflated;
use crate::vocabulary::{CgroupFile, RuntimeKind};
use hyper::body::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

/// How a container is named in its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ContainerName<'a> {
    Kubernetes {
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
    },
    /// Not a Kubernetes container: its cgroup id, and the runtime's name if any.
    Runtime { id: &'a str, name: Option<&'a str> },
}

/// `cpu.stat` throttling counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleCounts {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// PSI totals of `cpu.pressure` or `/proc/pressure/cpu`, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureTotals {
    pub some_us: u64,
    pub full_us: Option<u64>,
}

/// One container's values of one scan; `None` = the series is absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerValues<'a> {
    pub name: ContainerName<'a>,
    pub throttling: Option<ThrottleCounts>,
    pub usage_ns: Option<u64>,
    pub limit_cores: Option<f64>,
    pub throttled_ratio: Option<f64>,
    pub pressure: Option<PressureTotals>,
}

/// What one CPU scan hands to its metrics. The probe's snapshot implements
/// it, so these metrics never see the probe's types and the probe never
/// sees a metric name or label.
pub trait CpuSeries: fmt::Debug + Send + Sync + 'static {
    fn container_count(&self) -> usize;
    fn containers(&self) -> Vec<ContainerValues<'_>>;
    fn node_pressure(&self) -> Option<PressureTotals>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    runtime: &'static str,
    result: &'static str,
}

/// The latest snapshot's series, rendered once per snapshot and shared by
/// every scrape until the next one: a scrape clones a `Bytes` (a reference
/// count), never the text. OpenMetrics is rendered with the snapshot and ends
/// with `# EOF`, so an OpenMetrics response is two chunks (the registry's
/// metrics, then these) written together. The Prometheus text format is built
/// from it by the first scrape that asks for it (Prometheus asks for
/// OpenMetrics, so usually none): the two differ only in the family headers.
/// Each format is compressed (raw DEFLATE, for gzip responses) by the first
/// scrape of this snapshot that accepts gzip (Prometheus always does), and
/// every later gzip scrape shares those bytes.
pub(super) struct Rendered {
    openmetrics: Bytes,
    text: OnceLock<Bytes>,
    openmetrics_gz: OnceLock<Option<Deflated>>,
    text_gz: OnceLock<Option<Deflated>>,
}

impl Default for Rendered {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl Rendered {
    fn new(mut openmetrics: String) -> Self {
        openmetrics.push_str(EOF);
        // Kept until the next snapshot: without the capacity reserved to render.
        openmetrics.shrink_to_fit();
        Self {
            openmetrics: Bytes::from(openmetrics),
            text: OnceLock::new(),
            openmetrics_gz: OnceLock::new(),
            text_gz: OnceLock::new(),
        }
    }

    /// The series in OpenMetrics, with the `# EOF` trailer.
    pub(super) fn openmetrics(&self) -> Bytes {
        self.openmetrics.clone()
    }

    /// The series in the Prometheus text format.
    pub(super) fn text(&self) -> Bytes {
        let text = self.text.get_or_init(|| {
            let openmetrics = String::from_utf8_lossy(&self.openmetrics);
            let series = openmetrics.strip_suffix(EOF).unwrap_or(&openmetrics);
            Bytes::from(text_format(series))
        });
        text.clone()
    }

    /// The series in OpenMetrics (`openmetrics`) or the text format,
    /// compressed. `None` if the compressor failed: the scrape is then
    /// answered uncompressed.
    pub(super) fn deflated(&self, openmetrics: bool) -> Option<Deflated> {
        let (cell, series) = if openmetrics {
            (&self.openmetrics_gz, self.openmetrics())
        } else {
            (&self.text_gz, self.text())
        };
        cell.get_or_init(|| Deflated::new(&series)).clone()
    }
}

/// OpenMetrics series in the Prometheus text format: the lines are copied,
/// only the `# HELP`/`# TYPE` header of each family is rewritten (much faster
/// than converting every line).
fn text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 1024);
    let (mut pos, mut at, mut help_at) = (0, 0, None);
    for line in openmetrics.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        if line.starts_with("# HELP ") {
            help_at = Some(start);
        } else if line.starts_with("# TYPE ") {
            let header = help_at.take().unwrap_or(start);
            out.push_str(&openmetrics[at..header]);
            out.push_str(&to_prometheus_text(&openmetrics[header..pos]));
            at = pos;
        } else {
            help_at = None;
        }
    }
    out.push_str(&openmetrics[at..]);
    out
}

#[derive(Clone)]
pub struct CpuMetrics {
    rendered: Arc<RwLock<Arc<Rendered>>>,
    parse_errors: Family<FileLabels, Counter>,
    read_errors: Family<FileLabels, Counter>,
    refreshes: Family<RefreshLabels, Counter>,
}

impl CpuMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            rendered: Arc::default(),
            parse_errors: Family::default(),
            read_errors: Family::default(),
            refreshes: Family::default(),
        };
        r.register(
            "cpu_parse_errors",
            "cgroup and pressure files whose content was rejected, by file name",
            m.parse_errors.clone(),
        );
        r.register(
            "cpu_read_errors",
            "cgroup and pressure files that could not be read (other than vanished cgroups), by file name",
            m.read_errors.clone(),
        );
        r.register(
            "cpu_identity_refreshes",
            "Container lists fetched from a runtime to name container cgroups, by result",
            m.refreshes.clone(),
        );
        for f in CgroupFile::ALL {
            let l = FileLabels { file: f.as_str() };
            let _ = m.parse_errors.get_or_create(&l);
            let _ = m.read_errors.get_or_create(&l);
        }
        m
    }

    /// Makes `snapshot` what the next scrape shows.
    pub fn publish(&self, snapshot: Arc<dyn CpuSeries>) {
        let rendered = Arc::new(Rendered::new(render(snapshot)));
        *self.rendered.write().unwrap_or_else(|e| e.into_inner()) = rendered;
    }

    /// Removes every per-container series (the probe was turned off).
    pub fn clear(&self) {
        *self.rendered.write().unwrap_or_else(|e| e.into_inner()) = Arc::default();
    }

    /// The rendered series of the latest snapshot.
    pub(super) fn rendered(&self) -> Arc<Rendered> {
        Arc::clone(&self.rendered.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A file of `file`'s kind could not be read (other than a vanished cgroup).
    pub fn count_read_error(&self, file: CgroupFile) {
        self.read_errors
            .get_or_create(&FileLabels {
                file: file.as_str(),
            })
            .inc();
    }

    /// A file of `file`'s kind was read but its content rejected.
    pub fn count_parse_error(&self, file: CgroupFile) {
        self.parse_errors
            .get_or_create(&FileLabels {
                file: file.as_str(),
            })
            .inc();
    }

    pub fn init_runtime(&self, runtime: RuntimeKind) {
        for result in ["ok", "error"] {
            let _ = self.refreshes.get_or_create(&RefreshLabels {
                runtime: runtime.as_str(),
                result,
            });
        }
    }

    pub fn count_refresh(&self, runtime: RuntimeKind, ok: bool) {
        self.refreshes
            .get_or_create(&RefreshLabels {
                runtime: runtime.as_str(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }
}

/// `namespace,pod,container` for Kubernetes containers, else `id[,name]`.
struct ContainerLabels<'a>(ContainerName<'a>);

impl EncodeLabelSet for ContainerLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        match self.0 {
            ContainerName::Kubernetes {
                namespace,
                pod,
                container,
            } => {
                ("namespace", namespace).encode(enc.encode_label())?;
                ("pod", pod).encode(enc.encode_label())?;
                ("container", container).encode(enc.encode_label())
            }
            ContainerName::Runtime { id, name } => {
                ("id", id).encode(enc.encode_label())?;
                match name {
                    Some(name) => ("name", name).encode(enc.encode_label()),
                    None => Ok(()),
                }
            }
        }
    }
}

type Kind = [(&'static str, &'static str); 1];
const SOME: Kind = [("kind", "some")];
const FULL: Kind = [("kind", "full")];

#[derive(Debug)]
struct SnapshotCollector {
    snap: Arc<dyn CpuSeries>,
}

/// The exposition text of a snapshot's series, through the same encoder (and
/// prefix) as the rest of the registry.
fn render(snap: Arc<dyn CpuSeries>) -> String {
    // About 130 bytes per series, 7 series per container.
    let mut out = String::with_capacity(4096 + snap.container_count() * 1024);
    let mut r = Registry::with_prefix(super::PREFIX);
    r.register_collector(Box::new(SnapshotCollector { snap }));
    if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut out, &r) {
        tracing::error!(error = %e, "encoding CPU metrics failed");
    }
    out
}

/// One metric family: its descriptor, then one sample per label set.
fn family<S: EncodeLabelSet, V>(
    enc: &mut DescriptorEncoder,
    (name, help, ty): (&str, &str, MetricType),
    samples: impl Iterator<Item = (S, V)>,
    put: fn(MetricEncoder<'_>, &V) -> fmt::Result,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in samples {
        put(m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

fn counters<S: EncodeLabelSet, V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (S, V)>,
) -> fmt::Result {
    family(
        enc,
        (name, help, MetricType::Counter),
        samples,
        |mut m, v| m.encode_counter::<NoLabelSet, V, f64>(v, None),
    )
}

fn gauges<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (S, f64)>,
) -> fmt::Result {
    family(enc, (name, help, MetricType::Gauge), samples, |mut m, v| {
        m.encode_gauge(v)
    })
}

fn seconds_ns(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn seconds_us(us: u64) -> f64 {
    us as f64 / 1e6
}

// Help texts end with a period: the registry adds one to registered metrics,
// collectors write theirs as given.
impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let containers = self.snap.containers();
        let all = || containers.iter().map(|c| (ContainerLabels(c.name), c));
        let throttling = || all().filter_map(|(l, c)| c.throttling.map(|t| (l, t)));
        enc.encode_descriptor(
            "cpu_containers",
            "Container cgroups found by the last CPU scan.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(containers.len() as u64))?;
        counters(
            &mut enc,
            "container_cpu_periods",
            "CFS enforcement periods in which the container was runnable (cpu.stat nr_periods).",
            throttling().map(|(l, t)| (l, t.periods)),
        )?;
        counters(
            &mut enc,
            "container_cpu_throttled_periods",
            "CFS periods in which the container hit its quota and was throttled (cpu.stat nr_throttled).",
            throttling().map(|(l, t)| (l, t.throttled_periods)),
        )?;
        counters(
            &mut enc,
            "container_cpu_throttled_seconds",
            "Total time the container's threads were throttled (cpu.stat throttled_time / throttled_usec).",
            throttling().map(|(l, t)| (l, seconds_ns(t.throttled_ns))),
        )?;
        counters(
            &mut enc,
            "container_cpu_usage_seconds",
            "CPU time consumed by the container (cpuacct.usage on v1, cpu.stat usage_usec on v2).",
            all().filter_map(|(l, c)| c.usage_ns.map(|u| (l, seconds_ns(u)))),
        )?;
        gauges(
            &mut enc,
            "container_cpu_limit_cores",
            "CFS quota in cores (quota / period); absent when the container has no CPU limit.",
            all().filter_map(|(l, c)| c.limit_cores.map(|cores| (l, cores))),
        )?;
        gauges(
            &mut enc,
            "container_cpu_throttled_ratio",
            "Throttled periods / periods over the last scan interval (0 to 1).",
            all().filter_map(|(l, c)| c.throttled_ratio.map(|r| (l, r))),
        )?;
        counters(
            &mut enc,
            "container_cpu_pressure_seconds",
            "Time some (or all) of the container's tasks were stalled waiting for CPU (cgroup v2 cpu.pressure).",
            containers.iter().filter_map(|c| c.pressure.map(|p| (c.name, p))).flat_map(|(name, p)| {
                let some = Some(((ContainerLabels(name), SOME), seconds_us(p.some_us)));
                let full = p.full_us.map(|f| ((ContainerLabels(name), FULL), seconds_us(f)));
                some.into_iter().chain(full)
            }),
        )?;
        let node = self.snap.node_pressure();
        counters(
            &mut enc,
            "node_cpu_pressure_seconds",
            "Time some (or all) runnable tasks of the node were stalled waiting for CPU (/proc/pressure/cpu).",
            node.into_iter().flat_map(|p| {
                let some = Some((SOME, seconds_us(p.some_us)));
                some.into_iter().chain(p.full_us.map(|f| (FULL, seconds_us(f))))
            }),
        )
    }
}
