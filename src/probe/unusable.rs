//! A probe target the agent cannot use (e.g. `DOCKER_HOST=tcp://...`, which is
//! not a local socket): reported as `misconfigured` on every run rather than
//! silently dropped, so the operator sees it in `/metrics`, `/status` and `once`.

use super::{Probe, ProbeFuture};
use crate::vocabulary::{Outcome, ProbeError};
use std::time::Duration;

pub struct Unusable {
    name: String,
    interval: Duration,
    reason: String,
}

impl Unusable {
    pub fn new(name: &str, interval: Duration, reason: String) -> Self {
        Self {
            name: name.to_owned(),
            interval,
            reason,
        }
    }
}

impl Probe for Unusable {
    fn name(&self) -> &str {
        &self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn run(&self) -> ProbeFuture<'_> {
        let err = ProbeError::new(Outcome::Misconfigured, self.reason.clone());
        Box::pin(async move { Err(err) })
    }
}
