//! What ships is what is tested (node-problem-detector's TestShippedConfigs):
//! daemonset.yaml validates against the Kubernetes schemas (kubernetes-validate,
//! strict) and agrees with the binary's flags, config defaults, paths and
//! ports; the systemd unit passes `systemd-analyze verify` and agrees with the
//! binary; every TOML example in the deployment docs is a valid config.

mod support;

use nodevitals::config::{
    Config, DnsConfig, PathsConfig, RuntimeConfig, RuntimeKind, DEFAULT_CONFIG_PATH,
};
use nodevitals::runtime::detect;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The manifest's documents, by kind.
fn manifest() -> BTreeMap<String, Value> {
    let text = read("daemonset.yaml");
    let mut docs = BTreeMap::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).expect("daemonset.yaml is valid YAML");
        let kind = v["kind"]
            .as_str()
            .expect("every document has a kind")
            .to_owned();
        // RBAC objects come in pairs (cluster and namespaced): keyed by namespace.
        let key = match (kind.as_str(), v["metadata"]["namespace"].as_str()) {
            ("Role" | "RoleBinding", Some(ns)) => format!("{kind}/{ns}"),
            _ => kind.clone(),
        };
        assert!(docs.insert(key, v).is_none(), "two {kind} documents");
    }
    docs
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// Runs the binary with `args` plus `check-config`; panics unless it accepts them.
#[allow(clippy::disallowed_methods)]
fn check_config_accepts(args: &[String], what: &str) {
    if let Err(e) = support::process::output(
        Command::new(env!("CARGO_BIN_EXE_nodevitals"))
            .args(args)
            .arg("check-config"),
    ) {
        panic!("{what}: nodevitals {args:?} check-config rejected it:\n{e}");
    }
}

/// `args` with the value of `--config` replaced by `path`; panics unless the
/// original value is `expected`.
fn with_config(args: &[String], expected: &str, path: &Path) -> Vec<String> {
    let i = args
        .iter()
        .position(|a| a == "--config")
        .expect("--config is passed explicitly, so a missing file is an error");
    assert_eq!(args[i + 1], expected, "--config path");
    let mut out = args.to_vec();
    out[i + 1] = path.display().to_string();
    out
}

/// Whether `path` is `mount` or below it.
fn under(path: &Path, mount: &str) -> bool {
    path.starts_with(mount)
}

#[test]
#[allow(clippy::disallowed_methods)]
fn manifest_validates_against_the_kubernetes_schemas() {
    let tool = repo("target/py/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/test.sh (it installs kubernetes-validate from PyPI into target/py)",
        tool.display()
    );
    let validate = |file: &Path| {
        Command::new(&tool)
            .args(["--strict", "--quiet", "--kubernetes-version", "1.37.0"])
            .arg(file)
            .output()
            .expect("run kubernetes-validate")
    };
    let out = validate(&repo("daemonset.yaml"));
    assert!(
        out.status.success(),
        "daemonset.yaml does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Strictness is real: an unknown field in the pod spec is rejected.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = read("daemonset.yaml").replacen(
        "      hostPID: true",
        "      hostPID: true\n      hostPid: true",
        1,
    );
    std::fs::write(&bad, text).unwrap();
    assert!(
        !validate(&bad).status.success(),
        "strict validation let an unknown field through"
    );
}

