//! The words every layer shares, in one leaf module that imports nothing of
//! the crate: how a check went ([`Outcome`], [`ProbeError`]), which runtime
//! ([`RuntimeKind`]), which request to it ([`Operation`]), and what
//! remediation learns of it after each round ([`RuntimeHealth`]), what a
//! round of a node service's probe says of the service ([`ServiceRound`]),
//! which cgroup file a CPU scan could not use ([`CgroupFile`]). Probes,
//! runtime clients, metrics, status and remediation depend on it; it depends
//! on none of them, so none of them has to know another. Emits no metrics.

use serde::{Deserialize, Serialize};
use std::fmt;
use tokio::time::Instant;

/// A container runtime; `as_str` is the `runtime` label and the config `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Docker,
    Containerd,
    Crio,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Crio => "crio",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check went. `misconfigured` is never remediated: it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// No answer within the deadline.
    Timeout,
    /// Socket absent or connection refused: the daemon is down.
    Refused,
    /// An answer, but a bad one.
    Error,
    /// Permission denied, not a socket, wrong scheme: the agent's setup is wrong.
    Misconfigured,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
            Outcome::Misconfigured => "misconfigured",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed check: its class and a human-readable reason (never used as a label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    pub outcome: Outcome,
    pub message: String,
}

impl ProbeError {
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.outcome, self.message)
    }
}

/// A successful check returns a short detail line for `/status` and `once`.
pub type ProbeResult = Result<String, ProbeError>;

/// One request a probe round makes; its `as_str` is the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Ping,
    ListContainers,
    Info,
    Version,
    Status,
    ListPodSandbox,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Ping => "ping",
            Operation::ListContainers => "list_containers",
            Operation::Info => "info",
            Operation::Version => "version",
            Operation::Status => "status",
            Operation::ListPodSandbox => "list_pod_sandbox",
        }
    }
}

/// What remediation needs to know about a runtime, updated after every round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeHealth {
    pub rounds: u64,
    pub last_outcome: Option<Outcome>,
    pub consecutive_failures: u32,
    /// The last time the runtime answered anything, late answers included.
    pub last_answer: Option<Instant>,
    pub running_containers: Option<u64>,
    /// The last `LiveRestore` answer: whether a restart spares running containers.
    pub live_restore: Option<bool>,
    /// The runtime's root directory (Docker's `DockerRootDir`), once known.
    pub root_dir: Option<std::path::PathBuf>,
}

/// The files the probe reads; `as_str` is the `file` label of its error counters.
/// A node service whose probe tells the cluster how it is (a node condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeService {
    Kubelet,
    Dns,
}

/// One round of a node service's probe: whether the service answered at all
/// (the kubelet's health endpoint said ok; some DNS server gave an answer),
/// and what the round saw, for a condition's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRound {
    pub answered: bool,
    pub summary: String,
}

impl ServiceRound {
    /// The round whose probe result is `result`, summarized by its detail
    /// or error message.
    pub fn of(answered: bool, result: &ProbeResult) -> Self {
        let summary = match result {
            Ok(detail) => detail.clone(),
            Err(e) => e.message.clone(),
        };
        Self { answered, summary }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupFile {
    CpuStat,
    CpuMax,
    CfsQuota,
    CfsPeriod,
    CpuacctUsage,
    CpuPressure,
    /// `/proc/pressure/cpu`.
    NodePressure,
}

impl CgroupFile {
    pub const ALL: &'static [CgroupFile] = &[
        CgroupFile::CpuStat,
        CgroupFile::CpuMax,
        CgroupFile::CfsQuota,
        CgroupFile::CfsPeriod,
        CgroupFile::CpuacctUsage,
        CgroupFile::CpuPressure,
        CgroupFile::NodePressure,
    ];

    /// The file name in its directory (`/proc/pressure` for the node's).
    pub fn file_name(self) -> &'static str {
        match self {
            CgroupFile::NodePressure => "cpu",
            other => other.as_str(),
        }
    }

    /// The `file` label: the file name, `pressure/cpu` for the node's.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupFile::CpuStat => "cpu.stat",
            CgroupFile::CpuMax => "cpu.max",
            CgroupFile::CfsQuota => "cpu.cfs_quota_us",
            CgroupFile::CfsPeriod => "cpu.cfs_period_us",
            CgroupFile::CpuacctUsage => "cpuacct.usage",
            CgroupFile::CpuPressure => "cpu.pressure",
            CgroupFile::NodePressure => "pressure/cpu",
        }
    }
}
