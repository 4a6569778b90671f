//! The cluster side of the agent: NodeConditions and Events on its own Node,
//! fleet-wide restart slots (Leases) and the fleet pause switch (a ConfigMap).
//! Local parts talk to it through a [`Link`] that never blocks: condition
//! wishes are stored and a writer task picks them up, events are queued
//! (dropped and counted when the queue is full), and a restart decision asks
//! the gate task with a deadline. Every API request is made by one of the two
//! tasks of this module, under a QPS limit and a request timeout, and retried
//! with jittered backoff; nothing local waits on the API server beyond the
//! deadline of a restart decision. See docs/kubernetes.md.
//!
//! Metrics: `nodevitals_kubernetes_*`, `nodevitals_node_condition`,
//! `nodevitals_restart_slot_held` (see `metrics::kubernetes`).

mod backoff;
mod client;
pub(crate) mod conditions;
mod events;
mod gate;
mod limiter;
mod service_conditions;
mod slots;
mod writer;

pub(crate) use events::NodeEvent;
pub(crate) use gate::{SlotGuard, Verdict};

use crate::config::{KubernetesConfig, Unreachable};
use crate::metrics::KubernetesMetrics;
use crate::status::StatusBoard;
use crate::vocabulary::{NodeService, ServiceRound};
use conditions::{ConditionType, Desired};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

/// Events waiting for the writer; beyond this they are dropped and counted.
const EVENT_QUEUE: usize = 64;

/// What local components share with the cluster tasks.
struct Shared {
    wishes: Mutex<BTreeMap<(ConditionType, &'static str), Desired>>,
    changed: Notify,
    events: mpsc::Sender<NodeEvent>,
    gate: mpsc::UnboundedSender<gate::Request>,
    decision_timeout: Duration,
    on_unreachable: Unreachable,
    metrics: KubernetesMetrics,
    board: Board,
}

impl Shared {
    /// Condition `t` merged over the sources that have an opinion on it (the
    /// worst wish wins); `None` when none has.
    fn wish(&self, t: ConditionType) -> Option<Desired> {
        let wishes = self.wishes.lock().unwrap_or_else(|e| e.into_inner());
        conditions::merge(
            wishes
                .iter()
                .filter(|((wt, _), _)| *wt == t)
                .map(|(_, d)| d),
        )
    }
}

/// The `kubernetes` section of `/status`: conditions as last written, the
/// slot, the last API error.
struct Board {
    status: Arc<StatusBoard>,
    parts: Mutex<serde_json::Map<String, serde_json::Value>>,
}

impl Board {
    fn set(&self, key: &str, value: serde_json::Value) {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.insert(key.to_owned(), value);
        self.status
            .set_section("kubernetes", serde_json::Value::Object(parts.clone()));
    }
}

/// A cheap handle to the cluster tasks; `Link::default()` is the agent
/// without Kubernetes, where every call is a no-op and every restart may go.
#[derive(Clone, Default)]
pub(crate) struct Link(Option<Arc<Shared>>);

impl Link {
    /// Sets what `source` wants condition `t` to say; the writer merges the
    /// sources and writes what changed.
    pub(crate) fn set_condition(&self, t: ConditionType, source: &'static str, d: Desired) {
        let Some(s) = &self.0 else { return };
        let mut wishes = s.wishes.lock().unwrap_or_else(|e| e.into_inner());
        if wishes.get(&(t, source)) != Some(&d) {
            wishes.insert((t, source), d);
            s.changed.notify_one();
        }
    }

    /// Queues an event about the node; never waits.
    pub(crate) fn event(&self, e: NodeEvent) {
        let Some(s) = &self.0 else { return };
        if s.events.try_send(e).is_err() {
            s.metrics.count_event_dropped();
        }
    }

    /// Asks whether a restart may go now: not paused, and a fleet slot taken.
    /// Bounded by the decision deadline; past it, `on_unreachable` decides.
    pub(crate) async fn ask_restart(&self) -> Verdict {
        let Some(s) = &self.0 else {
            return Verdict::Go(None);
        };
        let (reply, answer) = oneshot::channel();
        let asked = s.gate.send(gate::Request::Acquire(reply)).is_ok();
        let answer = if asked {
            tokio::time::timeout(s.decision_timeout, answer).await.ok()
        } else {
            None
        };
        match answer.and_then(Result::ok) {
            Some(Ok(verdict)) => verdict,
            Some(Err(_)) | None => {
                s.metrics.count_unreachable(s.on_unreachable.as_str());
                match s.on_unreachable {
                    Unreachable::Restart => Verdict::Unreachable { go: true },
                    Unreachable::Hold => Verdict::Unreachable { go: false },
                }
            }
        }
    }
}

#[cfg(test)]
impl Link {
    /// A link whose wishes a test reads back (`wish`); no task takes its
    /// events or restart questions (the API server is unreachable).
    pub(crate) fn recording(metrics: KubernetesMetrics) -> Self {
        let (events, _) = mpsc::channel(1);
        let (gate, _) = mpsc::unbounded_channel();
        Link(Some(Arc::new(Shared {
            wishes: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            events,
            gate,
            decision_timeout: Duration::from_secs(1),
            on_unreachable: Unreachable::Restart,
            metrics,
            board: Board {
                status: Arc::default(),
                parts: Mutex::default(),
            },
        })))
    }