#[test]
fn manifest_agrees_with_the_binary() {
    let docs = manifest();
    let kinds: BTreeSet<&str> = docs.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Namespace",
            "Role/default",
            "Role/nodevitals",
            "RoleBinding/default",
            "RoleBinding/nodevitals",
            "ServiceAccount"
        ])
    );
    let ns = s(&docs["Namespace"]["metadata"]["name"], "namespace");
    for kind in ["ServiceAccount", "ConfigMap", "DaemonSet"] {
        assert_eq!(docs[kind]["metadata"]["namespace"], ns, "{kind} namespace");
    }

    // The ConfigMap's config is valid for this binary.
    let toml = s(&docs["ConfigMap"]["data"]["config.toml"], "config.toml");
    let config = Config::parse(Path::new("daemonset.yaml:config.toml"), toml)
        .unwrap_or_else(|e| panic!("the ConfigMap's config.toml: {e}"));

    let ds = &docs["DaemonSet"];
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    assert!(
        spec["tolerations"][0].get("key").is_none(),
        "tolerate every taint"
    );
    assert_eq!(
        spec["serviceAccountName"],
        docs["ServiceAccount"]["metadata"]["name"]
    );
    // hostPID: the runtime is found in /proc and signalled, so /proc must be
    // the node's (not remapped).
    assert_eq!(spec["hostPID"], true);
    assert_eq!(config.paths.proc, Path::new("/proc"));
    // kubelet's healthz is on the node's loopback.
    let kubelet_host = config.kubelet.url.trim_start_matches("http://");
    assert!(kubelet_host.starts_with("127.0.0.1:"), "{kubelet_host}");
    assert_eq!(
        spec["hostNetwork"], true,
        "the kubelet probe needs the node's loopback"
    );

    let containers = spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["image"],
        format!("nodevitals:{}", env!("CARGO_PKG_VERSION")),
        "the tag scripts/build-image.sh builds"
    );
    let env: Vec<&Value> = c["env"].as_array().into_iter().flatten().collect();
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME from the downward API"
    );

    // Mounts: name -> (mountPath, readOnly); volumes: name -> hostPath.
    let mounts: BTreeMap<&str, (&str, bool)> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                s(&m["name"], "mount name"),
                (s(&m["mountPath"], "mountPath"), m["readOnly"] == true),
            )
        })
        .collect();
    let volumes: BTreeMap<&str, &Value> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (s(&v["name"], "volume name"), v))
        .collect();
    let host_path = |name: &str| volumes[name]["hostPath"]["path"].as_str();
    let mount_of = |path: &Path| {
        mounts
            .iter()
            .filter(|(_, (m, _))| under(path, m))
            .max_by_key(|(_, (m, _))| m.len())
            .map(|(name, (m, ro))| (*name, *m, *ro))
            .unwrap_or_else(|| panic!("{} is not mounted into the container", path.display()))
    };

    // The config file: --config names the ConfigMap's key in its mount.
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| s(a, "arg").to_owned())
        .collect();
    let (name, mount, _) = mount_of(Path::new(DEFAULT_CONFIG_PATH));
    assert_eq!(
        volumes[name]["configMap"]["name"],
        docs["ConfigMap"]["metadata"]["name"]
    );
    assert_eq!(
        Path::new(mount).join("config.toml"),
        Path::new(DEFAULT_CONFIG_PATH)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, toml).unwrap();
    check_config_accepts(
        &with_config(&args, DEFAULT_CONFIG_PATH, &file),
        "daemonset.yaml args",
    );

    // Host paths the agent reads are mounted read-only, from where the node has
    // them; the state dir is the one writable host path.
    let defaults = PathsConfig::default();
    let (name, mount, ro) = mount_of(&config.paths.cgroup);
    assert!(ro, "cgroup mount must be read-only");
    assert_eq!(Path::new(mount), config.paths.cgroup);
    assert_eq!(host_path(name).map(PathBuf::from), Some(defaults.cgroup));
    let (name, mount, ro) = mount_of(&config.dns.resolv_conf);
    assert!(ro, "resolv.conf mount must be read-only");
    assert_eq!(Path::new(mount), config.dns.resolv_conf);
    assert_eq!(
        host_path(name).map(PathBuf::from),
        Some(DnsConfig::default().resolv_conf)
    );
    let (name, mount, ro) = mount_of(&config.paths.state_dir);
    assert!(!ro, "the state dir must be writable");
    assert_eq!(Path::new(mount), config.paths.state_dir);
    assert_eq!(
        host_path(name).map(PathBuf::from),
        Some(defaults.state_dir.clone())
    );
    // Auto-detected runtime sockets (and their pidfiles beside them) resolve
    // through the node's /run; the image has /var/run -> /run like the node.
    assert!(config.runtimes.is_empty(), "runtimes are auto-detected");
    for rt in detect::detect(None, |_| true) {
        let socket = nodevitals::endpoint::socket_path(&rt.endpoint).unwrap();
        let socket = match socket.strip_prefix("/var/run") {
            Ok(rest) => Path::new("/run").join(rest),
            Err(_) => socket,
        };
        let (name, _, ro) = mount_of(&socket);
        assert!(ro, "{} must be mounted read-only", socket.display());
        assert!(
            host_path(name).is_some(),
            "{} comes from the node",
            socket.display()
        );
    }
    // Restart method "systemd" reaches the node's systemd on the system bus.
    let (name, _, _) = mount_of(Path::new("/run/dbus/system_bus_socket"));
    assert_eq!(
        host_path(name),
        Some("/run"),
        "the node's system bus socket is mounted"
    );
    for (name, (path, ro)) in &mounts {
        if volumes[name].get("hostPath").is_some() && Path::new(path) != config.paths.state_dir {
            assert!(ro, "host mount {path} must be read-only");
        }
    }

    // One port for everything: the container port, both probes, the scrape
    // annotations, and server.listen agree.
    let port = i64::from(config.server.listen.port());
    assert_eq!(c["ports"][0]["containerPort"], port);
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], port);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], port);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.lines().any(|l| l == format!("EXPOSE {port}")),
        "Dockerfile EXPOSE {port}"
    );
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");

    // Least privilege, and the same capabilities the systemd unit keeps.
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let added: BTreeSet<String> = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|c| format!("CAP_{}", s(c, "capability")))
        .collect();
    let unit = unit_file();
    let bounded: BTreeSet<String> = unit["CapabilityBoundingSet"][0]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        added, bounded,
        "DaemonSet and systemd unit keep the same capabilities"
    );
    assert!(
        c["resources"]["limits"]["memory"].is_string(),
        "a memory limit"
    );
}

