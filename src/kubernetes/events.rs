//! Events about the Node (events.k8s.io/v1, in the `default` namespace as the
//! API requires for a cluster-scoped object), aggregated the way the
//! Kubernetes event recorders do: a repeat of the same reason and action
//! within [`SERIES_WINDOW`] is counted on the first object (`series.count`,
//! `series.lastObservedTime`) instead of creating a new one, and a series is
//! patched at most once per [`SERIES_FLUSH`]. A flapping node therefore
//! writes a bounded number of objects and requests. Metrics: none (requests
//! are counted by the client).

use super::client::{ApiClient, CallError};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Repeats within this window join the first event's series.
const SERIES_WINDOW: Duration = Duration::from_secs(600);
/// A series' count is written at most this often.
pub(crate) const SERIES_FLUSH: Duration = Duration::from_secs(30);
/// Events not yet written (the API server unreachable) beyond this are dropped.
const MAX_PENDING: usize = 32;
/// The API server's limit on `note`.
const MAX_NOTE: usize = 1024;
/// Where events about cluster-scoped objects live.
const NAMESPACE: &str = "default";

/// One thing that happened on the node, worth telling the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeEvent {
    pub warning: bool,
    /// CamelCase: `RuntimeRestarted`, `RuntimeRecovered`, `RuntimeRestartSkipped`, ...
    pub reason: &'static str,
    /// What the agent did: `Restart`, `Skip`, `Observe`.
    pub action: &'static str,
    pub note: String,
}

struct Series {
    name: String,
    count: i32,
    written_count: i32,
    last_seen: Instant,
    written_at: Instant,
}

/// The Node as events refer to it.
pub(crate) struct NodeRef {
    pub name: String,
    pub uid: String,
}

#[derive(Default)]
pub(crate) struct EventLog {
    pending: VecDeque<(NodeEvent, Instant)>,
    series: BTreeMap<(&'static str, &'static str), Series>,
}

impl EventLog {
    pub(crate) fn push(&mut self, e: NodeEvent, now: Instant) {
        if let Some(s) = self.series.get_mut(&(e.reason, e.action)) {
            if now.saturating_duration_since(s.last_seen) < SERIES_WINDOW {
                s.count = s.count.saturating_add(1);
                s.last_seen = now;
                return;
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((e, now));
    }

    /// When a series count is next due to be written, if any is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.series
            .values()
            .filter(|s| s.count != s.written_count)
            .map(|s| s.written_at + SERIES_FLUSH)
            .min()
    }

    /// Writes new events, then the series counts that are due. Stops at the
    /// first failure; what was not written stays for the next attempt.
    pub(crate) async fn flush(&mut self, api: &ApiClient, node: &NodeRef) -> Result<(), CallError> {
        let events: kube::Api<Event> = kube::Api::namespaced(api.client.clone(), NAMESPACE);
        while let Some((e, at)) = self.pending.front().cloned() {
            let body = event_object(&e, node);
            let created = api
                .call("create_event", events.create(&Default::default(), &body))
                .await?;
            self.pending.pop_front();
            let name = created.metadata.name.unwrap_or_default();
            self.series.insert(
                (e.reason, e.action),
                Series {
                    name,
                    count: 1,
                    written_count: 1,
                    last_seen: at,
                    written_at: Instant::now(),
                },
            );
        }
        let now = Instant::now();
        for s in self.series.values_mut() {
            if s.count == s.written_count || now < s.written_at + SERIES_FLUSH {
                continue;
            }
            let patch = serde_json::json!({
                "series": { "count": s.count, "lastObservedTime": micro_now() }
            });
            api.call(
                "patch_event",
                events.patch(
                    &s.name,
                    &Default::default(),
                    &kube::api::Patch::Merge(&patch),
                ),
            )
            .await?;
            s.written_count = s.count;
            s.written_at = now;
        }
        let stale = |s: &Series| now.saturating_duration_since(s.last_seen) >= SERIES_WINDOW;
        self.series
            .retain(|_, s| !stale(s) || s.count != s.written_count);
        Ok(())
    }
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn event_object(e: &NodeEvent, node: &NodeRef) -> Event {
    let mut note = e.note.clone();
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    let nanos = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", node.name, nanos)),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        event_time: Some(micro_now()),
        action: Some(e.action.into()),
        reason: Some(e.reason.into()),
        note: Some(note),
        type_: Some(if e.warning { "Warning" } else { "Normal" }.into()),
        reporting_controller: Some("nodevitals".into()),
        reporting_instance: Some(node.name.clone()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.name.clone()),
            uid: Some(node.uid.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(reason: &'static str) -> NodeEvent {
        NodeEvent {
            warning: true,
            reason,
            action: "Skip",
            note: "held back.".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_join_a_series_until_the_window_passes() {
        let mut log = EventLog::default();
        let t0 = Instant::now();
        log.push(ev("RuntimeRestartSkipped"), t0);
        assert_eq!(log.pending.len(), 1);
        // Written: now a series exists.
        log.series.insert(
            ("RuntimeRestartSkipped", "Skip"),
            Series {
                name: "n.1".into(),
                count: 1,
                written_count: 1,
                last_seen: t0,
                written_at: t0,
            },
        );
        log.pending.clear();
        for i in 1..=100 {
            log.push(ev("RuntimeRestartSkipped"), t0 + Duration::from_secs(i));
        }
        assert!(log.pending.is_empty(), "repeats create no objects");
        let s = &log.series[&("RuntimeRestartSkipped", "Skip")];
        assert_eq!(s.count, 101);
        assert_eq!(log.next_due(), Some(t0 + SERIES_FLUSH));
        // Quiet for longer than the window: a new object.
        log.push(
            ev("RuntimeRestartSkipped"),
            t0 + Duration::from_secs(100) + SERIES_WINDOW,
        );
        assert_eq!(log.pending.len(), 1);
    }

    #[test]
    fn pending_is_bounded_and_notes_fit_the_api_limit() {
        let mut log = EventLog::default();
        let now = Instant::now();
        for _ in 0..(MAX_PENDING * 3) {
            log.push(ev("A"), now);
            log.series.clear();
        }
        assert_eq!(log.pending.len(), MAX_PENDING);
        let long = NodeEvent {
            note: "é".repeat(2000),
            ..ev("A")
        };
        let node = NodeRef {
            name: "n".into(),
            uid: "u".into(),
        };
        let e = event_object(&long, &node);
        assert!(e.note.unwrap().len() <= MAX_NOTE);
        assert_eq!(e.regarding.unwrap().uid.as_deref(), Some("u"));
        assert_eq!(e.reporting_controller.as_deref(), Some("nodevitals"));
    }
}
