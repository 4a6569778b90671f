//! The agent as part of a cluster: NodeConditions and Events on its Node,
//! fleet restart slots and the pause switch, against a stand-in for the
//! Kubernetes API server (`support::kube_api`: the real wire protocol over
//! HTTPS with a bearer token and a CA, bodies validated against the 1.37
//! OpenAPI schema; no real API server can be installed here) and real dockerd
//! processes hung with SIGSTOP. Every test checks that the requests it caused
//! are allowed by the RBAC rules shipped in daemonset.yaml.

mod support;

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use support::dockerd::Dockerd;
use support::kube_api::KubeApi;
use support::{process, short_tempdir, wait_until, AgentProcess, Metrics};

const MINUTE: Duration = Duration::from_secs(60);
const UNHEALTHY: &str = "ContainerRuntimeUnhealthy";
const REPAIR_FAILED: &str = "ContainerRuntimeRepairFailed";
const KUBELET_TYPES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// An agent config for `d` as node `node` of `api`: probes every 300 ms, a
/// hang after 1.5 s, `remediation` and `kubernetes` keys added.
fn config(
    d: &Dockerd,
    state: &Path,
    api: &KubeApi,
    node: &str,
    remediation: &str,
    kubernetes: &str,
) -> String {
    format!(
        r#"
[paths]
state_dir = "{state}"

[[runtime]]
kind = "docker"
endpoint = "{endpoint}"
interval = "300ms"
timeout = "250ms"

[runtime.restart]
method = "signal"
grace = "1s"
pidfile = "{pidfile}"

[remediation]
failure_threshold = 3
hang_after = "1500ms"
cooldown = "1s"
boot_grace = "0s"
backoff_initial = "1s"
backoff_max = "2s"
backoff_jitter = 0.0
recovery_timeout = "30s"
{remediation}
{others}{kube}"#,
        state = state.display(),
        endpoint = d.endpoint(),
        pidfile = d.pidfile.display(),
        others = support::OTHER_PROBES_OFF,
        kube = api.config_section(node, kubernetes),
    )
}

fn status_of(c: &serde_json::Value) -> &str {
    c["status"].as_str().unwrap_or("")
}

fn restarts(m: &Metrics, result: &str) -> f64 {
    m.all(
        "nodevitals_remediation_restarts_total",
        &[("target", "docker"), ("result", result)],
    )
    .iter()
    .sum()
}