/// The unit file as key -> values (a key may repeat).
fn unit_file() -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read("systemd/nodevitals.service").lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        keys.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    keys
}

fn seconds(v: &str) -> u64 {
    humantime::parse_duration(v)
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .as_secs()
}

#[test]
fn unit_agrees_with_the_binary() {
    let unit = unit_file();
    let one = |k: &str| -> &str {
        let v = unit.get(k).unwrap_or_else(|| panic!("{k}= is missing"));
        assert_eq!(v.len(), 1, "{k}= is set more than once");
        &v[0]
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(one("Restart"), "always");
    assert!(seconds(one("WatchdogSec")) >= 10);
    assert!(
        seconds(one("TimeoutStopSec")) > nodevitals::agent::SHUTDOWN_GRACE.as_secs(),
        "systemd must let the agent drain"
    );
    assert_eq!(
        one("RestartPreventExitStatus"),
        "2",
        "exit 2 = invalid config"
    );
    // READY=1 waits for every probe's first run: a random offset up to its
    // interval, plus its deadline.
    let d = Config::default();
    let rt = RuntimeConfig::detected(RuntimeKind::Docker, String::new());
    let first_round = [
        rt.interval + rt.timeout,
        d.kubelet.interval + d.kubelet.timeout,
        d.dns.interval + d.dns.timeout,
        d.cpu.interval * 2,
    ]
    .into_iter()
    .max()
    .unwrap();
    assert!(
        seconds(one("TimeoutStartSec")) > first_round.as_secs() * 2,
        "TimeoutStartSec must leave room for the first round ({first_round:?})"
    );
    assert_eq!(
        Path::new(one("ReadWritePaths")),
        PathsConfig::default().state_dir,
        "the state dir is the one writable path"
    );
    assert_eq!(
        Path::new("/var/lib").join(one("StateDirectory")),
        PathsConfig::default().state_dir
    );
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert!(
        one("EnvironmentFile").starts_with('-'),
        "the environment file is optional"
    );
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .skip(1)
        .filter(|a| !a.starts_with('$'))
        .map(str::to_owned)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "").unwrap();
    check_config_accepts(&with_config(&exec, DEFAULT_CONFIG_PATH, &file), "ExecStart");
}

/// `systemd-analyze verify` on the unit inside a scratch root that holds the
/// binary at its ExecStart path and the system's own units; its output.
#[allow(clippy::disallowed_methods)]
fn verify(unit_text: &str) -> String {
    support::require("systemd-analyze", "systemd");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let exec = unit_file()["ExecStart"][0]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let place = |path: &str, from: &Path| {
        let to = r.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    place(&exec, Path::new(env!("CARGO_BIN_EXE_nodevitals")));
    place("/bin/kill", Path::new("/bin/kill"));
    // The targets and slices the unit's default dependencies name.
    let system = Path::new("/lib/systemd/system");
    for e in std::fs::read_dir(system)
        .expect("the system's unit directory")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".target") || name.ends_with(".slice")) && e.path().is_file() {
            place(&format!("/usr/lib/systemd/system/{name}"), &e.path());
        }
    }
    let unit = r.join("etc/systemd/system/nodevitals.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, unit_text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("nodevitals.service")
        .output()
        .expect("run systemd-analyze");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let text = read("systemd/nodevitals.service");
    // verify exits 0 even on problems: any output is a failure.
    let out = verify(&text);
    assert!(out.trim().is_empty(), "systemd-analyze verify:\n{out}");
    // And it does see problems: a misspelt key is reported.
    let out = verify(&text.replace("WatchdogSec=", "WatchdogSecs="));
    assert!(
        out.contains("WatchdogSecs"),
        "verify missed a bad key: {out:?}"
    );
}

#[test]
#[allow(clippy::disallowed_methods)]
fn unit_exposure_stays_low() {
    support::require("systemd-analyze", "systemd");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(repo("systemd/nodevitals.service"))
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for nodevitals.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.5, "exposure {level} (was 2.1):\n{text}");
}

#[test]
fn toml_examples_in_the_docs_are_valid_configs() {
    let mut seen = 0;
    for doc in [
        "README.md",
        "docs/deploy.md",
        "docs/cri.md",
        "docs/cpu.md",
        "systemd/README.md",
    ] {
        let text = read(doc);
        for (i, block) in text.split("```toml\n").skip(1).enumerate() {
            let body = block.split("```").next().unwrap();
            Config::parse(Path::new(&format!("{doc} example {}", i + 1)), body)
                .unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "the docs show at least one config");
}
