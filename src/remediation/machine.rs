//! The remediation state machine, pure: no I/O, no clock reads, no randomness.
//! Inputs: one [`Observation`] per probe round (outcome, consecutive failures,
//! last answer, runtime process uptime, node uptime, the time as a tokio
//! `Instant`, a jitter sample) and the end of each restart; output: a
//! [`Decision`]. The engine turns decisions into actions and metrics; this file
//! emits none.

use super::history::History;
use crate::config::RemediationConfig;
use crate::vocabulary::Outcome;
use std::time::Duration;
use tokio::time::Instant;

/// `nodevitals_remediation_state{state}`: exactly one is 1 per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Healthy,
    Failing,
    Restarting,
    Recovering,
    Backoff,
    Exhausted,
    /// Hung and blocked in the kernel: a restart cannot help, none is spent.
    Unkillable,
    Disabled,
}

impl State {
    pub(crate) const ALL: [State; 8] = [
        State::Healthy,
        State::Failing,
        State::Restarting,
        State::Recovering,
        State::Backoff,
        State::Exhausted,
        State::Unkillable,
        State::Disabled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Failing => "failing",
            State::Restarting => "restarting",
            State::Recovering => "recovering",
            State::Backoff => "backoff",
            State::Exhausted => "exhausted",
            State::Unkillable => "unkillable",
            State::Disabled => "disabled",
        }
    }
}

/// Why a round with failures did not lead to a restart
/// (`nodevitals_remediation_skipped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// The runtime process started less than `cooldown` ago.
    Cooldown,
    /// The last restart's backoff has not elapsed.
    Backoff,
    /// `max_restarts` restarts already happened within `window`.
    Budget,
    /// The node booted less than `boot_grace` ago.
    BootGrace,
    /// Failing, but the runtime answered (perhaps late) within `hang_after`.
    NotAHang,
    /// The agent cannot reach the runtime because of its own setup (or the
    /// socket refuses and the runtime never answered at this endpoint).
    Misconfigured,
    /// The restart would kill running containers and policy refuses that.
    KillsWorkloads,
    /// The runtime's process is blocked in the kernel (or frozen), or survived
    /// SIGKILL: a restart cannot help.
    Unkillable,
    /// The runtime's root directory is full and policy holds the restart.
    DiskFull,
    /// Every fleet-wide restart slot is taken (or the API server could not be
    /// asked and `kubernetes.on_unreachable = "hold"`).
    FleetLimit,
    /// Restarts are paused fleet-wide.
    Paused,
}

impl SkipReason {
    pub(crate) const ALL: [SkipReason; 11] = [
        SkipReason::Cooldown,
        SkipReason::Backoff,
        SkipReason::Budget,
        SkipReason::BootGrace,
        SkipReason::NotAHang,
        SkipReason::Misconfigured,
        SkipReason::KillsWorkloads,
        SkipReason::Unkillable,
        SkipReason::DiskFull,
        SkipReason::FleetLimit,
        SkipReason::Paused,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SkipReason::Cooldown => "cooldown",
            SkipReason::Backoff => "backoff",
            SkipReason::Budget => "budget",
            SkipReason::BootGrace => "boot_grace",
            SkipReason::NotAHang => "not_a_hang",
            SkipReason::Misconfigured => "misconfigured",
            SkipReason::KillsWorkloads => "kills_workloads",
            SkipReason::Unkillable => "unkillable",
            SkipReason::DiskFull => "disk_full",
            SkipReason::FleetLimit => "fleet_limit",
            SkipReason::Paused => "paused",
        }
    }
}

/// The `[remediation]` policy, as the machine uses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub hang_after: Duration,
    pub cooldown: Duration,
    pub boot_grace: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_restarts: u32,
    pub window: Duration,
    pub reset_after: Duration,
    pub recovery_timeout: Duration,
    pub refuse_if_kills_workloads: bool,
}

impl From<&RemediationConfig> for Policy {
    fn from(c: &RemediationConfig) -> Self {
        Self {
            enabled: c.enabled,
            failure_threshold: c.failure_threshold,
            hang_after: c.hang_after,
            cooldown: c.cooldown,
            boot_grace: c.boot_grace,
            backoff_initial: c.backoff_initial,
            backoff_max: c.backoff_max,
            max_restarts: c.max_restarts,
            window: c.window,
            reset_after: c.reset_after,
            recovery_timeout: c.recovery_timeout,
            refuse_if_kills_workloads: c.refuse_if_kills_workloads,
        }
    }
}

