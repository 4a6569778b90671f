//! Runs every probe on its own interval, from a random initial offset (so a fleet
//! of nodes does not fire in lockstep), under its hard deadline. Each run is its
//! own task: a probe stuck on a dead socket or panicking never delays another
//! probe, the HTTP server or shutdown. The scheduler, not the probe, records
//! `nodevitals_probe_success` and `nodevitals_probe_duration_seconds`.

use crate::health::Health;
use crate::metrics::AgentMetrics;
use crate::probe::Probe;
use crate::status::StatusBoard;
use crate::vocabulary::{Outcome, ProbeError, ProbeResult};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// What every probe loop reports to.
#[derive(Clone)]
pub struct Sinks {
    pub metrics: AgentMetrics,
    pub status: Arc<StatusBoard>,
    pub health: Arc<Health>,
}

pub struct Scheduler {
    loops: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts one loop per probe. `jitter` false starts every probe at once
    /// (tests and `once`).
    pub fn start(probes: Vec<Arc<dyn Probe>>, sinks: Sinks, jitter: bool) -> Self {
        let names: Vec<String> = probes.iter().map(|p| p.name().to_owned()).collect();
        sinks.status.retain(&names);
        sinks.health.reset(
            &probes
                .iter()
                .map(|p| (p.name().to_owned(), p.interval(), p.timeout()))
                .collect::<Vec<_>>(),
        );
        let loops = probes
            .into_iter()
            .map(|probe| {
                sinks.metrics.init_probe(probe.name());
                let offset = if jitter {
                    random_offset(probe.interval())
                } else {
                    Duration::ZERO
                };
                tokio::spawn(probe_loop(probe, sinks.clone(), offset))
            })
            .collect();
        Self { loops }
    }

    /// Stops every loop; runs in flight are dropped.
    pub fn stop(self) {
        for l in self.loops {
            l.abort();
        }
    }
}

fn random_offset(interval: Duration) -> Duration {
    let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..ms.max(1)))
}

async fn probe_loop(probe: Arc<dyn Probe>, sinks: Sinks, offset: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + offset, probe.interval());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (result, elapsed) = run_once(Arc::clone(&probe)).await;
        record(&sinks, probe.name(), &result, elapsed);
    }
}

/// Runs one probe once under its deadline, in a task of its own so that a panic
/// or a stuck future is contained. Returns the result and how long it took.
pub async fn run_once(probe: Arc<dyn Probe>) -> (ProbeResult, Duration) {
    let started = Instant::now();
    let deadline = probe.timeout();
    let task_probe = Arc::clone(&probe);
    let mut task = tokio::spawn(async move { task_probe.run().await });
    let result = match tokio::time::timeout(deadline, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ProbeError::new(
            Outcome::Error,
            format!("probe {} failed internally: {join}", probe.name()),
        )),
        Err(_) => {
            task.abort();
            Err(ProbeError::new(
                Outcome::Timeout,
                format!(
                    "probe {} did not finish within its deadline of {}",
                    probe.name(),
                    humantime::format_duration(deadline)
                ),
            ))
        }
    };
    (result, started.elapsed())
}

pub fn record(sinks: &Sinks, name: &str, result: &ProbeResult, elapsed: Duration) {
    sinks.metrics.observe_probe(name, result.is_ok(), elapsed);
    sinks.status.record(name, result, elapsed);
    sinks.health.progressed(name);
    match result {
        Ok(detail) => tracing::debug!(probe = name, elapsed = ?elapsed, detail, "probe ok"),
        Err(e) => tracing::warn!(
            probe = name,
            outcome = %e.outcome,
            elapsed = ?elapsed,
            error = %e.message,
            "probe failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeFuture;

    struct Stuck;
    impl Probe for Stuck {
        fn name(&self) -> &str {
            "stuck"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(2)
        }
        fn run(&self) -> ProbeFuture<'_> {
            Box::pin(std::future::pending())
        }
    }

    struct Panics;
    impl Probe for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(2)
        }
        fn run(&self) -> ProbeFuture<'_> {
            Box::pin(async { panic!("probe bug") })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_probe_times_out_at_its_deadline() {
        let (r, elapsed) = run_once(Arc::new(Stuck)).await;
        assert_eq!(r.unwrap_err().outcome, Outcome::Timeout);
        assert_eq!(elapsed, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn panicking_probe_is_an_error_not_a_crash() {
        let (r, _) = run_once(Arc::new(Panics)).await;
        let e = r.unwrap_err();
        assert_eq!(e.outcome, Outcome::Error);
        assert!(e.message.contains("panics"), "{}", e.message);
    }

    #[test]
    fn offsets_stay_inside_the_interval() {
        for _ in 0..100 {
            assert!(random_offset(Duration::from_secs(3)) < Duration::from_secs(3));
        }
        assert_eq!(random_offset(Duration::ZERO), Duration::ZERO);
    }
}
