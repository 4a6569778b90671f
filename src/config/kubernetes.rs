//! The `[kubernetes]` section: how the agent reaches the cluster (in-cluster
//! service account, or a kubeconfig on bare nodes), how hard it may use the
//! API server, and the fleet-wide restart coordination (slots, spacing, pause).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a restart decision does when the API server cannot be asked for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// Restart anyway: a node-local repair must not depend on the control plane
    /// (the local budget and backoff still bound it).
    Restart,
    /// Hold the restart back (skip reason `fleet_limit`) until the API answers.
    Hold,
}

impl Unreachable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::Restart => "restart",
            Unreachable::Hold => "hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// `None` = on when in-cluster config is present (`KUBERNETES_SERVICE_HOST`)
    /// or `kubeconfig` is set.
    pub enabled: Option<bool>,
    /// A kubeconfig file (bare nodes); unset = the pod's service account.
    pub kubeconfig: Option<PathBuf>,
    /// This node's name; unset = `NODE_NAME`, else the hostname.
    pub node_name: Option<String>,
    /// Namespace of the Leases and the pause ConfigMap; unset = the service
    /// account's namespace (or the kubeconfig context's).
    pub namespace: Option<String>,
    /// Deadline of one API request, connection included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Sustained requests per second to the API server, and the burst above it.
    pub qps: f64,
    pub burst: u32,
    /// How often the conditions are written when nothing changed.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Fleet-wide restart slots (Leases); 0 = no fleet limit.
    pub max_concurrent_restarts: u32,
    /// How long a released slot stays taken, bounding the fleet's restart rate.
    #[serde(with = "humantime_serde")]
    pub restart_spacing: Duration,
    /// How long a slot outlives an agent that stopped renewing it.
    #[serde(with = "humantime_serde")]
    pub slot_duration: Duration,
    /// What a restart decision does when no slot can be asked for.
    pub on_unreachable: Unreachable,
    /// The ConfigMap whose existence pauses every agent's restarts.
    pub pause_configmap: String,
    /// Rounds with every DNS server failing before the DNS condition is True.
    pub dns_failure_rounds: u32,
    /// Failed kubelet probes in a row before `KubeletUnhealthy` is True.
    pub kubelet_failure_rounds: u32,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            kubeconfig: None,
            node_name: None,
            namespace: None,
            request_timeout: Duration::from_secs(5),
            qps: 5.0,
            burst: 10,
            heartbeat: Duration::from_secs(300),
            max_concurrent_restarts: 1,
            restart_spacing: Duration::ZERO,
            slot_duration: Duration::from_secs(60),
            on_unreachable: Unreachable::Restart,
            pause_configmap: "nodevitals-pause".into(),
            dns_failure_rounds: 3,
            kubelet_failure_rounds: 3,
        }
    }
}

impl KubernetesConfig {
    /// Whether the agent talks to the cluster, given the environment.
    pub fn is_enabled(&self, env: impl Fn(&str) -> Option<String>) -> bool {
        self.enabled.unwrap_or_else(|| {
            self.kubeconfig.is_some()
                || env("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty())
        })
    }

    /// Semantic checks; returns (key, message).
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, msg: &str| Err((format!("kubernetes.{key}"), msg.to_owned()));
        if self.request_timeout.is_zero() {
            return err("request_timeout", "must be longer than 0s");
        }
        if !(self.qps > 0.0 && self.qps.is_finite()) {
            return err("qps", "must be a positive number");
        }
        if self.burst == 0 {
            return err("burst", "must be at least 1");
        }
        if self.heartbeat < Duration::from_secs(1) {
            return err("heartbeat", "must be at least 1s");
        }
        if self.slot_duration < Duration::from_secs(3) {
            return err(
                "slot_duration",
                "must be at least 3s (it is renewed every third)",
            );
        }
        if self.pause_configmap.is_empty() {
            return err("pause_configmap", "must not be empty");
        }
        for (key, rounds) in [
            ("dns_failure_rounds", self.dns_failure_rounds),
            ("kubelet_failure_rounds", self.kubelet_failure_rounds),
        ] {
            if rounds == 0 {
                return err(key, "must be at least 1");
            }
        }
        if self.node_name.as_deref() == Some("") {
            return err("node_name", "must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_by_default_only_in_cluster_or_with_a_kubeconfig() {
        let c = KubernetesConfig::default();
        assert!(!c.is_enabled(|_| None));
        assert!(c.is_enabled(|v| (v == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".into())));
        let with_file = KubernetesConfig {
            kubeconfig: Some("/etc/nodevitals/kubeconfig".into()),
            ..Default::default()
        };
        assert!(with_file.is_enabled(|_| None));
        let off = KubernetesConfig {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(!off.is_enabled(|_| Some("10.0.0.1".into())));
    }

    #[test]
    fn bounds_are_checked() {
        let bad = [
            KubernetesConfig {
                qps: 0.0,
                ..Default::default()
            },
            KubernetesConfig {
                burst: 0,
                ..Default::default()
            },
            KubernetesConfig {
                slot_duration: Duration::from_secs(1),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        assert!(KubernetesConfig::default().validate().is_ok());
    }
}
