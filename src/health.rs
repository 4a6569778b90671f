//! Liveness and readiness of the agent itself. `/healthz` is healthy while every
//! probe loop keeps completing runs (each run is bounded by its deadline, so a
//! loop that stops completing is stuck); `/readyz` once every probe ran once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

struct Loop {
    /// Longest gap between two completions of a healthy loop.
    allowed_gap: Duration,
    last_progress: Instant,
    completed_once: bool,
}

#[derive(Default)]
pub struct Health {
    loops: Mutex<HashMap<String, Loop>>,
    /// Tasks that died (a remediation engine): stuck until replaced.
    failed: Mutex<Vec<String>>,
}

/// Slack on top of interval + deadline before a loop is declared stuck.
const STUCK_SLACK: Duration = Duration::from_secs(5);

impl Health {
    /// Replaces the set of tracked loops (at start and on every config reload).
    /// `first_run_within` bounds the wait for the first run (the random offset).
    pub fn reset(&self, probes: &[(String, Duration, Duration)]) {
        let now = Instant::now();
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::take(&mut *loops);
        for (name, interval, timeout) in probes {
            let completed_once = previous.get(name).is_some_and(|l| l.completed_once);
            loops.insert(
                name.clone(),
                Loop {
                    allowed_gap: *interval + *timeout + STUCK_SLACK,
                    // The first run may wait a full interval (random offset).
                    last_progress: now + *interval,
                    completed_once,
                },
            );
        }
    }

    pub fn progressed(&self, name: &str) {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = loops.get_mut(name) {
            l.last_progress = Instant::now();
            l.completed_once = true;
        }
    }

    /// Marks a task as dead: `/healthz` fails until [`Self::clear_failed`].
    pub fn fail(&self, name: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if !failed.iter().any(|f| f == name) {
            failed.push(name.to_owned());
        }
    }

    /// Forgets dead tasks (they were replaced).
    pub fn clear_failed(&self) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The probe loops that have not completed a run for longer than allowed,
    /// and the tasks that died.
    pub fn stuck(&self) -> Vec<String> {
        let now = Instant::now();
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        let mut stuck: Vec<String> = loops
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_progress) > l.allowed_gap)
            .map(|(n, _)| n.clone())
            .collect();
        stuck.extend(
            self.failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        stuck.sort();
        stuck
    }

    /// The probes that have not completed their first run yet.
    pub fn not_ready(&self) -> Vec<String> {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending: Vec<String> = loops
            .iter()
            .filter(|(_, l)| !l.completed_once)
            .map(|(n, _)| n.clone())
            .collect();
        pending.sort();
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_after_first_run_and_stuck_after_gap() {
        let h = Health::default();
        let (i, t) = (Duration::from_secs(10), Duration::from_secs(2));
        h.reset(&[("a".into(), i, t), ("b".into(), i, t)]);
        assert_eq!(h.not_ready(), vec!["a", "b"]);
        h.progressed("a");
        assert_eq!(h.not_ready(), vec!["b"]);
        h.progressed("b");
        assert!(h.not_ready().is_empty());
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(h.stuck().is_empty());
        h.progressed("a");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(h.stuck(), vec!["b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_readiness_of_known_probes() {
        let h = Health::default();
        let d = Duration::from_secs(1);
        h.reset(&[("a".into(), d, d)]);
        h.progressed("a");
        h.reset(&[("a".into(), d, d), ("new".into(), d, d)]);
        assert_eq!(h.not_ready(), vec!["new"]);
    }
}
