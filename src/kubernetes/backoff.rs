//! Retry delays for failed API requests: exponential from one second to a
//! minute, each delay drawn from its upper half (jitter), so agents that lost
//! the API server at the same moment do not come back in lockstep.
//! Metrics: none.

use rand::Rng;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt; `sample` in [0, 1) picks the jitter.
    pub(crate) fn next_with(&mut self, sample: f64) -> Duration {
        let step = FIRST.saturating_mul(1 << self.failures.min(16)).min(CAP);
        self.failures = self.failures.saturating_add(1);
        step.mul_f64(0.5 + 0.5 * sample.clamp(0.0, 1.0))
    }

    pub(crate) fn next(&mut self) -> Duration {
        self.next_with(rand::rng().random::<f64>())
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::default();
        let top: Vec<u64> = (0..9).map(|_| b.next_with(1.0).as_secs()).collect();
        assert_eq!(top, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.next_with(0.0), Duration::from_millis(500));
        assert_eq!(b.next_with(0.0), Duration::from_secs(1));
    }
}
