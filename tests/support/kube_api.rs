//! The stand-in Kubernetes API server (`kube_apiserver.py`, run with the venv
//! `scripts/test.sh` makes): HTTPS with its own CA and a bearer token, objects
//! with resourceVersion, request bodies validated against the Kubernetes 1.37
//! OpenAPI schema. It stands in for kube-apiserver, which cannot be installed
//! on the test machines. Stopped by PID when dropped; its state file lets a
//! test stop it ("down") and start it again on the same port.

use super::{http_get, wait_for};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct KubeApi {
    pub dir: tempfile::TempDir,
    pub port: u16,
    control: SocketAddr,
    child: Option<Child>,
    nodes: Vec<String>,
}

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python");
    assert!(
        venv.is_file()
            && Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/py/bin/kubernetes-validate")
                .is_file(),
        "{} with kubernetes-validate is missing: run scripts/test.sh (it creates the venv)",
        venv.display()
    );
    venv
}

impl KubeApi {
    /// Starts the stand-in with one registered Node per name in `nodes`.
    pub fn start(nodes: &[&str]) -> KubeApi {
        super::require("openssl", "openssl");
        let dir = super::short_tempdir("kapi");
        let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        let (child, port, control) = spawn(dir.path(), 0, &nodes);
        KubeApi {
            dir,
            port,
            control,
            child: Some(child),
            nodes,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A `[kubernetes]` section pointing the agent at this server as `node`.
    pub fn config_section(&self, node: &str, extra: &str) -> String {
        format!(
            "\n[kubernetes]\nkubeconfig = \"{}\"\nnode_name = \"{node}\"\nnamespace = \"nodevitals\"\nrequest_timeout = \"2s\"\n{extra}\n",
            self.kubeconfig().display()
        )
    }

    /// Stops the server ("down"): connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::process::stop(c.id() as i32, Duration::from_secs(5));
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the objects it had.
    pub fn restart(&mut self) {
        self.stop();
        let (child, port, control) = spawn(self.dir.path(), self.port, &self.nodes);
        assert_eq!(port, self.port);
        self.child = Some(child);
        self.control = control;
    }

    /// `normal`, `delay` (every answer 30 s late), `500` or `garbage`.
    pub fn set_mode(&self, mode: &str) {
        let (code, _) = http_get(self.control, &format!("/mode?{mode}")).expect("stand-in control");
        assert_eq!(code, 200);
    }

    /// Every stored object whose key (group, resource, namespace, name) matches.
    pub fn objects(&self, resource: &str) -> Vec<serde_json::Value> {
        let (code, body) = http_get(self.control, "/objects").expect("stand-in control");
        assert_eq!(code, 200);
        let all: Vec<serde_json::Value> = serde_json::from_str(&body).expect("objects JSON");
        all.into_iter()
            .filter(|o| o["key"][1] == resource)
            .map(|o| o["object"].clone())
            .collect()
    }

    pub fn node(&self, name: &str) -> serde_json::Value {
        self.objects("nodes")
            .into_iter()
            .find(|n| n["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("node {name} not stored"))
    }

    /// The condition of `type` on the Node, if written.
    pub fn condition(&self, node: &str, type_: &str) -> Option<serde_json::Value> {
        self.node(node)["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// Waits until condition `type_` on `node` satisfies `cond`; returns it.
    pub fn wait_condition(
        &self,
        node: &str,
        type_: &str,
        timeout: Duration,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(
            timeout,
            &format!("condition {type_} on {node}"),
            || match self.condition(node, type_) {
                Some(c) if cond(&c) => Ok(c),
                last => Err(format!("{last:?}")),
            },
        )
    }

    /// Events stored about `node` with `reason`.
    pub fn events(&self, reason: &str) -> Vec<serde_json::Value> {
        self.objects("events")
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// One request as an operator's kubectl would make it (curl with the CA
    /// and the operator's token, not the agent's);
    /// returns the HTTP status.
    pub fn kubectl(&self, method: &str, path: &str, body: &str) -> u16 {
        let dir = self.dir.path();
        let token = std::fs::read_to_string(dir.join("admin-token")).expect("stand-in token");
        let out = super::process::output(
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "20",
                ])
                .arg("--cacert")
                .arg(dir.join("ca.crt"))
                .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
                .args(["-H", "Content-Type: application/json", "-X", method])
                .args(["--data-binary", body])
                .arg(format!("https://127.0.0.1:{}{path}", self.port)),
        )
        .expect("curl");
        out.parse().unwrap_or(0)
    }

    /// Every request the agent made (not the operator's): verb, group,
    /// resource, subresource, namespace, name.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["user"] == "agent")
            .collect()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(dir: &Path, port: u16, nodes: &[String]) -> (Child, u16, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kube_apiserver.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &port.to_string()]);
    for n in nodes {
        cmd.args(["--node", n]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the stand-in API server");
    let stdout = child.stdout.take().expect("stand-in stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("the stand-in API server did not start within 60 s");
        }
    };
    let mut parts = line.split_whitespace().skip(1);
    let mut next = || -> u16 {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("stand-in API server said {line:?}"))
    };
    let (port, control) = (next(), next());
    (child, port, SocketAddr::from(([127, 0, 0, 1], control)))
}