    /// What the condition `t` would be written as now.
    pub(crate) fn wish(&self, t: ConditionType) -> Option<Desired> {
        self.0.as_ref()?.wish(t)
    }
}

/// The running cluster tasks.
pub struct Cluster {
    link: Link,
    tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// The agent without the cluster.
    pub fn off() -> Self {
        Self {
            link: Link::default(),
            tasks: Vec::new(),
        }
    }

    /// Starts the writer and gate tasks if `[kubernetes]` is on. Connecting
    /// happens in the tasks: a slow or absent API server delays nothing here.
    pub fn start(
        cfg: &KubernetesConfig,
        node: String,
        metrics: &KubernetesMetrics,
        status: Arc<StatusBoard>,
    ) -> Self {
        if !cfg.is_enabled(|v| std::env::var(v).ok()) {
            return Self::off();
        }
        let node = cfg.node_name.clone().unwrap_or(node);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (gate_tx, gate_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            wishes: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            events: events_tx,
            gate: gate_tx.clone(),
            // Pause check, then up to two requests per slot, each bounded.
            decision_timeout: cfg.request_timeout * 3,
            on_unreachable: cfg.on_unreachable,
            metrics: metrics.clone(),
            board: Board {
                status,
                parts: Mutex::new(serde_json::Map::new()),
            },
        });
        shared.board.set("node", serde_json::json!(node));
        tracing::info!(
            node,
            kubeconfig = ?cfg.kubeconfig,
            max_concurrent_restarts = cfg.max_concurrent_restarts,
            on_unreachable = cfg.on_unreachable.as_str(),
            "reporting to the Kubernetes API"
        );
        let api = Arc::new(tokio::sync::OnceCell::new());
        let connect = Connector {
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            shared: Arc::clone(&shared),
        };
        let tasks = vec![
            tokio::spawn(
                writer::Writer::new(cfg, node.clone(), Arc::clone(&shared), events_rx)
                    .run(Arc::clone(&api), connect.clone()),
            ),
            tokio::spawn(
                gate::Gate::new(cfg, node, Arc::clone(&shared), gate_tx).run(gate_rx, api, connect),
            ),
        ];
        Self {
            link: Link(Some(shared)),
            tasks,
        }
    }

    pub(crate) fn link(&self) -> Link {
        self.link.clone()
    }

    /// Turns the rounds of a node service's probe (run every `interval`)
    /// into its condition; nothing without the cluster.
    pub fn watch_service(
        &mut self,
        cfg: &KubernetesConfig,
        service: NodeService,
        interval: Duration,
        rounds: watch::Receiver<Option<ServiceRound>>,
    ) {
        if self.link.0.is_none() {
            return;
        }
        let threshold = match service {
            NodeService::Kubelet => cfg.kubelet_failure_rounds,
            NodeService::Dns => cfg.dns_failure_rounds,
        };
        let condition = service_conditions::ServiceCondition::new(service, interval, threshold);
        self.tasks
            .push(tokio::spawn(condition.run(self.link.clone(), rounds)));
    }

    /// Stops the tasks; a held slot expires by itself after `slot_duration`.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The shared API client, built once by whichever task needs it first.
type ApiCell = Arc<tokio::sync::OnceCell<Arc<client::ApiClient>>>;

/// Builds the client; a configuration error is logged and shown on `/status`.
#[derive(Clone)]
struct Connector {
    cfg: KubernetesConfig,
    metrics: KubernetesMetrics,
    shared: Arc<Shared>,
}

impl Connector {
    async fn get(&self, cell: &ApiCell) -> Option<Arc<client::ApiClient>> {
        let result = cell
            .get_or_try_init(|| async {
                client::ApiClient::connect(&self.cfg, self.metrics.clone())
                    .await
                    .map(Arc::new)
            })
            .await;
        match result {
            Ok(api) => Some(Arc::clone(api)),
            Err(e) => {
                tracing::error!(error = %e, "cannot reach the Kubernetes API: no conditions, events or fleet slots");
                self.shared
                    .board
                    .set("last_error", serde_json::json!(e.to_string()));
                None
            }
        }
    }
}
