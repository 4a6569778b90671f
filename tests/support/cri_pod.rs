//! A pod made the kubelet's way through a real containerd's CRI API: a
//! sandbox (the locally built pause image, host network so no CNI plugin is
//! needed, cgroup under the containerd's test cgroup) and containers in it.
//! Dropping it removes what is left through CRI; what CRI could not remove
//! the containerd's own guard stops by PID, and the sandbox's shim socket in
//! the host-wide `/run/containerd/s` is removed here.

use super::containerd::{Containerd, CRI_NAMESPACE, PAUSE_IMAGE};
use super::cri_client::{
    ContainerConfig, ContainerMetadata, CriClient, ImageSpec, LinuxContainerConfig,
    LinuxContainerResources, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, NAMESPACE_NODE,
};
use std::collections::HashMap;

/// The labels the kubelet puts on a pod's containers (and, for the pod, on
/// its sandbox), which the agent reads back through `ListContainers`.
const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_LABEL: &str = "io.kubernetes.pod.name";
const CONTAINER_LABEL: &str = "io.kubernetes.container.name";

pub struct CriPod<'a> {
    containerd: &'a Containerd,
    client: CriClient,
    config: PodSandboxConfig,
    pub sandbox: String,
    containers: Vec<String>,
}

/// A CFS quota: `quota_us` of CPU time per `period_us`.
pub struct Quota {
    pub quota_us: i64,
    pub period_us: i64,
}

impl<'a> CriPod<'a> {
    /// Imports the pause image and runs the sandbox of pod `namespace/name`,
    /// in the pod cgroup `pod<uid>` as the kubelet's cgroupfs driver names it.
    pub fn run(containerd: &'a Containerd, namespace: &str, name: &str, uid: &str) -> CriPod<'a> {
        let client = CriClient::new(containerd.socket.clone());
        containerd.import_pause_image(&client);
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            }),
            labels: HashMap::from([
                (NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
                (POD_LABEL.to_owned(), name.to_owned()),
            ]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod{uid}", containerd.cgroup_parent()),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NAMESPACE_NODE,
                    }),
                }),
            }),
        };
        let mut pod = CriPod {
            containerd,
            client,
            config,
            sandbox: String::new(),
            containers: Vec::new(),
        };
        let sandbox = pod.client.run_pod_sandbox(pod.config.clone());
        pod.sandbox = pod.check(sandbox);
        pod
    }

    /// Creates and starts container `name` running `command` from the pause
    /// image (busybox: `sh`, `sleep`, `timeout`), labelled as the kubelet
    /// labels it; returns its id.
    pub fn start_container(&mut self, name: &str, command: &[&str], quota: Quota) -> String {
        let meta = self.config.metadata.clone().unwrap_or_default();
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
            }),
            image: Some(ImageSpec {
                image: PAUSE_IMAGE.to_owned(),
            }),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            labels: HashMap::from([
                (NAMESPACE_LABEL.to_owned(), meta.namespace),
                (POD_LABEL.to_owned(), meta.name),
                (CONTAINER_LABEL.to_owned(), name.to_owned()),
            ]),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_period: quota.period_us,
                    cpu_quota: quota.quota_us,
                }),
            }),
        };
        let created = self
            .client
            .create_container(&self.sandbox, config, self.config.clone());
        let id = self.check(created);
        self.containers.push(id.clone());
        let started = self.client.start_container(&id);
        self.check(started);
        id
    }

    /// Stops and removes every container, then the sandbox, through CRI.
    pub fn remove(mut self) {
        let removed = self.try_remove();
        self.check(removed);
    }

    /// The answer of a CRI call, or a panic with containerd's log.
    fn check<T>(&self, answer: Result<T, String>) -> T {
        answer.unwrap_or_else(|e| panic!("{e}\ncontainerd log:\n{}", self.containerd.log()))
    }

    fn try_remove(&mut self) -> Result<(), String> {
        while let Some(id) = self.containers.pop() {
            self.client.remove_container(&id)?;
        }
        if !self.sandbox.is_empty() {
            self.client.remove_pod_sandbox(&self.sandbox)?;
            self.sandbox.clear();
        }
        Ok(())
    }
}

impl Drop for CriPod<'_> {
    fn drop(&mut self) {
        if self.try_remove().is_err() {
            // RemovePodSandbox removes the containers too, when CRI still answers.
            let _ = self.client.remove_pod_sandbox(&self.sandbox);
            // Its shim will be killed by PID; its socket would stay behind.
            if let Some(path) = self
                .containerd
                .namespaced_shim_socket(CRI_NAMESPACE, &self.sandbox)
            {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
