//! The writer task: keeps nodevitals' conditions on the Node in step with what
//! the local sources want, and sends the queued events. It writes when a
//! condition changes (status, reason or message) and once per heartbeat
//! otherwise: at most one write per heartbeat per node in steady state. On
//! start it reads the Node, so the conditions it finds there keep their
//! `lastTransitionTime` and are asserted again. Every write is conditional on
//! the Node's `resourceVersion`; on a conflict (the kubelet wrote, or a write
//! the agent gave up on landed late) it reads the Node again and writes once
//! more. A failed request is retried after a jittered backoff; meanwhile the
//! latest wishes replace older ones.
//!
//! Metrics: `nodevitals_node_condition{condition,status}`.

use super::backoff::Backoff;
use super::client::{ApiClient, CallError};
use super::conditions::{self, ConditionType, Written};
use super::events::{EventLog, NodeEvent, NodeRef};
use super::{ApiCell, Connector, Shared};
use crate::config::KubernetesConfig;
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(super) struct Writer {
    node: String,
    uid: Option<String>,
    /// The Node's `resourceVersion` as last read or written; `None` until
    /// the Node is read, and again after a conflict.
    resource_version: Option<String>,
    /// A write failed: it may still have been applied (a timeout, a 500 after
    /// the commit), so `written` is no longer known to be on the Node and the
    /// next sync writes whether or not the wishes changed.
    unsure: bool,
    heartbeat: Duration,
    shared: Arc<Shared>,
    events_rx: mpsc::Receiver<NodeEvent>,
    events: EventLog,
    written: BTreeMap<ConditionType, Written>,
    last_write: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Backoff,
}

impl Writer {
    pub(super) fn new(
        cfg: &KubernetesConfig,
        node: String,
        shared: Arc<Shared>,
        events_rx: mpsc::Receiver<NodeEvent>,
    ) -> Self {
        Self {
            node,
            uid: None,
            resource_version: None,
            unsure: false,
            heartbeat: cfg.heartbeat,
            shared,
            events_rx,
            events: EventLog::default(),
            written: BTreeMap::new(),
            last_write: None,
            retry_at: None,
            backoff: Backoff::default(),
        }
    }

