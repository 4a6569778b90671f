//! The gate task: answers "may this node restart its runtime now?". It reads
//! the pause switch (a ConfigMap in the agent's namespace: present = paused)
//! at decision time, then takes a fleet restart slot. The slot is held while
//! any [`SlotGuard`] lives (through the restart and its recovery), renewed
//! every third of `slot_duration`, and released (kept for `restart_spacing`)
//! when the last guard drops. A guard whose answer nobody waited for is
//! dropped with it, so a late answer never leaves a slot held.
//!
//! Metrics: `nodevitals_restart_slot_held`.

use super::backoff::Backoff;
use super::client::{ApiClient, CallError};
use super::slots::{slot_name, Slots};
use super::{ApiCell, Connector, Shared};
use crate::config::KubernetesConfig;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The answer to a restart decision.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Go; the slot (if the fleet limits restarts) is held while this lives.
    Go(Option<SlotGuard>),
    /// The fleet is paused: no restart.
    Paused,
    /// Every slot is taken: wait.
    FleetLimit,
    /// No answer in time; `go` is what `on_unreachable` decided.
    Unreachable { go: bool },
}

/// Holds the node's restart slot; dropping the last one releases it.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    tx: mpsc::UnboundedSender<Request>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Release);
    }
}

pub(super) enum Request {
    Acquire(oneshot::Sender<Result<Verdict, CallError>>),
    Release,
}

struct Held {
    lease: Lease,
    renewed: Instant,
    guards: u32,
}

pub(super) struct Gate {
    node: String,
    slots: u32,
    duration: Duration,
    spacing: Duration,
    pause_configmap: String,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Request>,
    held: Option<Held>,
    backoff: Backoff,
}

impl Gate {
    pub(super) fn new(
        cfg: &KubernetesConfig,
        node: String,
        shared: Arc<Shared>,
        tx: mpsc::UnboundedSender<Request>,
    ) -> Self {
        Self {
            node,
            slots: cfg.max_concurrent_restarts,
            duration: cfg.slot_duration,
            spacing: cfg.restart_spacing,
            pause_configmap: cfg.pause_configmap.clone(),
            shared,
            tx,
            held: None,
            backoff: Backoff::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Request>,
        cell: ApiCell,
        connect: Connector,
    ) {
        self.publish();
        loop {
            let renew_at = self.held.as_ref().map(|h| h.renewed + self.duration / 3);
            tokio::select! {
                r = rx.recv() => match r {
                    None => return,
                    Some(Request::Acquire(reply)) => {
                        let verdict = match connect.get(&cell).await {
                            Some(api) => self.acquire(&api).await,
                            None => Err(CallError::Transport("no API client".into())),
                        };
                        // Unwanted (the asker gave up): the guard inside drops here.
                        let _ = reply.send(verdict);
                    }
                    Some(Request::Release) => {
                        if let Some(api) = cell.get() {
                            self.release(api).await;
                        }
                    }
                },
                _ = sleep_until_opt(renew_at) => {
                    if let Some(api) = cell.get() {
                        self.renew(api).await;
                    }
                }
            }
        }
    }

    fn slots<'a>(&'a self, api: &'a ApiClient) -> Slots<'a> {
        Slots {
            api,
            me: &self.node,
            duration: self.duration,
        }
    }

    async fn acquire(&mut self, api: &ApiClient) -> Result<Verdict, CallError> {
        if self.paused(api).await? {
            return Ok(Verdict::Paused);
        }
        if self.slots == 0 {
            return Ok(Verdict::Go(None));
        }
        if let Some(h) = &mut self.held {
            h.guards += 1;
            return Ok(Verdict::Go(Some(self.guard())));
        }
        for i in 0..self.slots {
            if let Some(lease) = self.slots(api).take(i).await? {
                tracing::info!(slot = slot_name(i), "fleet restart slot taken");
                self.held = Some(Held {
                    lease,
                    renewed: Instant::now(),
                    guards: 1,
                });
                self.publish();
                return Ok(Verdict::Go(Some(self.guard())));
            }
        }
        Ok(Verdict::FleetLimit)
    }

    fn guard(&self) -> SlotGuard {
        SlotGuard {
            tx: self.tx.clone(),
        }
    }

    async fn paused(&self, api: &ApiClient) -> Result<bool, CallError> {
        let maps: kube::Api<ConfigMap> = kube::Api::namespaced(api.client.clone(), &api.namespace);
        match api.call("get_pause", maps.get(&self.pause_configmap)).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn renew(&mut self, api: &ApiClient) {
        let Some(h) = self.held.take() else { return };
        match self.slots(api).renew(h.lease.clone()).await {
            Ok(lease) => {
                self.backoff.reset();
                self.held = Some(Held {
                    lease,
                    renewed: Instant::now(),
                    ..h
                });
            }
            Err(CallError::Conflict(e)) => {
                tracing::error!(error = %e, "fleet restart slot lost to another node (it had expired)");
                self.publish();
            }
            Err(e) => {
                // Try again soon; the Lease stays ours until it expires.
                let delay = self.backoff.next().min(self.duration / 6);
                tracing::warn!(error = %e, retry_in = ?delay, "renewing the fleet restart slot failed");
                let now = Instant::now();
                self.held = Some(Held {
                    renewed: (now + delay).checked_sub(self.duration / 3).unwrap_or(now),
                    ..h
                });
            }
        }
    }

    async fn release(&mut self, api: &ApiClient) {
        let Some(h) = &mut self.held else { return };
        h.guards = h.guards.saturating_sub(1);
        if h.guards > 0 {
            return;
        }
        let Some(h) = self.held.take() else { return };
        let name = h.lease.metadata.name.clone().unwrap_or_default();
        match self.slots(api).release(h.lease, self.spacing).await {
            Ok(()) => {
                tracing::info!(slot = name, spacing = ?self.spacing, "fleet restart slot released")
            }
            Err(e) => {
                tracing::warn!(slot = name, error = %e, "releasing the fleet restart slot failed; it expires by itself")
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let held = self
            .held
            .as_ref()
            .and_then(|h| h.lease.metadata.name.clone());
        self.shared.metrics.set_slot_held(held.is_some());
        self.shared.board.set(
            "slot",
            serde_json::json!({
                "held": held,
                "max_concurrent_restarts": self.slots,
                "pause_configmap": self.pause_configmap,
            }),
        );
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
