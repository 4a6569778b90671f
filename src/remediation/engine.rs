//! The engine of one runtime target: follows the `RuntimeHealth` its probe
//! publishes after every round, feeds the state machine, calls the restarter,
//! verifies recovery (time to answer again, running containers before and
//! after), persists the history and publishes metrics and `/status`. While
//! the runtime fails, it diagnoses its process and node first (`diagnosis`):
//! a process blocked in the kernel, or a full root under `on_disk_full =
//! "skip"`, holds the restart back; after a restart it keeps the stack dump.
//!
//! Metrics: `nodevitals_remediation_state`, `_restarts_total`,
//! `_skipped_total`, `_recovery_seconds`, `_next_allowed_timestamp_seconds`,
//! `_state_file_errors_total`, `_hang_class`, `_dumps_kept`,
//! `nodevitals_runtime_root_free_bytes`, `_free_inodes`,
//! `nodevitals_node_io_pressure_seconds_total`, `_memory_pressure_seconds_total`.

use super::cluster_report::{ClusterReport, IssuedRestart};
use super::defaults::{restart_kills_containers, RestartSpec};
use super::diagnosis::storage::{self, RootSpace};
use super::diagnosis::{dumps, Class, Diagnoser, Diagnosis};
use super::history::{Event, WallClock, MAX_EVENTS};
use super::machine::{
    Decision, Machine, Observation, Policy, RestartEnd, SkipReason, State, Uptimes,
};
use super::memory::{Histories, Kept};
use super::procfs::{Process, Procfs};
use super::report;
use super::restart::{RestartError, Restarter};
use super::skips::Skips;
use super::state_file::{self, Persisted, StateFileError};
use super::Board;
use crate::config::{DiskFullPolicy, RuntimeKind};
use crate::kubernetes::{Link, SlotGuard, Verdict};
use crate::metrics::RemediationMetrics;
use crate::vocabulary::{Outcome, RuntimeHealth};
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// Everything one engine needs, built by `remediation::start`.
pub(crate) struct EngineParts {
    pub kind: RuntimeKind,
    pub spec: RestartSpec,
    /// Why the agent chose `spec.method`; `None` when the config named it.
    pub method_choice: Option<String>,
    pub policy: Policy,
    pub jitter: f64,
    pub dry_run: bool,
    pub state_path: PathBuf,
    pub procfs: Procfs,
    pub restarter: Arc<dyn Restarter>,
    pub metrics: RemediationMetrics,
    pub board: Arc<Board>,
    pub cluster: Link,
    /// For messages: the ConfigMap that pauses the fleet.
    pub pause_configmap: String,
    pub histories: Arc<Histories>,
    pub diagnoser: Diagnoser,
    pub on_disk_full: DiskFullPolicy,
    /// Where stack dumps are kept (`<state_dir>/dumps`), and how many.
    pub dumps_dir: PathBuf,
    pub keep_dumps: usize,
}

pub(crate) struct Engine {
    target: &'static str,
    method: &'static str,
    p: EngineParts,
    machine: Machine,
    events: Vec<Event>,
    state_file_error: Option<String>,
    /// Running containers at the last healthy round: what a restart would hit.
    last_running: Option<u64>,
    live_restore: Option<bool>,
    last_rounds: u64,
    last_decision: &'static str,
    skips: Skips,
    preflight: String,
    report: ClusterReport,
    /// The fleet restart slot, held from the restart until it settles.
    slot: Option<SlotGuard>,
    /// The runtime's process while it fails (found once per failing streak).
    process: Option<Process>,
    /// The diagnosis of this failing round.
    diagnosis: Option<Diagnosis>,
    /// The diagnosis attached to the last hang decision, with its Unix time.
    last_hang: Option<(f64, Diagnosis)>,
    root_dir: Option<PathBuf>,
    root_space: Option<RootSpace>,
    dumps_kept: usize,
}

