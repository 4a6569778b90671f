//! Test support: real daemons on private sockets, the agent binary, and helpers
//! to read its HTTP endpoints. Every daemon started here is stopped by PID when
//! its guard drops, however the test ends.
// Test support is where tests start daemons and wait on them.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)] // each integration test binary uses a different subset

pub mod agent_config;
pub mod busybox;
pub mod cgroup;
pub mod containerd;
pub mod cri_client;
pub mod cri_pod;
pub mod dns_config;
pub mod dns_responder;
pub mod dnsmasq;
pub mod dockerd;
pub mod freezer;
pub mod hostile;
pub mod kube_api;
pub mod kubelet;
pub mod node;
pub mod oci_image;
pub mod operator_view;
pub mod process;
pub mod prometheus;
pub mod threads;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

macro_rules! other_probes_off {
    () => {
        "[kubelet]\nenabled = false\n\n[dns]\nenabled = false\n\n[cpu]\nenabled = false\n"
    };
}

/// Config sections turning off every probe but the runtime's, for tests that
/// exercise only the runtime probe and remediation.
pub const OTHER_PROBES_OFF: &str = other_probes_off!();

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        cond().then_some(()).ok_or_else(String::new)
    });
}

/// Polls `look` every 50 ms until it finds what it waits for or `timeout`
/// passes; on a timeout the panic shows what `look` last saw instead.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut look: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match look() {
            Ok(found) => return found,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}{}",
            if seen.is_empty() {
                String::new()
            } else {
                format!("; it is {seen}")
            }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every probe but the runtime's off, and no remediation: the others would
/// reach beyond loopback (DNS to the host's resolvers) or need a Kubernetes node.
pub const ONLY_RUNTIME: &str = concat!("\n[remediation]\nenabled = false\n\n", other_probes_off!());

/// `runtime` entries (or none), the CPU probe every second on the host's
/// cgroups, and nothing else.
pub fn cpu_config(runtime: &str) -> String {
    let cpu_on = ONLY_RUNTIME.replace(
        "[cpu]\nenabled = false",
        "[cpu]\ninterval = \"1s\"\ntimeout = \"1s\"",
    );
    format!("[paths]\ncgroup = \"/sys/fs/cgroup\"\n\n{runtime}{cpu_on}")
}

/// A config probing the Docker daemon at `endpoint` every second, and nothing else.
pub fn docker_config(endpoint: &str) -> String {
    format!("{}{ONLY_RUNTIME}", runtime_entry("docker", endpoint))
}

/// A `[[runtime]]` entry of `kind` at `endpoint`, probed every second.
pub fn runtime_entry(kind: &str, endpoint: &str) -> String {
    format!(
        "[[runtime]]\nkind = \"{kind}\"\nendpoint = \"{endpoint}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"
    )
}

/// Fails the test, saying how to get it, when `binary` is not on PATH.
pub fn require(binary: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{binary} is not installed: run scripts/test.sh (it installs the Debian package {package})"
    );
}

/// A scratch directory under /tmp with a short path (unix socket paths are
/// limited to 108 bytes), removed on drop.
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("nv-{prefix}-"))
        .tempdir_in("/tmp")
        .expect("create temp dir under /tmp")
}

/// The agent binary, running with a config file of the test's making and
/// listening on an ephemeral loopback port.
pub struct AgentProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl AgentProcess {
    /// Starts `nodevitals --config <dir>/config.toml --listen 127.0.0.1:0 [extra]`.
    pub fn start(dir: &Path, config: &str, extra: &[&str]) -> AgentProcess {
        Self::start_with(dir, config, extra, |_| {})
    }

    pub fn start_with(
        dir: &Path,
        config: &str,
        extra: &[&str],
        customise: impl FnOnce(&mut Command),
    ) -> AgentProcess {
        let program = Path::new(env!("CARGO_BIN_EXE_nodevitals"));
        Self::start_program(program, dir, config, extra, customise)
    }

