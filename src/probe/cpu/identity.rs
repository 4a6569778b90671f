//! Container identity: container id -> Kubernetes `namespace/pod/container`
//! (or the runtime's name outside Kubernetes), from the runtimes' own lists
//! through the small [`ContainerDirectory`] trait (Docker in
//! `docker_directory.rs`, containerd and CRI-O with `ListContainers` and
//! `ListPodSandbox` in `cri_directory.rs`). A pod's sandbox (pause container)
//! is the container [`SANDBOX_CONTAINER`] of its pod. Cached; the runtimes are
//! asked again only when a scan finds an id the cache does not know, and an id
//! no runtime knows (a cgroup made by something else) is asked about at most every
//! [`UNKNOWN_RETRY`]. Emits no metrics itself; the probe counts refreshes in
//! `nodevitals_cpu_identity_refreshes_total{runtime,result}`.

use crate::config::RuntimeKind;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The labels the kubelet puts on every container it creates, in Docker and CRI.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_LABEL: &str = "io.kubernetes.pod.name";
pub const CONTAINER_LABEL: &str = "io.kubernetes.container.name";

/// The `container` label value of a pod's sandbox (pause container), as
/// cAdvisor and the kubelet name it.
pub const SANDBOX_CONTAINER: &str = "POD";

/// The label dockershim and cri-dockerd put on the containers they create:
/// [`SANDBOX_TYPE`] on a pod's sandbox, `container` on the others.
pub const DOCKER_TYPE_LABEL: &str = "io.kubernetes.docker.type";
pub const SANDBOX_TYPE: &str = "podsandbox";

/// How long an id that no runtime listed stays unasked-about.
pub const UNKNOWN_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Who a container is, as its runtime says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub kubernetes: Option<KubeRef>,
    /// The runtime's name for the container (Docker's without the leading `/`).
    pub name: Option<String>,
    /// Creation time (unix seconds): the newer of two containers with the same
    /// Kubernetes name is the one reported.
    pub created: i64,
}

