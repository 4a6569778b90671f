//! The CPU throttling probe: every `cpu.interval` it walks the cgroup
//! hierarchy under `paths.cgroup` (v1, v2 or hybrid), reads each container's
//! `cpu.stat`, limit, usage and pressure, names the container from its runtime,
//! and publishes a [`snapshot::CpuSnapshot`] that `/metrics` encodes at scrape
//! time and a `cpu` section of `/status` listing the most throttled containers.
//!
//! Metrics (names in `metrics/cpu.rs`): `nodevitals_container_cpu_periods_total`,
//! `_throttled_periods_total`, `_throttled_seconds_total`, `_usage_seconds_total`,
//! `_limit_cores`, `_throttled_ratio`, `_pressure_seconds_total{kind}`,
//! `nodevitals_node_cpu_pressure_seconds_total{kind}`, `nodevitals_cpu_containers`,
//! `nodevitals_cpu_parse_errors_total{file}`, `nodevitals_cpu_read_errors_total{file}`,
//! `nodevitals_cpu_identity_refreshes_total{runtime,result}`.

mod cri_directory;
mod discover;
mod docker_directory;
pub mod hierarchy;
pub mod identity;
mod limit;
mod limit_cache;
mod pressure;
mod probe;
mod reader;
pub mod scan;
pub mod snapshot;
mod stat;

pub use limit::Limit;
pub use pressure::{parse_pressure, Pressure};
pub use probe::{CpuProbe, CpuProbeConfig};
pub use stat::{CgroupVersion, Throttling};

use crate::vocabulary::CgroupFile;
use std::path::PathBuf;

/// Why a file's content was rejected. Pure parsers return it; it never panics
/// and never turns into a zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {field}: {value:?} is not a non-negative integer")]
    BadValue { field: String, value: String },
    #[error("malformed line {0:?}")]
    Malformed(String),
    #[error("not UTF-8")]
    NotUtf8,
}

/// A file of one scan that could not be used, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        file: CgroupFile,
        source: std::io::Error,
    },
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        file: CgroupFile,
        source: ParseError,
    },
}
