//! A token bucket: `qps` requests per second sustained, `burst` at once. A
//! request reserves a token and is told how long to wait for it, so callers
//! queue in order and the API server never sees more than the budget.
//! Metrics: none.

use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct Limiter {
    per_token: Duration,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Limiter {
    pub(crate) fn new(qps: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_token: Duration::from_secs_f64(1.0 / qps),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Reserves one token; returns how long to wait before using it.
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() / self.per_token.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            self.per_token.mul_f64(-self.tokens)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_qps() {
        let t0 = Instant::now();
        let mut l = Limiter::new(2.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(l.take(t0), Duration::ZERO);
        }
        // The fourth and fifth wait one and two token periods.
        assert_eq!(l.take(t0), Duration::from_millis(500));
        assert_eq!(l.take(t0), Duration::from_millis(1000));
        // Over 10 s, at most 2 per second plus nothing saved beyond the debt.
        let later = t0 + Duration::from_secs(10);
        let free = (0..40).filter(|_| l.take(later).is_zero()).count();
        assert_eq!(free, 3, "refilled to the burst, never beyond");
    }
}
