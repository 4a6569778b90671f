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
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Repeats within this window join the first event's series.
const SERIES_WINDOW: Duration = Duration::from_secs(600);
/// A series' count is written at most this often.
pub(crate) const SERIES_FLUSH: Duration = Duration::from_secs(30);
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

/// One Event object and the repeats counted on it.
struct Series {
    /// Chosen when first seen, so a create retried after a lost answer finds
    /// the object it made (409) instead of making a second one.
    name: String,
    event: NodeEvent,
    first_seen: Instant,
    count: i32,
    /// 0 = the object is not created yet.
    written_count: i32,
    last_seen: Instant,
    written_at: Instant,
}

/// The Node as events refer to it.
pub(crate) struct NodeRef {
    pub name: String,
    pub uid: String,
}

/// One series per reason and action: the number of objects (and of requests
/// per flush) is bounded by the closed set of reasons.
#[derive(Default)]
pub(crate) struct EventLog {
    series: BTreeMap<(&'static str, &'static str), Series>,
}

impl EventLog {
    pub(crate) fn push(&mut self, e: NodeEvent, node: &str, now: Instant) {
        let key = (e.reason, e.action);
        if let Some(s) = self.series.get_mut(&key) {
            if now.saturating_duration_since(s.last_seen) < SERIES_WINDOW {
                s.count = s.count.saturating_add(1);
                s.last_seen = now;
                return;
            }
        }
        let nanos = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
        self.series.insert(
            key,
            Series {
                name: format!("{node}.{nanos:x}"),
                event: e,
                first_seen: now,
                count: 1,
                written_count: 0,
                last_seen: now,
                written_at: now,
            },
        );
    }

    /// When something is next due to be written, if anything is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.series
            .values()
            .filter(|s| s.count != s.written_count)
            .map(|s| {
                if s.written_count == 0 {
                    s.first_seen
                } else {
                    s.written_at + SERIES_FLUSH
                }
            })
            .min()
    }

    /// Creates the new events (oldest first), then writes the series counts
    /// that are due. Stops at the first failure; what was not written stays
    /// for the next attempt.
    pub(crate) async fn flush(&mut self, api: &ApiClient, node: &NodeRef) -> Result<(), CallError> {
        let events: kube::Api<Event> = kube::Api::namespaced(api.client.clone(), NAMESPACE);
        let mut new: Vec<_> = self
            .series
            .iter()
            .filter(|(_, s)| s.written_count == 0)
            .map(|(k, s)| (s.first_seen, *k))
            .collect();
        new.sort();
        for (_, key) in new {
            let Some(s) = self.series.get_mut(&key) else {
                continue;
            };
            let body = event_object(&s.event, &s.name, node);
            match api
                .call("create_event", events.create(&Default::default(), &body))
                .await
            {
                Ok(_) | Err(CallError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            s.written_count = 1;
            s.written_at = Instant::now();
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

fn event_object(e: &NodeEvent, name: &str, node: &NodeRef) -> Event {
    let mut note = e.note.clone();
    if note.len() > MAX_NOTE {
        let mut cut = MAX_NOTE - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    Event {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
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
        log.push(ev("RuntimeRestartSkipped"), "n", t0);
        assert_eq!(log.next_due(), Some(t0), "a new event is due at once");
        let name = log.series[&("RuntimeRestartSkipped", "Skip")].name.clone();
        for i in 1..=100 {
            log.push(
                ev("RuntimeRestartSkipped"),
                "n",
                t0 + Duration::from_secs(i),
            );
        }
        log.push(ev("RuntimeRecovered"), "n", t0);
        assert_eq!(log.series.len(), 2, "repeats create no objects");
        let s = log
            .series
            .get_mut(&("RuntimeRestartSkipped", "Skip"))
            .unwrap();
        assert_eq!((s.count, s.name.as_str()), (101, name.as_str()));
        // Once created, the count is written a flush period later.
        s.written_count = 1;
        s.written_at = t0;
        log.series
            .get_mut(&("RuntimeRecovered", "Skip"))
            .unwrap()
            .written_count = 1;
        assert_eq!(log.next_due(), Some(t0 + SERIES_FLUSH));
        // Quiet for longer than the window: a new object.
        log.push(
            ev("RuntimeRestartSkipped"),
            "n",
            t0 + Duration::from_secs(100) + SERIES_WINDOW,
        );
        let s = &log.series[&("RuntimeRestartSkipped", "Skip")];
        assert_eq!((s.count, s.written_count), (1, 0));
        assert_ne!(s.name, name);
    }

    #[test]
    fn notes_fit_the_api_limit() {
        let long = NodeEvent {
            note: "é".repeat(2000),
            ..ev("A")
        };
        let node = NodeRef {
            name: "n".into(),
            uid: "u".into(),
        };
        let e = event_object(&long, "n.1", &node);
        assert!(e.note.unwrap().len() <= MAX_NOTE);
        assert_eq!(e.regarding.unwrap().uid.as_deref(), Some("u"));
        assert_eq!(e.reporting_controller.as_deref(), Some("nodevitals"));
        assert_eq!(e.metadata.name.as_deref(), Some("n.1"));
    }
}
