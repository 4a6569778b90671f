//! The pure classifier of a hung runtime's process: from samples of its
//! threads' states (and whether its cgroup is frozen) it tells a process a
//! restart can fix from one it cannot. Metrics: none (the engine sets
//! `nodevitals_remediation_hang_class`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// What the runtime's process is doing while it does not answer
/// (`nodevitals_remediation_hang_class{class}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Class {
    /// Running or sleeping: a deadlock in user space, which a restart fixes.
    Running,
    /// Stopped by a signal (`T`): it acts on nothing but SIGKILL and SIGCONT.
    Stopped,
    /// Stopped by a tracer (`t`): only SIGKILL acts on it.
    Traced,
    /// Most threads blocked in the kernel (`D`) for `blocked_after`, or its
    /// cgroup frozen: even SIGKILL waits for the kernel, a restart cannot help.
    Blocked,
    /// The process was not found or could not be read.
    Unknown,
}

impl Class {
    pub(crate) const ALL: [Class; 5] = [
        Class::Running,
        Class::Stopped,
        Class::Traced,
        Class::Blocked,
        Class::Unknown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Class::Running => "running",
            Class::Stopped => "stopped",
            Class::Traced => "traced",
            Class::Blocked => "blocked",
            Class::Unknown => "unknown",
        }
    }
}

/// One thread at one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thread {
    pub tid: i32,
    pub state: char,
    /// Times it was run on a CPU (`schedstat`); `None` where not readable.
    pub timeslices: Option<u64>,
}

/// One reading of the process: its own state and its threads'.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub at: Instant,
    /// The state of the process (its main thread); `None` = not readable.
    pub state: Option<char>,
    pub threads: Vec<Thread>,
    /// Its v1 freezer or v2 cgroup is frozen.
    pub frozen: bool,
}

impl Sample {
    /// Threads per state letter, for the log and `/status`.
    pub(crate) fn state_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.threads {
            *counts.entry(t.state.to_string()).or_insert(0) += 1;
        }
        counts
    }
}

/// Threads of `now` in `D` that were already in `D` at `earlier` and did not
/// run in between (same run count, where the kernel gives one).
pub(crate) fn stuck_threads(now: &Sample, earlier: &Sample) -> usize {
    let before: BTreeMap<i32, &Thread> = earlier.threads.iter().map(|t| (t.tid, t)).collect();
    now.threads
        .iter()
        .filter(|t| t.state == 'D')
        .filter(|t| {
            before
                .get(&t.tid)
                .is_some_and(|b| b.state == 'D' && b.timeslices == t.timeslices)
        })
        .count()
}

/// Classifies `now`, looking back at the newest of `history` (oldest first)
/// taken at least `blocked_after` before it.
pub(crate) fn classify(now: &Sample, history: &[Sample], blocked_after: Duration) -> Class {
    if now.frozen {
        return Class::Blocked;
    }
    match now.state {
        None => return Class::Unknown,
        Some('T') => return Class::Stopped,
        Some('t') => return Class::Traced,
        _ => {}
    }
    let baseline = history
        .iter()
        .rev()
        .find(|s| now.at.saturating_duration_since(s.at) >= blocked_after);
    let stuck = baseline.map_or(0, |b| stuck_threads(now, b));
    if !now.threads.is_empty() && stuck * 2 > now.threads.len() {
        Class::Blocked
    } else {
        Class::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn sample(at: Instant, states: &str, runs: u64) -> Sample {
        Sample {
            at,
            state: states.chars().next(),
            threads: states
                .chars()
                .enumerate()
                .map(|(i, state)| Thread {
                    tid: 100 + i as i32,
                    state,
                    timeslices: Some(runs),
                })
                .collect(),
            frozen: false,
        }
    }

    #[test]
    fn stopped_and_traced_at_once() {
        let t = Instant::now();
        assert_eq!(classify(&sample(t, "TTTT", 1), &[], SEC), Class::Stopped);
        assert_eq!(classify(&sample(t, "tSSS", 1), &[], SEC), Class::Traced);
    }

    #[test]
    fn blocked_needs_most_threads_in_d_for_the_threshold() {
        let t0 = Instant::now();
        let old = sample(t0, "SDDDS", 7);
        let recent = sample(t0 + 2 * SEC, "SDDDS", 7);
        let now = sample(t0 + 3 * SEC, "SDDDS", 7);
        // The newest sample old enough (t0) is the baseline: 3 of 5 stuck.
        assert_eq!(
            classify(&now, &[old.clone(), recent.clone()], 2 * SEC),
            Class::Blocked
        );
        // Not long enough yet: nothing is old enough to compare with.
        assert_eq!(
            classify(&now, std::slice::from_ref(&recent), 2 * SEC),
            Class::Running
        );
        // Two of five is not most.
        let few = sample(t0 + 3 * SEC, "SDDSS", 7);
        assert_eq!(
            classify(&few, std::slice::from_ref(&old), SEC),
            Class::Running
        );
        // A thread that ran in between is not stuck, even if in D again.
        let ran = sample(t0 + 3 * SEC, "SDDDS", 8);
        assert_eq!(classify(&ran, &[old], SEC), Class::Running);
    }

    #[test]
    fn frozen_cgroup_is_blocked_whatever_the_states() {
        let mut s = sample(Instant::now(), "SSS", 1);
        s.frozen = true;
        assert_eq!(classify(&s, &[], SEC), Class::Blocked);
    }

    #[test]
    fn unreadable_process_is_unknown_and_sleepers_run() {
        let t = Instant::now();
        let gone = Sample {
            at: t,
            state: None,
            threads: vec![],
            frozen: false,
        };
        assert_eq!(classify(&gone, &[], SEC), Class::Unknown);
        assert_eq!(classify(&sample(t, "SSRS", 1), &[], SEC), Class::Running);
        assert_eq!(sample(t, "SDD", 1).state_counts()["D"], 2);
    }
}
