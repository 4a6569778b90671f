//! Container-runtime probes. One generic [`RuntimeProbe`] drives any
//! [`RuntimeClient`] (Docker and CRI runtimes, in `crate::runtime`): it
//! checks the socket, runs each operation under its own deadline, lets a request
//! that missed its deadline finish in the background (bounded) so a late answer
//! proves the runtime alive, and publishes a [`RuntimeHealth`] for remediation.
//!
//! Metrics: `nodevitals_runtime_up`, `_request_duration_seconds`,
//! `_requests_total`, `_late_answers_total`, `_consecutive_failures`,
//! `_containers`, `_pod_sandboxes`, `_condition`, `_live_restore`.

use crate::metrics::RuntimeMetrics;
use crate::probe::{Probe, ProbeFuture};
use crate::runtime::{classify, Answer, CallError, RuntimeClient};
use crate::vocabulary::{Operation, Outcome, ProbeError, ProbeResult, RuntimeHealth, RuntimeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a successful round learned.
#[derive(Debug, Clone, Default, PartialEq)]
struct RoundFacts {
    running: Option<u64>,
    live_restore: Option<bool>,
    root_dir: Option<std::path::PathBuf>,
    /// Conditions the runtime reported false (CRI `NetworkReady` without CNI).
    not_ready: Vec<String>,
}

impl RoundFacts {
    /// The one-line detail of `/status` and `nodevitals once`.
    fn detail(&self) -> String {
        let mut d = match self.running {
            Some(n) => format!("{n} running containers"),
            None => "answering".to_owned(),
        };
        if !self.not_ready.is_empty() {
            d.push_str(&format!("; not ready: {}", self.not_ready.join(", ")));
        }
        d
    }
}

/// How often (in rounds) occasional operations run.
const OCCASIONAL_EVERY: u64 = 10;

/// Requests still running past their deadline are capped per runtime, so a hung
/// daemon cannot make the agent accumulate connections.
const MAX_LATE_REQUESTS: usize = 4;

pub struct RuntimeProbe {
    name: String,
    client: Arc<dyn RuntimeClient>,
    interval: Duration,
    timeout: Duration,
    /// How long a timed-out request may keep running to deliver a late answer.
    late_window: Duration,
    metrics: RuntimeMetrics,
    health: Arc<watch::Sender<RuntimeHealth>>,
    late_in_flight: Arc<AtomicUsize>,
    round_lock: tokio::sync::Mutex<()>,
}

impl RuntimeProbe {
    pub fn new(
        client: Arc<dyn RuntimeClient>,
        interval: Duration,
        timeout: Duration,
        late_window: Duration,
        metrics: RuntimeMetrics,
    ) -> Self {
        let kind = client.kind();
        metrics.init(kind, client.operations());
        metrics.init(kind, client.occasional_operations());
        Self {
            name: kind.as_str().to_owned(),
            client,
            interval,
            timeout,
            late_window,
            metrics,
            health: Arc::new(watch::channel(RuntimeHealth::default()).0),
            late_in_flight: Arc::new(AtomicUsize::new(0)),
            round_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn kind(&self) -> RuntimeKind {
        self.client.kind()
    }

    /// Subscribes to the health this probe publishes after every round.
    pub fn health(&self) -> watch::Receiver<RuntimeHealth> {
        self.health.subscribe()
    }

    async fn round(&self) -> ProbeResult {
        let kind = self.client.kind();
        let started = Instant::now();
        let deadline = started + self.timeout;
        let result = match classify::check_socket(self.client.socket()) {
            Err(e) => Err(e),
            Ok(()) => self.run_operations(deadline).await,
        };
        let answered_any = match &result {
            Ok(_) => true,
            Err(e) => e.outcome == Outcome::Error,
        };
        self.publish(&result, answered_any);
        self.metrics.set_up(
            kind,
            result.is_ok(),
            self.health.borrow().consecutive_failures,
        );
        result.map(|facts| facts.detail())
    }

    /// Runs the round's operations; stops at the first failure (a runtime that
    /// does not answer its liveness call will not answer a list either).
    async fn run_operations(&self, deadline: Instant) -> Result<RoundFacts, ProbeError> {
        let kind = self.client.kind();
        let mut facts = RoundFacts::default();
        let occasional = if self.health.borrow().rounds.is_multiple_of(OCCASIONAL_EVERY) {
            self.client.occasional_operations()
        } else {
            &[]
        };
        for &op in self.client.operations().iter().chain(occasional) {
            let started = Instant::now();
            let mut call = tokio::spawn(self.client.call(op));
            let outcome = tokio::time::timeout_at(deadline, &mut call).await;
            let elapsed = started.elapsed();
            let result = match outcome {
                Ok(Ok(r)) => r,
                Ok(Err(join)) => Err(CallError {
                    outcome: Outcome::Error,
                    answered: false,
                    message: format!("request task failed: {join}"),
                }),
                Err(_) => {
                    self.keep_late(op, call);
                    Err(CallError {
                        outcome: Outcome::Timeout,
                        answered: false,
                        message: format!(
                            "{} {} got no answer within {}",
                            kind,
                            op.as_str(),
                            humantime::format_duration(self.timeout)
                        ),
                    })
                }
            };
            let label = result.as_ref().map_or_else(|e| e.outcome, |_| Outcome::Ok);
            if result != Ok(Answer::NotServed) {
                self.metrics.observe_request(kind, op, label, elapsed);
            }
            match result {
                Ok(Answer::Alive | Answer::NotServed) => {}
                Ok(Answer::Containers(states)) => {
                    facts.running = states
                        .iter()
                        .find(|(s, _)| *s == "running")
                        .map(|(_, n)| *n);
                    self.metrics.set_containers(kind, &states);
                }
                Ok(Answer::Sandboxes(states)) => self.metrics.set_sandboxes(kind, &states),
                Ok(Answer::Conditions(conds)) => {
                    facts.not_ready = conds
                        .iter()
                        .filter(|(_, ready)| !ready)
                        .map(|(name, _)| name.clone())
                        .collect();
                    self.metrics.set_conditions(kind, &conds);
                }
                Ok(Answer::Info {
                    live_restore: on,
                    root_dir,
                }) => {
                    facts.live_restore = on;
                    facts.root_dir = root_dir;
                    if let Some(on) = on {
                        self.metrics.set_live_restore(kind, on);
                    }
                }
                Err(e) => {
                    let outcome = if e.answered && e.outcome == Outcome::Timeout {
                        Outcome::Error
                    } else {
                        e.outcome
                    };
                    return Err(ProbeError::new(outcome, e.message));
                }
            }
        }
        Ok(facts)
    }

    /// Lets a request that missed its deadline finish in the background, within
    /// `late_window` and `MAX_LATE_REQUESTS`, and records a late answer.
    fn keep_late(&self, op: Operation, call: tokio::task::JoinHandle<Result<Answer, CallError>>) {
        if self.late_in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_LATE_REQUESTS {
            self.late_in_flight.fetch_sub(1, Ordering::SeqCst);
            call.abort();
            return;
        }
        let in_flight = Arc::clone(&self.late_in_flight);
        let health = Arc::clone(&self.health);
        let metrics = self.metrics.clone();
        let kind = self.client.kind();
        let window = self.late_window;
        tokio::spawn(async move {
            let abort = call.abort_handle();
            let answered = match tokio::time::timeout(window, call).await {
                Ok(Ok(Ok(_))) => true,
                Ok(Ok(Err(e))) => e.answered,
                Ok(Err(_)) => false,
                Err(_) => {
                    abort.abort();
                    false
                }
            };
            if answered {
                tracing::info!(runtime = %kind, operation = op.as_str(), "late answer: the runtime is slow, not hung");
                metrics.count_late_answer(kind, op);
                health.send_modify(|h| h.last_answer = Some(Instant::now()));
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn publish(&self, result: &Result<RoundFacts, ProbeError>, answered: bool) {
        let now = Instant::now();
        self.health.send_modify(|h| {
            h.rounds += 1;
            match result {
                Ok(facts) => {
                    h.last_outcome = Some(Outcome::Ok);
                    h.consecutive_failures = 0;
                    h.running_containers = facts.running;
                    if facts.live_restore.is_some() {
                        h.live_restore = facts.live_restore;
                    }
                    if facts.root_dir.is_some() {
                        h.root_dir.clone_from(&facts.root_dir);
                    }
                }
                Err(e) => {
                    h.last_outcome = Some(e.outcome);
                    h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                }
            }
            if answered {
                h.last_answer = Some(now);
            }
        });
    }
}

impl Probe for RuntimeProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// The round enforces `timeout` itself; the scheduler's deadline is a backstop
    /// that leaves room to record the round's result.
    fn timeout(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            // Rounds of one probe never overlap; `once` and the scheduler share it.
            let _guard = match self.round_lock.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    return Err(ProbeError::new(
                        Outcome::Error,
                        "previous round still running",
                    ))
                }
            };
            self.round().await
        })
    }
}

#[cfg(test)]
mod tests;
