//! CRI v1 client (tonic over the runtime's unix socket) for containerd and
//! CRI-O: `Version`, `Status` (the `RuntimeReady` / `NetworkReady` conditions),
//! `ListPodSandbox` and `ListContainers`, the `crictl version/info/pods/ps -a`
//! equivalents. Deadlines, outcomes and metrics are the generic
//! [`RuntimeProbe`](super::RuntimeProbe)'s; this file only speaks the protocol.
//! It emits no metric itself (its answers feed `nodevitals_runtime_condition`,
//! `_containers` and `_pod_sandboxes`).
//!
//! containerd with its CRI plugin disabled (Docker's own containerd, the
//! upstream `containerd.io` package) answers CRI with `Unimplemented`; it is
//! then probed through containerd's own version service, so it stays a probed
//! and remediable runtime, and the CRI-only operations are skipped.

use super::classify::{classify_error, classify_status};
use super::cri_messages::{self as msg, CONTAINER_STATES, SANDBOX_STATES};
use super::cri_transport::Connection;
use super::reply_limit::MAX_REPLY_BYTES;
use super::{count_states, Answer, CallError, CallFuture, RuntimeClient};
use crate::config::RuntimeKind;
use crate::vocabulary::Operation;
use http::uri::{PathAndQuery, Uri};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The conditions every CRI runtime must report (CRI `RuntimeStatus` doc); the
/// closed set of `condition` label values. One the runtime leaves out is 0.
pub const CONDITIONS: &[&str] = &["RuntimeReady", "NetworkReady"];

pub struct CriClient {
    kind: RuntimeKind,
    socket: PathBuf,
    connection: Connection,
    /// Set when the last liveness call found containerd without CRI.
    cri_absent: Arc<AtomicBool>,
}

impl CriClient {
    /// A client whose connection is made on first use and remade after the
    /// runtime restarts.
    pub fn new(kind: RuntimeKind, socket: PathBuf) -> Self {
        Self {
            kind,
            connection: Connection::new(socket.clone()),
            socket,
            cri_absent: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl CriClient {
    fn rpc(&self) -> Call {
        Call {
            connection: self.connection.clone(),
            socket: self.socket.clone(),
        }
    }

    /// Every CRI container and pod sandbox (`ListContainers` and
    /// `ListPodSandbox`, no filter, made together), with their metadata and
    /// labels, for naming cgroups. A containerd without its CRI plugin has
    /// neither: empty lists, not a failure.
    pub(crate) fn inventory(
        &self,
    ) -> impl Future<Output = Result<(Vec<msg::Container>, Vec<msg::PodSandbox>), CallError>>
           + Send
           + 'static {
        let (call, kind) = (self.rpc(), self.kind);
        async move {
            let (containers, sandboxes) =
                tokio::join!(call.list_containers(), call.list_sandboxes());
            Ok((
                call.served(kind, containers)?,
                call.served(kind, sandboxes)?,
            ))
        }
    }
}

impl RuntimeClient for CriClient {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    fn operations(&self) -> &'static [Operation] {
        &[
            Operation::Version,
            Operation::Status,
            Operation::ListPodSandbox,
            Operation::ListContainers,
        ]
    }

    fn call(&self, op: Operation) -> CallFuture {
        let call = self.rpc();
        let (kind, cri_absent) = (self.kind, Arc::clone(&self.cri_absent));
        Box::pin(async move {
            match op {
                Operation::Status | Operation::ListPodSandbox | Operation::ListContainers
                    if cri_absent.load(Ordering::Relaxed) =>
                {
                    Ok(Answer::NotServed)
                }
                Operation::Status => {
                    let req = msg::StatusRequest { verbose: false };
                    let resp: msg::StatusResponse = call.unary(msg::STATUS_PATH, req).await?;
                    Ok(Answer::Conditions(conditions(&resp)))
                }
                Operation::ListPodSandbox => {
                    let sandboxes = call.list_sandboxes().await.map_err(|f| call.classify(f))?;
                    let states = sandboxes.iter().map(|s| s.state);
                    Ok(Answer::Sandboxes(count_enum(SANDBOX_STATES, states)))
                }
                Operation::ListContainers => {
                    let containers = call.list_containers().await.map_err(|f| call.classify(f))?;
                    let states = containers.iter().map(|c| c.state);
                    Ok(Answer::Containers(count_enum(CONTAINER_STATES, states)))
                }
                // Version is the liveness call; any other operation is not CRI's
                // and is answered by the same cheap request.
                _ => call.version(kind, &cri_absent).await,
            }
        })
    }
}

/// One RPC's worth of client state, moved into the request future so it can
/// outlive its deadline.
struct Call {
    connection: Connection,
    socket: PathBuf,
}

/// Why an RPC failed: no connection (already classified), or a gRPC status.
enum Failure {
    Connect(CallError),
    Status(tonic::Status),
}

impl Call {
    async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, CallError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.raw(path, req).await.map_err(|f| self.classify(f))
    }

