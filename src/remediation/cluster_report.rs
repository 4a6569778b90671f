//! What one remediation target tells the cluster: the
//! `ContainerRuntimeUnhealthy` and `ContainerRuntimeRepairFailed` conditions it
//! wants after every round, and the events of its decisions (restart issued,
//! recovered, not recovered, skipped and slow once per episode). An episode
//! lasts from the first failing round to the next healthy one. Messages are one
//! sentence with the numbers. Metrics: none.

use super::history::History;
use super::machine::{Observation, Policy, SkipReason, State};
use crate::kubernetes::conditions::{ConditionType, Desired, Status};
use crate::kubernetes::{Link, NodeEvent};
use crate::vocabulary::Outcome;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// What the event of an issued restart says.
pub(crate) struct IssuedRestart<'a> {
    pub method: &'a str,
    /// What the restarter did (PID, signals).
    pub detail: &'a str,
    pub would_kill: u64,
    /// How long the runtime had not answered.
    pub silent: Option<Duration>,
    /// Where the runtime's stack dump was kept.
    pub dump: Option<&'a str>,
    /// The process and node diagnosis of the hang decision.
    pub diagnosis: Option<&'a str>,
}

pub(crate) struct ClusterReport {
    link: Link,
    target: &'static str,
    first_seen: Option<Instant>,
    /// Why local repair gave up, until the runtime is healthy again.
    repair_failed: Option<Desired>,
    /// Skip reasons already reported as events in this episode.
    told: BTreeSet<&'static str>,
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The numbers of the budget, for messages.
fn budget(history: &History, policy: &Policy, next: Option<Duration>) -> String {
    let next = match next {
        Some(d) if !d.is_zero() => format!("the next restart is allowed in {}", secs(d)),
        _ => "a restart is allowed now".into(),
    };
    format!(
        "{} of {} restarts used in the last {}, {next}",
        history.restarts.len(),
        policy.max_restarts,
        secs(policy.window)
    )
}

impl ClusterReport {
    pub(crate) fn new(link: Link, target: &'static str) -> Self {
        Self {
            link,
            target,
            first_seen: None,
            repair_failed: None,
            told: BTreeSet::new(),
        }
    }

    /// After every round: both conditions as this target sees them now.
    pub(crate) fn round(
        &mut self,
        o: &Observation,
        state: State,
        history: &History,
        policy: &Policy,
        next: Option<Duration>,
    ) {
        let first_seen = *self.first_seen.get_or_insert(o.now);
        let silent = o
            .now
            .saturating_duration_since(o.last_answer.unwrap_or(first_seen));
        let unhealthy = self.unhealthy(o, silent, history, policy, next);
        if o.outcome == Some(Outcome::Ok) {
            self.repair_failed = None;
            self.told.clear();
        }
        let repair = self.repair_failed.clone().unwrap_or_else(|| {
            Desired::new(
                Status::False,
                "RepairNotNeeded",
                match state {
                    State::Restarting | State::Recovering => {
                        format!("{} is being restarted by nodevitals.", self.target)
                    }
                    _ => format!("{} needs no repair that nodevitals cannot do.", self.target),
                },
            )
        });
        self.link
            .set_condition(ConditionType::RuntimeUnhealthy, self.target, unhealthy);
        self.link
            .set_condition(ConditionType::RepairFailed, self.target, repair);
    }

    fn unhealthy(
        &self,
        o: &Observation,
        silent: Duration,
        history: &History,
        policy: &Policy,
        next: Option<Duration>,
    ) -> Desired {
        let t = self.target;
        let n = o.consecutive_failures;
        let confirmed = n >= policy.failure_threshold && silent >= policy.hang_after;
        match o.outcome {
            Some(Outcome::Misconfigured) => Desired::new(
                Status::Unknown,
                "AgentCannotSeeRuntime",
                format!("nodevitals cannot reach {t} because of its own setup (permission or endpoint); fix the agent's configuration, the runtime may be fine."),
            ),
            Some(Outcome::Refused) if o.last_answer.is_none() && !history.answered => Desired::new(
                Status::Unknown,
                "AgentCannotSeeRuntime",
                format!("The {t} socket nodevitals is configured with refuses connections and never answered; check the agent's runtime endpoint."),
            ),
            Some(Outcome::Refused) if confirmed => Desired::new(
                Status::True,
                "Down",
                format!("{t} has refused connections for {} ({n} probes in a row); {}.", secs(silent), budget(history, policy, next)),
            ),
            Some(Outcome::Timeout) if confirmed => Desired::new(
                Status::True,
                "Hung",
                format!("{t} has not answered for {} ({n} probes in a row timed out); {}.", secs(silent), budget(history, policy, next)),
            ),
            _ => Desired::new(
                Status::False,
                "Healthy",
                format!("{t} answers its probes."),
            ),
        }
    }

