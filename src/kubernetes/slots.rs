//! Fleet-wide restart slots: `max_concurrent_restarts` Leases
//! (coordination.k8s.io/v1) named `nodevitals-restart-slot-N` in the agent's
//! namespace, holder the node name. A slot is free when nobody holds it, when
//! its holder stopped renewing it for `leaseDurationSeconds` (the agent died),
//! or when the spacing written at release has passed. Every write carries the
//! `resourceVersion` it read: a 409 means another node won that slot.
//! Expiry compares the holder's `renewTime` with this node's clock, so node
//! clocks must agree to well within `slot_duration` (NTP).
//! Metrics: none (requests are counted by the client).

use super::client::{ApiClient, CallError};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

pub(crate) fn slot_name(i: u32) -> String {
    format!("nodevitals-restart-slot-{i}")
}

/// Whether `me` may take a slot whose Lease says `spec`, at `now`.
pub(crate) fn free_for(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(s) = spec else { return true };
    let holder = s.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return true;
    }
    match (&s.renew_time, s.lease_duration_seconds) {
        (Some(renewed), Some(secs)) => {
            renewed.0 + SignedDuration::from_secs(i64::from(secs)) <= now
        }
        _ => holder.is_empty(),
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The Lease spec of a slot held by `me` from now on.
fn held_spec(previous: Option<&LeaseSpec>, me: &str, duration: Duration) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    let same_holder = previous.and_then(|p| p.holder_identity.as_deref()) == Some(me);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(secs(duration)),
        acquire_time: if same_holder {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if same_holder {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..Default::default()
    }
}

pub(crate) struct Slots<'a> {
    pub api: &'a ApiClient,
    pub me: &'a str,
    pub duration: Duration,
}

impl Slots<'_> {
    fn leases(&self) -> kube::Api<Lease> {
        kube::Api::namespaced(self.api.client.clone(), &self.api.namespace)
    }

    /// Takes slot `i` if it is free: `Ok(None)` when it is taken (by another
    /// node, or lost to one in a race).
    pub(crate) async fn take(&self, i: u32) -> Result<Option<Lease>, CallError> {
        let name = slot_name(i);
        let leases = self.leases();
        let current = match self.api.call("get_lease", leases.get(&name)).await {
            Ok(l) => Some(l),
            Err(CallError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: Some(self.api.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(held_spec(None, self.me, self.duration)),
                };
                self.api
                    .call("create_lease", leases.create(&Default::default(), &lease))
                    .await
            }
            Some(mut lease) => {
                if !free_for(lease.spec.as_ref(), self.me, Timestamp::now()) {
                    return Ok(None);
                }
                lease.spec = Some(held_spec(lease.spec.as_ref(), self.me, self.duration));
                self.replace(lease).await
            }
        };
        match written {
            Ok(l) => Ok(Some(l)),
            Err(CallError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renews a held slot; a 409 means it was taken over (it had expired).
    pub(crate) async fn renew(&self, mut lease: Lease) -> Result<Lease, CallError> {
        lease.spec = Some(held_spec(lease.spec.as_ref(), self.me, self.duration));
        self.replace(lease).await
    }

    /// Gives the slot back, kept taken for `spacing` if that is not zero.
    pub(crate) async fn release(
        &self,
        mut lease: Lease,
        spacing: Duration,
    ) -> Result<(), CallError> {
        let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: (!spacing.is_zero()).then(|| secs(spacing)),
            renew_time: (!spacing.is_zero()).then(|| MicroTime(Timestamp::now())),
            lease_transitions: transitions,
            ..Default::default()
        });
        self.replace(lease).await.map(drop)
    }

    async fn replace(&self, lease: Lease) -> Result<Lease, CallError> {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let leases = self.leases();
        self.api
            .call(
                "update_lease",
                leases.replace(&name, &Default::default(), &lease),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_ago: Option<i64>, secs: Option<i32>) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: holder.map(Into::into),
            renew_time: renewed_ago.map(|a| MicroTime(now - SignedDuration::from_secs(a))),
            lease_duration_seconds: secs,
            ..Default::default()
        }
    }

    #[test]
    fn a_slot_is_free_when_unheld_expired_or_ours() {
        let now = Timestamp::now();
        assert!(free_for(None, "a", now));
        assert!(free_for(
            Some(&spec(Some("a"), Some(1), Some(60))),
            "a",
            now
        ));
        assert!(!free_for(
            Some(&spec(Some("b"), Some(1), Some(60))),
            "a",
            now
        ));
        // b stopped renewing 61 s ago: expired.
        assert!(free_for(
            Some(&spec(Some("b"), Some(61), Some(60))),
            "a",
            now
        ));
        // Released with 30 s spacing 10 s ago: still taken.
        assert!(!free_for(Some(&spec(None, Some(10), Some(30))), "a", now));
        assert!(free_for(Some(&spec(None, Some(31), Some(30))), "a", now));
        // Released without spacing.
        assert!(free_for(Some(&spec(None, None, None)), "a", now));
    }

    #[test]
    fn taking_over_counts_a_transition_renewing_does_not() {
        let taken = held_spec(
            Some(&spec(Some("b"), Some(99), Some(60))),
            "a",
            Duration::from_secs(60),
        );
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        let renewed = held_spec(Some(&taken), "a", Duration::from_secs(60));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
