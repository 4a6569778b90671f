//! Runtime auto-detection: with no `[[runtime]]` configured, every well-known
//! runtime socket that exists is probed, so a Docker node gets both dockerd and
//! the containerd underneath it probed (and remediated). `DOCKER_HOST`
//! overrides Docker's path.

use crate::config::{RuntimeConfig, RuntimeKind};
use std::path::Path;

/// Well-known sockets per runtime kind, in order of preference.
const WELL_KNOWN: &[(RuntimeKind, &[&str])] = &[
    (
        RuntimeKind::Docker,
        &["/var/run/docker.sock", "/run/docker.sock"],
    ),
    (
        RuntimeKind::Containerd,
        &[
            "/run/containerd/containerd.sock",
            "/var/run/containerd/containerd.sock",
        ],
    ),
    (
        RuntimeKind::Crio,
        &["/var/run/crio/crio.sock", "/run/crio/crio.sock"],
    ),
];

/// The runtimes to probe when none is configured. `docker_host` is the value of
/// `DOCKER_HOST`; `exists` tells whether a path exists (injected for tests).
pub fn detect(docker_host: Option<&str>, exists: impl Fn(&Path) -> bool) -> Vec<RuntimeConfig> {
    let mut found = Vec::new();
    for (kind, paths) in WELL_KNOWN {
        if *kind == RuntimeKind::Docker {
            if let Some(host) = docker_host.filter(|h| !h.is_empty()) {
                // An explicit DOCKER_HOST is what the admin told docker to use; a
                // non-unix value is reported by the probe as misconfigured.
                found.push(RuntimeConfig::detected(*kind, host.to_owned()));
                continue;
            }
        }
        if let Some(p) = paths.iter().find(|p| exists(Path::new(p))) {
            found.push(RuntimeConfig::detected(*kind, format!("unix://{p}")));
        }
    }
    found
}

/// Detection against the real filesystem and environment.
pub fn detect_host() -> Vec<RuntimeConfig> {
    let docker_host = std::env::var("DOCKER_HOST").ok();
    detect(docker_host.as_deref(), |p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_existing_sockets_only() {
        let found = detect(None, |p| p == Path::new("/run/docker.sock"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].endpoint, "unix:///run/docker.sock");
        assert!(detect(None, |_| false).is_empty());
    }

    #[test]
    fn docker_host_wins() {
        let found = detect(Some("unix:///tmp/d.sock"), |_| true);
        assert_eq!(found[0].kind, RuntimeKind::Docker);
        assert_eq!(found[0].endpoint, "unix:///tmp/d.sock");
    }

    /// CRI-O cannot be installed on the test machines, so its detection is
    /// covered here with an injected filesystem rather than a real socket.
    #[test]
    fn crio_socket_is_detected_at_either_path() {
        for path in ["/var/run/crio/crio.sock", "/run/crio/crio.sock"] {
            let found = detect(None, |p| p == Path::new(path));
            assert_eq!(found.len(), 1, "{path}");
            assert_eq!(found[0].kind, RuntimeKind::Crio);
            assert_eq!(found[0].endpoint, format!("unix://{path}"));
        }
    }

    #[test]
    fn docker_node_gets_dockerd_and_its_containerd() {
        let present = ["/var/run/docker.sock", "/run/containerd/containerd.sock"];
        let found = detect(None, |p| present.iter().any(|q| p == Path::new(q)));
        let kinds: Vec<RuntimeKind> = found.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RuntimeKind::Docker, RuntimeKind::Containerd]);
        assert_eq!(found[1].endpoint, "unix:///run/containerd/containerd.sock");
    }

    #[test]
    fn every_runtime_socket_found_is_probed() {
        let found = detect(None, |_| true);
        let kinds: Vec<RuntimeKind> = found.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RuntimeKind::Docker,
                RuntimeKind::Containerd,
                RuntimeKind::Crio
            ]
        );
    }
}
