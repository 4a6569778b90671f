//! The probe interface. A probe performs one check per call and says how it went;
//! the scheduler (not the probe) decides when to run it, enforces its deadline and
//! records `nodevitals_probe_success` / `nodevitals_probe_duration_seconds`.

pub mod cpu;
pub mod dns;
pub mod kubelet;
pub mod runtime;
pub mod unusable;

use crate::vocabulary::ProbeResult;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

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
