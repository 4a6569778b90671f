//! Probing from inside another network namespace: a real dnsmasq listens on
//! 127.0.0.1 in a namespace of its own; the agent reaches it only when told to
//! probe from that namespace.

mod support;

use std::time::Duration;
use support::dns_config::dns_only;
use support::dnsmasq::Dnsmasq;
use support::{short_tempdir, AgentProcess, Metrics};

fn requests(m: &Metrics, result: &str) -> f64 {
    m.get(
        "nodevitals_dns_requests_total",
        &[("qtype", "A"), ("result", result)],
    )
    .unwrap_or(0.0)
}

#[test]
fn queries_run_inside_the_configured_network_namespace() {
    let dns = Dnsmasq::start_in_new_netns(&[("present.test", "192.0.2.10")]);
    let netns = format!("/proc/{}/ns/net", dns.pid());
    let server = dns.addr.to_string();
    let queries = format!(
        "interval = \"1s\"\ntimeout = \"500ms\"\nservers = [\"{server}\"]\nnames = [\"present.test.\"]\nqtypes = [\"A\"]"
    );
    let dir = short_tempdir("dns-netns");
    let inside = AgentProcess::start(
        dir.path(),
        &dns_only(dir.path(), &format!("{queries}\nnetns = \"{netns}\"")),
        &[],
    );
    let m = inside.wait_metrics(Duration::from_secs(15), "answers from inside", |m| {
        requests(m, "noerror") >= 2.0
    });
    assert_eq!(requests(&m, "error") + requests(&m, "timeout"), 0.0);

    // The same server seen from the agent's own namespace: nothing listens.
    let host_dir = short_tempdir("dns-netns-host");
    let outside = AgentProcess::start(host_dir.path(), &dns_only(host_dir.path(), &queries), &[]);
    let m = outside.wait_metrics(Duration::from_secs(15), "failures from outside", |m| {
        requests(m, "error") + requests(m, "timeout") >= 1.0
    });
    assert_eq!(requests(&m, "noerror"), 0.0);
}
