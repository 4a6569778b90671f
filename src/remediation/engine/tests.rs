//! The engine against a scripted restarter, under tokio's paused clock: one
//! probe round a second is published on the health channel, as the runtime
//! probe does, and what the engine did is read back from the restarter's
//! calls, the state file, the metrics and `/status`. The real state machine,
//! `/proc` (rooted at an empty directory: the runtime's process is unknown),
//! diagnoser, board and histories are used; Kubernetes is off. The end-to-end
//! tests restart real runtimes; these pin down what the engine adds to the
//! machine.

use super::super::restart::{RestartFuture, UptimeFuture};
use super::*;
use crate::config::{RemediationConfig, RestartConfig};
use crate::kubernetes::conditions::{ConditionType, Status};
use crate::metrics::Metrics;
use crate::status::StatusBoard;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::sleep;

const SEC: Duration = Duration::from_secs(1);
const KIND: RuntimeKind = RuntimeKind::Containerd;
/// Running containers a healthy round reports.
const RUNNING: u64 = 3;

/// The defaults, but a hang is declared after 10 s of silence.
fn policy() -> Policy {
    Policy {
        hang_after: 10 * SEC,
        ..Policy::from(&RemediationConfig::default())
    }
}

/// How one call of the fake's `restart()` ends.
#[derive(Debug, Clone, Copy)]
enum Scripted {
    Done,
    Fails,
    /// The process outlived SIGKILL.
    Survives,
}

impl Scripted {
    fn result(self) -> Result<String, RestartError> {
        match self {
            Scripted::Done => Ok("SIGTERM to PID 4242".into()),
            Scripted::Fails => Err(RestartError::Failed {
                program: "restart-runtime".into(),
                status: "exit status: 1".into(),
                stderr: "unit busy".into(),
            }),
            Scripted::Survives => Err(RestartError::Survived {
                pid: 4242,
                waited: 5 * SEC,
            }),
        }
    }
}

/// One call of `restart()`: when, and the state file as it was at that moment.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    saved: Option<Persisted>,
}

/// A restarter that records its calls and returns scripted results.
struct FakeRestarter {
    state_path: PathBuf,
    /// The results of the next calls, in order; `Done` once used up.
    script: Mutex<VecDeque<Scripted>>,
    /// How long a restart takes.
    takes: Duration,
    /// What `runtime_uptime` answers.
    uptime: Option<Duration>,
    calls: Mutex<Vec<Call>>,
    uptime_asked: AtomicU32,
}

impl FakeRestarter {
    fn new(state_path: PathBuf) -> Self {
        Self {
            state_path,
            script: Mutex::default(),
            takes: Duration::ZERO,
            uptime: None,
            calls: Mutex::default(),
            uptime_asked: AtomicU32::new(0),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Restarter for FakeRestarter {
    fn preflight(&self) -> RestartFuture {
        Box::pin(std::future::ready(Ok("fake restarter ready".into())))
    }

    fn restart(&self) -> RestartFuture {
        let saved = state_file::load(&self.state_path).ok().flatten();
        self.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            saved,
        });
        let result = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Scripted::Done)
            .result();
        let takes = self.takes;
        Box::pin(async move {
            sleep(takes).await;
            result
        })
    }

    fn runtime_uptime(&self) -> UptimeFuture {
        self.uptime_asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(self.uptime))
    }
}

/// What a target is configured with, before its engine starts.
struct Builder {
    policy: Policy,
    dry_run: bool,
    script: Vec<Scripted>,
    takes: Duration,
    uptime: Option<Duration>,
}

impl Builder {
    fn new() -> Self {
        Self {
            policy: policy(),
            dry_run: false,
            script: Vec::new(),
            takes: Duration::ZERO,
            uptime: None,
        }
    }

    fn policy(mut self, change: impl FnOnce(&mut Policy)) -> Self {
        change(&mut self.policy);
        self
    }

    fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The restarter's first results, in order.
    fn restarts_end(mut self, script: &[Scripted]) -> Self {
        self.script = script.to_vec();
        self
    }

    fn restart_takes(mut self, takes: Duration) -> Self {
        self.takes = takes;
        self
    }

    fn runtime_uptime(mut self, uptime: Duration) -> Self {
        self.uptime = Some(uptime);
        self
    }

    fn start(self) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        let suffix = if self.dry_run { ".dry-run" } else { "" };
        let state_path = dir.path().join(format!("remediation-{KIND}{suffix}.json"));
        let fake = FakeRestarter {
            script: Mutex::new(self.script.into()),
            takes: self.takes,
            uptime: self.uptime,
            ..FakeRestarter::new(state_path.clone())
        };
        let target = Target {
            dir,
            state_path,
            policy: self.policy,
            dry_run: self.dry_run,
            cluster: Link::recording(Metrics::new().kubernetes),
            metrics: Metrics::new(),
            status: Arc::default(),
            histories: Arc::default(),
        };
        let (fake, probe, engine) = target.spawn(fake);
        Node {
            target,
            fake,
            probe,
            engine,
        }
    }
}

/// What outlives one engine: the agent's configuration, metrics, `/status`
/// and histories, and the state directory.
struct Target {
    dir: tempfile::TempDir,
    state_path: PathBuf,
    policy: Policy,
    dry_run: bool,
    metrics: Metrics,
    status: Arc<StatusBoard>,
    histories: Arc<Histories>,
    /// The node conditions the engines ask for.
    cluster: Link,
}

impl Target {
    /// The parts `Remediation::start` builds, with `restarter`.
    fn parts(&self, restarter: Arc<dyn Restarter>) -> EngineParts {
        let root = self.dir.path();
        let spec = RestartSpec::resolve(KIND, &RestartConfig::default());
        EngineParts {
            kind: KIND,
            spec,
            method_choice: None,
            policy: self.policy.clone(),
            jitter: 0.0,
            dry_run: self.dry_run,
            state_path: self.state_path.clone(),
            procfs: Procfs::new(&root.join("proc")),
            restarter,
            metrics: self.metrics.remediation.clone(),
            board: Arc::new(Board::new(Arc::clone(&self.status))),
            cluster: self.cluster.clone(),
            pause_configmap: "nodevitals-pause".into(),
            histories: Arc::clone(&self.histories),
            diagnoser: Diagnoser::new(&root.join("proc"), &root.join("cgroup"), 10 * SEC),
            on_disk_full: DiskFullPolicy::Skip,
            dumps_dir: root.join("dumps"),
            keep_dumps: 5,
        }
    }

    /// An engine with `fake`, fed by a new probe's channel.
    fn spawn(
        &self,
        fake: FakeRestarter,
    ) -> (
        Arc<FakeRestarter>,
        watch::Sender<RuntimeHealth>,
        JoinHandle<()>,
    ) {
        let fake = Arc::new(fake);
        let (probe, health) = watch::channel(RuntimeHealth::default());
        let engine = Engine::new(self.parts(Arc::clone(&fake) as Arc<dyn Restarter>));
        (fake, probe, tokio::spawn(engine.run(health)))
    }
}

/// A target with its running engine, and the probe feeding it.
struct Node {
    target: Target,
    fake: Arc<FakeRestarter>,
    probe: watch::Sender<RuntimeHealth>,
    engine: JoinHandle<()>,
}

impl Node {
    /// Publishes a round ending in `outcome`, as the runtime probe does: an
    /// answer (`ok`, `error`) is the last answer, a timeout or refusal is not.
    fn publish(&self, outcome: Outcome) {
        let now = Instant::now();
        self.probe.send_modify(|h| {
            h.rounds += 1;
            h.last_outcome = Some(outcome);
            if outcome == Outcome::Ok {
                h.consecutive_failures = 0;
                h.running_containers = Some(RUNNING);
            } else {
                h.consecutive_failures += 1;
            }
            if matches!(outcome, Outcome::Ok | Outcome::Error) {
                h.last_answer = Some(now);
            }
        });
    }