    /// A restart was held back; an event once per reason and episode, and the
    /// reasons that mean local repair cannot proceed set RepairFailed.
    pub(crate) fn skipped(
        &mut self,
        reason: SkipReason,
        history: &History,
        policy: &Policy,
        next: Option<Duration>,
        pause_configmap: &str,
    ) {
        let t = self.target;
        let failed = match reason {
            SkipReason::Budget => Some(("BudgetExhausted", format!(
                "{t} is hung and its restart budget is spent ({}); the node needs repair from outside.",
                budget(history, policy, next)
            ))),
            SkipReason::Paused => Some(("FleetPaused", format!(
                "{t} is hung but restarts are paused fleet-wide (ConfigMap {pause_configmap} exists); delete it to let nodevitals restart {t}."
            ))),
            SkipReason::Unkillable => Some(("RuntimeUnkillable", format!(
                "{t} is blocked in the kernel or frozen, so a restart cannot help; the node needs a reboot or replacement."
            ))),
            SkipReason::DiskFull => Some(("RuntimeRootFull", format!(
                "{t} is hung and its root directory is full, so the restart is held (remediation.on_disk_full); free space on the node."
            ))),
            SkipReason::KillsWorkloads => Some(("RestartRefused", format!(
                "{t} is hung and a restart would kill running containers, which the policy refuses (remediation.refuse_if_kills_workloads)."
            ))),
            _ => None,
        };
        if let Some((why, message)) = failed {
            self.repair_failed = Some(Desired::new(Status::True, why, message));
        }
        if reason == SkipReason::Misconfigured || !self.told.insert(reason.as_str()) {
            return;
        }
        let (warning, event_reason, note) = match reason {
            SkipReason::NotAHang => (false, "RuntimeSlow", format!(
                "{t} is failing probes but answered within hang_after ({}): slow, not hung; no restart.",
                secs(policy.hang_after)
            )),
            SkipReason::Budget => (true, "RuntimeRestartBudgetExhausted", format!(
                "{t} is hung and will not be restarted: {}.", budget(history, policy, next)
            )),
            other => (true, "RuntimeRestartSkipped", format!(
                "{t} is hung; restart held back ({}); {}.", other.as_str(), budget(history, policy, next)
            )),
        };
        self.link.event(NodeEvent {
            warning,
            reason: event_reason,
            action: if reason == SkipReason::NotAHang {
                "Observe"
            } else {
                "Skip"
            },
            note,
        });
    }

    /// The restart's event: how, after how long, what it kills, then the
    /// evidence (where the stack dump went, the diagnosis), last because the
    /// API server cuts a long note at its end.
    pub(crate) fn restart_issued(&mut self, restart: &IssuedRestart<'_>) {
        let silent = restart
            .silent
            .map(|s| format!(" after {} without an answer", secs(s)))
            .unwrap_or_default();
        let dump = restart
            .dump
            .map(|d| format!(" Stack dump kept at {d}."))
            .unwrap_or_default();
        let diagnosis = restart
            .diagnosis
            .map(|d| format!(" Diagnosis: {d}."))
            .unwrap_or_default();
        self.link.event(NodeEvent {
            warning: true,
            reason: "RuntimeRestarted",
            action: "Restart",
            note: format!(
                "Restarted {} by {}{silent}: {}; {} running containers will be killed.{dump}{diagnosis}",
                self.target, restart.method, restart.detail, restart.would_kill
            ),
        });
    }

    pub(crate) fn recovered(
        &mut self,
        after: Duration,
        before: Option<u64>,
        running_after: Option<u64>,
    ) {
        let count = |c: Option<u64>| c.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        self.link.event(NodeEvent {
            warning: false,
            reason: "RuntimeRecovered",
            action: "Restart",
            note: format!(
                "{} answers again {:.1}s after the restart; running containers before {}, after {}.",
                self.target,
                after.as_secs_f64(),
                count(before),
                count(running_after)
            ),
        });
    }

    /// The restart did not bring the runtime back (restarter error or no
    /// answer within `recovery_timeout`).
    pub(crate) fn repair_failed(&mut self, why: &'static str, message: String) {
        self.link.event(NodeEvent {
            warning: true,
            reason: why,
            action: "Restart",
            note: message.clone(),
        });
        self.repair_failed = Some(Desired::new(Status::True, why, message));
    }
}