impl Engine {
    pub(crate) fn new(p: EngineParts) -> Self {
        let target = p.kind.as_str();
        let method = report::method_name(p.spec.method);
        let states = State::ALL.map(State::as_str);
        let reasons = SkipReason::ALL.map(SkipReason::as_str);
        let classes = Class::ALL.map(Class::as_str);
        p.metrics.init(target, method, &states, &reasons, &classes);
        let dumps_kept = dumps::kept(&p.dumps_dir, target).len();
        p.metrics.set_dumps_kept(target, dumps_kept);
        let mut kept = p
            .histories
            .get(&p.state_path)
            .unwrap_or_else(|| Self::load(target, &p));
        // A restart whose engine stopped (agent killed, config reloaded)
        // before its outcome: it counts in the budget, its end is unknown.
        for e in kept.events.iter_mut().filter(|e| e.is_pending()) {
            e.result = "interrupted".into();
            e.detail
                .push_str("; the agent stopped or reloaded before the outcome was known");
        }
        let machine = Machine::new(p.policy.clone(), kept.history);
        let report = ClusterReport::new(p.cluster.clone(), target);
        Self {
            target,
            method,
            p,
            machine,
            events: kept.events,
            state_file_error: kept.state_file_error,
            last_running: None,
            live_restore: None,
            last_rounds: 0,
            last_decision: "none",
            skips: Skips::default(),
            preflight: String::new(),
            report,
            slot: None,
            process: None,
            diagnosis: None,
            last_hang: None,
            root_dir: None,
            root_space: None,
            dumps_kept,
        }
    }

    /// The history in the state file, on the agent's first start.
    fn load(target: &'static str, p: &EngineParts) -> Kept {
        match state_file::load_history(&p.state_path, &p.policy, WallClock::now()) {
            Ok((history, events)) => Kept {
                history,
                events,
                state_file_error: None,
            },
            Err((history, e)) => {
                tracing::error!(target, error = %e, "remediation state file unusable: treating the restart budget as spent");
                p.metrics.count_state_file_error(target);
                Kept {
                    history,
                    events: Vec::new(),
                    state_file_error: Some(e.to_string()),
                }
            }
        }
    }