fn skipped(m: &Metrics, reason: &str) -> f64 {
    m.get(
        "nodevitals_remediation_skipped_total",
        &[("target", "docker"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// One RBAC rule of the manifest, flattened: (group, resource, verb).
type Grant = (String, String, String);

#[derive(Deserialize)]
struct Rule {
    #[serde(rename = "apiGroups")]
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    #[serde(rename = "resourceNames", default)]
    resource_names: Vec<String>,
}

/// Every grant of the manifest's Roles and ClusterRoles, with the namespace
/// it applies in ("" = cluster-wide) and the names it is limited to.
fn shipped_grants() -> Vec<(String, Grant, Vec<String>)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("daemonset.yaml"))
            .unwrap();
    let mut grants = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        let ns = match v["kind"].as_str() {
            Some("ClusterRole") => "",
            Some("Role") => v["metadata"]["namespace"].as_str().unwrap(),
            _ => continue,
        };
        let rules: Vec<Rule> = serde_json::from_value(v["rules"].clone()).unwrap();
        for r in rules {
            for g in &r.api_groups {
                for res in &r.resources {
                    for verb in &r.verbs {
                        grants.push((
                            ns.to_owned(),
                            (g.clone(), res.clone(), verb.clone()),
                            r.resource_names.clone(),
                        ));
                    }
                }
            }
        }
    }
    grants
}

/// Every request the stand-in saw is allowed by the shipped rules (the agent's
/// namespace is `nodevitals`, as in the manifest). Returns the grants used.
fn assert_allowed_by_shipped_rbac(api: &KubeApi) -> BTreeSet<Grant> {
    let grants = shipped_grants();
    let mut used = BTreeSet::new();
    for r in api.requests() {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let resource = match s("subresource").as_str() {
            "" => s("resource"),
            sub => format!("{}/{sub}", s("resource")),
        };
        let want = (s("group"), resource, s("verb"));
        let ok = grants.iter().find(|(ns, g, names)| {
            *g == want
                && (ns.is_empty() || *ns == s("namespace"))
                && (names.is_empty() || names.contains(&s("name")))
        });
        assert!(
            ok.is_some(),
            "request {r} is not allowed by daemonset.yaml's RBAC"
        );
        used.insert(want);
    }
    used
}

/// Hang: ContainerRuntimeUnhealthy=True (Hung) within a probe interval of the
/// restart decision, an Event for the restart, False again and an Event on
/// recovery, the kubelet's conditions untouched byte for byte. Then, with the
/// budget spent (one restart per hour), the next hang sets
/// ContainerRuntimeRepairFailed=True (BudgetExhausted).
#[test]
fn hang_is_reported_on_the_node_and_budget_exhaustion_escalates() {
    let api = KubeApi::start(&["node-a"]);
    let d = Dockerd::start_supervised("k8s-hang");
    let dir = short_tempdir("k8s-hang-agent");
    let cfg = config(
        &d,
        &dir.path().join("state"),
        &api,
        "node-a",
        "max_restarts = 1\nwindow = \"1h\"",
        "",
    );
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    let healthy = api.wait_condition("node-a", UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    assert_eq!(healthy["reason"], "Healthy");
    let kubelet_before: Vec<serde_json::Value> = KUBELET_TYPES
        .iter()
        .map(|t| api.condition("node-a", t).unwrap())
        .collect();

    process::signal(d.pid(), libc::SIGSTOP);
    let hung = api.wait_condition("node-a", UNHEALTHY, MINUTE, |c| status_of(c) == "True");
    assert_eq!(hung["reason"], "Hung", "{hung}");
    let message = hung["message"].as_str().unwrap();
    assert!(
        message.contains("has not answered for") && message.contains("of 1 restarts used"),
        "{message}"
    );
    assert_ne!(hung["lastTransitionTime"], healthy["lastTransitionTime"]);
    wait_until(MINUTE, "a RuntimeRestarted event", || {
        !api.events("RuntimeRestarted").is_empty()
    });
    let restarted = &api.events("RuntimeRestarted")[0];
    assert_eq!(restarted["regarding"]["kind"], "Node");
    assert_eq!(
        restarted["regarding"]["uid"],
        api.node("node-a")["metadata"]["uid"]
    );
    assert_eq!(restarted["reportingController"], "nodevitals");
    assert_eq!(restarted["reportingInstance"], "node-a");
    assert!(
        restarted["note"].as_str().unwrap().contains("by signal"),
        "{restarted}"
    );

    let back = api.wait_condition("node-a", UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    assert_eq!(back["reason"], "Healthy");
    wait_until(MINUTE, "a RuntimeRecovered event", || {
        !api.events("RuntimeRecovered").is_empty()
    });
    let kubelet_after: Vec<serde_json::Value> = KUBELET_TYPES
        .iter()
        .map(|t| api.condition("node-a", t).unwrap())
        .collect();
    assert_eq!(
        kubelet_before, kubelet_after,
        "the kubelet's conditions are untouched"
    );
    let repair = api
        .condition("node-a", REPAIR_FAILED)
        .expect("RepairFailed written");
    assert_eq!(status_of(&repair), "False", "{repair}");
    d.wait_answering(MINUTE);

    // Budget spent: the next hang escalates.
    process::signal(d.pid(), libc::SIGSTOP);
    let failed = api.wait_condition("node-a", REPAIR_FAILED, MINUTE, |c| status_of(c) == "True");
    assert_eq!(failed["reason"], "BudgetExhausted", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("1 of 1 restarts used in the last 1h"),
        "{failed}"
    );
    wait_until(MINUTE, "a budget event", || {
        !api.events("RuntimeRestartBudgetExhausted").is_empty()
    });
    let m = agent.metrics();
    assert_eq!(restarts(&m, "success"), 1.0);
    assert_eq!(
        m.get(
            "nodevitals_node_condition",
            &[("condition", REPAIR_FAILED), ("status", "True")]
        ),
        Some(1.0)
    );
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status").1).unwrap();
    assert_eq!(
        status["kubernetes"]["conditions"]["ContainerRuntimeRepairFailed"]["status"], "True",
        "{status:#}"
    );
    process::signal(d.pid(), libc::SIGCONT);
    let used = assert_allowed_by_shipped_rbac(&api);
    for g in [
        ("", "nodes", "get"),
        ("", "nodes/status", "patch"),
        ("events.k8s.io", "events", "create"),
    ] {
        assert!(
            used.contains(&(g.0.into(), g.1.into(), g.2.into())),
            "{g:?} used"
        );
    }
}
