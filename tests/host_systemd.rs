//! The production host for real: a QEMU guest with systemd as PID 1, cgroup v2
//! with the cpu controller, and dockerd and containerd as systemd units
//! (`scripts/vm/`). The guest is booted once for this whole test binary; the
//! checks of `scripts/vm/guest-checks.sh` run in it against the static agent
//! binary and the shipped `systemd/nodevitals.service`, and every check is
//! one test here, failing with that check's own log.
//!
//! The guest image is built by `scripts/vm/build-guest.sh` (run by
//! `scripts/test.sh`, cached under `target/vm/`); if it cannot be built or
//! booted, every test here fails saying why.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What one boot of the guest brought back.
struct GuestRun {
    /// Why the guest could not run at all, with the output to see why.
    error: Option<String>,
    out: PathBuf,
}

/// One check's `NAME.result`: `status`, `ms` and its `MEASURE` values.
struct CheckResult {
    values: BTreeMap<String, String>,
    log: String,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(path: &str, args: &[&Path]) -> Result<String, String> {
    let mut cmd = Command::new(repo().join(path));
    cmd.args(args).current_dir(repo());
    support::process::output(&mut cmd)
}

fn boot() -> GuestRun {
    let out = repo().join("target/vm/last-run");
    let fail = |error: String| GuestRun {
        error: Some(error),
        out: out.clone(),
    };
    let image = match script("scripts/vm/build-guest.sh", &[]) {
        Ok(dir) => PathBuf::from(dir),
        Err(e) => {
            return fail(format!(
                "cannot build the test guest with scripts/vm/build-guest.sh (needs root, the \
                 packages of scripts/test-packages.txt, which scripts/test.sh installs, and the \
                 Debian mirror for debootstrap):\n{e}"
            ))
        }
    };
    let payload = support::short_tempdir("guest-payload");
    let p = payload.path();
    if let Err(e) = script("scripts/vm/guest-payload.sh", &[p]) {
        return fail(format!(
            "cannot build the guest's payload (static agent binary) with scripts/vm/guest-payload.sh:\n{e}"
        ));
    }
    match script("scripts/vm/run-guest.sh", &[&image, p, &out]) {
        Ok(_) => GuestRun { error: None, out },
        // A failing check is reported by its own test; only a guest that
        // brought back no checks at all is an error of every test.
        Err(e) if out.join("checks").is_dir() => {
            eprintln!("guest run: {e}");
            GuestRun { error: None, out }
        }
        Err(e) => {
            let console = std::fs::read_to_string(out.join("console.log")).unwrap_or_default();
            let tail: Vec<&str> = console.lines().rev().take(40).collect();
            fail(format!(
                "the guest brought back no results (scripts/vm/run-guest.sh):\n{e}\nconsole tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }
}

fn guest() -> &'static GuestRun {
    static RUN: OnceLock<GuestRun> = OnceLock::new();
    RUN.get_or_init(boot)
}

/// The result of the guest check `name`, which must have passed.
fn passed(name: &str) -> CheckResult {
    let run = guest();
    if let Some(e) = &run.error {
        panic!("{e}");
    }
    let dir = run.out.join("checks");
    let result = std::fs::read_to_string(dir.join(format!("{name}.result"))).unwrap_or_else(|e| {
        panic!(
            "guest check {name} did not run ({e}); guest output in {}",
            run.out.display()
        )
    });
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let values: BTreeMap<String, String> = result
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    eprintln!("guest check {name}: {}", result.replace('\n', " "));
    assert_eq!(
        values.get("status").map(String::as_str),
        Some("0"),
        "guest check {name} failed; its log:\n{log}\n(guest output in {})",
        run.out.display()
    );
    CheckResult { values, log }
}

impl CheckResult {
    fn number(&self, key: &str) -> f64 {
        self.values
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("check reported no number {key}; log:\n{}", self.log))
    }
}

#[test]
fn guest_runs_systemd_with_cgroup_v2_and_the_runtimes_as_units() {
    passed("host_is_systemd_cgroup2");
}

#[test]
fn shipped_unit_starts_and_reports_ready_to_systemd() {
    let r = passed("shipped_unit_starts_and_is_ready");
    assert!(r.number("start_to_ready_ms") > 0.0);
}

#[test]
fn every_probe_works_inside_the_units_sandbox() {
    passed("every_probe_works_in_the_sandbox");
}

#[test]
fn systemd_method_restarts_a_hung_dockerd_with_kill_unit() {
    let r = passed("agent_restarts_hung_dockerd_through_systemd");
    eprintln!(
        "MEASURE systemd_dockerd hang_to_new_main_pid_seconds={:.3} hang_to_recovered_seconds={:.3}",
        r.number("hang_to_new_main_pid_ms") / 1000.0,
        r.number("hang_to_recovered_ms") / 1000.0
    );
}

#[test]
fn systemd_method_chosen_by_default_restarts_a_hung_containerd() {
    let r = passed("agent_restarts_hung_containerd_through_systemd");
    assert!(r.number("hang_to_recovered_ms") > 0.0);
}

#[test]
fn a_unit_a_kill_would_leave_dead_is_restarted_with_restart_unit() {
    passed("unit_without_restart_policy_is_restarted_not_killed");
}

#[test]
fn signal_method_restarts_a_unit_a_kill_would_leave_dead_instead() {
    passed("signal_method_does_not_kill_a_unit_into_a_dead_state");
}

#[test]
fn systemd_watchdog_restarts_a_wedged_agent_with_its_budget_intact() {
    let r = passed("watchdog_restarts_a_wedged_agent");
    assert!(r.number("wedge_to_restart_ms") > 0.0);
}

#[test]
fn cgroup_v2_counters_of_a_systemd_driver_container_equal_the_kernels() {
    let r = passed("cgroup_v2_docker_container_with_the_systemd_driver");
    assert!(r.number("throttled_ratio") > 0.5);
}

#[test]
fn cgroup_v2_kubelet_slice_container_is_labelled_with_its_pod() {
    let r = passed("cgroup_v2_kubelet_style_slice");
    assert!(r.number("throttled_ratio") > 0.5);
}

#[test]
fn node_cpu_pressure_comes_from_proc_pressure() {
    passed("node_psi_from_proc_pressure");
}

#[test]
fn scan_of_1000_real_cgroups_costs_a_ratio_of_plain_reads() {
    let r = passed("scan_of_1000_cgroups_against_plain_reads");
    eprintln!(
        "MEASURE guest_scan_1000 scan_ms={} plain_read_ms={} ratio={}",
        r.number("scan_ms"),
        r.number("plain_read_ms"),
        r.number("scan_to_plain_ratio")
    );
}