    /// Runs until the probe's health channel closes (the probe was replaced).
    pub(crate) async fn run(mut self, mut health: watch::Receiver<RuntimeHealth>) {
        if self.p.policy.enabled {
            self.preflight = match self.p.restarter.preflight().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(target = self.target, method = self.method, error = %e, "restart preflight failed");
                    format!("preflight failed: {e}")
                }
            };
            if let Some(choice) = &self.p.method_choice {
                self.preflight = format!("{choice}; {}", self.preflight);
            }
        }
        self.publish();
        while health.changed().await.is_ok() {
            let h = health.borrow_and_update().clone();
            // Late answers also update the channel; decisions are taken per round.
            if h.rounds == self.last_rounds {
                continue;
            }
            self.last_rounds = h.rounds;
            if self.step(&h).await {
                // Rounds that ended while the restarter ran saw the old
                // process (a stopped one answers pending requests once
                // continued): recovery counts only rounds after it.
                self.last_rounds = health.borrow_and_update().rounds;
            }
            self.publish();
        }
    }

    fn observation(&mut self, h: &RuntimeHealth) -> Observation {
        if h.last_outcome == Some(Outcome::Ok) {
            self.last_running = h.running_containers.or(self.last_running);
        }
        if h.live_restore.is_some() {
            self.live_restore = h.live_restore;
        }
        let would_kill = if restart_kills_containers(self.p.kind, self.live_restore) {
            self.last_running.unwrap_or(0)
        } else {
            0
        };
        Observation {
            now: Instant::now(),
            outcome: h.last_outcome,
            consecutive_failures: h.consecutive_failures,
            last_answer: h.last_answer,
            would_kill,
            jitter: self.p.jitter * rand::rng().random::<f64>(),
        }
    }

    /// Free space of the runtime's root and the node's pressure, every round.
    fn watch_node(&mut self, h: &RuntimeHealth) {
        if h.root_dir.is_some() {
            self.root_dir.clone_from(&h.root_dir);
        }
        self.root_space = self.root_dir.as_deref().and_then(storage::root_space);
        if let Some(s) = &self.root_space {
            self.p
                .metrics
                .set_root_space(self.target, s.free_bytes, s.free_inodes);
        }
        let node = self.p.diagnoser.node_pressure();
        for (resource, pressure) in [("io", node.io), ("memory", node.memory)] {
            let Some(pressure) = pressure else { continue };
            let m = &self.p.metrics;
            m.set_node_pressure(resource, "some", pressure.some_us as f64 / 1e6);
            if let Some(full) = pressure.full_us {
                m.set_node_pressure(resource, "full", full as f64 / 1e6);
            }
        }
    }

    /// Diagnoses the failing runtime; returns what holds a restart back.
    fn diagnose(&mut self) -> Option<SkipReason> {
        let p = &self.p;
        self.process = self.process.filter(|pr| p.procfs.alive(*pr)).or_else(|| {
            p.procfs
                .find(p.spec.pidfile.as_deref(), &p.spec.process)
                .ok()
        });
        let d = self
            .p
            .diagnoser
            .diagnose(self.process, self.root_space.clone());
        let hold = if d.class == Class::Blocked {
            Some(SkipReason::Unkillable)
        } else if d.runtime_root_full && self.p.on_disk_full == DiskFullPolicy::Skip {
            Some(SkipReason::DiskFull)
        } else {
            None
        };
        self.diagnosis = Some(d);
        hold
    }

    /// Records the diagnosis with a hang decision (a restart or a guard
    /// holding one back): metric, `/status`.
    fn hang_decided(&mut self) {
        let Some(d) = &self.diagnosis else { return };
        let classes = Class::ALL.map(Class::as_str);
        self.p
            .metrics
            .set_hang_class(self.target, d.class.as_str(), &classes);
        self.last_hang = Some((WallClock::now().unix, d.clone()));
    }

    /// One round's decision, acted on; true if a restart was carried out.
    async fn step(&mut self, h: &RuntimeHealth) -> bool {
        let obs = self.observation(h);
        self.watch_node(h);
        let failing = !matches!(h.last_outcome, None | Some(Outcome::Ok));
        let hold = if failing && self.p.policy.enabled {
            self.diagnose()
        } else {
            self.p.diagnoser.reset();
            self.process = None;
            self.diagnosis = None;
            None
        };
        let answered_before = self.machine.history().answered;
        // The restarter's own account of the runtime's age (systemd: the
        // unit's start time), asked only when a restart is in reach.
        let restarter_uptime = if obs.consecutive_failures >= self.p.policy.failure_threshold {
            self.p.restarter.runtime_uptime().await
        } else {
            None
        };
        let p = &self.p;
        let decision = self.machine.observe(&obs, || Uptimes {
            runtime: restarter_uptime.or_else(|| {
                p.procfs
                    .find(p.spec.pidfile.as_deref(), &p.spec.process)
                    .ok()
                    .and_then(|pid| p.procfs.uptime_of(pid))
            }),
            node: p.procfs.node_uptime(),
            hold,
        });
        if self.machine.history().answered && !answered_before {
            // Persist the first answer: it is what makes a later refusal a
            // dead runtime rather than a wrong path, across agent restarts.
            self.save().await;
        }
        // Before acting: a restart takes seconds, the cluster must not wait.
        self.report_round(&obs);
        match decision {
            Decision::Nothing => {}
            Decision::Skip(reason) => self.skipped(reason, &obs),
            Decision::Restart => match self.gate().await {
                Ok(slot) => {
                    self.slot = slot;
                    self.restart(&obs).await;
                    self.report_round(&obs);
                    return !self.p.dry_run;
                }
                Err(reason) => {
                    self.machine.hold_back(reason);
                    self.skipped(reason, &obs);
                }
            },
            Decision::Recovered { after } => {
                self.last_decision = "recovered";
                self.p.metrics.observe_recovery(self.target, after);
                let before = self.pending_event().and_then(|e| e.running_before);
                let running_after = h.running_containers;
                tracing::info!(
                    target = self.target,
                    recovery_seconds = after.as_secs_f64(),
                    running_before = ?before,
                    running_after = ?running_after,
                    "runtime answers again after the restart"
                );
                self.report.recovered(after, before, running_after);
                self.settle("success", |e| {
                    e.recovery_seconds = Some(after.as_secs_f64());
                    e.running_after = running_after;
                })
                .await;
            }
            Decision::RecoveryFailed => {
                self.last_decision = "recovery_failed";
                tracing::error!(
                    target = self.target,
                    recovery_timeout = ?self.p.policy.recovery_timeout,
                    "runtime not answering within recovery_timeout after the restart: a failed restart"
                );
                self.report.repair_failed(
                    "RestartDidNotRecover",
                    format!(
                        "{} was restarted but did not answer within recovery_timeout ({}); the node needs repair from outside.",
                        self.target,
                        humantime::format_duration(self.p.policy.recovery_timeout)
                    ),
                );
                self.settle("failure", |e| {
                    e.detail.push_str("; not answering within recovery_timeout")
                })
                .await;
            }
        }
        self.report_round(&obs);
        false
    }

    /// Whether the fleet lets this restart go: the slot to hold through it,
    /// or why not. A dry run asks nobody.
    async fn gate(&mut self) -> Result<Option<SlotGuard>, SkipReason> {
        if self.p.dry_run {
            return Ok(None);
        }
        match self.p.cluster.ask_restart().await {
            Verdict::Go(slot) => Ok(slot),
            Verdict::Unreachable { go: true } => Ok(None),
            Verdict::Paused => Err(SkipReason::Paused),
            Verdict::FleetLimit | Verdict::Unreachable { go: false } => Err(SkipReason::FleetLimit),
        }
    }

    /// After every round: the cluster's view of this target.
    fn report_round(&mut self, obs: &Observation) {
        let next = self
            .machine
            .next_allowed(obs.now)
            .map(|t| t.saturating_duration_since(obs.now));
        self.report.round(
            obs,
            self.machine.state(),
            self.machine.history(),
            self.machine.policy(),
            next,
        );
    }

    /// Settles the pending restart: the event first, then `/status`, then the
    /// counter (whoever sees the count sees the event), then the state file.
    /// The fleet slot is released.
    async fn settle(&mut self, result: &'static str, update: impl FnOnce(&mut Event)) {
        self.slot = None;
        if let Some(e) = self.pending_event() {
            e.result = result.into();
            update(e);
        }
        self.publish();
        self.p
            .metrics
            .count_restart(self.target, self.method, result);
        self.save().await;
    }

    fn skipped(&mut self, reason: SkipReason, obs: &Observation) {
        let at = WallClock::now();
        let interrupted = self.last_decision != reason.as_str();
        self.skips
            .record(reason.as_str(), at.to_unix(obs.now), interrupted);
        self.last_decision = reason.as_str();
        let next = self
            .machine
            .next_allowed(obs.now)
            .map(|t| t.saturating_duration_since(obs.now));
        self.report.skipped(
            reason,
            self.machine.history(),
            self.machine.policy(),
            next,
            &self.p.pause_configmap,
        );
        if !matches!(reason, SkipReason::NotAHang | SkipReason::Misconfigured) {
            self.hang_decided();
        }
        self.p.metrics.count_skip(self.target, reason.as_str());
        report::log_skip(
            self.target,
            reason,
            obs.consecutive_failures,
            self.machine.policy(),
            self.diagnosis.as_ref(),
        );
    }

    async fn restart(&mut self, obs: &Observation) {
        let decided = obs.now;
        let dry_run = self.p.dry_run;
        self.last_decision = "restart";
        self.hang_decided();
        let diagnosis = self.diagnosis.as_ref().map(Diagnosis::summary);
        tracing::warn!(
            target = self.target,
            method = self.method,
            dry_run,
            consecutive_failures = obs.consecutive_failures,
            silent_seconds = obs.last_answer.map(|t| decided.saturating_duration_since(t).as_secs_f64()),
            running_containers = ?self.last_running,
            live_restore = ?self.live_restore,
            will_kill_containers = obs.would_kill,
            diagnosis = diagnosis.as_deref().unwrap_or("none"),
            "runtime hung: restarting it (this restart will kill {} running containers)",
            obs.would_kill
        );
        let clock = WallClock::now();
        self.events.push(Event {
            at_unix: clock.to_unix(decided),
            method: self.method.into(),
            result: "pending".into(),
            recovery_seconds: None,
            running_before: self.last_running,
            running_after: None,
            detail: format!("would kill {} running containers", obs.would_kill),
            diagnosis,
            dump: None,
        });
        // The one place events grow, so the one bound on what is kept and
        // persisted (a loaded state file may hold more).
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
        // Persisted before acting: an agent killed mid-restart still counts
        // it. One that cannot be persisted is not issued: an agent restart
        // would forget it, and a crash-looping agent would restart the
        // runtime every time. It counts as a failed restart (budget and
        // backoff spent, in memory) until the file can be written again.
        if !self.save().await && !dry_run {
            tracing::error!(
                target = self.target,
                "restart not issued: its record cannot be persisted (see the state file error)"
            );
            self.machine
                .restart_finished(decided, Instant::now(), RestartEnd::Failed);
            self.settle("failure", |e| {
                e.detail = "not issued: the restart history cannot be persisted".into()
            })
            .await;
            return;
        }
        if dry_run {
            self.machine
                .restart_finished(decided, Instant::now(), RestartEnd::DryRun);
            self.settle("dry_run", |e| {
                e.detail.insert_str(0, "dry run: nothing done; ")
            })
            .await;
            return;
        }
        self.publish();
        let dump_source = self.dump_source(clock.unix);
        // A task of its own: a config reload replacing this engine must not cut
        // a restart between SIGTERM and SIGKILL.
        let outcome = tokio::spawn(self.p.restarter.restart()).await;
        let result = match outcome {
            Ok(Ok(detail)) => Ok(detail),
            Ok(Err(e @ RestartError::Survived { .. })) => {
                self.unkillable(decided, e.to_string()).await;
                return;
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(join) => Err(format!("restart task failed: {join}")),
        };
        if let Some((dir, since)) = dump_source {
            self.keep_dump(dir, since, clock.unix).await;
        }
        match result {
            Ok(detail) => {
                tracing::info!(
                    target = self.target,
                    detail,
                    "restart issued; awaiting recovery"
                );
                let pending = self.events.last().filter(|e| e.is_pending());
                self.report.restart_issued(&IssuedRestart {
                    method: self.method,
                    detail: &detail,
                    would_kill: obs.would_kill,
                    silent: obs
                        .last_answer
                        .map(|t| decided.saturating_duration_since(t)),
                    dump: pending.and_then(|e| e.dump.as_deref()),
                    diagnosis: pending.and_then(|e| e.diagnosis.as_deref()),
                });
                if let Some(ev) = self.pending_event() {
                    ev.detail = format!("{detail}; {}", ev.detail);
                }
                self.machine
                    .restart_finished(decided, Instant::now(), RestartEnd::Issued);
                self.save().await;
            }
            Err(e) => {
                tracing::error!(target = self.target, method = self.method, error = %e, "restart failed");
                self.report.repair_failed(
                    "RestartFailed",
                    format!(
                        "nodevitals could not restart {} by {}: {e}.",
                        self.target, self.method
                    ),
                );
                self.machine
                    .restart_finished(decided, Instant::now(), RestartEnd::Failed);
                self.settle("failure", |ev| ev.detail = e).await;
            }
        }
    }

    /// A process that survived SIGKILL is blocked in the kernel: reported as
    /// unkillable, not as restarted.
    async fn unkillable(&mut self, decided: Instant, error: String) {
        tracing::error!(
            target = self.target,
            error,
            "RUNTIME SURVIVED SIGKILL: blocked in the kernel, a restart cannot help; the node needs a human"
        );
        self.last_decision = "unkillable";
        self.report.repair_failed(
            "RuntimeUnkillable",
            format!(
                "{} survived SIGKILL: it is blocked in the kernel, so a restart cannot help; the node needs a reboot or replacement ({error}).",
                self.target
            ),
        );
        self.machine
            .restart_finished(decided, Instant::now(), RestartEnd::Failed);
        self.settle("unkillable", |ev| ev.detail = error).await;
    }

    /// Where the stack dump of this restart will appear, and since when: the
    /// exec root of the dockerd about to be signalled (read before it dies).
    fn dump_source(&self, decided_unix: f64) -> Option<(PathBuf, std::time::SystemTime)> {
        if self.p.kind != RuntimeKind::Docker || self.p.spec.diagnostic_signal.is_none() {
            return None;
        }
        let cmdline = self.p.procfs.cmdline(self.process?.pid)?;
        // A second of slack for file times coarser than the clock.
        let since = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs_f64((decided_unix - 1.0).max(0.0));
        Some((dumps::docker_exec_root(&cmdline), since))
    }

    /// Copies the dump dockerd wrote into the state directory and names it in
    /// the pending event.
    async fn keep_dump(&mut self, dir: PathBuf, since: std::time::SystemTime, unix: f64) {
        let (keep_dir, target, keep) = (self.p.dumps_dir.clone(), self.target, self.p.keep_dumps);
        let result = tokio::task::spawn_blocking(move || {
            let kept = dumps::capture(&dir, since, &keep_dir, target, unix as u64, keep);
            (kept, dumps::kept(&keep_dir, target).len())
        })
        .await;
        let Ok((kept, count)) = result else { return };
        self.dumps_kept = count;
        self.p.metrics.set_dumps_kept(self.target, count);
        match kept {
            Ok(path) => {
                tracing::info!(target = self.target, path = %path.display(), "stack dump kept");
                if let Some(ev) = self.pending_event() {
                    ev.dump = Some(path.display().to_string());
                }
            }
            Err(e) => {
                tracing::warn!(target = self.target, error = %e, "no stack dump kept");
                if let Some(ev) = self.pending_event() {
                    ev.detail.push_str(&format!("; {e}"));
                }
            }
        }
    }

    fn pending_event(&mut self) -> Option<&mut Event> {
        self.events.last_mut().filter(|e| e.is_pending())
    }

    /// Persists the history; whether it was.
    async fn save(&mut self) -> bool {
        let content =
            Persisted::from_history(self.machine.history(), &self.events, WallClock::now());
        let path = self.p.state_path.clone();
        let result = tokio::task::spawn_blocking(move || state_file::save(&path, &content))
            .await
            .unwrap_or_else(|join| {
                Err(StateFileError::Write {
                    path: self.p.state_path.clone(),
                    source: std::io::Error::other(join.to_string()),
                })
            });
        match result {
            Ok(()) => {
                self.state_file_error = None;
                true
            }
            Err(e) => {
                tracing::error!(target = self.target, error = %e, "cannot persist the restart history");
                self.p.metrics.count_state_file_error(self.target);
                self.state_file_error = Some(e.to_string());
                false
            }
        }
    }

    /// Publishes metrics and `/status`, and hands the history on to the
    /// engine a reload will start.
    fn publish(&self) {
        self.p.histories.put(
            &self.p.state_path,
            Kept {
                history: self.machine.history().clone(),
                events: self.events.clone(),
                state_file_error: self.state_file_error.clone(),
            },
        );
        let clock = WallClock::now();
        let state = self.machine.state();
        let states = State::ALL.map(State::as_str);
        self.p
            .metrics
            .set_state(self.target, state.as_str(), &states);
        let next = self
            .machine
            .next_allowed(clock.instant)
            .map(|t| clock.to_unix(t));
        self.p
            .metrics
            .set_next_allowed(self.target, next.unwrap_or(0.0));
        let status = report::Status {
            state,
            method: self.method,
            dry_run: self.p.dry_run,
            next_allowed_unix: next,
            history: self.machine.history(),
            policy: self.machine.policy(),
            last_decision: self.last_decision,
            running_containers: self.last_running,
            live_restore: self.live_restore,
            preflight: &self.preflight,
            state_file: &self.p.state_path,
            state_file_error: self.state_file_error.as_deref(),
            events: &self.events,
            skips: self.skips.runs(),
            last_hang: self.last_hang.as_ref(),
            runtime_root: self.root_space.as_ref(),
            dumps_kept: self.dumps_kept,
        };
        self.p.board.set(self.target, status.to_json());
    }
}

#[cfg(test)]
mod tests;