    /// One round ending in `outcome`, then the probe's interval. The paused
    /// clock advances only once the engine is idle: it has acted on the round.
    async fn round(&self, outcome: Outcome) {
        self.publish(outcome);
        sleep(SEC).await;
    }

    async fn rounds(&self, n: u32, outcome: Outcome) {
        for _ in 0..n {
            self.round(outcome).await;
        }
    }

    /// A round that times out, whose request is answered late, half an
    /// interval after the deadline: the runtime is slow, not hung.
    async fn slow_round(&self) {
        self.publish(Outcome::Timeout);
        sleep(SEC / 2).await;
        self.probe
            .send_modify(|h| h.last_answer = Some(Instant::now()));
        sleep(SEC / 2).await;
    }

    /// Rounds that time out until the restarter is called; how many.
    async fn hang_until_restarted(&self) -> u32 {
        let before = self.fake.calls().len();
        for n in 1..=300 {
            self.round(Outcome::Timeout).await;
            if self.fake.calls().len() > before {
                return n;
            }
        }
        panic!("not restarted after 300 rounds of timeouts");
    }

    /// A whole episode: healthy, hung until restarted, healthy again.
    async fn episode(&self) {
        self.round(Outcome::Ok).await;
        self.hang_until_restarted().await;
        self.round(Outcome::Ok).await;
    }

    /// A hang past the budget: five minutes of timeouts (well past
    /// `backoff_initial` and `hang_after`, inside the window) restart nothing.
    async fn hang_past_the_budget(&self) {
        let before = self.fake.calls().len();
        self.rounds(300, Outcome::Timeout).await;
        assert_eq!(self.fake.calls().len(), before, "restarted past the budget");
        assert!(self.skipped("budget") > 0.0);
        let status = self.status();
        assert_eq!(status["state"], "exhausted", "{status}");
        assert_eq!(status["last_decision"], "budget", "{status}");
    }

    /// A config reload: the engine is stopped as `Remediation::stop` does,
    /// and a new one starts with a new probe and restarter, the same
    /// histories and state file.
    async fn reload(&mut self) {
        self.engine.abort();
        assert!((&mut self.engine).await.unwrap_err().is_cancelled());
        let fake = FakeRestarter::new(self.target.state_path.clone());
        (self.fake, self.probe, self.engine) = self.target.spawn(fake);
    }

    /// This target's entry in `/status`.
    fn status(&self) -> serde_json::Value {
        self.target.status.to_json()["remediation"][KIND.as_str()].clone()
    }

    /// The restart history shown on `/status`.
    fn events(&self) -> Vec<Event> {
        serde_json::from_value(self.status()["history"].clone()).unwrap()
    }

    /// The results of the restarts on `/status`, oldest first.
    fn results(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.result).collect()
    }

    /// The results of the restarts in the state file, oldest first (times
    /// read back from the file may differ in the last bit).
    fn saved_results(&self) -> Vec<String> {
        self.saved().events.into_iter().map(|e| e.result).collect()
    }

    fn saved(&self) -> Persisted {
        state_file::load(&self.target.state_path)
            .unwrap()
            .expect("a state file")
    }

    /// The sample of metric `name` of this target with all of `labels`.
    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self.target.metrics.encode();
        let target = format!("target=\"{KIND}\"");
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|l| l.starts_with('{')))
            .find(|l| l.contains(&target) && labels.iter().all(|kv| l.contains(kv)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    }

    fn restarts(&self, result: &str) -> f64 {
        let result = format!("result=\"{result}\"");
        self.metric("nodevitals_remediation_restarts_total", &[&result])
    }

    fn skipped(&self, reason: &str) -> f64 {
        let reason = format!("reason=\"{reason}\"");
        self.metric("nodevitals_remediation_skipped_total", &[&reason])
    }

    fn recoveries(&self) -> f64 {
        self.metric("nodevitals_remediation_recovery_seconds_count", &[])
    }
}