/// What the engine knows after one probe round.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    pub now: Instant,
    /// `None` before the first round.
    pub outcome: Option<Outcome>,
    pub consecutive_failures: u32,
    /// The last time the runtime answered anything, late answers included.
    pub last_answer: Option<Instant>,
    /// Running containers a restart would kill now.
    pub would_kill: u64,
    /// Extra backoff as a fraction of the step (`backoff_jitter` * a random
    /// sample in [0, 1)); 0 in tests.
    pub jitter: f64,
}

/// Read from `/proc` only when a confirmed hang has passed the budget and
/// backoff guards: for the cooldown and boot-grace guards, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Uptimes {
    /// How long the runtime process has been running; `None` = not found.
    pub runtime: Option<Duration>,
    /// Time since the node booted; `None` = unknown.
    pub node: Option<Duration>,
    /// What the diagnosis of the runtime's process and node says holds a
    /// restart back (`Unkillable`, `DiskFull`); `None` = nothing.
    pub hold: Option<SkipReason>,
}

/// How a restart the machine asked for ended, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartEnd {
    /// The restarter did its part; recovery is now awaited.
    Issued,
    /// The restarter failed (no process, command error, deadline).
    Failed,
    /// Dry run: nothing was done, nothing will recover.
    DryRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Nothing,
    Skip(SkipReason),
    /// Restart now; the restart is already in the history (budget, backoff).
    Restart,
    /// The runtime answers again; `after` counts from the restart decision.
    Recovered {
        after: Duration,
    },
    /// Not back within `recovery_timeout`: a failed restart.
    RecoveryFailed,
}

pub(crate) struct Machine {
    policy: Policy,
    state: State,
    history: History,
    /// When the machine first observed the runtime: the start of silence when
    /// the runtime never answered since the agent started.
    first_seen: Option<Instant>,
    healthy_since: Option<Instant>,
    /// The restart awaiting recovery: when it was decided, and when the
    /// restarter finished (the recovery deadline counts from there).
    pending: Option<(Instant, Instant)>,
    /// The history before the restart just decided, should the fleet refuse it.
    before_restart: Option<History>,
}

