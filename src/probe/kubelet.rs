//! Kubelet probe: GET of the kubelet's healthz URL under a deadline; each
//! round's verdict is published for the `KubeletUnhealthy` condition.
//!
//! Metrics: `nodevitals_kubelet_up`, `nodevitals_kubelet_request_duration_seconds`.

use super::{Probe, ProbeFuture};
use crate::metrics::KubeletMetrics;
use crate::vocabulary::{Outcome, ProbeError, ProbeResult, ServiceRound};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The part of the kubelet's answer read (and shown on `/status`); `healthz`
/// says `ok`.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// `kubelet.url` is not a URL.
#[derive(Debug, thiserror::Error)]
#[error("kubelet.url \"{url}\": {source}")]
pub struct BadKubeletUrl {
    url: String,
    source: hyper::http::uri::InvalidUri,
}

pub struct KubeletProbe {
    url: hyper::Uri,
    interval: Duration,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
    metrics: KubeletMetrics,
    rounds: watch::Sender<Option<ServiceRound>>,
}

/// Whether the agent can tell it runs on a Kubernetes node, from its environment.
pub fn on_kubernetes_node(env: impl Fn(&str) -> Option<String>) -> bool {
    ["NODE_NAME", "KUBERNETES_SERVICE_HOST"]
        .iter()
        .any(|k| env(k).is_some_and(|v| !v.is_empty()))
}

impl KubeletProbe {
    pub fn new(
        url: &str,
        interval: Duration,
        timeout: Duration,
        metrics: KubeletMetrics,
    ) -> Result<Self, BadKubeletUrl> {
        let url = url.parse().map_err(|source| BadKubeletUrl {
            url: url.to_owned(),
            source,
        })?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Self {
            url,
            interval,
            timeout,
            client,
            metrics,
            rounds: watch::Sender::new(None),
        })
    }

    /// Each round's verdict on the kubelet, for its node condition.
    pub fn rounds(&self) -> watch::Receiver<Option<ServiceRound>> {
        self.rounds.subscribe()
    }

    async fn check(&self) -> ProbeResult {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.get()).await;
        let elapsed = started.elapsed();
        let result = result.unwrap_or_else(|_| {
            Err(ProbeError::new(
                Outcome::Timeout,
                format!("{} did not answer within {:?}", self.url, self.timeout),
            ))
        });
        self.metrics.observe(result.is_ok(), elapsed);
        self.rounds
            .send_replace(Some(ServiceRound::of(result.is_ok(), &result)));
        result
    }

    async fn get(&self) -> ProbeResult {
        let resp = self.client.get(self.url.clone()).await.map_err(|e| {
            let refused = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
                || e.is_connect();
            let outcome = if refused {
                Outcome::Refused
            } else {
                Outcome::Error
            };
            ProbeError::new(outcome, format!("{}: {e}", self.url))
        })?;
        let status = resp.status();
        // Only the start is shown; a longer body is cut, not read to the end.
        let body = Limited::new(resp.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned();
        if status.is_success() {
            Ok(format!("{status} {text}"))
        } else {
            Err(ProbeError::new(
                Outcome::Error,
                format!("{} answered {status}: {text}", self.url),
            ))
        }
    }
}

impl Probe for KubeletProbe {
    fn name(&self) -> &str {
        "kubelet"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }

    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(self.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_node_is_detected_from_env() {
        assert!(on_kubernetes_node(
            |k| (k == "NODE_NAME").then(|| "n1".into())
        ));
        assert!(on_kubernetes_node(
            |k| (k == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".into())
        ));
        assert!(!on_kubernetes_node(|_| None));
        assert!(!on_kubernetes_node(|_| Some(String::new())));
    }
}