    async fn raw<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, Failure>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let sender = self
            .connection
            .sender()
            .await
            .map_err(|e| Failure::Connect(classify_error(&e, &self.socket)))?;
        // The authority only fills HTTP/2's `:authority`; the socket is the address.
        let mut grpc =
            tonic::client::Grpc::with_origin(sender, Uri::from_static("http://localhost"))
                .max_decoding_message_size(MAX_REPLY_BYTES as usize);
        grpc.ready()
            .await
            .map_err(|e| Failure::Connect(classify_error(&e, &self.socket)))?;
        let codec = tonic::codec::ProstCodec::<Req, Resp>::default();
        grpc.unary(
            tonic::Request::new(req),
            PathAndQuery::from_static(path),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(Failure::Status)
    }

    async fn list_containers(&self) -> Result<Vec<msg::Container>, Failure> {
        let req = msg::ListContainersRequest {};
        let resp: msg::ListContainersResponse = self.raw(msg::LIST_CONTAINERS_PATH, req).await?;
        Ok(resp.containers)
    }

    async fn list_sandboxes(&self) -> Result<Vec<msg::PodSandbox>, Failure> {
        let req = msg::ListPodSandboxRequest {};
        let resp: msg::ListPodSandboxResponse = self.raw(msg::LIST_POD_SANDBOX_PATH, req).await?;
        Ok(resp.items)
    }

    /// A list from a runtime, where containerd saying it does not serve CRI
    /// means it has nothing to list.
    fn served<T>(
        &self,
        kind: RuntimeKind,
        list: Result<Vec<T>, Failure>,
    ) -> Result<Vec<T>, CallError> {
        match list {
            Ok(items) => Ok(items),
            Err(Failure::Status(s)) if kind == RuntimeKind::Containerd && not_served(&s) => {
                Ok(Vec::new())
            }
            Err(f) => Err(self.classify(f)),
        }
    }

    fn classify(&self, f: Failure) -> CallError {
        match f {
            Failure::Connect(e) => e,
            Failure::Status(s) => classify_status(&s, &self.socket),
        }
    }

    /// CRI `Version`; for a containerd that answers it does not serve CRI,
    /// containerd's own `Version` instead. Records which one worked, so the
    /// CRI-only operations of the round are skipped, not failed.
    async fn version(
        &self,
        kind: RuntimeKind,
        cri_absent: &AtomicBool,
    ) -> Result<Answer, CallError> {
        let req = msg::VersionRequest {
            version: msg::CRI_API_VERSION.to_owned(),
        };
        match self
            .raw::<_, msg::VersionResponse>(msg::VERSION_PATH, req)
            .await
        {
            Ok(_) => {
                cri_absent.store(false, Ordering::Relaxed);
                Ok(Answer::Alive)
            }
            Err(Failure::Status(s)) if kind == RuntimeKind::Containerd && not_served(&s) => {
                let _: msg::ContainerdVersionResponse =
                    self.unary(msg::CONTAINERD_VERSION_PATH, ()).await?;
                if !cri_absent.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        socket = %self.socket.display(),
                        "containerd does not serve CRI (its CRI plugin is disabled): probing its version service only; no conditions or container counts"
                    );
                }
                Ok(Answer::Alive)
            }
            Err(f) => Err(self.classify(f)),
        }
    }
}

/// Whether the runtime itself answered that it does not serve the API (a
/// status made up from a transport error carries a source).
fn not_served(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unimplemented && std::error::Error::source(s).is_none()
}

/// Counts CRI enum values over the enum's full set of state names.
fn count_enum(
    names: &'static [&'static str],
    values: impl Iterator<Item = i32>,
) -> Vec<(&'static str, u64)> {
    count_states(names, values.map(|v| msg::state_name(names, v)))
}

/// The required conditions as the runtime reports them; one it leaves out is
/// reported false (the runtime did not say it is ready).
fn conditions(resp: &msg::StatusResponse) -> Vec<(String, bool)> {
    let reported = resp
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    CONDITIONS
        .iter()
        .map(|name| {
            let status = reported.iter().any(|c| c.r#type == *name && c.status);
            ((*name).to_owned(), status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::Outcome;

    #[test]
    fn conditions_are_the_closed_set() {
        let resp = msg::StatusResponse {
            status: Some(msg::RuntimeStatus {
                conditions: vec![
                    msg::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    msg::RuntimeCondition {
                        r#type: "SomethingNew".into(),
                        status: true,
                        ..Default::default()
                    },
                ],
            }),
        };
        assert_eq!(
            conditions(&resp),
            vec![
                ("RuntimeReady".to_owned(), true),
                ("NetworkReady".to_owned(), false)
            ]
        );
        assert!(conditions(&msg::StatusResponse::default())
            .iter()
            .all(|(_, v)| !v));
    }

    /// A socket file nobody listens on (a runtime that died without removing
    /// it) is `refused`: the runtime is down.
    #[tokio::test]
    async fn stale_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let client = CriClient::new(RuntimeKind::Containerd, path);
        let e = client.call(Operation::Version).await.unwrap_err();
        assert_eq!(e.outcome, Outcome::Refused, "{}", e.message);
        assert!(!e.answered);
    }
}