    pub(super) async fn run(mut self, cell: ApiCell, connect: Connector) {
        loop {
            let due = self.next_due();
            tokio::select! {
                _ = self.shared.changed.notified() => {}
                e = self.events_rx.recv() => match e {
                    Some(e) => self.events.push(e, &self.node, Instant::now()),
                    None => return,
                },
                _ = tokio::time::sleep_until(due) => {}
            }
            if self.retry_at.is_some_and(|t| t > Instant::now()) {
                continue;
            }
            let result = match connect.get(&cell).await {
                Some(api) => self.sync(&api).await,
                None => Err(CallError::Transport("no API client".into())),
            };
            match result {
                Ok(()) => {
                    self.backoff.reset();
                    self.retry_at = None;
                }
                Err(e) => {
                    let delay = self.backoff.next();
                    tracing::warn!(error = %e, retry_in = ?delay, "writing to the Kubernetes API failed");
                    self.shared
                        .board
                        .set("last_error", serde_json::json!(e.to_string()));
                    self.retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    /// The next time the writer must wake without being told: a retry, the
    /// heartbeat, or a series count to write.
    fn next_due(&self) -> Instant {
        let now = Instant::now();
        if let Some(t) = self.retry_at {
            return t;
        }
        let heartbeat = match self.last_write {
            Some(t) => t + self.heartbeat,
            None if self.shared.wishes.lock().map_or(true, |w| w.is_empty()) => {
                now + self.heartbeat
            }
            None => now,
        };
        [Some(heartbeat), self.events.next_due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(heartbeat)
    }

    async fn sync(&mut self, api: &ApiClient) -> Result<(), CallError> {
        let uid = match (&self.uid, &self.resource_version) {
            (Some(uid), Some(_)) => uid.clone(),
            _ => self.read_node(api).await?,
        };
        match self.write_conditions(api).await {
            Err(CallError::Conflict(_)) => {
                self.read_node(api).await?;
                self.write_conditions(api).await?;
            }
            other => other?,
        }
        let node = NodeRef {
            name: self.node.clone(),
            uid,
        };
        self.events.flush(api, &node).await?;
        self.shared.board.set("last_error", serde_json::Value::Null);
        Ok(())
    }

    /// Learns the Node's uid and takes over the conditions of our types that
    /// it already carries (their transition times).
    async fn read_node(&mut self, api: &ApiClient) -> Result<String, CallError> {
        let nodes: kube::Api<Node> = kube::Api::all(api.client.clone());
        let node = api.call("get_node", nodes.get(&self.node)).await?;
        let found = node.status.and_then(|s| s.conditions).unwrap_or_default();
        for c in found {
            let Some(t) = ConditionType::ALL
                .into_iter()
                .find(|t| t.as_str() == c.type_)
            else {
                continue;
            };
            let status = match c.status.as_str() {
                "True" => conditions::Status::True,
                "False" => conditions::Status::False,
                _ => conditions::Status::Unknown,
            };
            let transition = c
                .last_transition_time
                .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(conditions::now_rfc3339);
            self.written.insert(
                t,
                Written {
                    desired: conditions::Desired::new(status, "", c.message.unwrap_or_default()),
                    last_transition: transition,
                },
            );
        }
        let uid = node.metadata.uid.unwrap_or_default();
        self.uid = Some(uid.clone());
        self.resource_version = node.metadata.resource_version;
        Ok(uid)
    }

    async fn write_conditions(&mut self, api: &ApiClient) -> Result<(), CallError> {
        let wanted = self.wanted();
        if wanted.is_empty() {
            return Ok(());
        }
        let changed = wanted
            .iter()
            .any(|(t, d)| self.written.get(t).map(|w| &w.desired) != Some(d));
        let heartbeat_due = self
            .last_write
            .is_none_or(|t| t.elapsed() >= self.heartbeat);
        if !changed && !heartbeat_due && !self.unsure {
            return Ok(());
        }
        let now = conditions::now_rfc3339();
        let next: BTreeMap<ConditionType, Written> = wanted
            .into_iter()
            .map(|(t, d)| (t, Written::next(self.written.get(&t), d, &now)))
            .collect();
        let version = self.resource_version.as_deref().unwrap_or_default();
        let patch = conditions::status_patch(&next, &now, version);
        let nodes: kube::Api<Node> = kube::Api::all(api.client.clone());
        let result = api
            .call(
                "patch_node_status",
                nodes.patch_status(
                    &self.node,
                    &Default::default(),
                    &kube::api::Patch::Strategic(&patch),
                ),
            )
            .await;
        // On an error the version stays: a write that timed out may still
        // land, and the next one, conditional on the same version, either
        // lands first (the late one then gets a conflict) or gets a conflict
        // itself and reads the Node again.
        self.unsure = result.is_err();
        let node = result?;
        self.resource_version = node.metadata.resource_version;
        for (t, w) in &next {
            api.metrics()
                .set_condition(t.as_str(), w.desired.status.as_str());
        }
        let shown: serde_json::Map<String, serde_json::Value> = next
            .iter()
            .map(|(t, w)| {
                (
                    t.as_str().to_owned(),
                    serde_json::to_value(w).unwrap_or_default(),
                )
            })
            .collect();
        self.shared
            .board
            .set("conditions", serde_json::Value::Object(shown));
        self.written.extend(next);
        self.last_write = Some(Instant::now());
        Ok(())
    }

    /// Each condition some source has an opinion on, merged over sources.
    fn wanted(&self) -> BTreeMap<ConditionType, conditions::Desired> {
        ConditionType::ALL
            .into_iter()
            .filter_map(|t| self.shared.wish(t).map(|d| (t, d)))
            .collect()
    }
}
