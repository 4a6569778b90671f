//! The probe interface. A probe performs one check per call and says how it went;
//! the scheduler (not the probe) decides when to run it, enforces its deadline and
//! records `nodevitals_probe_success` / `nodevitals_probe_duration_seconds`.

pub mod cpu;
pub mod dns;
pub mod kubelet;
pub mod runtime;
pub mod unusable;

use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeResult> + Send + 'a>>;

/// One data source. Implementations record their own domain metrics; they never
/// restart anything and never know about other probes.
pub trait Probe: Send + Sync + 'static {
    /// The `probe` label value; unique among the probes of one agent.
    fn name(&self) -> &str;
    fn interval(&self) -> Duration;
    /// The hard deadline of one run; the scheduler drops the run when it passes.
    fn timeout(&self) -> Duration;
    fn run(&self) -> ProbeFuture<'_>;
}
