//! A real Prometheus server (Debian `prometheus`) on loopback with its own
//! config and storage, scraping the given agents every second as job
//! `nodevitals` and loading the given rule files; stopped by PID on drop.

use super::{http_get, short_tempdir, wait_until};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(targets: &[SocketAddr], rule_files: &[&Path]) -> Prometheus {
        super::require("prometheus", "prometheus");
        let dir = short_tempdir("prom");
        let rules: String = rule_files
            .iter()
            .map(|r| format!("  - {}\n", r.display()))
            .collect();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
rule_files:\n{rules}\
scrape_configs:\n  - job_name: nodevitals\n    static_configs:\n      - targets: [{targets}]\n",
            targets = targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // A port the kernel just handed out; Prometheus cannot report an
        // ephemeral port it bound, so it is given one.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a loopback port");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, addr, dir };
        wait_until(Duration::from_secs(30), "prometheus to be ready", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", p.log());
            }
            http_get(p.addr, "/-/ready").is_ok_and(|r| r.0 == 200)
        });
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(self.addr, path).expect("query prometheus");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The result of an instant query (a vector's samples, or a scalar).
    pub fn instant(&self, promql: &str) -> Vec<Value> {
        self.result(&format!("/api/v1/query?query={}", url_encode(promql)))
    }

    /// The series of a range query over the last `seconds`, one point per `step`.
    pub fn range(&self, promql: &str, seconds: u64, step: u64) -> Vec<Value> {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.result(&format!(
            "/api/v1/query_range?query={}&start={}&end={end}&step={step}",
            url_encode(promql),
            end - seconds
        ))
    }

    fn result(&self, path: &str) -> Vec<Value> {
        let v = self.api(path);
        match &v["data"]["result"] {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            scalar => vec![scalar.clone()],
        }
    }

    /// The values of an instant query's result vector.
    pub fn query(&self, promql: &str) -> Vec<f64> {
        self.instant(promql)
            .iter()
            .filter_map(|s| s["value"][1].as_str()?.parse().ok())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        super::process::stop(self.child.id() as i32, Duration::from_secs(10));
        let _ = self.child.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
