//! End to end against a real dnsmasq: the agent's DNS probe over UDP (A/AAAA
//! pairs) and TCP, answers classified by rcode, latency in the histogram.

mod support;

use std::time::Duration;
use support::dnsmasq::Dnsmasq;
use support::{short_tempdir, AgentProcess};

const REQUESTS: &str = "nodevitals_dns_requests_total";

fn config(server: &str, dir: &std::path::Path) -> String {
    config_with(
        server,
        dir,
        r#"names = ["present.test.", "absent.test."]
qtypes = ["A", "AAAA"]
transports = ["udp", "tcp"]"#,
    )
}

fn config_with(server: &str, dir: &std::path::Path, queries: &str) -> String {
    // An empty proc root: the conntrack counters must then be absent.
    support::dns_config::dns_only(
        dir,
        &format!("interval = \"1s\"\ntimeout = \"500ms\"\nservers = [\"{server}\"]\n{queries}"),
    )
}

#[test]
fn dnsmasq_answers_are_classified_and_timed() {
    let dns = Dnsmasq::start(
        "127.0.0.61",
        &[
            ("present.test", "192.0.2.10"),
            ("present.test", "2001:db8::10"),
        ],
    );
    let server = dns.addr.to_string();
    let dir = short_tempdir("dns-dnsmasq");
    let agent = AgentProcess::start(dir.path(), &config(&server, dir.path()), &[]);
    let l =
        |name: &'static str, qtype: &'static str, transport: &'static str, result: &'static str| {
            [
                ("server", server.clone()),
                ("name", name.to_owned()),
                ("qtype", qtype.to_owned()),
                ("transport", transport.to_owned()),
                ("result", result.to_owned()),
            ]
        };
    let get = |m: &support::Metrics, labels: &[(&str, String)]| {
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        m.get(REQUESTS, &refs).unwrap_or(0.0)
    };
    let m = agent.wait_metrics(Duration::from_secs(15), "two rounds of answers", |m| {
        ["udp", "tcp"].iter().all(|t| {
            ["A", "AAAA"].iter().all(|q| {
                get(m, &l("present.test.", q, t, "noerror")) >= 2.0
                    && get(m, &l("absent.test.", q, t, "nxdomain")) >= 2.0
            })
        })
    });
    for t in ["udp", "tcp"] {
        for q in ["A", "AAAA"] {
            for bad in ["timeout", "error", "servfail", "refused"] {
                assert_eq!(
                    get(&m, &l("present.test.", q, t, bad)),
                    0.0,
                    "{q}/{t} {bad}"
                );
            }
            assert_eq!(get(&m, &l("present.test.", q, t, "nxdomain")), 0.0);
            assert_eq!(get(&m, &l("absent.test.", q, t, "noerror")), 0.0);
        }
    }
    let hist = [
        ("server", server.as_str()),
        ("name", "present.test."),
        ("qtype", "AAAA"),
        ("transport", "udp"),
    ];
    let count = m
        .get("nodevitals_dns_request_duration_seconds_count", &hist)
        .unwrap();
    let sum = m
        .get("nodevitals_dns_request_duration_seconds_sum", &hist)
        .unwrap();
    assert!(count >= 2.0, "{count}");
    // A loopback answer from a local record: well under the 500 ms timeout.
    assert!(sum > 0.0 && sum / count < 0.1, "mean {}", sum / count);
    assert_eq!(
        m.get(
            "nodevitals_dns_pair_lost_total",
            &[("server", server.as_str())]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get("nodevitals_probe_success", &[("probe", "dns")]),
        Some(1.0)
    );
    assert!(!m.has("nodevitals_conntrack_drop_total", &[]));
}

/// An answer too large for a 512-byte datagram comes back with TC set; the
/// probe retries it over TCP like a resolver and counts it.
#[test]
fn truncated_udp_answers_are_retried_over_tcp() {
    let long = "x".repeat(200);
    let records: Vec<String> = (0..4)
        .map(|i| format!("--txt-record=big.test,{i}{long}"))
        .collect();
    let dns = Dnsmasq::start_with("127.0.0.65", &records);
    let server = dns.addr.to_string();
    let dir = short_tempdir("dns-tc");
    let queries = "names = [\"big.test.\"]\nqtypes = [\"TXT\"]\ntransports = [\"udp\"]";
    let agent = AgentProcess::start(dir.path(), &config_with(&server, dir.path(), queries), &[]);
    let labels = [("qtype", "TXT"), ("transport", "udp")];
    let ok = |m: &support::Metrics| {
        let mut l = labels.to_vec();
        l.push(("result", "noerror"));
        m.get(REQUESTS, &l).unwrap_or(0.0)
    };
    let truncated = |m: &support::Metrics| {
        m.get(
            "nodevitals_dns_truncated_total",
            &[("server", server.as_str())],
        )
        .unwrap_or(0.0)
    };
    // Every UDP answer is truncated and every retry over TCP succeeds. (The
    // truncation is counted before its retry ends: wait for a quiet scrape.)
    agent.wait_metrics(
        Duration::from_secs(15),
        "two TXT answers, each truncated once",
        |m| ok(m) >= 2.0 && truncated(m) == ok(m),
    );
}
