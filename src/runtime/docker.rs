//! Docker Engine API client (bollard over the unix socket): `_ping`, then the
//! container list that `docker ps -a` performs, counted by state; now and then
//! `/info` for `LiveRestoreEnabled` (whether a restart kills containers) and
//! `DockerRootDir` (whose free space remediation watches).

use super::classify::classify_error;
use super::reply_limit::{ReadLimit, MAX_REPLY_BYTES};
use super::{count_states, Answer, CallError, CallFuture, RuntimeClient};
use crate::vocabulary::{Operation, Outcome, RuntimeKind};
use bollard::query_parameters::ListContainersOptions;
use bollard::{BollardRequest, ClientVersion, Docker};
use hyper::header::{HeaderValue, HOST};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Docker's closed set of container states, all exported so series exist at start.
pub const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

/// API 1.41 (Docker 20.10) is understood by every engine still in support, so no
/// version negotiation round trip is needed.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

pub struct DockerClient {
    socket: PathBuf,
    docker: Result<Docker, String>,
}

impl DockerClient {
    /// `request_bound` caps how long any request may run, late answers included.
    pub fn new(socket: PathBuf, request_bound: Duration) -> Self {
        let docker = Docker::connect_with_custom_transport(
            {
                let socket = socket.clone();
                move |req| bounded_request(socket.clone(), req)
            },
            Some("http://docker"),
            request_bound.as_secs().max(1),
            &API_VERSION,
        )
        .map_err(|e| e.to_string());
        Self { socket, docker }
    }

    /// The API client, for other readers of this runtime (container identity).
    pub fn api(&self) -> Result<Docker, String> {
        self.docker.clone()
    }
}

impl RuntimeClient for DockerClient {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    fn operations(&self) -> &'static [Operation] {
        &[Operation::Ping, Operation::ListContainers]
    }

    fn occasional_operations(&self) -> &'static [Operation] {
        &[Operation::Info]
    }

    fn call(&self, op: Operation) -> CallFuture {
        let socket = self.socket.clone();
        let docker = self.docker.clone();
        Box::pin(async move {
            let docker = docker.map_err(|message| CallError {
                outcome: Outcome::Misconfigured,
                answered: false,
                message,
            })?;
            let fail = |e: bollard::errors::Error| to_call_error(e, &socket);
            match op {
                Operation::Ping => docker.ping().await.map(|_| Answer::Alive).map_err(fail),
                Operation::Info => docker
                    .info()
                    .await
                    .map(|i| Answer::Info {
                        live_restore: i.live_restore_enabled,
                        root_dir: i.docker_root_dir.map(Into::into),
                    })
                    .map_err(fail),
                _ => {
                    let opts = ListContainersOptions {
                        all: true,
                        ..Default::default()
                    };
                    let list = docker.list_containers(Some(opts)).await.map_err(fail)?;
                    Ok(Answer::Containers(count_states(
                        STATES,
                        list.iter()
                            .filter_map(|c| c.state.as_ref().map(|s| s.to_string())),
                    )))
                }
            }
        })
    }
}

/// One request on its own connection to `socket`, the reply bounded by
/// [`MAX_REPLY_BYTES`] (bollard reads whole replies into memory). It goes in
/// origin form with a `Host` header, as over any HTTP/1.1 connection.
async fn bounded_request(
    socket: PathBuf,
    req: BollardRequest,
) -> Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error> {
    let (mut parts, body) = req.into_parts();
    let origin = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = origin.parse().map_err(bollard::errors::Error::from)?;
    parts
        .headers
        .insert(HOST, HeaderValue::from_static("docker"));
    let stream = tokio::net::UnixStream::connect(&socket).await?;
    let io = TokioIo::new(ReadLimit::new(stream, MAX_REPLY_BYTES));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    Ok(sender
        .send_request(BollardRequest::from_parts(parts, body))
        .await?)
}

fn to_call_error(e: bollard::errors::Error, socket: &Path) -> CallError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => CallError {
            outcome: Outcome::Error,
            answered: true,
            message: format!("dockerd answered {status_code}: {message}"),
        },
        // Transparent: its `source()` skips the io::Error it carries, so
        // the error itself is what is classified (permission denied on
        // connect is `misconfigured`).
        bollard::errors::Error::IOError { err } => classify_error(&err, socket),
        other => classify_error(&other, socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_every_state() {
        let c = count_states(
            STATES,
            ["running", "running", "exited", "bogus"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(c.len(), STATES.len());
        assert!(c.contains(&("running", 2)));
        assert!(c.contains(&("exited", 1)));
        assert!(c.contains(&("dead", 0)));
    }
}
