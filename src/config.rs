//! Typed configuration: the TOML contract of DESIGN.md, parsed once and validated
//! once. Every key is optional; unknown keys are rejected; errors name the file,
//! the key and (for syntax and type errors) the line.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Docker,
    Containerd,
    Crio,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Crio => "crio",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    pub endpoint: String,
    #[serde(default = "default_runtime_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_runtime_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub restart: RestartConfig,
}

fn default_runtime_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_runtime_timeout() -> Duration {
    Duration::from_secs(5)
}

impl RuntimeConfig {
    /// A runtime entry with the defaults of its kind, as auto-detection builds it.
    pub fn detected(kind: RuntimeKind, endpoint: String) -> Self {
        Self {
            kind,
            endpoint,
            interval: default_runtime_interval(),
            timeout: default_runtime_timeout(),
            restart: RestartConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RestartMethod {
    #[default]
    Signal,
    Systemd,
    Command,
}

/// How to restart one runtime. Unset fields take the defaults of the runtime's
/// kind (`remediation::defaults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    pub method: RestartMethod,
    pub pidfile: Option<PathBuf>,
    pub process: Option<String>,
    pub unit: Option<String>,
    pub command: Vec<String>,
    /// `signal`: sent first so the daemon dumps its state (dockerd: SIGUSR1 writes
    /// goroutine stacks); "none" disables it. Unset = the kind's default.
    pub diagnostic_signal: Option<String>,
    /// `signal`: how long SIGTERM may take before SIGKILL.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// `systemd` and `command`: deadline of the restart command.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `systemd`: the systemctl binary (tests and DaemonSets substitute a wrapper).
    pub systemctl: PathBuf,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            method: RestartMethod::Signal,
            pidfile: None,
            process: None,
            unit: None,
            command: Vec::new(),
            diagnostic_signal: None,
            grace: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            systemctl: "systemctl".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    pub enabled: bool,
    pub dry_run: bool,
    pub failure_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub hang_after: Duration,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub boot_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    #[serde(with = "humantime_serde")]
    pub reset_after: Duration,
    #[serde(with = "humantime_serde")]
    pub recovery_timeout: Duration,
    /// Random extra delay on each backoff step, as a fraction of the step (0..=1).
    pub backoff_jitter: f64,
    /// Refuse a restart that would kill running containers (dockerd without
    /// live-restore), reporting `skipped_total{reason="kills_workloads"}`.
    pub refuse_if_kills_workloads: bool,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            failure_threshold: 3,
            hang_after: Duration::from_secs(30),
            cooldown: Duration::from_secs(120),
            boot_grace: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(60),
            backoff_max: Duration::from_secs(1800),
            max_restarts: 3,
            window: Duration::from_secs(3600),
            reset_after: Duration::from_secs(600),
            recovery_timeout: Duration::from_secs(120),
            backoff_jitter: 0.2,
            refuse_if_kills_workloads: false,
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
pub struct DnsConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline of one query (a pair: of both answers).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Empty: the nameservers of `resolv_conf`.
    pub servers: Vec<DnsServer>,
    pub names: Vec<DnsName>,
    pub qtypes: Vec<DnsQtype>,
    pub transports: Vec<DnsTransport>,
    /// Over UDP, send A and AAAA back-to-back from one socket, as glibc and musl do.
    pub pair: bool,
    pub resolv_conf: PathBuf,
    pub lookups: Vec<DnsName>,
    /// Probe from inside this network namespace (`/proc/<pid>/ns/net`,
    /// `/var/run/netns/<name>`); unset = the agent's own.
    pub netns: Option<PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            servers: Vec::new(),
            names: vec![DnsName("kubernetes.default.svc.cluster.local.".into())],
            qtypes: vec![DnsQtype::A, DnsQtype::AAAA],
            transports: vec![DnsTransport::Udp],
            pair: true,
            resolv_conf: "/etc/resolv.conf".into(),
            lookups: Vec::new(),
            netns: None,
        }
    }
}

/// A DNS server: "ip" (port 53) or "ip:port" ("[v6]:port").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsServer(pub SocketAddr);

impl TryFrom<String> for DnsServer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(a) = t.parse::<SocketAddr>() {
            return Ok(DnsServer(a));
        }
        t.parse::<std::net::IpAddr>()
            .map(|ip| DnsServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("\"{s}\" is not an IP address or ip:port"))
    }
}

impl From<DnsServer> for String {
    fn from(s: DnsServer) -> String {
        s.0.to_string()
    }
}

/// A domain name as written in the config ("a.b." is absolute, "a.b" relative).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(pub String);

impl TryFrom<String> for DnsName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || t == "." {
            return Err("a name must not be empty".into());
        }
        hickory_proto::rr::Name::from_ascii(t)
            .map_err(|e| format!("\"{s}\" is not a valid domain name: {e}"))?;
        Ok(DnsName(t.to_owned()))
    }
}