impl Machine {
    pub(crate) fn new(policy: Policy, history: History) -> Self {
        let state = if policy.enabled {
            State::Healthy
        } else {
            State::Disabled
        };
        Self {
            policy,
            state,
            history,
            first_seen: None,
            healthy_since: None,
            pending: None,
            before_restart: None,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The earliest time a restart could be allowed by backoff and budget
    /// (`None` = now). Cooldown and boot grace depend on inputs and are skipped.
    pub(crate) fn next_allowed(&self, now: Instant) -> Option<Instant> {
        let max = self.policy.max_restarts as usize;
        let budget = (max > 0 && self.history.restarts.len() >= max)
            .then(|| self.history.restarts[self.history.restarts.len() - max] + self.policy.window);
        [self.history.next_allowed, budget]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }

    pub(crate) fn observe(
        &mut self,
        o: &Observation,
        uptimes: impl FnOnce() -> Uptimes,
    ) -> Decision {
        if !self.policy.enabled {
            self.state = State::Disabled;
            return Decision::Nothing;
        }
        let first_seen = *self.first_seen.get_or_insert(o.now);
        if o.last_answer.is_some() {
            self.history.answered = true;
        }
        self.history.prune(o.now, self.policy.window);
        match self.state {
            // The engine does not observe while it restarts; nothing to decide.
            State::Restarting => return Decision::Nothing,
            State::Recovering => return self.recovering(o),
            _ => {}
        }
        if matches!(o.outcome, None | Some(Outcome::Ok)) {
            let since = *self.healthy_since.get_or_insert(o.now);
            if o.now.saturating_duration_since(since) >= self.policy.reset_after {
                self.history.step = Duration::ZERO;
            }
            self.state = State::Healthy;
            return Decision::Nothing;
        }
        self.healthy_since = None;
        self.state = State::Failing;
        if o.consecutive_failures < self.policy.failure_threshold {
            return Decision::Nothing;
        }
        // A socket that never answered (not since the agent started, nor ever
        // according to the state file) and is absent or refusing is more likely
        // a wrong path than a dead runtime: reported like a misconfiguration,
        // never remediated.
        let never_answered_refused = o.outcome == Some(Outcome::Refused)
            && o.last_answer.is_none()
            && !self.history.answered;
        if o.outcome == Some(Outcome::Misconfigured) || never_answered_refused {
            return Decision::Skip(SkipReason::Misconfigured);
        }
        let silent_since = o.last_answer.unwrap_or(first_seen);
        if o.now.saturating_duration_since(silent_since) < self.policy.hang_after {
            return Decision::Skip(SkipReason::NotAHang);
        }
        if let Some(reason) = self.guard(o, uptimes) {
            self.state = match reason {
                SkipReason::Budget => State::Exhausted,
                SkipReason::Backoff => State::Backoff,
                SkipReason::Unkillable => State::Unkillable,
                _ => State::Failing,
            };
            return Decision::Skip(reason);
        }
        self.before_restart = Some(self.history.clone());
        self.history.record_restart(o.now, &self.policy, o.jitter);
        self.state = State::Restarting;
        Decision::Restart
    }

    /// The restart just decided is held back from outside (fleet limit,
    /// pause): it never happened, so it spends no budget and no backoff.
    pub(crate) fn hold_back(&mut self, reason: SkipReason) -> Decision {
        if self.state == State::Restarting {
            if let Some(h) = self.before_restart.take() {
                self.history = h;
            }
            self.state = State::Failing;
        }
        Decision::Skip(reason)
    }

    /// The first guard that holds a confirmed hang back, most severe first.
    fn guard(&self, o: &Observation, uptimes: impl FnOnce() -> Uptimes) -> Option<SkipReason> {
        let p = &self.policy;
        if self.history.restarts.len() >= p.max_restarts as usize {
            return Some(SkipReason::Budget);
        }
        if self.history.next_allowed.is_some_and(|t| t > o.now) {
            return Some(SkipReason::Backoff);
        }
        let uptimes = uptimes();
        if let Some(reason) = uptimes.hold {
            return Some(reason);
        }
        if uptimes.runtime.is_some_and(|u| u < p.cooldown) {
            return Some(SkipReason::Cooldown);
        }
        if uptimes.node.is_some_and(|u| u < p.boot_grace) {
            return Some(SkipReason::BootGrace);
        }
        if p.refuse_if_kills_workloads && o.would_kill > 0 {
            return Some(SkipReason::KillsWorkloads);
        }
        None
    }

    fn recovering(&mut self, o: &Observation) -> Decision {
        let Some((decided, finished)) = self.pending else {
            self.state = State::Failing;
            return Decision::Nothing;
        };
        if o.outcome == Some(Outcome::Ok) {
            self.pending = None;
            self.state = State::Healthy;
            self.healthy_since = Some(o.now);
            return Decision::Recovered {
                after: o.now.saturating_duration_since(decided),
            };
        }
        if o.now.saturating_duration_since(finished) >= self.policy.recovery_timeout {
            self.pending = None;
            self.state = State::Failing;
            return Decision::RecoveryFailed;
        }
        Decision::Nothing
    }

    /// Tells the machine how the restart it asked for ended. `decided` is the
    /// `now` of the observation that returned [`Decision::Restart`].
    pub(crate) fn restart_finished(&mut self, decided: Instant, now: Instant, end: RestartEnd) {
        if self.state != State::Restarting {
            return;
        }
        match end {
            RestartEnd::Issued => {
                self.pending = Some((decided, now));
                self.state = State::Recovering;
            }
            RestartEnd::Failed | RestartEnd::DryRun => self.state = State::Failing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const SEC: Duration = Duration::from_secs(1);

    fn policy() -> Policy {
        Policy {
            enabled: true,
            failure_threshold: 3,
            hang_after: 10 * SEC,
            cooldown: 30 * SEC,
            boot_grace: 60 * SEC,
            backoff_initial: 60 * SEC,
            backoff_max: 300 * SEC,
            max_restarts: 3,
            window: 3600 * SEC,
            reset_after: 600 * SEC,
            recovery_timeout: 20 * SEC,
            refuse_if_kills_workloads: false,
        }
    }

    /// A runtime probed every second, driven on the paused tokio clock.
    struct Sim {
        m: Machine,
        failures: u32,
        last_answer: Option<Instant>,
        runtime_started: Instant,
        booted: Instant,
        would_kill: u64,
        jitter: f64,
        hold: Option<SkipReason>,
    }

    impl Sim {
        fn new(p: Policy) -> Self {
            let now = Instant::now();
            Self {
                m: Machine::new(p, History::default()),
                failures: 0,
                last_answer: None,
                runtime_started: now - 3600 * SEC,
                booted: now - 7200 * SEC,
                would_kill: 0,
                jitter: 0.0,
                hold: None,
            }
        }

        /// Advances the clock by `dt`, then reports one round with `outcome`.
        async fn round(&mut self, dt: Duration, outcome: Outcome) -> Decision {
            advance(dt).await;
            let now = Instant::now();
            if outcome == Outcome::Ok {
                self.failures = 0;
            } else {
                self.failures += 1;
            }
            if matches!(outcome, Outcome::Ok | Outcome::Error) {
                self.last_answer = Some(now);
            }
            let uptimes = Uptimes {
                runtime: Some(now - self.runtime_started),
                node: Some(now - self.booted),
                hold: self.hold,
            };
            let observation = Observation {
                now,
                outcome: Some(outcome),
                consecutive_failures: self.failures,
                last_answer: self.last_answer,
                would_kill: self.would_kill,
                jitter: self.jitter,
            };
            self.m.observe(&observation, || uptimes)
        }

        /// Rounds of `outcome` every second until a decision other than
        /// Nothing/NotAHang, or `limit` rounds; returns it and the rounds taken.
        async fn until_decision(&mut self, outcome: Outcome, limit: u32) -> (Decision, u32) {
            for i in 1..=limit {
                let d = self.round(SEC, outcome).await;
                if !matches!(d, Decision::Nothing | Decision::Skip(SkipReason::NotAHang)) {
                    return (d, i);
                }
            }
            (Decision::Nothing, limit)
        }

        /// Completes a restart: the restarter succeeded and the runtime process is new.
        async fn restarted(&mut self) {
            let now = Instant::now();
            self.m.restart_finished(now, now, RestartEnd::Issued);
            self.runtime_started = now;
            assert_eq!(self.m.state(), State::Recovering);
        }
    }

    /// A runtime blocked in the kernel spends no budget and no backoff while
    /// it stays blocked; released but still hung, it is restarted as usual.
    #[tokio::test(start_paused = true)]
    async fn unkillable_hang_spends_nothing_until_it_leaves_that_state() {
        let mut s = Sim::new(policy());
        s.round(SEC, Outcome::Ok).await;
        s.hold = Some(SkipReason::Unkillable);
        let (d, _) = s.until_decision(Outcome::Timeout, 30).await;
        assert_eq!(d, Decision::Skip(SkipReason::Unkillable));
        assert_eq!(s.m.state(), State::Unkillable);
        for _ in 0..20 {
            assert_eq!(
                s.round(SEC, Outcome::Timeout).await,
                Decision::Skip(SkipReason::Unkillable)
            );
        }
        assert!(s.m.history().restarts.is_empty());
        assert_eq!(s.m.next_allowed(Instant::now()), None);
        s.hold = None;
        assert_eq!(s.round(SEC, Outcome::Timeout).await, Decision::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_runtime_stays_healthy() {
        let mut s = Sim::new(policy());
        for _ in 0..100 {
            assert_eq!(s.round(SEC, Outcome::Ok).await, Decision::Nothing);
        }
        assert_eq!(s.m.state(), State::Healthy);
        assert!(s.m.history().restarts.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn hang_needs_threshold_and_silence() {
        let mut p = policy();
        p.hang_after = 5 * SEC;
        p.failure_threshold = 3;
        let mut s = Sim::new(p);
        s.round(SEC, Outcome::Ok).await;
        // Silence reaches 5 s at the fifth timeout; threshold alone is not enough.
        for i in 1..=4 {
            let d = s.round(SEC, Outcome::Timeout).await;
            let expect = if i < 3 {
                Decision::Nothing
            } else {
                Decision::Skip(SkipReason::NotAHang)
            };
            assert_eq!(d, expect, "round {i}");
            assert_eq!(s.m.state(), State::Failing);
        }
        assert_eq!(s.round(SEC, Outcome::Timeout).await, Decision::Restart);
        assert_eq!(s.m.state(), State::Restarting);
        // Silence alone is not enough either: a high hang_after with threshold 1.
        let mut p = policy();
        p.failure_threshold = 20;
        p.hang_after = SEC;
        let mut s = Sim::new(p);
        let (_, rounds) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(rounds, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_mean_slow_not_hung() {
        let mut s = Sim::new(policy());
        for _ in 0..60 {
            let d = s.round(SEC, Outcome::Timeout).await;
            // Every request times out, but each is answered late.
            s.last_answer = Some(Instant::now());
            assert!(
                matches!(d, Decision::Nothing | Decision::Skip(SkipReason::NotAHang)),
                "{d:?}"
            );
        }
        assert!(s.m.history().restarts.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_with_errors_are_not_a_hang() {
        let mut s = Sim::new(policy());
        let (d, _) = s.until_decision(Outcome::Error, 120).await;
        assert_eq!(d, Decision::Nothing);
        assert_eq!(s.m.state(), State::Failing);
    }

    #[tokio::test(start_paused = true)]
    async fn misconfigured_is_never_remediated() {
        // Permission denied / not a socket, and a path that never answered.
        for outcome in [Outcome::Misconfigured, Outcome::Refused] {
            let mut s = Sim::new(policy());
            for i in 1..=600 {
                let d = s.round(SEC, outcome).await;
                if i >= 3 {
                    assert_eq!(d, Decision::Skip(SkipReason::Misconfigured), "{outcome}");
                }
            }
            assert!(s.m.history().restarts.is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refused_after_answering_is_a_dead_runtime() {
        let mut s = Sim::new(policy());
        s.round(SEC, Outcome::Ok).await;
        let (d, rounds) = s.until_decision(Outcome::Refused, 100).await;
        assert_eq!(d, Decision::Restart);
        assert_eq!(rounds, 10);
    }

    /// An agent restarted while the runtime is down: the state file says the
    /// runtime answered at this endpoint before, so refusal means dead.
    #[tokio::test(start_paused = true)]
    async fn refused_after_an_answer_remembered_from_the_state_file() {
        let mut s = Sim::new(policy());
        s.m = Machine::new(
            policy(),
            History {
                answered: true,
                ..History::default()
            },
        );
        let (d, _) = s.until_decision(Outcome::Refused, 100).await;
        assert_eq!(d, Decision::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_remembered_in_the_history() {
        let mut s = Sim::new(policy());
        assert!(!s.m.history().answered);
        s.round(SEC, Outcome::Ok).await;
        assert!(s.m.history().answered);
    }

    #[tokio::test(start_paused = true)]
    async fn never_answered_counts_silence_from_first_observation() {
        let mut s = Sim::new(policy());
        let (d, rounds) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Restart);
        // First observation at t=1 s, hang_after 10 s: restart at t=11 s.
        assert_eq!(rounds, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn restart_then_recovery_measures_time() {
        let mut s = Sim::new(policy());
        s.round(SEC, Outcome::Ok).await;
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Restart);
        advance(2 * SEC).await; // the restarter takes 2 s
        let decided = Instant::now() - 2 * SEC;
        s.m.restart_finished(decided, Instant::now(), RestartEnd::Issued);
        s.runtime_started = Instant::now();
        assert_eq!(s.m.state(), State::Recovering);
        assert_eq!(s.round(SEC, Outcome::Refused).await, Decision::Nothing);
        assert_eq!(s.m.state(), State::Recovering);
        assert_eq!(
            s.round(SEC, Outcome::Ok).await,
            Decision::Recovered { after: 4 * SEC }
        );
        assert_eq!(s.m.state(), State::Healthy);
        assert_eq!(s.m.history().restarts.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_timeout_is_a_failed_restart() {
        let mut s = Sim::new(policy());
        s.until_decision(Outcome::Timeout, 100).await;
        s.restarted().await;
        let (d, rounds) = s.until_decision(Outcome::Refused, 100).await;
        assert_eq!(d, Decision::RecoveryFailed);
        assert_eq!(rounds, 20);
        assert_eq!(s.m.state(), State::Failing);
        assert_eq!(s.m.history().restarts.len(), 1, "counts toward the budget");
    }

    #[tokio::test(start_paused = true)]
    async fn hang_inside_backoff_is_skipped_until_it_elapses() {
        let mut p = policy();
        p.cooldown = Duration::ZERO;
        let mut s = Sim::new(p);
        s.until_decision(Outcome::Timeout, 100).await;
        let first = Instant::now();
        s.restarted().await;
        s.round(SEC, Outcome::Ok).await;
        // Hangs again right away: held by the 60 s backoff.
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Backoff));
        assert_eq!(s.m.state(), State::Backoff);
        assert_eq!(s.m.next_allowed(Instant::now()), Some(first + 60 * SEC));
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Backoff));
        loop {
            let d = s.round(SEC, Outcome::Timeout).await;
            if d != Decision::Skip(SkipReason::Backoff) {
                assert_eq!(d, Decision::Restart);
                break;
            }
        }
        assert_eq!(Instant::now(), first + 60 * SEC);
    }

    /// A permanent hang: restarts follow the exponential backoff up to the cap
    /// and stop at the budget; the budget frees up when the window slides.
    #[tokio::test(start_paused = true)]
    async fn permanent_hang_backs_off_then_exhausts() {
        let mut p = policy();
        p.cooldown = Duration::ZERO;
        p.max_restarts = 5;
        p.backoff_initial = 60 * SEC;
        p.backoff_max = 200 * SEC;
        let mut s = Sim::new(p);
        let mut times = Vec::new();
        let mut skipped_backoff = 0;
        for _ in 0..2000 {
            match s.round(SEC, Outcome::Timeout).await {
                Decision::Restart => {
                    times.push(Instant::now());
                    s.restarted().await;
                }
                Decision::Skip(SkipReason::Backoff) => skipped_backoff += 1,
                Decision::Skip(SkipReason::Budget) => break,
                _ => {}
            }
        }
        assert_eq!(times.len(), 5);
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, [60, 120, 200, 200]);
        assert!(skipped_backoff > 0);
        assert_eq!(s.m.state(), State::Exhausted);
        // Stays exhausted while the window holds all five restarts.
        let free = s.m.next_allowed(Instant::now()).unwrap();
        assert_eq!(free, times[0] + 3600 * SEC);
        while Instant::now() + SEC < free {
            assert_eq!(
                s.round(SEC, Outcome::Timeout).await,
                Decision::Skip(SkipReason::Budget)
            );
        }
        assert_eq!(s.round(SEC, Outcome::Timeout).await, Decision::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_resets_after_staying_healthy() {
        let mut p = policy();
        p.cooldown = Duration::ZERO;
        let mut s = Sim::new(p);
        s.until_decision(Outcome::Timeout, 100).await;
        s.restarted().await;
        s.round(SEC, Outcome::Ok).await;
        assert_eq!(s.m.history().step, 60 * SEC);
        for _ in 0..599 {
            s.round(SEC, Outcome::Ok).await;
        }
        assert_eq!(s.m.history().step, 60 * SEC, "not yet reset_after");
        s.round(SEC, Outcome::Ok).await;
        assert_eq!(s.m.history().step, Duration::ZERO);
        // The next hang restarts and starts the backoff from the beginning.
        s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(s.m.history().step, 60 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_counts_from_the_runtime_process_start() {
        let mut s = Sim::new(policy());
        // An admin restarted the runtime 5 s ago; it hangs at once.
        s.runtime_started = Instant::now() - 5 * SEC;
        let (d, rounds) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Cooldown));
        assert_eq!(rounds, 11);
        let (d, rounds) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Cooldown));
        assert_eq!(rounds, 1);
        while s.round(SEC, Outcome::Timeout).await != Decision::Restart {}
        assert_eq!(Instant::now() - s.runtime_started, 30 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn boot_grace_holds_restarts_after_boot() {
        let mut s = Sim::new(policy());
        s.booted = Instant::now();
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::BootGrace));
        while s.round(SEC, Outcome::Timeout).await != Decision::Restart {}
        assert_eq!(Instant::now() - s.booted, 60 * SEC);
    }

    /// A failing round, now, of a runtime that never answered.
    fn silent_failure(outcome: Outcome, failures: u32) -> Observation {
        Observation {
            now: Instant::now(),
            outcome: Some(outcome),
            consecutive_failures: failures,
            last_answer: None,
            would_kill: 0,
            jitter: 0.0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn uptimes_are_not_read_unless_a_restart_is_in_reach() {
        let mut s = Sim::new(policy());
        for failures in 1..=11 {
            advance(SEC).await;
            let observation = silent_failure(Outcome::Misconfigured, failures);
            let d =
                s.m.observe(&observation, || panic!("/proc read for a misconfiguration"));
            assert!(
                matches!(
                    d,
                    Decision::Nothing | Decision::Skip(SkipReason::Misconfigured)
                ),
                "{d:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_uptimes_do_not_block() {
        let mut s = Sim::new(policy());
        let mut last = Decision::Nothing;
        for failures in 1..=11 {
            advance(SEC).await;
            let observation = silent_failure(Outcome::Timeout, failures);
            last = s.m.observe(&observation, Uptimes::default);
        }
        assert_eq!(last, Decision::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn refusing_to_kill_workloads() {
        let mut p = policy();
        p.refuse_if_kills_workloads = true;
        let mut s = Sim::new(p.clone());
        s.would_kill = 2;
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::KillsWorkloads));
        let mut s = Sim::new(p);
        s.would_kill = 0;
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_and_dry_run_restarts_count() {
        let mut p = policy();
        p.cooldown = Duration::ZERO;
        p.max_restarts = 2;
        let mut s = Sim::new(p);
        s.until_decision(Outcome::Timeout, 100).await;
        let now = Instant::now();
        s.m.restart_finished(now, now, RestartEnd::DryRun);
        assert_eq!(s.m.state(), State::Failing);
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Backoff));
        while s.round(SEC, Outcome::Timeout).await != Decision::Restart {}
        let now = Instant::now();
        s.m.restart_finished(now, now, RestartEnd::Failed);
        let (d, _) = s.until_decision(Outcome::Timeout, 1000).await;
        assert_eq!(d, Decision::Skip(SkipReason::Budget));
        assert_eq!(s.m.state(), State::Exhausted);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_adds_to_the_step_but_never_past_the_cap() {
        let mut p = policy();
        p.cooldown = Duration::ZERO;
        p.backoff_initial = 100 * SEC;
        p.backoff_max = 150 * SEC;
        let mut s = Sim::new(p);
        s.jitter = 0.2;
        s.until_decision(Outcome::Timeout, 100).await;
        let t = Instant::now();
        assert_eq!(s.m.history().next_allowed, Some(t + 120 * SEC));
        s.restarted().await;
        s.jitter = 1.0;
        while s.round(SEC, Outcome::Timeout).await != Decision::Restart {}
        assert_eq!(s.m.history().next_allowed, Some(Instant::now() + 150 * SEC));
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_decides() {
        let mut p = policy();
        p.enabled = false;
        let mut s = Sim::new(p);
        let (d, _) = s.until_decision(Outcome::Timeout, 200).await;
        assert_eq!(d, Decision::Nothing);
        assert_eq!(s.m.state(), State::Disabled);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_budget_means_never() {
        let mut p = policy();
        p.max_restarts = 0;
        let mut s = Sim::new(p);
        let (d, _) = s.until_decision(Outcome::Timeout, 100).await;
        assert_eq!(d, Decision::Skip(SkipReason::Budget));
        assert_eq!(s.m.state(), State::Exhausted);
    }

    #[tokio::test(start_paused = true)]
    async fn recovering_ignores_finish_outside_restarting() {
        let mut s = Sim::new(policy());
        let now = Instant::now();
        s.m.restart_finished(now, now, RestartEnd::Issued);
        assert_eq!(s.m.state(), State::Healthy);
    }
}
