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
use support::agent_config::{signal_restart, DockerAgentConfig};
use support::dns_config::dns_only;
use support::dns_responder::{DropRule, Responder, Zone};
use support::dockerd::Dockerd;
use support::kube_api::KubeApi;
use support::kubelet::FakeKubelet;
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
    let policy = format!(
        "failure_threshold = 3\nhang_after = \"1500ms\"\ncooldown = \"1s\"\nboot_grace = \"0s\"\n\
         backoff_initial = \"1s\"\nbackoff_max = \"2s\"\nbackoff_jitter = 0.0\nrecovery_timeout = \"30s\"\n{remediation}"
    );
    let rest = format!(
        "{}{}",
        support::OTHER_PROBES_OFF,
        api.config_section(node, kubernetes)
    );
    DockerAgentConfig {
        state_dir: state,
        endpoint: &d.endpoint(),
        paths: "",
        restart: &signal_restart(&d.pidfile),
        remediation: &policy,
        rest: &rest,
    }
    .render()
}

fn status_of(c: &serde_json::Value) -> &str {
    c["status"].as_str().unwrap_or("")
}

fn restarts(m: &Metrics, result: &str) -> f64 {
    m.restarts("docker", result)
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
    let note = restarted["note"].as_str().unwrap();
    assert!(note.contains("by signal"), "{restarted}");
    // The evidence travels with the event: where dockerd's goroutine dump
    // was kept (a file that exists), and the diagnosis of the frozen process.
    let dumps = dir.path().join("state").join("dumps");
    let kept = note
        .split("Stack dump kept at ")
        .nth(1)
        .and_then(|rest| rest.split(". ").next())
        .unwrap_or_else(|| panic!("no dump path in the event: {note}"));
    assert!(kept.starts_with(&dumps.display().to_string()), "{note}");
    assert!(Path::new(kept).is_file(), "{kept} is not a kept dump");
    assert!(note.contains("Diagnosis: stopped"), "{note}");
    assert!(
        note.contains(" GiB free of "),
        "the runtime root's space: {note}"
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

fn has_grant(used: &BTreeSet<Grant>, group: &str, resource: &str, verb: &str) -> bool {
    used.contains(&(group.into(), resource.into(), verb.into()))
}

fn event_time(e: &serde_json::Value) -> String {
    e["eventTime"].as_str().unwrap_or("").to_owned()
}

/// Two nodes hung at once with one fleet slot: one restarts, the other waits
/// (skip reason fleet_limit) and restarts only after the first recovered and
/// released the slot.
#[test]
fn one_fleet_slot_serialises_two_hung_nodes() {
    let api = KubeApi::start(&["node-a", "node-b"]);
    let mut agents = Vec::new();
    let mut daemons = Vec::new();
    let mut dirs = Vec::new();
    for node in ["node-a", "node-b"] {
        let d = Dockerd::start_supervised(&format!("k8s-{node}"));
        let dir = short_tempdir(&format!("k8s-{node}-agent"));
        let cfg = config(
            &d,
            &dir.path().join("state"),
            &api,
            node,
            "max_restarts = 3",
            "max_concurrent_restarts = 1",
        );
        agents.push(AgentProcess::start(dir.path(), &cfg, &[]));
        daemons.push(d);
        dirs.push(dir);
    }
    for node in ["node-a", "node-b"] {
        api.wait_condition(node, UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    }
    for d in &daemons {
        process::signal(d.pid(), libc::SIGSTOP);
    }
    for a in &agents {
        a.wait_metrics(2 * MINUTE, "one successful restart on each node", |m| {
            restarts(m, "success") == 1.0
        });
    }
    let waits: Vec<f64> = agents
        .iter()
        .map(|a| skipped(&a.metrics(), "fleet_limit"))
        .collect();
    assert!(
        waits.iter().any(|w| *w > 0.0),
        "one node waited for the slot: {waits:?}"
    );
    // The one that waited restarted after the other recovered.
    let (waited, first) = if waits[0] > 0.0 {
        ("node-a", "node-b")
    } else {
        ("node-b", "node-a")
    };
    let of = |reason: &str, node: &str| {
        api.events(reason)
            .into_iter()
            .find(|e| e["regarding"]["name"] == node)
            .unwrap_or_else(|| panic!("{reason} event of {node}"))
    };
    assert!(
        event_time(&of("RuntimeRestarted", waited)) > event_time(&of("RuntimeRecovered", first)),
        "{waited} restarted only after {first} recovered"
    );
    let skipped_event = of("RuntimeRestartSkipped", waited);
    assert!(
        skipped_event["note"]
            .as_str()
            .unwrap()
            .contains("fleet_limit"),
        "{skipped_event}"
    );
    // Released: the slot has no holder, and neither agent holds one.
    wait_until(MINUTE, "the slot released", || {
        api.objects("leases")
            .iter()
            .all(|l| l["spec"]["holderIdentity"].is_null())
            && agents
                .iter()
                .all(|a| a.metrics().get("nodevitals_restart_slot_held", &[]) == Some(0.0))
    });
    let leases = api.objects("leases");
    assert_eq!(leases.len(), 1, "one slot: {leases:?}");
    assert_eq!(leases[0]["metadata"]["name"], "nodevitals-restart-slot-0");
    let used = assert_allowed_by_shipped_rbac(&api);
    for verb in ["get", "create", "update"] {
        assert!(
            has_grant(&used, "coordination.k8s.io", "leases", verb),
            "leases {verb}"
        );
    }
}

/// The pause switch: with the ConfigMap present a hung runtime is not
/// restarted (skip reason paused, RepairFailed=True saying so); deleting it
/// lets the restart go.
#[test]
fn pause_configmap_holds_restarts_until_deleted() {
    let api = KubeApi::start(&["node-p"]);
    let d = Dockerd::start_supervised("k8s-pause");
    let dir = short_tempdir("k8s-pause-agent");
    let cfg = config(&d, &dir.path().join("state"), &api, "node-p", "", "");
    let agent = AgentProcess::start(dir.path(), &cfg, &[]);
    api.wait_condition("node-p", UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    let pause = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nodevitals-pause","namespace":"nodevitals"}}"#;
    assert_eq!(
        api.kubectl("POST", "/api/v1/namespaces/nodevitals/configmaps", pause),
        201
    );

    process::signal(d.pid(), libc::SIGSTOP);
    let failed = api.wait_condition("node-p", REPAIR_FAILED, MINUTE, |c| status_of(c) == "True");
    assert_eq!(failed["reason"], "FleetPaused", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("nodevitals-pause"),
        "{failed}"
    );
    let m = agent.wait_metrics(MINUTE, "restarts skipped as paused", |m| {
        skipped(m, "paused") >= 3.0
    });
    assert_eq!(
        restarts(&m, "success") + restarts(&m, "failure"),
        0.0,
        "no restart while paused"
    );
    assert_eq!(
        api.events("RuntimeRestartSkipped").len(),
        1,
        "one event per episode, not per round"
    );

    assert_eq!(
        api.kubectl(
            "DELETE",
            "/api/v1/namespaces/nodevitals/configmaps/nodevitals-pause",
            ""
        ),
        200
    );
    agent.wait_metrics(MINUTE, "the restart after unpausing", |m| {
        restarts(m, "success") == 1.0
    });
    let back = api.wait_condition("node-p", REPAIR_FAILED, MINUTE, |c| status_of(c) == "False");
    assert_eq!(back["reason"], "RepairNotNeeded");
    let used = assert_allowed_by_shipped_rbac(&api);
    assert!(has_grant(&used, "", "configmaps", "get"));
}

/// The slowest `/metrics` answer over `n` scrapes.
fn slowest_scrape(agent: &AgentProcess, n: usize) -> Duration {
    (0..n)
        .map(|_| {
            let t = std::time::SystemTime::now();
            agent.metrics();
            t.elapsed().unwrap_or_default()
        })
        .max()
        .unwrap_or_default()
}

/// The holder of the one slot is killed mid-restart (its runtime restarted
/// by a command that does nothing, so it waits for a recovery that never
/// comes, slot held): the other hung node waits with fleet_limit, and
/// restarts once the dead agent's Lease has expired, not before.
#[test]
fn a_slot_whose_holder_died_expires_and_the_other_node_proceeds() {
    let api = KubeApi::start(&["node-a", "node-b"]);
    let fleet = "max_concurrent_restarts = 1\nslot_duration = \"6s\"";
    let start = |node: &str, d: &Dockerd, dir: &Path, restart: Option<&str>| {
        let cfg = config(d, &dir.join("state"), &api, node, "max_restarts = 3", fleet);
        let cfg = match restart {
            Some(method) => cfg.replace("method = \"signal\"", method),
            None => cfg,
        };
        AgentProcess::start(dir, &cfg, &[])
    };
    let (da, db) = (
        Dockerd::start_supervised("k8s-dead-a"),
        Dockerd::start_supervised("k8s-dead-b"),
    );
    let (dir_a, dir_b) = (short_tempdir("k8s-dead-a"), short_tempdir("k8s-dead-b"));
    let holder = start(
        "node-a",
        &da,
        dir_a.path(),
        Some("method = \"command\"\ncommand = [\"true\"]"),
    );
    let waiter = start("node-b", &db, dir_b.path(), None);
    for node in ["node-a", "node-b"] {
        api.wait_condition(node, UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    }
    let holder_of_slot = || {
        api.objects("leases")
            .first()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    };
    process::signal(da.pid(), libc::SIGSTOP);
    wait_until(MINUTE, "node-a to take the slot", || {
        holder_of_slot().as_deref() == Some("node-a")
    });
    process::signal(db.pid(), libc::SIGSTOP);
    waiter.wait_metrics(MINUTE, "node-b waiting for the slot", |m| {
        skipped(m, "fleet_limit") >= 1.0
    });
    assert_eq!(restarts(&waiter.metrics(), "success"), 0.0);
    process::signal(holder.pid(), libc::SIGKILL);
    let killed = tokio::time::Instant::now();
    let m = waiter.wait_metrics(
        2 * MINUTE,
        "node-b's restart after the Lease expired",
        |m| restarts(m, "success") == 1.0,
    );
    let waited = killed.elapsed();
    // The dead agent renewed every 2 s; its Lease ran out 4-6 s after it died.
    assert!(
        waited >= Duration::from_secs(3),
        "node-b took a live slot: restarted {waited:?} after the holder died"
    );
    assert!(skipped(&m, "fleet_limit") >= 1.0);
    // node-b took the slot over and has released it after its recovery.
    assert_eq!(holder_of_slot(), None, "{:?}", api.objects("leases"));
    drop(holder);
    assert_allowed_by_shipped_rbac(&api);
}

/// The API server down, then answering every request 30 s late, then 500,
/// then garbage: each time a hang is still restarted locally (the default
/// on_unreachable = "restart", counted), /metrics stays fast, and when the
/// API server is back the conditions and events catch up.
#[test]
fn api_outages_change_nothing_locally_and_conditions_catch_up() {
    let mut api = KubeApi::start(&["node-o"]);
    let d = Dockerd::start_supervised("k8s-outage");
    let dir = short_tempdir("k8s-outage-agent");
    let cfg = config(
        &d,
        &dir.path().join("state"),
        &api,
        "node-o",
        "max_restarts = 10",
        "",
    );
    let mut agent = AgentProcess::start(dir.path(), &cfg, &[]);
    api.wait_condition("node-o", UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    let baseline = slowest_scrape(&agent, 20);
    let mut done = 0.0;
    for mode in ["down", "delay", "500", "garbage"] {
        if mode == "down" {
            api.stop();
        } else {
            api.set_mode(mode);
        }
        d.wait_answering(MINUTE);
        process::signal(d.pid(), libc::SIGSTOP);
        let m = agent.wait_metrics(
            2 * MINUTE,
            &format!("a local restart with the API server {mode}"),
            |m| restarts(m, "success") == done + 1.0,
        );
        done += 1.0;
        let slowest = slowest_scrape(&agent, 20);
        eprintln!(
            "MEASURE api_{mode}: slowest_metrics_scrape_ms={} baseline_ms={}",
            slowest.as_millis(),
            baseline.as_millis()
        );
        assert!(
            m.get(
                "nodevitals_kubernetes_unreachable_decisions_total",
                &[("action", "restart")]
            )
            .unwrap_or(0.0)
                >= done,
            "the decision without the API server is counted"
        );
        if mode == "down" {
            api.restart();
        }
        api.set_mode("normal");
    }
    // Back: every restart is on the Node, aggregated into a series (a
    // count on one object, not an object per restart).
    let counted = || -> (usize, u64) {
        let evs = api.events("RuntimeRestarted");
        let total = evs
            .iter()
            .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
            .sum();
        (evs.len(), total)
    };
    wait_until(3 * MINUTE, "the restarts counted on the Node", || {
        counted().1 == 4
    });
    assert_eq!(counted().0, 1, "one Event object for four restarts");
    let c = api.wait_condition("node-o", UNHEALTHY, MINUTE, |c| status_of(c) == "False");
    assert_eq!(c["reason"], "Healthy");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let rss_kib: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("MEASURE agent_rss_after_outages_kib={rss_kib}");
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent survived"
    );
    assert_allowed_by_shipped_rbac(&api);
}

/// `KubeletUnhealthy` and `NodeDNSUnhealthy` follow their probes: True after
/// the configured failed rounds in a row, False at the first answer. No
/// kubelet can run on this machine: its health endpoint is the loopback
/// stand-in of `support::kubelet`, told to fail (500) as kubelet's healthz
/// does. DNS is the fault-injecting responder over the real wire protocol: it
/// losing one answer of each pair is intermittent loss (the metrics' job),
/// not a node without DNS; dropping every query is.
#[test]
fn kubelet_and_dns_conditions_follow_their_probes() {
    const KUBELET: &str = "KubeletUnhealthy";
    const DNS: &str = "NodeDNSUnhealthy";
    let api = KubeApi::start(&["node-s"]);
    let kubelet = FakeKubelet::start();
    let dns = Responder::start("127.0.0.67:0".parse().unwrap(), Zone::new(&["a.test"], &[]));
    let dir = short_tempdir("k8s-services");
    let probes = dns_only(
        dir.path(),
        &format!(
            "interval = \"500ms\"\ntimeout = \"200ms\"\nservers = [\"{}\"]\nnames = [\"a.test.\"]",
            dns.addr
        ),
    )
    .replace(
        "[kubelet]\nenabled = false",
        &format!(
            "[kubelet]\nenabled = true\nurl = \"{}\"\ninterval = \"500ms\"\ntimeout = \"200ms\"",
            kubelet.url()
        ),
    );
    let cfg = probes
        + &api.config_section(
            "node-s",
            "kubelet_failure_rounds = 2\ndns_failure_rounds = 2",
        );
    let _agent = AgentProcess::start(dir.path(), &cfg, &[]);
    for t in [KUBELET, DNS] {
        api.wait_condition("node-s", t, MINUTE, |c| status_of(c) == "False");
    }

    kubelet.set_healthy(false);
    let down = api.wait_condition("node-s", KUBELET, MINUTE, |c| status_of(c) == "True");
    assert_eq!(down["reason"], "KubeletNotAnswering");
    let message = down["message"].as_str().unwrap();
    assert!(message.contains("500"), "{message}");
    let dns_now = api.condition("node-s", DNS).unwrap();
    assert_eq!(status_of(&dns_now), "False", "DNS is fine: {dns_now}");
    kubelet.set_healthy(true);
    api.wait_condition("node-s", KUBELET, MINUTE, |c| status_of(c) == "False");

    dns.set_drop(DropRule::EveryAaaa);
    wait_until(MINUTE, "five rounds losing an answer", || {
        dns.dropped() >= 5
    });
    let lossy = api.condition("node-s", DNS).unwrap();
    assert_eq!(status_of(&lossy), "False", "answers still came: {lossy}");
    dns.set_drop(DropRule::EveryNth(1));
    let gone = api.wait_condition("node-s", DNS, MINUTE, |c| status_of(c) == "True");
    assert_eq!(gone["reason"], "NoResolverAnswers");
    let message = gone["message"].as_str().unwrap();
    assert!(message.contains("timeout"), "{message}");
    dns.set_drop(DropRule::None);
    api.wait_condition("node-s", DNS, MINUTE, |c| status_of(c) == "False");
    assert_allowed_by_shipped_rbac(&api);
}
