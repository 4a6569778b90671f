//! The agent's DNS probe against the fault-injecting responder: measured
//! latency tracks an injected delay, every dropped answer of an A/AAAA pair is
//! one `pair_lost`, and every dropped answer is one `timeout`.

mod support;

use std::time::Duration;
use support::dns_responder::{DropRule, Responder, Zone};
use support::{short_tempdir, AgentProcess, Metrics};

const REQUESTS: &str = "nodevitals_dns_requests_total";
const PAIR_LOST: &str = "nodevitals_dns_pair_lost_total";

fn start(ip: &str, test: &str) -> (Responder, tempfile::TempDir, AgentProcess) {
    start_delayed(ip, test, Duration::ZERO)
}

/// The responder delays every answer by `delay` from its first query on: the
/// agent's first round leaves as soon as it starts, before a test could set it.
fn start_delayed(
    ip: &str,
    test: &str,
    delay: Duration,
) -> (Responder, tempfile::TempDir, AgentProcess) {
    let responder = Responder::start(
        format!("{ip}:0").parse().unwrap(),
        Zone::new(&["a.test"], &[]),
    );
    responder.set_delay(delay);
    let dir = short_tempdir(test);
    let config = support::dns_config::dns_only(
        dir.path(),
        &format!(
            "interval = \"1s\"\ntimeout = \"300ms\"\nservers = [\"{}\"]\nnames = [\"a.test.\"]",
            responder.addr
        ),
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    (responder, dir, agent)
}

fn requests(m: &Metrics, qtype: &str, result: &str) -> f64 {
    m.get(REQUESTS, &[("qtype", qtype), ("result", result)])
        .unwrap_or(0.0)
}

/// The agent's mean latency is within 2 ms of the delay the responder
/// injected. The reference is the delay as the responder realized it (receive
/// to send, its own scheduling included), compared over exactly the same
/// answers: a busy machine makes the responder late, and that lateness is
/// real latency the agent must report, not an error of its measurement.
#[test]
fn latency_tracks_the_injected_delay() {
    let delay = Duration::from_millis(40);
    let (responder, _dir, agent) = start_delayed("127.0.0.62", "dns-delay", delay);
    let both = |m: &Metrics, name: &str| {
        ["A", "AAAA"]
            .iter()
            .map(|q| m.get(name, &[("qtype", q)]).unwrap_or(0.0))
            .sum::<f64>()
    };
    let realized = std::cell::Cell::new((0, Duration::ZERO));
    let m = agent.wait_metrics(
        Duration::from_secs(20),
        "eight answers, no round in flight",
        |m| {
            let before = responder.answered();
            let count = both(m, "nodevitals_dns_request_duration_seconds_count");
            realized.set(before);
            before.0 >= 8 && count == before.0 as f64 && responder.answered() == before
        },
    );
    let (answered, total) = realized.get();
    // Only answers were observed (no timeout): the mean is per answer.
    assert_eq!(
        requests(&m, "A", "noerror") + requests(&m, "AAAA", "noerror"),
        answered as f64
    );
    let mean = both(&m, "nodevitals_dns_request_duration_seconds_sum") / answered as f64;
    let injected = total.as_secs_f64() / answered as f64;
    eprintln!("measured mean {mean:.6}s, realized delay {injected:.6}s over {answered} answers");
    assert!(injected >= delay.as_secs_f64());
    assert!(
        (mean - injected).abs() < 0.002,
        "measured {mean:.4}s for a realized {injected:.4}s (configured {delay:?})"
    );
}

/// Drops answers by `rule` until a few pairs are lost, then stops dropping and
/// waits for a round that completes after that, so the counts are final.
fn drop_then_settle(responder: &Responder, agent: &AgentProcess, rule: DropRule) -> Metrics {
    responder.set_drop(rule);
    agent.wait_metrics(Duration::from_secs(20), "three lost pairs", |m| {
        m.get(PAIR_LOST, &[]).unwrap_or(0.0) >= 3.0
    });
    responder.set_drop(DropRule::None);
    let before = requests(&agent.metrics(), "AAAA", "noerror");
    agent.wait_metrics(
        Duration::from_secs(10),
        "a complete round after the drops",
        |m| requests(m, "AAAA", "noerror") > before,
    )
}

#[test]
fn every_dropped_aaaa_is_one_lost_pair_and_one_timeout() {
    let (responder, _dir, agent) = start("127.0.0.63", "dns-drop-aaaa");
    let m = drop_then_settle(&responder, &agent, DropRule::EveryAaaa);
    let dropped = responder.dropped() as f64;
    assert!(dropped >= 3.0);
    assert_eq!(m.get(PAIR_LOST, &[]), Some(dropped));
    assert_eq!(requests(&m, "AAAA", "timeout"), dropped);
    assert_eq!(requests(&m, "A", "timeout"), 0.0);
    assert_eq!(
        m.get("nodevitals_probe_success", &[("probe", "dns")]),
        Some(1.0)
    );
}

#[test]
fn every_third_answer_dropped_is_counted_exactly() {
    let (responder, _dir, agent) = start("127.0.0.64", "dns-drop-nth");
    let m = drop_then_settle(&responder, &agent, DropRule::EveryNth(3));
    let dropped = responder.dropped() as f64;
    assert_eq!(m.get(PAIR_LOST, &[]), Some(dropped));
    assert_eq!(
        requests(&m, "A", "timeout") + requests(&m, "AAAA", "timeout"),
        dropped
    );
    // A dropped answer is waited for until the deadline, and only that long.
    let sum = m
        .get(
            "nodevitals_dns_request_duration_seconds_sum",
            &[("qtype", "A")],
        )
        .unwrap()
        + m.get(
            "nodevitals_dns_request_duration_seconds_sum",
            &[("qtype", "AAAA")],
        )
        .unwrap();
    assert!(sum >= dropped * 0.3, "{sum}");
    // ... and no longer: the answered ones arrive at once (loopback, no
    // delay), so beyond the dropped ones' deadlines only scheduling remains.
    let count = m
        .get(
            "nodevitals_dns_request_duration_seconds_count",
            &[("qtype", "A")],
        )
        .unwrap()
        + m.get(
            "nodevitals_dns_request_duration_seconds_count",
            &[("qtype", "AAAA")],
        )
        .unwrap();
    assert!(
        sum <= dropped * 0.3 + count * 0.05,
        "{sum}s for {count} requests, {dropped} of them dropped"
    );
}

/// The pattern the pair mode exists to reproduce: the A and AAAA of a pair
/// leave back to back from one socket (one source port), as glibc and musl
/// send them, so that conntrack sees two packets of one flow.
#[test]
fn a_pair_leaves_from_one_socket() {
    let (responder, _dir, agent) = start("127.0.0.66", "dns-pair-socket");
    agent.wait_metrics(Duration::from_secs(20), "three answered pairs", |m| {
        requests(m, "AAAA", "noerror") >= 3.0
    });
    let received = responder.received();
    assert!(received.len() >= 6, "{received:?}");
    // One server, one name: the rounds' pairs arrive one after another.
    for pair in received.chunks_exact(2) {
        let qtypes = [pair[0].qtype.as_str(), pair[1].qtype.as_str()];
        assert_eq!(qtypes, ["A", "AAAA"], "{received:?}");
        assert_eq!(pair[0].source, pair[1].source, "{received:?}");
    }
}

/// With no `servers`, the nameservers of `resolv_conf` are probed (port 53,
/// hence a 127.53.x.y address of the test's own), and `lookups` are timed as
/// whole stub-resolver lookups through its search list.
#[test]
fn servers_and_lookups_follow_resolv_conf() {
    let responder = Responder::start(
        "127.53.1.1:53".parse().unwrap(),
        Zone::new(&["a.test"], &[]),
    );
    responder.set_delay(Duration::from_millis(10));
    let dir = short_tempdir("dns-resolv");
    let rc = dir.path().join("resolv.conf");
    std::fs::write(
        &rc,
        "nameserver 127.53.1.1\nsearch x.test y.test\noptions ndots:5 timeout:1\n",
    )
    .unwrap();
    let config = support::dns_config::dns_only(
        dir.path(),
        &format!(
            "interval = \"1s\"\ntimeout = \"500ms\"\nnames = [\"a.test.\"]\nresolv_conf = \"{}\"\nlookups = [\"a.test\"]",
            rc.display()
        ),
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let lookup = [("name", "a.test")];
    let m = agent.wait_metrics(Duration::from_secs(15), "two lookups and answers", |m| {
        m.get(
            REQUESTS,
            &[
                ("server", "127.53.1.1:53"),
                ("qtype", "AAAA"),
                ("result", "noerror"),
            ],
        )
        .unwrap_or(0.0)
            >= 2.0
            && m.get(
                "nodevitals_dns_lookups_total",
                &[("name", "a.test"), ("result", "ok")],
            )
            .unwrap_or(0.0)
                >= 2.0
    });
    // a.test has one dot, under ndots:5: x.test and y.test are tried first,
    // three pairs in all, each answered after 10 ms.
    let sum = m
        .get("nodevitals_dns_lookup_duration_seconds_sum", &lookup)
        .unwrap();
    let count = m
        .get("nodevitals_dns_lookup_duration_seconds_count", &lookup)
        .unwrap();
    let mean = sum / count;
    assert!((0.030..0.045).contains(&mean), "mean lookup {mean:.4}s");
    let tried: Vec<String> = responder
        .received()
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| n != "a.test.")
        .collect();
    assert!(tried.contains(&"a.test.x.test.".to_owned()), "{tried:?}");
    assert!(tried.contains(&"a.test.y.test.".to_owned()), "{tried:?}");
}
