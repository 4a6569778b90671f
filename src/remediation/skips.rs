//! The recent held-back restarts of a target, for `/status` and the page at
//! `/`: consecutive skips for the same reason are one run (first and last
//! time, how many rounds), so a budget spent for hours is one line, not one
//! per round. In memory only: the counters that outlive the agent are
//! `nodevitals_remediation_skipped_total` (set by the engine). Metrics: none.

use serde::Serialize;

/// Runs kept per target.
pub(crate) const MAX_RUNS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SkipRun {
    pub reason: &'static str,
    pub first_unix: f64,
    pub last_unix: f64,
    pub rounds: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Skips(Vec<SkipRun>);

impl Skips {
    /// Records a skip for `reason` at `at_unix`; `interrupted` says something
    /// else (a restart, a recovery) happened since the previous skip.
    pub(crate) fn record(&mut self, reason: &'static str, at_unix: f64, interrupted: bool) {
        match self.0.last_mut() {
            Some(run) if run.reason == reason && !interrupted => {
                run.last_unix = at_unix;
                run.rounds += 1;
            }
            _ => {
                if self.0.len() == MAX_RUNS {
                    self.0.remove(0);
                }
                self.0.push(SkipRun {
                    reason,
                    first_unix: at_unix,
                    last_unix: at_unix,
                    rounds: 1,
                });
            }
        }
    }

    pub(crate) fn runs(&self) -> &[SkipRun] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_skips_for_one_reason_are_one_run() {
        let mut s = Skips::default();
        s.record("cooldown", 1.0, false);
        s.record("cooldown", 2.0, false);
        s.record("backoff", 3.0, false);
        s.record("backoff", 4.0, true);
        let r = s.runs();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].first_unix, r[0].last_unix, r[0].rounds),
            (1.0, 2.0, 2)
        );
        assert_eq!(r[1].reason, "backoff");
        assert_eq!(r[2].first_unix, 4.0);
    }

    #[test]
    fn keeps_the_most_recent_runs() {
        let mut s = Skips::default();
        for i in 0..MAX_RUNS + 5 {
            s.record(["budget", "backoff"][i % 2], i as f64, false);
        }
        assert_eq!(s.runs().len(), MAX_RUNS);
        assert_eq!(s.runs()[0].first_unix, 5.0);
    }
}
