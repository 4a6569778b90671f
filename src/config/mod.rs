//! Typed configuration: the TOML contract of DESIGN.md, parsed once and validated
//! once. Every key is optional; unknown keys are rejected; errors name the file,
//! the key and (for syntax and type errors) the line.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod bounds;
mod dns;
mod kubernetes;
mod runtime;
mod signal;
mod timeouts;

pub use crate::vocabulary::RuntimeKind;
pub use dns::{DnsConfig, DnsName, DnsQtype, DnsServer, DnsTransport};
pub use kubernetes::{KubernetesConfig, Unreachable};
pub use runtime::{DiskFullPolicy, RemediationConfig, RestartConfig, RestartMethod, RuntimeConfig};
pub use signal::DiagnosticSignal;

/// Where the agent looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nodevitals/config.toml";

/// Port registered for nodevitals; one port serves metrics, health and status.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9811";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {location}{key}: {message}")]
    Parse {
        path: PathBuf,
        /// "line N: " when the parser knows it, else empty.
        location: String,
        key: String,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub paths: PathsConfig,
    #[serde(rename = "runtime")]
    pub runtimes: Vec<RuntimeConfig>,
    pub remediation: RemediationConfig,
    pub kubelet: KubeletConfig,
    pub dns: DnsConfig,
    pub cpu: CpuConfig,
    pub kubernetes: KubernetesConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid address"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub proc: PathBuf,
    pub cgroup: PathBuf,
    pub state_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            proc: "/proc".into(),
            cgroup: "/sys/fs/cgroup".into(),
            state_dir: "/var/lib/nodevitals".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeletConfig {
    /// `None` = on when the agent can tell it runs on a Kubernetes node.
    pub enabled: Option<bool>,
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            url: "http://127.0.0.1:10248/healthz".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline of one scan; half of it bounds the runtime's container list.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for CpuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where the config came from, as `main` decides it from the command line.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `--config PATH`: the file must exist and be valid.
    Explicit(PathBuf),
    /// The default path: used when present, built-in defaults otherwise.
    Default(PathBuf),
}

impl ConfigSource {
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Explicit(p) | ConfigSource::Default(p) => p,
        }
    }
}

impl Config {
    /// Loads and validates the config named by `source`.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let path = source.path();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && matches!(source, ConfigSource::Default(_)) =>
            {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let location = inner
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_owned(),
                location,
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                // One line, as promised: toml spreads some messages over two.
                message: inner
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(": "),
            }
        })?;
        // The text just deserialized, so it is a valid table.
        if let Ok(table) = text.parse::<toml::Table>() {
            config.fit_unset_timeouts(&table);
            bounds::check_tables(&table).map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })?;
        }
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Semantic checks that serde cannot express; returns (key, message).
    fn validate(&self) -> Result<(), (String, String)> {
        self.check_bounds()?;
        let err = |key: &str, msg: String| Err((key.to_owned(), msg));
        let mut seen = Vec::new();
        for (i, rt) in self.runtimes.iter().enumerate() {
            let key = |k: &str| format!("runtime[{i}].{k}");
            if seen.contains(&rt.kind) {
                return err(
                    &key("kind"),
                    format!("runtime \"{}\" is listed twice", rt.kind),
                );
            }
            seen.push(rt.kind);
            if let Err(e) = crate::endpoint::socket_path(&rt.endpoint) {
                return err(&key("endpoint"), e.to_string());
            }
            check_probe_timing(&key("interval"), &key("timeout"), rt.interval, rt.timeout)?;
            if rt.restart.timeout.is_zero() {
                return err(&key("restart.timeout"), "must be longer than 0s".into());
            }
            if rt.restart.method == Some(RestartMethod::Command) && rt.restart.command.is_empty() {
                return err(
                    &key("restart.command"),
                    "method = \"command\" needs a non-empty command".into(),
                );
            }
        }
        let r = &self.remediation;
        r.check_hang_after(&self.runtimes)?;
        if r.failure_threshold == 0 {
            return err("remediation.failure_threshold", "must be at least 1".into());
        }
        if r.backoff_initial > r.backoff_max {
            return err(
                "remediation.backoff_initial",
                format!(
                    "{} is longer than remediation.backoff_max ({})",
                    humantime::format_duration(r.backoff_initial),
                    humantime::format_duration(r.backoff_max)
                ),
            );
        }
        if !(0.0..=1.0).contains(&r.backoff_jitter) {
            return err(
                "remediation.backoff_jitter",
                format!("{} must be between 0 and 1", r.backoff_jitter),
            );
        }
        if r.window.is_zero() {
            return err("remediation.window", "must be longer than 0s".into());
        }
        check_probe_timing(
            "kubelet.interval",
            "kubelet.timeout",
            self.kubelet.interval,
            self.kubelet.timeout,
        )?;
        if !self.kubelet.url.starts_with("http://") {
            return err(
                "kubelet.url",
                format!("\"{}\" must be an http:// URL", self.kubelet.url),
            );
        }
        check_probe_timing(
            "dns.interval",
            "dns.timeout",
            self.dns.interval,
            self.dns.timeout,
        )?;
        self.validate_dns()?;
        check_probe_timing(
            "cpu.interval",
            "cpu.timeout",
            self.cpu.interval,
            self.cpu.timeout,
        )?;
        self.kubernetes.validate()?;
        Ok(())
    }
}