impl Identity {
    /// Builds an identity from a container's labels; Kubernetes only when the
    /// pod's namespace and name and the container's name are all there. A
    /// Docker pod sandbox is the container [`SANDBOX_CONTAINER`] whatever its
    /// container-name label says.
    pub fn from_labels<'a>(
        label: impl Fn(&str) -> Option<&'a str>,
        name: Option<&str>,
        created: i64,
    ) -> Identity {
        let container = if label(DOCKER_TYPE_LABEL) == Some(SANDBOX_TYPE) {
            Some(SANDBOX_CONTAINER)
        } else {
            label(CONTAINER_LABEL)
        };
        let kubernetes = match (label(NAMESPACE_LABEL), label(POD_LABEL), container) {
            (Some(ns), Some(pod), Some(c)) => Some(KubeRef {
                namespace: ns.to_owned(),
                pod: pod.to_owned(),
                container: c.to_owned(),
            }),
            _ => None,
        };
        Identity {
            kubernetes,
            name: name
                .map(|n| n.trim_start_matches('/'))
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            created,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{runtime}: cannot list containers: {message}")]
pub struct DirectoryError {
    pub runtime: RuntimeKind,
    pub message: String,
}

pub type DirectoryFuture =
    Pin<Box<dyn Future<Output = Result<Vec<(String, Identity)>, DirectoryError>> + Send>>;

/// One runtime's list of containers (running ones at least), by full id.
pub trait ContainerDirectory: Send + Sync + 'static {
    fn runtime(&self) -> RuntimeKind;
    /// Lists the runtime's containers. `'static` so it can run under a deadline.
    fn list(&self) -> DirectoryFuture;
}

/// The outcome of asking one runtime, for the refresh counter.
#[derive(Debug)]
pub struct Refresh {
    pub runtime: RuntimeKind,
    pub result: Result<(), DirectoryError>,
}

pub struct IdentityCache {
    directories: Vec<Arc<dyn ContainerDirectory>>,
    /// Per directory, the identities of the containers being tracked.
    known: Vec<HashMap<String, Arc<Identity>>>,
    /// Ids no runtime listed, and when they were last asked about.
    unknown: HashMap<String, Instant>,
    timeout: Duration,
    anonymous: Arc<Identity>,
}

impl IdentityCache {
    /// `timeout` bounds each runtime's list call, so a hung runtime never holds
    /// up the CPU metrics.
    pub fn new(directories: Vec<Arc<dyn ContainerDirectory>>, timeout: Duration) -> Self {
        Self {
            known: vec![HashMap::new(); directories.len()],
            directories,
            unknown: HashMap::new(),
            timeout,
            anonymous: Arc::new(Identity::default()),
        }
    }

    /// The identity of `id`; an empty one (id label only) when unknown.
    pub fn get(&self, id: &str) -> Arc<Identity> {
        self.known
            .iter()
            .find_map(|m| m.get(id))
            .unwrap_or(&self.anonymous)
            .clone()
    }

    fn is_known(&self, id: &str) -> bool {
        self.known.iter().any(|m| m.contains_key(id))
    }

    /// Makes sure the ids of this scan are resolved where possible: asks the
    /// runtimes again when one is unknown and not asked about recently. Forgets
    /// ids that are no longer tracked, so memory follows the live containers.
    pub async fn resolve(&mut self, ids: &HashSet<&str>) -> Vec<Refresh> {
        let now = Instant::now();
        self.unknown.retain(|id, _| ids.contains(id.as_str()));
        for m in &mut self.known {
            m.retain(|id, _| ids.contains(id.as_str()));
        }
        let miss = ids.iter().any(|id| {
            !self.is_known(id)
                && self
                    .unknown
                    .get(*id)
                    .is_none_or(|asked| now.duration_since(*asked) >= UNKNOWN_RETRY)
        });
        if !miss || self.directories.is_empty() {
            return Vec::new();
        }
        let timeout = self.timeout;
        let calls = self.directories.iter().map(|d| {
            let runtime = d.runtime();
            let call = d.list();
            async move {
                match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(DirectoryError {
                        runtime,
                        message: format!(
                            "no answer within {}",
                            humantime::format_duration(timeout)
                        ),
                    }),
                }
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut refreshes = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            let runtime = self.directories[i].runtime();
            match result {
                Ok(list) => {
                    // A runtime that answered is the truth for its containers.
                    self.known[i] = list
                        .into_iter()
                        .filter(|(id, _)| ids.contains(id.as_str()))
                        .map(|(id, identity)| (id, Arc::new(identity)))
                        .collect();
                    refreshes.push(Refresh {
                        runtime,
                        result: Ok(()),
                    });
                }
                // One that did not keeps what it said before.
                Err(e) => refreshes.push(Refresh {
                    runtime,
                    result: Err(e),
                }),
            }
        }
        for id in ids {
            if !self.is_known(id) {
                self.unknown.insert((*id).to_owned(), now);
            }
        }
        refreshes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    type Answer = Arc<Mutex<Result<Vec<(String, Identity)>, String>>>;

    /// Stands in for a runtime's container list, to count how often the cache
    /// asks; the real Docker directory is exercised in tests/cpu_throttling.rs.
    struct Counting {
        calls: Arc<AtomicUsize>,
        answer: Answer,
    }

    impl ContainerDirectory for Counting {
        fn runtime(&self) -> RuntimeKind {
            RuntimeKind::Docker
        }
        fn list(&self) -> DirectoryFuture {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answer.lock().unwrap().clone();
            Box::pin(async move {
                answer.map_err(|message| DirectoryError {
                    runtime: RuntimeKind::Docker,
                    message,
                })
            })
        }
    }

    fn named(id: &str, name: &str) -> (String, Identity) {
        (
            id.to_owned(),
            Identity::from_labels(|_| None, Some(&format!("/{name}")), 0),
        )
    }

    fn setup() -> (IdentityCache, Arc<AtomicUsize>, Answer) {
        let calls = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new(Ok(vec![named("a", "alpha")])));
        let dir = Counting {
            calls: Arc::clone(&calls),
            answer: Arc::clone(&answer),
        };
        let cache = IdentityCache::new(vec![Arc::new(dir)], Duration::from_secs(1));
        (cache, calls, answer)
    }

    #[tokio::test(start_paused = true)]
    async fn asks_on_a_miss_only_and_retries_unknown_ids_slowly() {
        let (mut cache, calls, _) = setup();
        let ids: HashSet<&str> = ["a"].into();
        cache.resolve(&ids).await;
        assert_eq!(cache.get("a").name.as_deref(), Some("alpha"));
        cache.resolve(&ids).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a hit asks nobody");

        let with_stranger: HashSet<&str> = ["a", "x"].into();
        cache.resolve(&with_stranger).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a miss asks");
        assert_eq!(*cache.get("x"), Identity::default());
        tokio::time::advance(UNKNOWN_RETRY / 2).await;
        cache.resolve(&with_stranger).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a known stranger waits");
        tokio::time::advance(UNKNOWN_RETRY).await;
        cache.resolve(&with_stranger).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "then is asked about again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_runtime_keeps_what_it_said_and_gone_ids_are_forgotten() {
        let (mut cache, _, answer) = setup();
        cache.resolve(&["a"].into()).await;
        *answer.lock().unwrap() = Err("connection refused".into());
        let refreshes = cache.resolve(&["a", "b"].into()).await;
        assert!(refreshes[0].result.is_err());
        assert_eq!(cache.get("a").name.as_deref(), Some("alpha"));
        cache.resolve(&["b"].into()).await;
        assert_eq!(
            *cache.get("a"),
            Identity::default(),
            "untracked ids are dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_runtime_is_cut_off_at_the_deadline() {
        struct Hung;
        impl ContainerDirectory for Hung {
            fn runtime(&self) -> RuntimeKind {
                RuntimeKind::Crio
            }
            fn list(&self) -> DirectoryFuture {
                Box::pin(std::future::pending())
            }
        }
        let mut cache = IdentityCache::new(vec![Arc::new(Hung)], Duration::from_secs(2));
        let started = Instant::now();
        let r = cache.resolve(&["a"].into()).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(r[0]
            .result
            .as_ref()
            .unwrap_err()
            .message
            .contains("no answer"));
    }

    #[test]
    fn kubernetes_identity_needs_all_three_labels() {
        let all = [
            (NAMESPACE_LABEL, "ns"),
            (POD_LABEL, "p"),
            (CONTAINER_LABEL, "c"),
        ];
        let lookup =
            |n: usize| move |k: &str| all[..n].iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
        let id = Identity::from_labels(lookup(3), Some("/k8s_c_p"), 3);
        assert_eq!(id.kubernetes.unwrap().pod, "p");
        assert_eq!(id.name.as_deref(), Some("k8s_c_p"));
        assert_eq!(Identity::from_labels(lookup(2), None, 0).kubernetes, None);
    }

    /// The labels dockershim and cri-dockerd put on a pod's pause container.
    #[test]
    fn a_docker_pod_sandbox_is_the_container_pod() {
        let labels = |container: Option<&'static str>| {
            move |k: &str| match k {
                NAMESPACE_LABEL => Some("shop"),
                POD_LABEL => Some("checkout-7d9f8"),
                DOCKER_TYPE_LABEL => Some(SANDBOX_TYPE),
                CONTAINER_LABEL => container,
                _ => None,
            }
        };
        for container in [Some("POD"), None, Some("not-a-sandbox-name")] {
            let id = Identity::from_labels(labels(container), Some("/k8s_POD_x"), 0);
            let k = id.kubernetes.unwrap();
            assert_eq!(
                (k.namespace.as_str(), k.pod.as_str(), k.container.as_str()),
                ("shop", "checkout-7d9f8", "POD"),
                "{container:?}"
            );
        }
        let app = |k: &str| match k {
            DOCKER_TYPE_LABEL => Some("container"),
            CONTAINER_LABEL => Some("api"),
            _ => Some("x"),
        };
        let k = Identity::from_labels(app, None, 0).kubernetes.unwrap();
        assert_eq!(
            k.container, "api",
            "an application container keeps its name"
        );
    }
}
