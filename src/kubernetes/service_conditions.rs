//! The conditions of the node services nodevitals probes besides the runtime:
//! `KubeletUnhealthy` (NPD's type) from the kubelet probe and
//! `NodeDNSUnhealthy` from the DNS probe. Each is True after a configured
//! number of rounds in a row in which the service did not answer at all (the
//! kubelet's health endpoint failed; no DNS server gave any answer), and
//! False again at the first round that answers. A DNS round that loses one
//! answer of a pair still had answers: intermittent loss is what the DNS
//! metrics show, not a node whose resolvers are gone. Metrics: none.

use super::conditions::{ConditionType, Desired, Status};
use super::Link;
use crate::vocabulary::{NodeService, ServiceRound};
use std::time::Duration;
use tokio::sync::watch;

/// One service's rounds as its condition sees them.
pub(crate) struct ServiceCondition {
    service: NodeService,
    interval: Duration,
    threshold: u32,
    failing: u32,
}

impl ServiceCondition {
    pub(crate) fn new(service: NodeService, interval: Duration, threshold: u32) -> Self {
        Self {
            service,
            interval,
            threshold,
            failing: 0,
        }
    }

    fn condition_type(&self) -> ConditionType {
        match self.service {
            NodeService::Kubelet => ConditionType::KubeletUnhealthy,
            NodeService::Dns => ConditionType::DnsUnhealthy,
        }
    }

    /// What the condition says after `round`.
    pub(crate) fn round(&mut self, round: &ServiceRound) -> Desired {
        self.failing = if round.answered {
            0
        } else {
            self.failing.saturating_add(1)
        };
        let n = self.failing;
        let since = humantime::format_duration(self.interval * n);
        let what = round.summary.trim_end_matches('.');
        match (self.service, n >= self.threshold) {
            (NodeService::Kubelet, true) => Desired::new(
                Status::True,
                "KubeletNotAnswering",
                format!("The kubelet's health endpoint failed {n} probes in a row (about {since}): {what}."),
            ),
            (NodeService::Dns, true) => Desired::new(
                Status::True,
                "NoResolverAnswers",
                format!("No DNS server of the node answered in {n} probe rounds in a row (about {since}): {what}."),
            ),
            (NodeService::Kubelet, false) => Desired::new(
                Status::False,
                "KubeletHealthy",
                "The kubelet's health endpoint answers.".into(),
            ),
            (NodeService::Dns, false) => Desired::new(
                Status::False,
                "ResolversAnswer",
                "The node's DNS servers answer.".into(),
            ),
        }
    }

    /// Sets the condition after every round the probe publishes, until the
    /// probe is gone.
    pub(crate) async fn run(
        mut self,
        link: Link,
        mut rounds: watch::Receiver<Option<ServiceRound>>,
    ) {
        let t = self.condition_type();
        while rounds.changed().await.is_ok() {
            let round = rounds.borrow_and_update().clone();
            if let Some(round) = round {
                link.set_condition(t, "probe", self.round(&round));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(answered: bool) -> ServiceRound {
        ServiceRound {
            answered,
            summary: "4 queries: 4 timeout.".into(),
        }
    }

    #[test]
    fn true_after_the_threshold_in_a_row_and_false_at_the_first_answer() {
        let mut c = ServiceCondition::new(NodeService::Dns, Duration::from_secs(15), 3);
        assert_eq!(c.round(&round(false)).status, Status::False);
        assert_eq!(c.round(&round(false)).status, Status::False);
        let down = c.round(&round(false));
        assert_eq!(down.status, Status::True);
        assert_eq!(down.reason, "NoResolverAnswers");
        assert_eq!(
            down.message,
            "No DNS server of the node answered in 3 probe rounds in a row (about 45s): 4 queries: 4 timeout."
        );
        assert_eq!(c.round(&round(true)).status, Status::False);
        assert_eq!(
            c.round(&round(false)).status,
            Status::False,
            "the count starts again"
        );
    }

    #[test]
    fn the_kubelet_has_npds_type() {
        let mut c = ServiceCondition::new(NodeService::Kubelet, Duration::from_secs(10), 1);
        assert_eq!(c.condition_type().as_str(), "KubeletUnhealthy");
        let d = c.round(&ServiceRound {
            answered: false,
            summary: "http://127.0.0.1:10248/healthz: connection refused".into(),
        });
        assert_eq!(d.status, Status::True);
        assert!(
            d.message.contains("failed 1 probes in a row (about 10s)"),
            "{}",
            d.message
        );
    }
}
