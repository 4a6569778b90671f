//! Restart history: the restarts inside the budget window and the backoff, as
//! the state machine uses them (tokio `Instant`s), plus the log of restart
//! events shown on `/status`, and the mapping between `Instant`s and the wall
//! clock used in the state file. Metrics: none.

use super::machine::Policy;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Events kept in the state file and on `/status`.
pub(crate) const MAX_EVENTS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct History {
    /// Restarts decided within the window (failed and dry-run ones included),
    /// oldest first.
    pub restarts: Vec<Instant>,
    /// The backoff step of the last restart; zero = no backoff in force.
    pub step: Duration,
    /// No restart before this time (last restart + jittered step).
    pub next_allowed: Option<Instant>,
    /// The runtime has answered at this endpoint at some point (persisted, so an
    /// agent restarted during an outage still knows the path is right).
    pub answered: bool,
}

impl History {
    /// Drops restarts that left the budget window.
    pub(crate) fn prune(&mut self, now: Instant, window: Duration) {
        self.restarts
            .retain(|t| now.saturating_duration_since(*t) < window);
    }

    /// Records a restart decided at `now` and advances the backoff: the first
    /// restart waits `backoff_initial` before the next, each further one twice
    /// the previous, capped at `backoff_max`; `jitter` (a fraction) lengthens
    /// each step, still within the cap.
    pub(crate) fn record_restart(&mut self, now: Instant, p: &Policy, jitter: f64) {
        self.restarts.push(now);
        self.step = if self.step.is_zero() {
            p.backoff_initial
        } else {
            self.step.saturating_mul(2).min(p.backoff_max)
        };
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = self
            .step
            .saturating_add(self.step.mul_f64(jitter))
            .min(p.backoff_max)
            .max(self.step.min(p.backoff_max));
        self.next_allowed = Some(now + delay);
    }
}

/// One restart as it is logged on `/status` and kept in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Event {
    pub at_unix: f64,
    pub method: String,
    /// `success|failure|dry_run|unkillable`, `pending` while recovery is
    /// awaited, `interrupted` when the engine stopped before it.
    pub result: String,
    pub recovery_seconds: Option<f64>,
    pub running_before: Option<u64>,
    pub running_after: Option<u64>,
    pub detail: String,
    /// What the runtime's process and node looked like when the restart was
    /// decided (the diagnosis summary).
    #[serde(default)]
    pub diagnosis: Option<String>,
    /// Where the runtime's stack dump of this restart was kept.
    #[serde(default)]
    pub dump: Option<String>,
}

impl Event {
    /// A restart issued whose outcome is not known yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.result == "pending"
    }
}

/// What "later than anything configured" saturates to.
const FAR_FUTURE: Duration = Duration::from_secs(10 * 365 * 86400);

/// One reading of both clocks, to convert between `Instant` and Unix time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    pub instant: Instant,
    pub unix: f64,
}

impl WallClock {
    pub(crate) fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn to_unix(self, t: Instant) -> f64 {
        if t >= self.instant {
            self.unix + (t - self.instant).as_secs_f64()
        } else {
            self.unix - (self.instant - t).as_secs_f64()
        }
    }

    /// The `Instant` of Unix time `unix`. A time in the future (the wall clock
    /// went back) is taken as now; so is one the monotonic clock cannot
    /// represent: both only lengthen a guard.
    pub(crate) fn to_instant(self, unix: f64) -> Instant {
        let age = self.unix - unix;
        if age.is_nan() || age <= 0.0 {
            return self.instant;
        }
        Duration::try_from_secs_f64(age)
            .ok()
            .and_then(|a| self.instant.checked_sub(a))
            .unwrap_or(self.instant)
    }

    /// Like [`Self::to_instant`] for a time that may lie ahead (next
    /// allowed): one further ahead than `cap` saturates at `cap` from now.
    pub(crate) fn to_future_instant(self, unix: f64, cap: Duration) -> Instant {
        let ahead = unix - self.unix;
        if ahead > 0.0 {
            let d = Duration::try_from_secs_f64(ahead).unwrap_or(Duration::MAX);
            self.after(d.min(cap))
        } else {
            self.to_instant(unix)
        }
    }

    /// `d` from now, saturating far in the future instead of overflowing.
    pub(crate) fn after(self, d: Duration) -> Instant {
        self.instant
            .checked_add(d)
            .or_else(|| self.instant.checked_add(FAR_FUTURE))
            .unwrap_or(self.instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_clock_round_trips() {
        tokio::time::advance(Duration::from_secs(1000)).await;
        let c = WallClock::now();
        let past = c.instant - Duration::from_secs(30);
        assert!((c.to_unix(past) - (c.unix - 30.0)).abs() < 1e-6);
        assert_eq!(c.to_instant(c.unix - 30.0), past);
        assert_eq!(c.to_instant(c.unix + 50.0), c.instant, "future = now");
        assert_eq!(c.to_instant(f64::NAN), c.instant);
        assert!(
            c.to_instant(0.0) <= c.instant,
            "a restart long ago stays in the past"
        );
        let cap = Duration::from_secs(600);
        assert_eq!(
            c.to_future_instant(c.unix + 50.0, cap),
            c.instant + Duration::from_secs(50)
        );
        for far in [c.unix + 1e6, 1e300, f64::INFINITY] {
            assert_eq!(
                c.to_future_instant(far, cap),
                c.instant + cap,
                "{far} saturates"
            );
        }
        assert_eq!(c.to_future_instant(f64::NAN, cap), c.instant);
        assert_eq!(c.after(Duration::MAX), c.instant + FAR_FUTURE);
    }
}
