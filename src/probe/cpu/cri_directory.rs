//! [`ContainerDirectory`] for containerd and CRI-O, through the CRI client and
//! its connection: `ListContainers` and `ListPodSandbox` (no filter), made
//! together. A container's labels carry the kubelet's `io.kubernetes.*` names
//! and its metadata the container's own name; a sandbox's metadata carries its
//! pod's namespace and name, and its cgroup (the pause container's) is named
//! the container `POD`, as cAdvisor and the kubelet name it. Emits no metrics.

use super::identity::{
    ContainerDirectory, DirectoryError, DirectoryFuture, Identity, CONTAINER_LABEL,
    NAMESPACE_LABEL, POD_LABEL, SANDBOX_CONTAINER,
};
use crate::config::RuntimeKind;
use crate::runtime::cri::CriClient;
use crate::runtime::cri_messages::{Container, PodSandbox};
use crate::runtime::RuntimeClient;

impl ContainerDirectory for CriClient {
    fn runtime(&self) -> RuntimeKind {
        self.kind()
    }

    fn list(&self) -> DirectoryFuture {
        let (runtime, inventory) = (self.kind(), self.inventory());
        Box::pin(async move {
            let (containers, sandboxes) = inventory.await.map_err(|e| DirectoryError {
                runtime,
                message: e.message,
            })?;
            let containers = containers.iter().map(identity);
            Ok(containers
                .chain(sandboxes.iter().map(sandbox_identity))
                .collect())
        })
    }
}

/// A CRI container's id and identity: Kubernetes names from the kubelet's
/// labels, the metadata name (the container's name in its pod, or whatever a
/// non-Kubernetes CRI client chose) as `name`.
fn identity(c: &Container) -> (String, Identity) {
    let name = c.metadata.as_ref().map(|m| m.name.as_str());
    let identity = Identity::from_labels(
        |k| c.labels.get(k).map(String::as_str),
        name,
        seconds(c.created_at),
    );
    (c.id.clone(), identity)
}

