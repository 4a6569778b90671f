//! The round logic against a scripted fake runtime, under tokio's paused
//! clock: deadlines, late answers, a ping answered while the list hangs, and
//! what counts as an answer. The end-to-end tests do the same against real
//! dockerd and containerd; these pin the rules down to the millisecond.

use super::*;
use crate::metrics::Metrics;
use crate::runtime::CallFuture;
use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const TIMEOUT: Duration = Duration::from_secs(1);
const LATE_WINDOW: Duration = Duration::from_secs(10);
/// Longer than any test runs: a request that never answers.
const NEVER: Duration = Duration::from_secs(3600);

/// How the fake answers one operation: after `delay`, with `reply`.
#[derive(Clone)]
struct Script {
    delay: Duration,
    reply: Result<Answer, CallError>,
}

fn answers(delay: Duration, answer: Answer) -> Script {
    Script {
        delay,
        reply: Ok(answer),
    }
}

fn fails(delay: Duration, outcome: Outcome, answered: bool) -> Script {
    Script {
        delay,
        reply: Err(CallError {
            outcome,
            answered,
            message: "scripted".into(),
        }),
    }
}

/// A Docker-shaped runtime (ping, then the container list) whose answers the
/// test scripts; it counts the calls it was asked to make.
struct FakeRuntime {
    socket: PathBuf,
    script: Mutex<HashMap<&'static str, Script>>,
    calls: Mutex<Vec<Operation>>,
}

impl FakeRuntime {
    fn new(socket: PathBuf) -> Self {
        let alive = answers(Duration::from_millis(5), Answer::Alive);
        let list = answers(
            Duration::from_millis(5),
            Answer::Containers(vec![("running", 2), ("exited", 1)]),
        );
        Self {
            socket,
            script: Mutex::new(HashMap::from([("ping", alive), ("list_containers", list)])),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn set(&self, op: Operation, script: Script) {
        self.script.lock().unwrap().insert(op.as_str(), script);
    }

    fn calls(&self) -> Vec<Operation> {
        self.calls.lock().unwrap().clone()
    }
}

impl RuntimeClient for FakeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    fn operations(&self) -> &'static [Operation] {
        &[Operation::Ping, Operation::ListContainers]
    }

    fn call(&self, op: Operation) -> CallFuture {
        self.calls.lock().unwrap().push(op);
        let Script { delay, reply } = self.script.lock().unwrap()[op.as_str()].clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            reply
        })
    }
}

/// A probe of a fake runtime behind a real (listening) socket file, so the
/// socket check passes as it would against a live daemon.
struct Rig {
    _dir: tempfile::TempDir,
    _listener: UnixListener,
    fake: Arc<FakeRuntime>,
    metrics: Metrics,
    probe: RuntimeProbe,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("runtime.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let fake = Arc::new(FakeRuntime::new(socket));
    let metrics = Metrics::new();
    let client: Arc<dyn RuntimeClient> = fake.clone();
    let probe = RuntimeProbe::new(
        client,
        Duration::from_secs(2),
        TIMEOUT,
        LATE_WINDOW,
        metrics.runtime.clone(),
    );
    Rig {
        _dir: dir,
        _listener: listener,
        fake,
        metrics,
        probe,
    }
}

impl Rig {
    fn health(&self) -> RuntimeHealth {
        self.probe.health().borrow().clone()
    }

    fn line(&self, prefix: &str) -> String {
        let text = self.metrics.encode();
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_answered_in_time_is_ok_and_an_answer() {
    let r = rig();
    assert_eq!(r.probe.run().await, Ok("2 running containers".to_owned()));
    let h = r.health();
    assert_eq!(h.last_outcome, Some(Outcome::Ok));
    assert_eq!(h.consecutive_failures, 0);
    assert_eq!(h.running_containers, Some(2));
    assert!(h.last_answer.is_some());
    assert_eq!(
        r.line("nodevitals_runtime_containers{runtime=\"docker\",state=\"running\"}"),
        "nodevitals_runtime_containers{runtime=\"docker\",state=\"running\"} 2"
    );
}

/// The classic dockerd lock-up: `/_ping` answers, the container list hangs.
/// The round is a timeout and, though the ping answered, not an answer: a
/// runtime that cannot list its containers is hung for kubelet and users.
#[tokio::test(start_paused = true)]
async fn ping_answered_but_list_hanging_is_a_timeout_and_no_answer() {
    let r = rig();
    r.fake.set(
        Operation::ListContainers,
        answers(NEVER, Answer::Containers(vec![])),
    );
    let started = Instant::now();
    let e = r.probe.run().await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Timeout, "{e}");
    // The deadline bounds the whole round, ping included, not each request.
    assert_eq!(started.elapsed(), TIMEOUT);
    let h = r.health();
    assert_eq!(h.last_answer, None, "a hung list is not an answer");
    assert_eq!(h.consecutive_failures, 1);
    assert_eq!(
        r.line("nodevitals_runtime_requests_total{runtime=\"docker\",operation=\"ping\",result=\"ok\"}"),
        "nodevitals_runtime_requests_total{runtime=\"docker\",operation=\"ping\",result=\"ok\"} 1"
    );
    assert_eq!(
        r.line("nodevitals_runtime_requests_total{runtime=\"docker\",operation=\"list_containers\",result=\"timeout\"}"),
        "nodevitals_runtime_requests_total{runtime=\"docker\",operation=\"list_containers\",result=\"timeout\"} 1"
    );
}

/// A reply with an error proves the daemon is not hung: `error`, answered.
#[tokio::test(start_paused = true)]
async fn an_error_reply_is_an_answer() {
    let r = rig();
    r.fake.set(
        Operation::Ping,
        fails(Duration::from_millis(5), Outcome::Error, true),
    );
    let e = r.probe.run().await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Error);
    assert!(r.health().last_answer.is_some());
    // A failed liveness call ends the round: the list is not asked.
    assert_eq!(r.fake.calls(), [Operation::Ping]);
}

/// A client that gave up waiting yet heard the runtime reply (an error after
/// its own timer) reports an answered timeout: that is an answer, `error`.
#[tokio::test(start_paused = true)]
async fn an_answered_timeout_is_an_error() {
    let r = rig();
    r.fake.set(
        Operation::Ping,
        fails(Duration::from_millis(5), Outcome::Timeout, true),
    );
    let e = r.probe.run().await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Error);
}

