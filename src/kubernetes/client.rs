//! The connection to the API server: kube-rs over rustls (ring), from the
//! pod's service account or a kubeconfig, and the one door every request goes
//! through: the QPS/burst limiter, a hard deadline, and a count and latency
//! per operation and result.
//!
//! Metrics: `nodevitals_kubernetes_requests_total{operation,result}`,
//! `nodevitals_kubernetes_request_duration_seconds{operation}`.

use super::limiter::Limiter;
use crate::config::KubernetesConfig;
use crate::metrics::KubernetesMetrics;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Every operation the agent performs, as the `operation` label says it.
pub(crate) const OPERATIONS: &[&str] = &[
    "get_node",
    "patch_node_status",
    "create_event",
    "patch_event",
    "get_lease",
    "create_lease",
    "update_lease",
    "get_pause",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("in-cluster config: {0}")]
    InCluster(String),
    #[error("building the API client: {0}")]
    Client(String),
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("API server answered {code}: {message}")]
    Api { code: u16, message: String },
    #[error("{0}")]
    Transport(String),
}

impl CallError {
    fn label(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::Conflict(_) => "conflict",
            CallError::NotFound(_) => "not_found",
            CallError::Api { .. } | CallError::Transport(_) => "error",
        }
    }

    fn from_kube(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.is_conflict() || s.is_already_exists() => {
                CallError::Conflict(s.message)
            }
            kube::Error::Api(s) if s.is_not_found() => CallError::NotFound(s.message),
            kube::Error::Api(s) => CallError::Api {
                code: s.code,
                message: s.message,
            },
            other => CallError::Transport(other.to_string()),
        }
    }
}

/// The API client and the limits every request obeys.
pub(crate) struct ApiClient {
    pub(crate) client: kube::Client,
    pub(crate) namespace: String,
    limiter: Mutex<Limiter>,
    timeout: Duration,
    metrics: KubernetesMetrics,
}

impl ApiClient {
    pub(crate) async fn connect(
        cfg: &KubernetesConfig,
        metrics: KubernetesMetrics,
    ) -> Result<Self, ConnectError> {
        let mut config = match &cfg.kubeconfig {
            Some(path) => {
                let kubeconfig_error = |message: String| ConnectError::Kubeconfig {
                    path: path.display().to_string(),
                    message,
                };
                let file = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| kubeconfig_error(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| kubeconfig_error(e.to_string()))?
            }
            None => {
                kube::Config::incluster().map_err(|e| ConnectError::InCluster(e.to_string()))?
            }
        };
        config.connect_timeout = Some(cfg.request_timeout);
        config.read_timeout = Some(cfg.request_timeout);
        config.write_timeout = Some(cfg.request_timeout);
        let namespace = cfg
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client =
            kube::Client::try_from(config).map_err(|e| ConnectError::Client(e.to_string()))?;
        metrics.init(OPERATIONS, &super::conditions::ConditionType::NAMES);
        Ok(Self {
            client,
            namespace,
            limiter: Mutex::new(Limiter::new(cfg.qps, cfg.burst, Instant::now())),
            timeout: cfg.request_timeout,
            metrics,
        })
    }

    /// Runs one request: waits for the rate limiter, then at most the request
    /// timeout for the answer, and counts it.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        let wait = self.limiter.lock().await.take(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Ok(r) => r.map_err(CallError::from_kube),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        };
        let label = result.as_ref().map_or_else(CallError::label, |_| "ok");
        self.metrics
            .observe_request(operation, label, started.elapsed());
        result
    }

    pub(crate) fn metrics(&self) -> &KubernetesMetrics {
        &self.metrics
    }
}
