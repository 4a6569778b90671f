//! The config the remediation tests start from: one docker runtime probed
//! every 300 ms (deadline 250 ms) with state under `state_dir`, its restart
//! and remediation sections as TOML lines, and whatever follows (`rest`: the
//! other probes, usually off, a `[kubernetes]` section).

use std::path::Path;

pub struct DockerAgentConfig<'a> {
    pub state_dir: &'a Path,
    pub endpoint: &'a str,
    /// Keys of `[paths]` besides `state_dir`.
    pub paths: &'a str,
    /// The body of `[runtime.restart]`.
    pub restart: &'a str,
    /// The body of `[remediation]`.
    pub remediation: &'a str,
    /// Tables after `[remediation]`.
    pub rest: &'a str,
}

impl DockerAgentConfig<'_> {
    pub fn render(&self) -> String {
        format!(
            r#"
[paths]
state_dir = "{state}"
{paths}
[[runtime]]
kind = "docker"
endpoint = "{endpoint}"
interval = "300ms"
timeout = "250ms"

[runtime.restart]
{restart}
[remediation]
{remediation}
{rest}"#,
            state = self.state_dir.display(),
            paths = self.paths,
            endpoint = self.endpoint,
            restart = self.restart,
            remediation = self.remediation,
            rest = self.rest,
        )
    }
}

/// The restart of a test dockerd: SIGTERM by its pidfile, 1 s of grace.
pub fn signal_restart(pidfile: &Path) -> String {
    format!(
        "method = \"signal\"\ngrace = \"1s\"\npidfile = \"{}\"\n",
        pidfile.display()
    )
}