/// Refused and unanswered failures are no answer.
#[tokio::test(start_paused = true)]
async fn refused_and_silent_failures_are_no_answer() {
    for outcome in [Outcome::Refused, Outcome::Timeout, Outcome::Misconfigured] {
        let r = rig();
        r.fake.set(
            Operation::Ping,
            fails(Duration::from_millis(5), outcome, false),
        );
        assert_eq!(r.probe.run().await.unwrap_err().outcome, outcome);
        assert_eq!(r.health().last_answer, None, "{outcome}");
    }
}

/// A socket that is gone is `refused` without asking the runtime anything.
#[tokio::test(start_paused = true)]
async fn an_absent_socket_is_refused_before_any_request() {
    let r = rig();
    std::fs::remove_file(&r.fake.socket).unwrap();
    assert_eq!(r.probe.run().await.unwrap_err().outcome, Outcome::Refused);
    assert!(r.fake.calls().is_empty());
}

/// Slow is not hung: a request past its deadline fails the round, but its
/// answer, when it comes within the late window, is recorded as an answer.
#[tokio::test(start_paused = true)]
async fn a_late_answer_within_the_window_is_an_answer() {
    let r = rig();
    r.fake
        .set(Operation::Ping, answers(TIMEOUT * 3, Answer::Alive));
    let started = Instant::now();
    let e = r.probe.run().await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Timeout);
    assert_eq!(
        r.health().last_answer,
        None,
        "no answer yet at the deadline"
    );
    let mut health = r.probe.health();
    tokio::time::timeout(LATE_WINDOW, health.wait_for(|h| h.last_answer.is_some()))
        .await
        .expect("the late answer is recorded")
        .unwrap();
    let answered = r.health().last_answer.unwrap();
    assert_eq!(answered - started, TIMEOUT * 3, "recorded when it came");
    assert_eq!(r.health().consecutive_failures, 1, "the round still failed");
    assert_eq!(
        r.line("nodevitals_runtime_late_answers_total{runtime=\"docker\",operation=\"ping\"}"),
        "nodevitals_runtime_late_answers_total{runtime=\"docker\",operation=\"ping\"} 1"
    );
}

/// An answer after the late window no longer proves anything: the request
/// was dropped when the window closed.
#[tokio::test(start_paused = true)]
async fn an_answer_after_the_late_window_is_dropped() {
    let r = rig();
    r.fake.set(
        Operation::Ping,
        answers(TIMEOUT + LATE_WINDOW * 2, Answer::Alive),
    );
    r.probe.run().await.unwrap_err();
    tokio::time::sleep(LATE_WINDOW * 3).await;
    assert_eq!(r.health().last_answer, None);
    assert_eq!(r.probe.late_in_flight.load(Ordering::SeqCst), 0);
}

/// A hung runtime cannot make the agent pile up connections: at most
/// `MAX_LATE_REQUESTS` requests outlive their deadline.
#[tokio::test(start_paused = true)]
async fn requests_left_running_are_capped() {
    let r = rig();
    r.fake.set(Operation::Ping, answers(NEVER, Answer::Alive));
    for _ in 0..MAX_LATE_REQUESTS + 3 {
        r.probe.run().await.unwrap_err();
        assert!(r.probe.late_in_flight.load(Ordering::SeqCst) <= MAX_LATE_REQUESTS);
    }
    assert_eq!(
        r.probe.late_in_flight.load(Ordering::SeqCst),
        MAX_LATE_REQUESTS
    );
    assert_eq!(
        r.health().consecutive_failures,
        MAX_LATE_REQUESTS as u32 + 3
    );
}

/// One good round ends a run of failures.
#[tokio::test(start_paused = true)]
async fn recovery_resets_the_failure_count() {
    let r = rig();
    r.fake.set(Operation::Ping, answers(NEVER, Answer::Alive));
    r.probe.run().await.unwrap_err();
    r.probe.run().await.unwrap_err();
    assert_eq!(r.health().consecutive_failures, 2);
    r.fake.set(
        Operation::Ping,
        answers(Duration::from_millis(5), Answer::Alive),
    );
    r.probe.run().await.unwrap();
    assert_eq!(r.health().consecutive_failures, 0);
    assert_eq!(r.health().rounds, 3);
}