/// A pod sandbox's id and identity: the pod's namespace and name from the
/// sandbox metadata (every CRI client sets them, the kubelet or `crictl runp`),
/// container [`SANDBOX_CONTAINER`].
fn sandbox_identity(s: &PodSandbox) -> (String, Identity) {
    let meta = s.metadata.as_ref();
    let field = |k: &str| {
        match k {
            NAMESPACE_LABEL => meta.map(|m| m.namespace.as_str()),
            POD_LABEL => meta.map(|m| m.name.as_str()),
            CONTAINER_LABEL => Some(SANDBOX_CONTAINER),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    };
    let identity = Identity::from_labels(field, None, seconds(s.created_at));
    (s.id.clone(), identity)
}

/// CRI timestamps are nanoseconds since the epoch.
fn seconds(nanos: i64) -> i64 {
    nanos.div_euclid(1_000_000_000)
}

#[cfg(test)]
mod tests {
    //! `tests/cpu_throttling.rs` names a real containerd's CRI sandbox and
    //! container; here the mapping is pinned on wire bytes with every field a
    //! runtime sends, also those the agent skips.

    use super::*;
    use crate::runtime::cri_messages::{
        ContainerMetadata, ListContainersResponse, ListPodSandboxResponse, PodSandboxMetadata,
    };
    use prost::Message;

    /// A protobuf length-delimited field: tag byte, varint length, payload.
    fn field(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let mut len = payload.len();
        while len >= 0x80 {
            out.push(0x80 | (len & 0x7f) as u8);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(payload);
        out
    }

    /// One `labels` map entry (field 8): key is field 1, value field 2.
    fn label(key: &str, value: &str) -> Vec<u8> {
        let entry = [field(0x0a, key.as_bytes()), field(0x12, value.as_bytes())].concat();
        field(0x42, &entry)
    }

    /// A `ListContainersResponse` as a CRI runtime encodes it, with every field
    /// of `Container` (also those the agent skips) and two containers: one the
    /// kubelet made and one a plain CRI client made (`crictl run`).
    fn wire() -> Vec<u8> {
        let kube = [
            field(0x0a, b"c0ffee"),                                      // 1: id
            field(0x12, b"sandbox1"),                                    // 2: pod_sandbox_id
            field(0x1a, &[field(0x0a, b"api"), vec![0x10, 2]].concat()), // 3: metadata{name, attempt 2}
            field(0x22, &field(0x0a, b"registry/api:1")),                // 4: image{image}
            field(0x2a, b"sha256:ab"),                                   // 5: image_ref
            vec![0x30, 1],                                               // 6: state RUNNING
            // 7: created_at 1_700_000_000_500_000_000 ns as a varint
            vec![0x38, 0x80, 0xca, 0xdd, 0x9f, 0xe5, 0x9f, 0xe7, 0xcb, 0x17],
            label(NAMESPACE_LABEL, "shop"), // 8: labels
            label(POD_LABEL, "checkout-7d9f8"),
            label(CONTAINER_LABEL, "api"),
            field(0x4a, &[field(0x0a, b"k"), field(0x12, b"v")].concat()), // 9: annotations
        ]
        .concat();
        let plain = [
            field(0x0a, b"beef"),
            field(0x1a, &field(0x0a, b"sidecar")),
            label("app", "x"),
        ]
        .concat();
        [field(0x0a, &kube), field(0x0a, &plain)].concat()
    }

    #[test]
    fn wire_bytes_decode_to_metadata_labels_and_creation_time() {
        let resp = ListContainersResponse::decode(wire().as_slice()).unwrap();
        let c = &resp.containers[0];
        assert_eq!(c.id, "c0ffee");
        assert_eq!(
            c.metadata,
            Some(ContainerMetadata {
                name: "api".into(),
                attempt: 2
            })
        );
        assert_eq!(c.state, 1);
        assert_eq!(c.created_at, 1_700_000_000_500_000_000);
        assert_eq!(c.labels.len(), 3, "annotations are not labels");
        assert_eq!(c.labels[POD_LABEL], "checkout-7d9f8");
        assert_eq!(resp.containers[1].labels["app"], "x");
    }

    /// The Kubernetes `(namespace, pod, container)` of an identity that has them.
    fn kube_names(i: &Identity) -> (&str, &str, &str) {
        let k = i.kubernetes.as_ref().expect("a Kubernetes identity");
        (&k.namespace, &k.pod, &k.container)
    }

    #[test]
    fn kubelet_labels_name_the_container_and_others_keep_their_metadata_name() {
        let resp = ListContainersResponse::decode(wire().as_slice()).unwrap();
        let named: Vec<_> = resp.containers.iter().map(identity).collect();

        let (id, kube) = &named[0];
        assert_eq!(id, "c0ffee");
        assert_eq!(kube_names(kube), ("shop", "checkout-7d9f8", "api"));
        assert_eq!(kube.created, 1_700_000_000, "nanoseconds to seconds");

        let (id, plain) = &named[1];
        assert_eq!(id, "beef");
        assert_eq!(plain.kubernetes, None);
        assert_eq!(plain.name.as_deref(), Some("sidecar"));
    }

    /// A `ListPodSandboxResponse` as a CRI runtime encodes it, with every
    /// field of `PodSandbox`: a sandbox the kubelet made (its labels repeat the
    /// metadata; here one disagrees, to show which one names the pod) and one
    /// without metadata.
    fn sandbox_wire() -> Vec<u8> {
        let metadata = [
            field(0x0a, b"checkout-7d9f8"), // 1: name
            field(0x12, b"0c6e6c9b-1f2a"),  // 2: uid
            field(0x1a, b"shop"),           // 3: namespace
            vec![0x20, 1],                  // 4: attempt
        ]
        .concat();
        let kube = [
            field(0x0a, b"5a9d"),   // 1: id
            field(0x12, &metadata), // 2: metadata
            vec![0x18, 0],          // 3: state READY
            // 4: created_at 1_700_000_000_500_000_000 ns as a varint
            vec![0x20, 0x80, 0xca, 0xdd, 0x9f, 0xe5, 0x9f, 0xe7, 0xcb, 0x17],
            field(
                0x2a,
                &[field(0x0a, POD_LABEL.as_bytes()), field(0x12, b"x")].concat(),
            ), // 5: labels
            field(0x32, &[field(0x0a, b"k"), field(0x12, b"v")].concat()), // 6: annotations
            field(0x3a, b"runc"),                                          // 7: runtime_handler
        ]
        .concat();
        let bare = [field(0x0a, b"b0b"), vec![0x18, 1]].concat();
        [field(0x0a, &kube), field(0x0a, &bare)].concat()
    }

    #[test]
    fn a_sandbox_is_its_pods_container_pod_named_by_its_metadata() {
        let resp = ListPodSandboxResponse::decode(sandbox_wire().as_slice()).unwrap();
        let named: Vec<_> = resp.items.iter().map(sandbox_identity).collect();

        let (id, kube) = &named[0];
        assert_eq!(id, "5a9d");
        assert_eq!(kube_names(kube), ("shop", "checkout-7d9f8", "POD"));
        assert_eq!(kube.created, 1_700_000_000, "nanoseconds to seconds");
        assert_eq!(kube.name, None);

        let (id, bare) = &named[1];
        assert_eq!(id, "b0b");
        assert_eq!(*bare, Identity::default(), "no pod without metadata");
    }

    #[test]
    fn a_sandbox_with_an_empty_namespace_is_not_a_pod() {
        let (_, id) = sandbox_identity(&PodSandbox {
            id: "x".into(),
            metadata: Some(PodSandboxMetadata {
                name: "p".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(id.kubernetes, None);
    }

    #[test]
    fn a_container_without_metadata_has_no_name() {
        let (_, id) = identity(&Container {
            id: "x".into(),
            ..Default::default()
        });
        assert_eq!(id, Identity::default());
    }

    /// A runtime whose socket is gone fails the list with the socket named,
    /// so the cache keeps what it had and the refresh counts as an error.
    #[tokio::test]
    async fn a_missing_socket_is_a_directory_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = CriClient::new(RuntimeKind::Crio, dir.path().join("gone.sock"));
        let e = client.list().await.unwrap_err();
        assert_eq!(e.runtime, RuntimeKind::Crio);
        assert!(e.message.contains("gone.sock"), "{}", e.message);
    }
}
