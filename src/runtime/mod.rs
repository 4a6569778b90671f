//! Clients of the container runtimes: Docker's Engine API (`docker`) and the
//! CRI gRPC API of containerd and CRI-O (`cri`, over `cri_transport`), the
//! classification of their errors into outcomes (`classify`), and the
//! well-known sockets (`detect`). They sit below every probe: the runtime
//! probe drives them through [`RuntimeClient`], the CPU probe asks the same
//! clients for container names, and neither probe knows the other.
//! Emits no metrics (the runtime probe records what they answer).

pub mod classify;
pub mod cri;
pub(crate) mod cri_messages;
// Public (hidden) so the tests' CRI client speaks gRPC over the same transport.
#[doc(hidden)]
pub mod cri_transport;
pub mod detect;
pub mod docker;
pub mod reply_limit;

use crate::vocabulary::{Operation, Outcome, RuntimeKind};
use std::future::Future;
use std::pin::Pin;

/// What a successful operation learned.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The runtime answered; nothing to record beyond latency.
    Alive,
    /// Container counts by state (every state of the runtime's closed set).
    Containers(Vec<(&'static str, u64)>),
    /// Pod sandbox counts by state (CRI runtimes).
    Sandboxes(Vec<(&'static str, u64)>),
    /// Runtime conditions such as CRI `RuntimeReady`.
    Conditions(Vec<(String, bool)>),
    /// The runtime does not serve this operation's API (containerd with its
    /// CRI plugin disabled): nothing was asked and nothing is recorded.
    NotServed,
    /// Docker's `/info`: whether running containers survive a restart of the
    /// runtime (`LiveRestoreEnabled`) and where it keeps its data
    /// (`DockerRootDir`); `None` each when the runtime did not say.
    Info {
        live_restore: Option<bool>,
        root_dir: Option<std::path::PathBuf>,
    },
}

/// Counts items per state over a runtime's full, closed state set (zeros
/// included, so every series exists); states outside the set are not counted.
pub fn count_states<S: AsRef<str>>(
    all: &'static [&'static str],
    seen: impl Iterator<Item = S>,
) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = all.iter().map(|s| (*s, 0)).collect();
    for state in seen {
        if let Some(slot) = counts
            .iter_mut()
            .find(|(s, _)| s.eq_ignore_ascii_case(state.as_ref()))
        {
            slot.1 += 1;
        }
    }
    counts
}

/// A failed operation. `answered` is true when the runtime did reply (with an
/// error): a reply of any kind proves the daemon is not hung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub outcome: Outcome,
    pub answered: bool,
    pub message: String,
}

pub type CallFuture = Pin<Box<dyn Future<Output = Result<Answer, CallError>> + Send>>;

/// One small trait per external system: how to talk to one runtime.
pub trait RuntimeClient: Send + Sync + 'static {
    fn kind(&self) -> RuntimeKind;
    fn socket(&self) -> &std::path::Path;
    /// The operations of one probe round, in order. The first is the liveness call.
    fn operations(&self) -> &'static [Operation];
    /// Operations too costly for every round (Docker's `/info`), run on the
    /// first round and every `OCCASIONAL_EVERY` rounds after it.
    fn occasional_operations(&self) -> &'static [Operation] {
        &[]
    }
    /// Starts `op`. The future must be `'static` so it can outlive its deadline.
    fn call(&self, op: Operation) -> CallFuture;
}
