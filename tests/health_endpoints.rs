//! `/readyz` and `/healthz` of the real server over the real scheduler:
//! readiness waits for the first run of every probe, liveness fails when a
//! probe loop stops making progress. The probes are stand-ins (a gate the test
//! opens, a probe that always answers): what is under test is the scheduler,
//! the health bookkeeping and the endpoints, not a data source.

mod support;

use nodevitals::health::Health;
use nodevitals::metrics::Metrics;
use nodevitals::probe::{Probe, ProbeFuture};
use nodevitals::scheduler::{Scheduler, Sinks};
use nodevitals::server::{self, AppState};
use nodevitals::status::StatusBoard;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{http_get, wait_until};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// A probe that succeeds at once, or once its gate is opened.
struct StandIn {
    name: &'static str,
    interval: Duration,
    timeout: Duration,
    gate: Option<Arc<Semaphore>>,
}

impl Probe for StandIn {
    fn name(&self) -> &str {
        self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn run(&self) -> ProbeFuture<'_> {
        let gate = self.gate.clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                let _open = gate.acquire().await;
            }
            Ok("answering".to_owned())
        })
    }
}

/// The agent's server and scheduler in a runtime of their own, so the test
/// thread can make blocking requests.
struct Agent {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    sinks: Sinks,
}

fn agent() -> Agent {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let metrics = Arc::new(Metrics::new());
    let sinks = Sinks {
        metrics: metrics.agent.clone(),
        status: Arc::new(StatusBoard::default()),
        health: Arc::new(Health::default()),
    };
    let state = AppState {
        metrics,
        status: Arc::clone(&sinks.status),
        health: Arc::clone(&sinks.health),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(server::serve(listener, state));
    Agent {
        runtime,
        addr,
        sinks,
    }
}

impl Agent {
    fn start(&self, probes: Vec<Arc<dyn Probe>>) -> Scheduler {
        let _entered = self.runtime.enter();
        Scheduler::start(probes, self.sinks.clone(), false)
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

#[test]
fn readyz_is_503_until_every_probe_has_run_once() {
    let agent = agent();
    let gate = Arc::new(Semaphore::new(0));
    let _scheduler = agent.start(vec![
        Arc::new(StandIn {
            name: "quick",
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(100),
            gate: None,
        }),
        Arc::new(StandIn {
            name: "first_run_pending",
            interval: Duration::from_secs(120),
            timeout: Duration::from_secs(60),
            gate: Some(Arc::clone(&gate)),
        }),
    ]);
    // Once the quick probe has completed a run, only the other one, still in
    // its first run, holds readiness back.
    wait_until(
        Duration::from_secs(30),
        "/readyz 503 naming only the pending probe",
        || agent.get("/readyz") == (503, "waiting for first run of: first_run_pending\n".into()),
    );
    assert_eq!(
        agent.get("/healthz").0,
        200,
        "a run in progress is not stuck"
    );

    gate.add_permits(1);
    wait_until(Duration::from_secs(30), "/readyz 200", || {
        agent.get("/readyz").0 == 200
    });
}

#[test]
fn healthz_is_503_when_a_probe_loop_stops_progressing() {
    let agent = agent();
    let interval = Duration::from_millis(200);
    let scheduler = agent.start(vec![Arc::new(StandIn {
        name: "looping",
        interval,
        timeout: Duration::from_millis(100),
        gate: None,
    })]);
    wait_until(Duration::from_secs(30), "/readyz 200", || {
        agent.get("/readyz").0 == 200
    });
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));

    // The loop dies (as a loop wedged on a blocked thread would stop): its
    // health entry stays and stops progressing.
    let stopped = Instant::now();
    scheduler.stop();
    wait_until(Duration::from_secs(60), "/healthz 503", || {
        agent.get("/healthz").0 == 503
    });
    // Not before interval + deadline + the 5 s slack have passed.
    assert!(
        stopped.elapsed() >= Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(agent.get("/healthz").1, "probe loops stuck: looping\n");
    assert_eq!(agent.get("/readyz").0, 200, "readiness is not liveness");
}