/// A probe's deadline must fit inside its interval, or runs would overlap.
fn check_probe_timing(
    interval_key: &str,
    timeout_key: &str,
    interval: Duration,
    timeout: Duration,
) -> Result<(), (String, String)> {
    if interval.is_zero() {
        return Err((interval_key.into(), "must be longer than 0s".into()));
    }
    if timeout.is_zero() {
        return Err((timeout_key.into(), "must be longer than 0s".into()));
    }
    if timeout > interval {
        return Err((
            timeout_key.into(),
            format!(
                "{} is longer than {interval_key} ({}); a probe's deadline must fit in its interval",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(())
}

/// 1-based line number of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/nv.toml"), text)
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[dns]\nenabled = true\n\nintervall = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/nv.toml"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("intervall"), "{e}");
    }

    #[test]
    fn bad_duration_names_key() {
        let e = parse("[remediation]\ncooldown = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("remediation.cooldown"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn timeout_longer_than_interval_is_rejected() {
        let e = parse("[dns]\ninterval = \"1s\"\ntimeout = \"2s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dns.timeout"), "{e}");
    }

    #[test]
    fn runtime_entry_parses_with_kind_defaults() {
        let c = parse(
            "[[runtime]]\nkind = \"docker\"\nendpoint = \"unix:///run/d.sock\"\n[runtime.restart]\npidfile = \"/run/d.pid\"\n",
        )
        .unwrap();
        assert_eq!(c.runtimes.len(), 1);
        assert_eq!(c.runtimes[0].kind, RuntimeKind::Docker);
        assert_eq!(c.runtimes[0].interval, Duration::from_secs(10));
        assert_eq!(
            c.runtimes[0].restart.pidfile.as_deref(),
            Some(Path::new("/run/d.pid"))
        );
    }

    #[test]
    fn duplicate_runtime_and_bad_scheme_are_rejected() {
        let dup = "[[runtime]]\nkind = \"docker\"\nendpoint = \"/a.sock\"\n[[runtime]]\nkind = \"docker\"\nendpoint = \"/b.sock\"\n";
        assert!(parse(dup)
            .unwrap_err()
            .to_string()
            .contains("runtime[1].kind"));
        let tcp = "[[runtime]]\nkind = \"docker\"\nendpoint = \"tcp://1.2.3.4:2375\"\n";
        assert!(parse(tcp)
            .unwrap_err()
            .to_string()
            .contains("runtime[0].endpoint"));
    }

    #[test]
    fn remediation_keys_are_validated() {
        let e = parse("[remediation]\nbackoff_jitter = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("remediation.backoff_jitter"), "{e}");
        let rt = "[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\n[runtime.restart]\n";
        let e = parse(&format!("{rt}diagnostic_signal = \"SIGKILL\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtime[0].restart.diagnostic_signal"), "{e}");
        let e = parse(&format!("{rt}timeout = \"0s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("runtime[0].restart.timeout"), "{e}");
        let c = parse(&format!(
            "{rt}method = \"systemd\"\ngrace = \"3s\"\n[remediation]\nrefuse_if_kills_workloads = true\n"
        ))
        .unwrap();
        assert_eq!(c.runtimes[0].restart.grace, Duration::from_secs(3));
        assert!(c.remediation.refuse_if_kills_workloads);
    }

    #[test]
    fn hang_after_must_outlast_a_slow_runtimes_silence() {
        let rt = "[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\ninterval = \"2s\"\ntimeout = \"1s\"\n";
        let e = parse(&format!("{rt}[remediation]\nhang_after = \"2s\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("remediation.hang_after") && e.contains("3s"),
            "{e}"
        );
        assert!(parse(&format!("{rt}[remediation]\nhang_after = \"3s\"\n")).is_ok());
        let e = parse("[remediation]\nhang_after = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("remediation.hang_after"), "{e}");
        // Auto-detected runtimes are probed every 10s with a 5s deadline.
        let e = parse("[remediation]\nhang_after = \"10s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto-detected") && e.contains("15s"), "{e}");
    }

    #[test]
    fn missing_default_file_is_defaults_but_explicit_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absent.toml");
        assert_eq!(
            Config::load(&ConfigSource::Default(p.clone())).unwrap(),
            Config::default()
        );
        assert!(Config::load(&ConfigSource::Explicit(p)).is_err());
    }
}