    /// Like [`Self::start_with`] for another build of the agent (benchmarks
    /// measure the shipped static binary).
    pub fn start_program(
        program: &Path,
        dir: &Path,
        config: &str,
        extra: &[&str],
        customise: impl FnOnce(&mut Command),
    ) -> AgentProcess {
        assert_dns_stays_on_loopback(config);
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("write agent config");
        let mut cmd = Command::new(program);
        cmd.arg("--config")
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("NODEVITALS_LOG", "nodevitals=debug,info")
            .env_remove("NODE_NAME")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("DOCKER_HOST")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        customise(&mut cmd);
        let mut child = cmd.spawn().expect("start nodevitals");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("agent stderr");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut agent = AgentProcess {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            config_path,
            logs,
        };
        let mut addr = None;
        wait_until(Duration::from_secs(20), "the agent to listen", || {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("agent exited with {status}: {}", agent.logs());
            }
            addr = agent
                .logs
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| listen_addr(l));
            addr.is_some()
        });
        agent.addr = addr.unwrap();
        agent
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.logs()))
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics");
        Metrics::parse(&body)
    }

    /// Waits until the scraped metrics satisfy `cond`, returning that scrape.
    pub fn wait_metrics(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics();
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}\nlast scrape:\n{}\nagent log:\n{}",
                m.text,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: i32) {
        process::signal(self.pid(), sig);
    }

    /// Waits for the agent to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut code = None;
        wait_until(timeout, "the agent to exit", || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.flatten()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bound address from the agent's "serving" log line, text or JSON format.
/// Tests send no traffic off loopback: an agent whose DNS probe would query
/// the host's own nameservers (the default) is refused before it starts.
fn assert_dns_stays_on_loopback(config: &str) {
    let Ok(parsed) = nodevitals::config::Config::parse(Path::new("test config"), config) else {
        return; // invalid configs are what some tests are about
    };
    let dns = &parsed.dns;
    if !dns.enabled {
        return;
    }
    assert!(
        dns.servers.iter().all(|s| s.0.ip().is_loopback()),
        "test config sends DNS off loopback: {:?}",
        dns.servers
    );
    let uses_resolv_conf =
        (dns.servers.is_empty() && !dns.names.is_empty()) || !dns.lookups.is_empty();
    assert!(
        !uses_resolv_conf || dns.resolv_conf != Path::new("/etc/resolv.conf"),
        "test config would query the host's nameservers: set [dns] servers or resolv_conf"
    );
}

pub fn listen_addr(line: &str) -> Option<SocketAddr> {
    let key = ["listen=", "\"listen\":"]
        .iter()
        .find(|k| line.contains(*k))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ',' || c == '}')
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

/// A minimal HTTP/1.1 GET with a 5 s deadline on every socket operation.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {raw:.200}")))?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The payload of a chunked HTTP/1.1 body (Prometheus's API answers chunked).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One scrape, parsed into samples.
pub struct Metrics {
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// `nodevitals_remediation_restarts_total` of `target` with `result`,
    /// summed over its other labels.
    pub fn restarts(&self, target: &str, result: &str) -> f64 {
        self.all(
            "nodevitals_remediation_restarts_total",
            &[("target", target), ("result", result)],
        )
        .iter()
        .sum()
    }

    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = match line.rsplit_once(' ') {
                Some(p) => p,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_owned(), parse_labels(rest.trim_end_matches('}'))),
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push((name, labels, value));
        }
        Metrics {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.all(name, labels).first().copied()
    }

    /// Every sample named `name` whose labels include `labels`.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect()
    }

    /// How many runs of `probe` the scheduler has recorded.
    pub fn probe_runs(&self, probe: &str) -> f64 {
        self.get(
            "nodevitals_probe_duration_seconds_count",
            &[("probe", probe)],
        )
        .unwrap_or(0.0)
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        !self.all(name, labels).is_empty()
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_owned();
        let after = &rest[eq + 2..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        out.insert(key, after[..end].to_owned());
        rest = after.get(end + 1..).unwrap_or("");
    }
    out
}
