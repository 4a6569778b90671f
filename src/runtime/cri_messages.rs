//! The CRI v1 (`runtime.v1`) protobuf messages of the four RPCs the probe
//! makes, written by hand so the build needs no `protoc`. Field numbers are
//! those of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`; fields the agent
//! does not read are left out (protobuf decoding skips unknown fields), which
//! also keeps decoding a large container list cheap.

/// gRPC paths of the RPCs used, on `runtime.v1.RuntimeService`.
pub(crate) const VERSION_PATH: &str = "/runtime.v1.RuntimeService/Version";
pub(crate) const STATUS_PATH: &str = "/runtime.v1.RuntimeService/Status";
pub(crate) const LIST_POD_SANDBOX_PATH: &str = "/runtime.v1.RuntimeService/ListPodSandbox";
pub(crate) const LIST_CONTAINERS_PATH: &str = "/runtime.v1.RuntimeService/ListContainers";

/// containerd's own version service, served whether or not its CRI plugin is
/// enabled (Docker's containerd and the upstream `containerd.io` package ship
/// with CRI disabled). The request is `google.protobuf.Empty`: prost's `()`.
pub(crate) const CONTAINERD_VERSION_PATH: &str = "/containerd.services.version.v1.Version/Version";

/// The CRI API version the client speaks, sent in `VersionRequest.version`.
pub(crate) const CRI_API_VERSION: &str = "v1";

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct VersionRequest {
    #[prost(string, tag = "1")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct VersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

/// `containerd.services.version.v1.VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ContainerdVersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub revision: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusRequest {
    /// `verbose` would make the runtime serialise its whole config into `info`.
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<RuntimeStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RuntimeStatus {
    #[prost(message, repeated, tag = "1")]
    pub conditions: Vec<RuntimeCondition>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RuntimeCondition {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(bool, tag = "2")]
    pub status: bool,
    #[prost(string, tag = "3")]
    pub reason: String,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// An empty request: no filter, every sandbox.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListPodSandboxRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// The fields the probe counts sandboxes by (`state`) and the CPU probe names
/// their (pause container's) cgroups with (`metadata`, `created_at`). Left
/// out: labels and annotations, which repeat the metadata for the kubelet.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    /// `PodSandboxState`: 0 SANDBOX_READY, 1 SANDBOX_NOTREADY.
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// Creation time, nanoseconds since the epoch.
    #[prost(int64, tag = "4")]
    pub created_at: i64,
}

/// The pod a sandbox was made for: its name, UID and namespace.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

/// An empty request: no filter, every container (`crictl ps -a`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListContainersRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

/// The fields the probe counts containers by (`state`) and the CPU probe names
/// their cgroups with (`metadata`, `created_at`, `labels`). Left out: the
/// sandbox id, image and `annotations`, the biggest of the maps.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    /// `ContainerState`: 0 CREATED, 1 RUNNING, 2 EXITED, 3 UNKNOWN.
    #[prost(int32, tag = "6")]
    pub state: i32,
    /// Creation time, nanoseconds since the epoch.
    #[prost(int64, tag = "7")]
    pub created_at: i64,
    /// The kubelet's `io.kubernetes.*` labels among others.
    #[prost(map = "string, string", tag = "8")]
    pub labels: std::collections::HashMap<String, String>,
}

/// The name the container was created with (the container's name in its pod
/// for the kubelet) and its restart count.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

/// CRI `ContainerState` names, indexed by enum value; the `state` label values.
pub(crate) const CONTAINER_STATES: &[&str] = &["created", "running", "exited", "unknown"];

/// CRI `PodSandboxState` names, indexed by enum value.
pub(crate) const SANDBOX_STATES: &[&str] = &["ready", "notready"];

/// The label of a CRI enum value; values from a newer API count as the last
/// (catch-all) state rather than being dropped.
pub(crate) fn state_name(states: &'static [&'static str], value: i32) -> &'static str {
    usize::try_from(value)
        .ok()
        .and_then(|i| states.get(i))
        .or(states.last())
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Wire bytes of a `Container` as the full CRI message encodes it: id (1),
    /// pod_sandbox_id (2), metadata (3, nested), image_ref (5), state (6),
    /// created_at (7), a labels map entry (8). The sandbox id and image are
    /// skipped; the rest is what the agent reads.
    #[test]
    fn container_decodes_from_full_cri_encoding() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&[0x0a, 3, b'a', b'b', b'c']); // 1: id
        buf.extend_from_slice(&[0x12, 2, b'p', b'1']); // 2: pod_sandbox_id
        buf.extend_from_slice(&[0x1a, 4, 0x0a, 2, b'n', b'm']); // 3: metadata{name}
        buf.extend_from_slice(&[0x2a, 1, b'i']); // 5: image_ref
        buf.extend_from_slice(&[0x30, 1]); // 6: state RUNNING
        buf.extend_from_slice(&[0x38, 0x96, 0x01]); // 7: created_at 150
        buf.extend_from_slice(&[0x42, 6, 0x0a, 1, b'k', 0x12, 1, b'v']); // 8: labels
        let c = Container::decode(buf.as_slice()).unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.metadata.map(|m| m.name).as_deref(), Some("nm"));
        assert_eq!(state_name(CONTAINER_STATES, c.state), "running");
        assert_eq!(c.created_at, 150);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn status_conditions_decode() {
        let resp = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: "cni not initialized".into(),
                }],
            }),
        };
        let bytes = resp.encode_to_vec();
        // type is field 1 of the condition, nested in field 1 of RuntimeStatus,
        // nested in field 1 of the response.
        assert_eq!(&bytes[..2], &[0x0a, bytes.len() as u8 - 2]);
        assert_eq!(StatusResponse::decode(bytes.as_slice()).unwrap(), resp);
    }

    #[test]
    fn unknown_enum_values_fall_into_the_last_state() {
        assert_eq!(state_name(CONTAINER_STATES, 0), "created");
        assert_eq!(state_name(CONTAINER_STATES, 3), "unknown");
        assert_eq!(state_name(CONTAINER_STATES, 7), "unknown");
        assert_eq!(state_name(CONTAINER_STATES, -1), "unknown");
        assert_eq!(state_name(SANDBOX_STATES, 1), "notready");
    }

    proptest::proptest! {
        /// Whatever bytes a runtime sends, decoding returns, never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ListContainersResponse::decode(bytes.as_slice());
            let _ = ListPodSandboxResponse::decode(bytes.as_slice());
            let _ = StatusResponse::decode(bytes.as_slice());
            let _ = VersionResponse::decode(bytes.as_slice());
            let _ = ContainerdVersionResponse::decode(bytes.as_slice());
        }
    }
}
