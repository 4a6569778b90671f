//! Conntrack counters through the agent: per-CPU hex rows summed, mirrored on
//! every round. A fixture proc root stands in for the kernel because this
//! machine cannot be made to fail conntrack inserts on demand (its real
//! counters are zero); the absent-file case is covered in dns_dnsmasq.rs.

mod support;

use std::time::Duration;
use support::{short_tempdir, AgentProcess};

const HEADER: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n";

fn row(insert_failed: u64, drop: u64) -> String {
    format!("0000001a  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 {insert_failed:08x} {drop:08x} 00000000 00000000  00000000 00000000 00000000 00000000\n")
}

#[test]
fn conntrack_counters_are_summed_over_cpus_and_follow_the_kernel() {
    let dir = short_tempdir("dns-conntrack");
    let stat = dir.path().join("proc/net/stat");
    std::fs::create_dir_all(&stat).unwrap();
    let file = stat.join("nf_conntrack");
    std::fs::write(&file, format!("{HEADER}{}{}", row(10, 1), row(240, 2))).unwrap();
    let config = support::dns_config::dns_only(
        &dir.path().join("proc"),
        "interval = \"1s\"\ntimeout = \"500ms\"\nnames = []",
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    agent.wait_metrics(Duration::from_secs(10), "summed counters", |m| {
        m.get("nodevitals_conntrack_insert_failed_total", &[]) == Some(250.0)
            && m.get("nodevitals_conntrack_drop_total", &[]) == Some(3.0)
    });
    std::fs::write(&file, format!("{HEADER}{}{}", row(11, 1), row(240, 7))).unwrap();
    agent.wait_metrics(Duration::from_secs(10), "updated counters", |m| {
        m.get("nodevitals_conntrack_insert_failed_total", &[]) == Some(251.0)
            && m.get("nodevitals_conntrack_drop_total", &[]) == Some(8.0)
    });
}
