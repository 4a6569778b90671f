//! The stub-resolver emulation against the real glibc resolver: the same
//! resolv.conf and the same responder, once for glibc (`getaddrinfo(name,
//! AF_UNSPEC)` in a private mount namespace where the test's resolv.conf is
//! bind-mounted over /etc/resolv.conf) and once for `nodevitals once`; the
//! responder must receive the same queries in the same order from both.
//!
//! glibc's resolv.conf cannot name a port, so each test's responder listens on
//! port 53 of its own 127.53.0.x address.

mod support;

use std::path::Path;
use std::process::Command;
use support::dns_responder::{DropRule, Responder, Zone};
use support::short_tempdir;

const PYTHON: &str = "/usr/bin/python3";

/// `getaddrinfo(name, None)`: AF_UNSPEC and no AI_ADDRCONFIG, so glibc asks
/// for A and AAAA whatever addresses the host has. Prints "ok" or the error.
const GETADDRINFO: &str = r#"
import socket, sys
try:
    socket.getaddrinfo(sys.argv[1], None)
    print("ok")
except socket.gaierror as e:
    print("failed", e)
"#;

fn glibc_lookup(resolv_conf: &Path, name: &str) -> String {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: apt-get install python3-minimal (scripts/test.sh does)"
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/resolv.conf && exec \"$2\" -c \"$3\" \"$4\"",
        "sh",
    ])
    .arg(resolv_conf)
    .args([PYTHON, GETADDRINFO, name]);
    support::process::output(&mut cmd)
        .unwrap_or_else(|e| panic!("glibc lookup failed to run (unshare, util-linux): {e}"))
}

fn nodevitals_lookup(dir: &Path, resolv_conf: &Path, name: &str) -> String {
    let config = dir.join("config.toml");
    let dns = format!(
        "interval = \"60s\"\nnames = []\nresolv_conf = \"{}\"\nlookups = [\"{name}\"]",
        resolv_conf.display()
    );
    std::fs::write(&config, support::dns_config::dns_only(dir, &dns)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nodevitals"))
        .arg("once")
        .arg("--config")
        .arg(&config)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run nodevitals once");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = stdout
        .lines()
        .find(|l| l.starts_with("dns "))
        .unwrap_or_else(|| panic!("no dns row in:\n{stdout}"));
    let key = format!("{name}=");
    let result = row
        .split(&key)
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no lookup result in: {row}"));
    result.to_owned()
}

/// How a lookup must end: found by both, or not found (glibc's error, and
/// nodevitals' result label).
enum Expect {
    Found,
    NotFound(&'static str),
}

/// Runs `name` through glibc and through the emulation, compares what the
/// responder received from each, and checks both verdicts.
fn compare(ip: &str, zone: Zone, drop: DropRule, options: &str, name: &str, expect: Expect) {
    let responder = Responder::start(format!("{ip}:53").parse().unwrap(), zone);
    responder.set_drop(drop);
    let dir = short_tempdir("dns-glibc");
    let rc = dir.path().join("resolv.conf");
    std::fs::write(&rc, format!("nameserver {ip}\n{options}")).unwrap();
    let glibc = glibc_lookup(&rc, name);
    let by_glibc = responder.received();
    responder.clear_received();
    let ours = nodevitals_lookup(dir.path(), &rc, name);
    let by_us = responder.received();
    let seq = |v: &[support::dns_responder::Received]| {
        v.iter()
            .map(|r| format!("{} {}", r.name, r.qtype))
            .collect::<Vec<_>>()
    };
    assert!(!by_glibc.is_empty(), "glibc sent nothing ({glibc})");
    assert_eq!(seq(&by_us), seq(&by_glibc), "queries: nodevitals vs glibc");
    assert_eq!(
        pair_sockets(&by_us),
        pair_sockets(&by_glibc),
        "one socket (true) or two per A/AAAA pair: nodevitals vs glibc"
    );
    match expect {
        Expect::Found => assert_eq!((glibc.as_str(), ours.as_str()), ("ok", "ok")),
        Expect::NotFound(result) => {
            assert!(glibc.starts_with("failed"), "{glibc}");
            assert_eq!(ours, result);
        }
    }
}

/// For each A query followed by the AAAA of the same name: whether both left
/// from one source port (glibc's default, and `single-request`) or from two
/// (`single-request-reopen` reopens its socket between them).
fn pair_sockets(received: &[support::dns_responder::Received]) -> Vec<bool> {
    received
        .windows(2)
        .filter(|w| w[0].name == w[1].name && w[0].qtype == "A" && w[1].qtype == "AAAA")
        .map(|w| w[0].source == w[1].source)
        .collect()
}

#[test]
fn pod_search_list_walk_matches_glibc() {
    compare(
        "127.53.0.1",
        Zone::new(&["ext.example"], &[]),
        DropRule::None,
        "search ns.svc.test svc.test test\noptions ndots:5 timeout:1 attempts:2\n",
        "ext.example",
        Expect::Found,
    );
}

#[test]
fn unknown_name_with_enough_dots_matches_glibc() {
    compare(
        "127.53.0.2",
        Zone::new(&[], &[]),
        DropRule::None,
        "search a.test b.test\noptions ndots:2 timeout:1 attempts:1\n",
        "x.y.z",
        Expect::NotFound("nxdomain"),
    );
}

#[test]
fn search_hit_on_a_v4_only_name_matches_glibc() {
    compare(
        "127.53.0.3",
        Zone::new(&[], &["svc.b.test"]),
        DropRule::None,
        "search a.test b.test\noptions timeout:1 attempts:1\n",
        "svc",
        Expect::Found,
    );
}

/// The 5-second-delay pattern: the AAAA answer never comes; glibc waits out
/// the timeout, retries one query at a time, then on a fresh socket.
#[test]
fn lost_aaaa_answers_fall_back_like_glibc() {
    compare(
        "127.53.0.4",
        Zone::new(&["lost.test"], &[]),
        DropRule::EveryAaaa,
        "options timeout:1 attempts:1\n",
        "lost.test.",
        Expect::Found,
    );
}

/// With `single-request` glibc starts one query at a time, so a lost AAAA
/// costs one fallback fewer.
#[test]
fn single_request_fallback_matches_glibc() {
    compare(
        "127.53.0.5",
        Zone::new(&["lost.test"], &[]),
        DropRule::EveryAaaa,
        "options timeout:1 attempts:1 single-request\n",
        "lost.test.",
        Expect::Found,
    );
}

/// `single-request-reopen` already is the last fallback: one timeout, then
/// glibc returns the A answer it has.
#[test]
fn single_request_reopen_matches_glibc() {
    compare(
        "127.53.0.6",
        Zone::new(&["lost.test"], &[]),
        DropRule::EveryAaaa,
        "options timeout:1 attempts:1 single-request-reopen\n",
        "lost.test.",
        Expect::Found,
    );
}
