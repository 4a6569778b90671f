//! [`ContainerDirectory`] for Docker, through the runtime probe's bollard
//! client: `GET /containers/json?all=1`, whose labels carry the kubelet's
//! `io.kubernetes.*` names for containers it created (a pod's sandbox is the
//! container `POD`, see [`Identity::from_labels`]). Emits no metrics.

use super::identity::{ContainerDirectory, DirectoryError, DirectoryFuture, Identity};
use crate::config::RuntimeKind;
use crate::runtime::docker::DockerClient;
use bollard::query_parameters::ListContainersOptions;

impl ContainerDirectory for DockerClient {
    fn runtime(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    fn list(&self) -> DirectoryFuture {
        let api = self.api();
        Box::pin(async move {
            let fail = |message: String| DirectoryError {
                runtime: RuntimeKind::Docker,
                message,
            };
            let docker = api.map_err(fail)?;
            let opts = ListContainersOptions {
                all: true,
                ..Default::default()
            };
            let list = docker
                .list_containers(Some(opts))
                .await
                .map_err(|e| fail(e.to_string()))?;
            Ok(list
                .into_iter()
                .filter_map(|c| {
                    let labels = c.labels.unwrap_or_default();
                    let name = c.names.as_ref().and_then(|n| n.first()).map(String::as_str);
                    let identity = Identity::from_labels(
                        |k| labels.get(k).map(String::as_str),
                        name,
                        c.created.unwrap_or_default(),
                    );
                    Some((c.id?, identity))
                })
                .collect())
        })
    }
}