#[tokio::test(start_paused = true)]
async fn a_hang_is_restarted_once_and_on_disk_before_the_restarter_runs() {
    let node = Builder::new().start();
    node.round(Outcome::Ok).await;
    let answered = Instant::now() - SEC;
    // Within recovery_timeout of the restart: one restart, however long.
    node.rounds(100, Outcome::Timeout).await;
    let calls = node.fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].at, answered + node.target.policy.hang_after);
    let saved = calls[0]
        .saved
        .as_ref()
        .expect("a state file when the restarter is called");
    assert_eq!(saved.restarts_unix.len(), 1, "{saved:?}");
    let event = saved.events.last().expect("the restart's event");
    assert_eq!(event.result, "pending");
    assert_eq!(node.saved_results(), ["pending"], "awaiting recovery");
    assert_eq!(node.status()["state"], "recovering");
}

#[tokio::test(start_paused = true)]
async fn late_answers_never_lead_to_a_restart() {
    let node = Builder::new().start();
    // Ten minutes of rounds that time out, each answered late.
    for _ in 0..600 {
        node.slow_round().await;
    }
    assert!(node.fake.calls().is_empty());
    assert!(node.skipped("not_a_hang") > 0.0);
    let status = node.status();
    assert_eq!(status["state"], "failing", "{status}");
    assert_eq!(status["last_decision"], "not_a_hang", "{status}");
    assert_eq!(status["restarts_in_window"], 0, "{status}");
}

