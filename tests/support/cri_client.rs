//! A minimal CRI v1 client for tests, playing the kubelet's part: the RPCs
//! that make and remove a pod sandbox and a container (`RunPodSandbox`,
//! `CreateContainer`, `StartContainer`, `Stop*`, `Remove*`), which the agent
//! itself never makes. Messages carry only the fields the tests set (field
//! numbers of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`). One HTTP/2
//! connection per call, each call under a deadline, on a runtime of its own
//! so blocking tests can use it.

use nodevitals::runtime::cri_transport::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const RUNTIME_SERVICE: &str = "/runtime.v1.RuntimeService/";
const IMAGE_SERVICE: &str = "/runtime.v1.ImageService/";

/// How long one RPC may take (containerd starts a shim and runc in some).
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The pod's name and namespace; the UID (field 2), which containerd only
/// puts into the sandbox's name, is left out.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
}

/// `NamespaceMode` NODE: the host's namespace, so no CNI plugin is needed.
pub const NAMESPACE_NODE: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    #[prost(int32, tag = "1")]
    pub network: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    /// cgroupfs syntax: `/parent/pod<uid>`.
    #[prost(string, tag = "1")]
    pub cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(map = "string, string", tag = "6")]
    pub labels: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ImageStatusRequest {
    #[prost(message, optional, tag = "1")]
    image: Option<ImageSpec>,
}

/// Only the image's presence is read.
#[derive(Clone, PartialEq, prost::Message)]
struct ImageStatusResponse {
    #[prost(message, optional, tag = "1")]
    image: Option<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Image {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerResources {
    #[prost(int64, tag = "1")]
    pub cpu_period: i64,
    #[prost(int64, tag = "2")]
    pub cpu_quota: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub resources: Option<LinuxContainerResources>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(map = "string, string", tag = "9")]
    pub labels: HashMap<String, String>,
    #[prost(message, optional, tag = "15")]
    pub linux: Option<LinuxContainerConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    sandbox_config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateContainerResponse {
    #[prost(string, tag = "1")]
    container_id: String,
}

/// Start/Stop/Remove of a container or a sandbox: the id is field 1
/// (`StopContainer`'s timeout, field 2, left 0: kill at once). The answers
/// are empty.
#[derive(Clone, PartialEq, prost::Message)]
struct ById {
    #[prost(string, tag = "1")]
    id: String,
}

pub struct CriClient {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl CriClient {
    pub fn new(socket: PathBuf) -> CriClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        CriClient { socket, runtime }
    }

    /// Whether the runtime's CRI image store has `image` (it learns of an
    /// imported image from an event, a moment after the import).
    pub fn has_image(&self, image: &str) -> Result<bool, String> {
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.to_owned(),
            }),
        };
        let resp: ImageStatusResponse = self.call(IMAGE_SERVICE, "ImageStatus", req)?;
        Ok(resp.image.is_some_and(|i| !i.id.is_empty()))
    }

    pub fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, String> {
        let req = RunPodSandboxRequest {
            config: Some(config),
        };
        let resp: RunPodSandboxResponse = self.call(RUNTIME_SERVICE, "RunPodSandbox", req)?;
        Ok(resp.pod_sandbox_id)
    }

    pub fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let resp: CreateContainerResponse = self.call(RUNTIME_SERVICE, "CreateContainer", req)?;
        Ok(resp.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), String> {
        self.by_id("StartContainer", id)
    }

    /// Stops the container at once (timeout 0), then removes it.
    pub fn remove_container(&self, id: &str) -> Result<(), String> {
        self.by_id("StopContainer", id)?;
        self.by_id("RemoveContainer", id)
    }

    /// Stops the sandbox (and whatever still runs in it), then removes it.
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), String> {
        self.by_id("StopPodSandbox", id)?;
        self.by_id("RemovePodSandbox", id)
    }

    fn by_id(&self, method: &str, id: &str) -> Result<(), String> {
        self.call::<_, ()>(RUNTIME_SERVICE, method, ById { id: id.to_owned() })
    }

    fn call<Req, Resp>(&self, service: &str, method: &str, req: Req) -> Result<Resp, String>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let path = http::uri::PathAndQuery::try_from(format!("{service}{method}"))
            .map_err(|e| e.to_string())?;
        let socket = self.socket.clone();
        let call = async move {
            let sender = Connection::new(socket.clone())
                .sender()
                .await
                .map_err(|e| format!("connect {}: {e}", socket.display()))?;
            let mut grpc = tonic::client::Grpc::with_origin(
                sender,
                http::Uri::from_static("http://localhost"),
            );
            grpc.ready().await.map_err(|e| e.to_string())?;
            let codec = tonic::codec::ProstCodec::<Req, Resp>::default();
            grpc.unary(tonic::Request::new(req), path, codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        };
        self.runtime
            .block_on(async { tokio::time::timeout(CALL_DEADLINE, call).await })
            .unwrap_or_else(|_| Err(format!("{method}: no answer within {CALL_DEADLINE:?}")))
            .map_err(|e| format!("{method}: {e}"))
    }
}
