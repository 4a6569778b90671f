//! The prometheus-operator objects in deploy/prometheus-operator: the
//! PrometheusRule is generated from deploy/prometheus/nodevitals-rules.yml
//! (the one source of the alerts) and must equal it (regenerate with
//! `UPDATE_OPERATOR_RULES=1 cargo test --test operator_objects`); the
//! PodMonitor selects the DaemonSet's pods and port; both validate against the
//! operator's CRD schemas (@kubernetes-models/prometheus-operator, run by Node.js).

mod support;

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const HEADER: &str = "\
# Generated from deploy/prometheus/nodevitals-rules.yml: do not edit.
# Regenerate: UPDATE_OPERATOR_RULES=1 cargo test --test operator_objects
# The alerts of that file, for a Prometheus run by prometheus-operator
# (kube-prometheus-stack selects rules by its release label: add
# `release: <your release name>` under metadata.labels, or set
# prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false).
";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

fn one_doc(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel} holds one object");
    docs.remove(0)
}

/// The PrometheusRule that carries the shipped rules file.
fn generated_rule() -> Value {
    let rules = one_doc("deploy/prometheus/nodevitals-rules.yml");
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "nodevitals",
            "namespace": "nodevitals",
            "labels": { "app.kubernetes.io/name": "nodevitals" },
        },
        "spec": { "groups": rules["groups"] },
    })
}

const RULE_FILE: &str = "deploy/prometheus-operator/prometheusrule.yaml";

#[test]
fn prometheus_rule_carries_exactly_the_shipped_alerts() {
    let expected = generated_rule();
    if std::env::var_os("UPDATE_OPERATOR_RULES").is_some() {
        let yaml = serde_norway::to_string(&expected).unwrap();
        std::fs::write(repo(RULE_FILE), format!("{HEADER}{yaml}")).unwrap();
    }
    let committed = one_doc(RULE_FILE);
    assert!(
        committed == expected,
        "{RULE_FILE} differs from deploy/prometheus/nodevitals-rules.yml: \
         regenerate with UPDATE_OPERATOR_RULES=1 cargo test --test operator_objects"
    );
    let alerts = |v: &Value| -> Vec<String> {
        v["spec"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter_map(|r| r["alert"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(alerts(&committed).len() >= 8, "{:?}", alerts(&committed));
}

#[test]
fn pod_monitor_selects_the_daemonsets_pods_and_port() {
    let pm = one_doc("deploy/prometheus-operator/podmonitor.yaml");
    let ds = yaml_docs("daemonset.yaml")
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("daemonset.yaml has a DaemonSet");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "selector label {k}");
    }
    let namespace = &ds["metadata"]["namespace"];
    assert_eq!(&pm["spec"]["namespaceSelector"]["matchNames"][0], namespace);
    let job_label = pm["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(pod_labels[job_label], "nodevitals", "job=\"nodevitals\"");
    let ports: Vec<&Value> = ds["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for ep in pm["spec"]["podMetricsEndpoints"].as_array().unwrap() {
        assert!(
            ports.contains(&&ep["port"]),
            "port {} in {ports:?}",
            ep["port"]
        );
        assert_eq!(ep["path"], "/metrics");
    }
}

/// Writes each object as JSON into `dir` and runs the CRD-schema validator.
fn validate(dir: &Path, objects: &[(&str, Value)]) -> Result<String, String> {
    let files: Vec<String> = objects
        .iter()
        .map(|(name, v)| {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, v.to_string()).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    support::node::run("node/validate_operator.mjs", &args)
}

#[test]
fn objects_validate_against_the_operators_crd_schemas() {
    support::node::require_package("@kubernetes-models/prometheus-operator");
    let dir = support::short_tempdir("crd");
    let pm = one_doc("deploy/prometheus-operator/podmonitor.yaml");
    let rule = one_doc(RULE_FILE);
    let out = validate(
        dir.path(),
        &[("podmonitor", pm.clone()), ("prometheusrule", rule.clone())],
    )
    .unwrap_or_else(|e| panic!("CRD validation: {e}"));
    assert!(out.contains("valid PodMonitor"), "{out}");
    assert!(out.contains("valid PrometheusRule"), "{out}");

    // The validator does reject what the operator would.
    let mut bad_pm = pm;
    bad_pm["spec"]["podMetricsEndpoints"][0]["interval"] = "every 15 seconds".into();
    let mut bad_rule = rule;
    bad_rule["spec"]["groups"][0]["rules"][0]["for"] = "two minutes".into();
    for (name, kind, bad) in [
        ("bad-podmonitor", "PodMonitor", bad_pm),
        ("bad-rule", "PrometheusRule", bad_rule),
    ] {
        let err = validate(dir.path(), &[(name, bad)]).expect_err(name);
        assert!(err.contains(&format!("invalid {kind}")), "{err}");
    }
}