#[tokio::test(start_paused = true)]
async fn a_second_hang_past_the_budget_is_not_restarted() {
    let node = Builder::new().policy(|p| p.max_restarts = 1).start();
    node.episode().await;
    node.hang_past_the_budget().await;
    assert_eq!(node.fake.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_restart_the_next_waits_for_the_backoff() {
    let node = Builder::new().restarts_end(&[Scripted::Fails]).start();
    node.round(Outcome::Ok).await;
    node.hang_until_restarted().await;
    node.hang_until_restarted().await;
    let calls = node.fake.calls();
    let waited = calls[1].at - calls[0].at;
    let backoff = node.target.policy.backoff_initial;
    assert!(waited >= backoff, "retried after {waited:?}");
    assert!(waited < backoff + 2 * SEC, "retried only after {waited:?}");
    assert!(node.skipped("backoff") > 0.0);
    assert_eq!(node.results(), ["failure", "pending"]);
    assert_eq!(node.saved_results(), ["failure", "pending"]);
    assert_eq!(node.restarts("failure"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_records_the_restart_and_never_calls_the_restarter() {
    let node = Builder::new().dry_run().start();
    node.round(Outcome::Ok).await;
    node.rounds(30, Outcome::Timeout).await;
    assert!(node.fake.calls().is_empty());
    let events = node.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].result, "dry_run");
    assert!(events[0].detail.starts_with("dry run"), "{events:?}");
    assert_eq!(node.saved_results(), ["dry_run"]);
    assert_eq!(node.restarts("dry_run"), 1.0);
    assert_eq!(node.status()["dry_run"], true);
}

#[tokio::test(start_paused = true)]
async fn a_runtime_that_survives_sigkill_is_unkillable_not_restarted() {
    let node = Builder::new().restarts_end(&[Scripted::Survives]).start();
    node.round(Outcome::Ok).await;
    node.hang_until_restarted().await;
    // Still hung: the cluster is told that local repair cannot help.
    node.round(Outcome::Timeout).await;
    let escalated = node
        .target
        .cluster
        .wish(ConditionType::RepairFailed)
        .unwrap();
    assert_eq!(
        (escalated.status, escalated.reason),
        (Status::True, "RuntimeUnkillable"),
        "{escalated:?}"
    );
    node.rounds(3, Outcome::Ok).await;
    let events = node.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].result, "unkillable");
    assert!(events[0].detail.contains("after SIGKILL"), "{events:?}");
    assert_eq!(events[0].recovery_seconds, None);
    assert_eq!(node.restarts("unkillable"), 1.0);
    assert_eq!(node.restarts("success"), 0.0);
    assert_eq!(node.recoveries(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_round_after_the_restart_ends_the_episode() {
    let node = Builder::new().start();
    node.round(Outcome::Ok).await;
    node.hang_until_restarted().await;
    // The runtime comes back: refused while it starts, then answering.
    node.rounds(2, Outcome::Refused).await;
    node.round(Outcome::Ok).await;
    let events = node.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.result, "success");
    assert_eq!(e.recovery_seconds, Some(3.0), "from the decision");
    assert_eq!(
        (e.running_before, e.running_after),
        (Some(RUNNING), Some(RUNNING))
    );
    assert!(e.detail.starts_with("SIGTERM to PID 4242"), "{e:?}");
    assert_eq!(node.saved_results(), ["success"]);
    let status = node.status();
    assert_eq!(status["state"], "healthy", "{status}");
    assert_eq!(status["last_decision"], "recovered", "{status}");
    assert_eq!(node.restarts("success"), 1.0);
    assert_eq!(node.recoveries(), 1.0);
}

/// A stopped runtime answers pending requests once continued: rounds that end
/// while the restarter runs saw the old process and are not a recovery.
#[tokio::test(start_paused = true)]
async fn rounds_that_end_during_the_restart_are_not_a_recovery() {
    let node = Builder::new().restart_takes(SEC * 5 / 2).start();
    node.round(Outcome::Ok).await;
    node.hang_until_restarted().await;
    // Two answers while the restarter runs, then the new process.
    node.rounds(2, Outcome::Ok).await;
    node.round(Outcome::Refused).await;
    assert_eq!(node.status()["state"], "recovering");
    node.round(Outcome::Ok).await;
    let events = node.events();
    assert_eq!(events[0].result, "success", "{events:?}");
    assert_eq!(events[0].recovery_seconds, Some(4.0), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_engine_carries_on_with_the_spent_budget() {
    let mut node = Builder::new().policy(|p| p.max_restarts = 1).start();
    node.episode().await;
    // Only the histories can carry the budget: the state file is gone.
    std::fs::remove_file(&node.target.state_path).unwrap();
    node.reload().await;
    node.round(Outcome::Ok).await;
    node.hang_past_the_budget().await;
    assert!(node.fake.calls().is_empty(), "the new restarter");
    assert_eq!(node.status()["restarts_in_window"], 1);
    assert_eq!(node.results(), ["success"]);
}

/// The restarter's account of the runtime's age (systemd's unit start time)
/// holds a restart in cooldown; it is asked only once a restart is in reach.
#[tokio::test(start_paused = true)]
async fn the_restarters_uptime_holds_a_restart_in_cooldown() {
    let node = Builder::new().runtime_uptime(5 * SEC).start();
    node.round(Outcome::Ok).await;
    node.rounds(60, Outcome::Timeout).await;
    assert!(node.fake.calls().is_empty());
    assert!(node.skipped("cooldown") > 0.0);
    let threshold = node.target.policy.failure_threshold;
    let asked = node.fake.uptime_asked.load(Ordering::SeqCst);
    assert_eq!(asked, 60 - (threshold - 1), "asked from the threshold on");
}

/// An engine replaced (a config reload) while its restart runs leaves no
/// restart pending for ever: the next engine records it as interrupted, and
/// it still counts in the budget.
#[tokio::test(start_paused = true)]
async fn a_restart_cut_by_a_reload_is_interrupted_not_pending_for_ever() {
    let mut node = Builder::new().restart_takes(10 * SEC).start();
    node.round(Outcome::Ok).await;
    node.hang_until_restarted().await;
    node.reload().await;
    node.rounds(3, Outcome::Ok).await;
    assert_eq!(node.results(), ["interrupted"]);
    assert_eq!(node.status()["restarts_in_window"], 1);
}
