//! The node conditions nodevitals owns, pure: their types, what each source
//! wants them to say, the merge of several sources into one condition
//! (the worst wins), `lastTransitionTime` kept unless `status` changes, and
//! the strategic-merge patch of `nodes/status` that touches only these types.
//! Metrics: none (the writer sets `nodevitals_node_condition`).

use serde::Serialize;
use std::collections::BTreeMap;

/// A condition type nodevitals writes on its Node. The names are NPD's where
/// NPD has one, so existing repair controllers and alerts keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum ConditionType {
    RuntimeUnhealthy,
    RepairFailed,
    KubeletUnhealthy,
    DnsUnhealthy,
}

impl ConditionType {
    pub(crate) const ALL: [ConditionType; 4] = [
        ConditionType::RuntimeUnhealthy,
        ConditionType::RepairFailed,
        ConditionType::KubeletUnhealthy,
        ConditionType::DnsUnhealthy,
    ];

    pub(crate) const NAMES: [&'static str; 4] = [
        "ContainerRuntimeUnhealthy",
        "ContainerRuntimeRepairFailed",
        "KubeletUnhealthy",
        "NodeDNSUnhealthy",
    ];

    pub(crate) fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// Which of two sources wins the merge: a problem over an unknown over fine.
    fn severity(self) -> u8 {
        match self {
            Status::True => 2,
            Status::Unknown => 1,
            Status::False => 0,
        }
    }
}

/// What one source (a runtime, the kubelet probe, the DNS probe) wants a
/// condition to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Desired {
    pub status: Status,
    /// CamelCase, as the API convention asks.
    pub reason: &'static str,
    /// One sentence a person can act on, with the numbers.
    pub message: String,
}

impl Desired {
    pub(crate) fn new(status: Status, reason: &'static str, message: String) -> Self {
        Self {
            status,
            reason,
            message,
        }
    }
}

/// The worst of several sources' wishes for one condition (the first of equals).
pub(crate) fn merge<'a>(wishes: impl IntoIterator<Item = &'a Desired>) -> Option<Desired> {
    wishes
        .into_iter()
        .fold(None::<&Desired>, |worst, d| match worst {
            Some(w) if w.status.severity() >= d.status.severity() => Some(w),
            _ => Some(d),
        })
        .cloned()
}

/// A condition as written to the Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Written {
    #[serde(flatten)]
    pub desired: Desired,
    /// RFC 3339, seconds.
    pub last_transition: String,
}

impl Written {
    /// The condition to write for `desired`, given the one written before:
    /// the transition time moves only when the status does.
    pub(crate) fn next(previous: Option<&Written>, desired: Desired, now: &str) -> Written {
        let last_transition = match previous {
            Some(p) if p.desired.status == desired.status => p.last_transition.clone(),
            _ => now.to_owned(),
        };
        Written {
            desired,
            last_transition,
        }
    }
}

/// The body of a strategic-merge patch of `nodes/status`: `conditions` merge
/// by `type`, so only the types listed are touched and every other condition
/// of the Node (the kubelet's, other agents') stays exactly as it is. The
/// `resourceVersion` the writer last saw makes it conditional: a request the
/// agent gave up on but the API server applies later finds the Node changed
/// and gets 409, instead of putting back what the agent no longer thinks.
pub(crate) fn status_patch(
    written: &BTreeMap<ConditionType, Written>,
    heartbeat: &str,
    resource_version: &str,
) -> serde_json::Value {
    let conditions: Vec<serde_json::Value> = written
        .iter()
        .map(|(t, w)| {
            serde_json::json!({
                "type": t.as_str(),
                "status": w.desired.status.as_str(),
                "reason": w.desired.reason,
                "message": w.desired.message,
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": w.last_transition,
            })
        })
        .collect();
    serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "conditions": conditions },
    })
}

/// The current time as a Kubernetes `Time` (RFC 3339, whole seconds).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(status: Status, reason: &'static str) -> Desired {
        Desired::new(status, reason, format!("{reason}."))
    }

    #[test]
    fn worst_source_wins() {
        let wishes = [
            d(Status::False, "Healthy"),
            d(Status::Unknown, "AgentCannotSeeRuntime"),
            d(Status::True, "Hung"),
            d(Status::True, "Down"),
        ];
        assert_eq!(merge(&wishes).unwrap().reason, "Hung");
        assert_eq!(merge(&wishes[..2]).unwrap().reason, "AgentCannotSeeRuntime");
        assert_eq!(merge(&[]), None);
    }

    #[test]
    fn transition_time_moves_only_with_status() {
        let first = Written::next(None, d(Status::True, "Hung"), "t1");
        assert_eq!(first.last_transition, "t1");
        let same = Written::next(Some(&first), d(Status::True, "Down"), "t2");
        assert_eq!(same.last_transition, "t1", "reason changed, status did not");
        let back = Written::next(Some(&same), d(Status::False, "Healthy"), "t3");
        assert_eq!(back.last_transition, "t3");
    }

    #[test]
    fn patch_lists_only_our_types_keyed_by_type() {
        let mut w = BTreeMap::new();
        w.insert(
            ConditionType::RuntimeUnhealthy,
            Written::next(None, d(Status::True, "Hung"), "t1"),
        );
        let p = status_patch(&w, "t9", "42");
        let c = &p["status"]["conditions"];
        assert_eq!(c.as_array().unwrap().len(), 1);
        assert_eq!(c[0]["type"], "ContainerRuntimeUnhealthy");
        assert_eq!(c[0]["status"], "True");
        assert_eq!(c[0]["lastHeartbeatTime"], "t9");
        assert_eq!(c[0]["lastTransitionTime"], "t1");
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(p.as_object().unwrap().len(), 2, "nothing but status");
    }
}