impl From<DnsName> for String {
    fn from(n: DnsName) -> String {
        n.0
    }
}

/// The query types the prober sends.
#[allow(clippy::upper_case_acronyms)] // spelled as in DNS
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsQtype {
    A,
    AAAA,
    CNAME,
    MX,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
}

impl DnsQtype {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsQtype::A => "A",
            DnsQtype::AAAA => "AAAA",
            DnsQtype::CNAME => "CNAME",
            DnsQtype::MX => "MX",
            DnsQtype::NS => "NS",
            DnsQtype::PTR => "PTR",
            DnsQtype::SOA => "SOA",
            DnsQtype::SRV => "SRV",
            DnsQtype::TXT => "TXT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    Udp,
    Tcp,
}

impl DnsTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
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
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
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
                message: inner.message().trim().to_owned(),
            }
        })?;
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
            if let Err(msg) = crate::endpoint::socket_path(&rt.endpoint) {
                return err(&key("endpoint"), msg);
            }
            check_probe_timing(&key("interval"), &key("timeout"), rt.interval, rt.timeout)?;
            if let Some(sig) = &rt.restart.diagnostic_signal {
                if let Err(msg) = crate::remediation::signal_by_name(sig) {
                    return err(&key("restart.diagnostic_signal"), msg);
                }
            }
            if rt.restart.timeout.is_zero() {
                return err(&key("restart.timeout"), "must be longer than 0s".into());
            }
            if rt.restart.method == RestartMethod::Command && rt.restart.command.is_empty() {
                return err(
                    &key("restart.command"),
                    "method = \"command\" needs a non-empty command".into(),
                );
            }
        }
        let r = &self.remediation;
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
        Ok(())
    }
}

impl Config {
    fn validate_dns(&self) -> Result<(), (String, String)> {
        let d = &self.dns;
        let err = |key: &str, msg: &str| Err((format!("dns.{key}"), msg.to_owned()));
        if d.enabled && d.qtypes.is_empty() && !d.names.is_empty() {
            return err(
                "qtypes",
                "must list at least one query type when names are probed",
            );
        }
        if d.enabled && d.transports.is_empty() && !d.names.is_empty() {
            return err(
                "transports",
                "must list udp, tcp or both when names are probed",
            );
        }
        if d.netns.as_ref().is_some_and(|p| !p.is_absolute()) {
            return err("netns", "must be an absolute path");
        }
        for (key, list) in [
            ("qtypes", has_duplicates(&d.qtypes)),
            ("transports", has_duplicates(&d.transports)),
            ("servers", has_duplicates(&d.servers)),
            ("names", has_duplicates(&d.names)),
            ("lookups", has_duplicates(&d.lookups)),
        ] {
            if list {
                return err(key, "lists the same entry twice");
            }
        }
        Ok(())
    }
}

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter().enumerate().any(|(i, x)| v[..i].contains(x))
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
    fn dns_keys_are_typed() {
        let c = parse(
            "[dns]\nservers = [\"10.96.0.10\", \"127.0.0.53:5353\", \"[::1]:54\"]\nqtypes = [\"A\", \"MX\"]\ntransports = [\"tcp\"]\npair = false\nlookups = [\"example.com\"]\n",
        )
        .unwrap();
        let servers: Vec<String> = c.dns.servers.iter().map(|s| s.0.to_string()).collect();
        assert_eq!(servers, ["10.96.0.10:53", "127.0.0.53:5353", "[::1]:54"]);
        assert_eq!(c.dns.qtypes, [DnsQtype::A, DnsQtype::MX]);
        assert_eq!(c.dns.transports, [DnsTransport::Tcp]);
        assert!(!c.dns.pair);
        assert_eq!(c.dns.lookups, [DnsName("example.com".into())]);
    }

    #[test]
    fn bad_dns_values_name_their_key() {
        for (text, key) in [
            ("[dns]\nservers = [\"10.0.0.300\"]\n", "dns.servers"),
            ("[dns]\nqtypes = [\"A\", \"QUUX\"]\n", "dns.qtypes"),
            ("[dns]\ntransports = [\"quic\"]\n", "dns.transports"),
            ("[dns]\nnames = [\"\"]\n", "dns.names"),
            ("[dns]\nlookups = [\"a..b\"]\n", "dns.lookups"),
            ("[dns]\nqtypes = []\n", "dns.qtypes"),
            ("[dns]\nqtypes = [\"A\", \"A\"]\n", "dns.qtypes"),
            ("[dns]\npair = \"yes\"\n", "dns.pair"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
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
            "{rt}method = \"systemd\"\nsystemctl = \"/opt/systemctl\"\ngrace = \"3s\"\n[remediation]\nrefuse_if_kills_workloads = true\n"
        ))
        .unwrap();
        assert_eq!(c.runtimes[0].restart.grace, Duration::from_secs(3));
        assert!(c.remediation.refuse_if_kills_workloads);
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
