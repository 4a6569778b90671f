//! Every duration and count of the config within sane bounds, at both ends:
//! a huge value must not overflow the arithmetic of the probes or the
//! remediation engine (`18446744073709551615s` once panicked the agent), a tiny
//! one must not turn a probe into a busy loop (`interval = "1ns"` once burnt
//! 70 % of a CPU on logs). Also the shape `serde` cannot check: every section
//! is a table (an array would be read by position), paths are not empty.
//! Emits no metrics.

use super::Config;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A probe runs at most ten times a second and at least once a day.
const INTERVAL: (Duration, Duration) = (Duration::from_millis(100), DAY);
/// A deadline of 10 ms to an hour.
const TIMEOUT: (Duration, Duration) = (Duration::from_millis(10), HOUR);
/// Guards and windows of the remediation policy: up to a week.
const POLICY: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(7 * 86_400));
/// Counts of the policy (restarts per window, failures before a hang).
const MAX_COUNT: u32 = 1_000;

type Invalid = (String, String);

fn within(key: &str, value: Duration, (min, max): (Duration, Duration)) -> Result<(), Invalid> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if value < min {
        return Err((
            key.into(),
            format!("{} is shorter than the minimum {}", show(value), show(min)),
        ));
    }
    if value > max {
        return Err((
            key.into(),
            format!("{} is longer than the maximum {}", show(value), show(max)),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every bounded value; returns the first (key, message) out of bounds.
    pub(super) fn check_bounds(&self) -> Result<(), Invalid> {
        for (i, rt) in self.runtimes.iter().enumerate() {
            let key = |k: &str| format!("runtime[{i}].{k}");
            within(&key("interval"), rt.interval, INTERVAL)?;
            within(&key("timeout"), rt.timeout, TIMEOUT)?;
            within(
                &key("restart.grace"),
                rt.restart.grace,
                (Duration::ZERO, 10 * 60 * SEC),
            )?;
            within(
                &key("restart.timeout"),
                rt.restart.timeout,
                (100 * MS, HOUR),
            )?;
        }
        for (key, interval, timeout) in [
            ("kubelet", self.kubelet.interval, self.kubelet.timeout),
            ("dns", self.dns.interval, self.dns.timeout),
            ("cpu", self.cpu.interval, self.cpu.timeout),
        ] {
            within(&format!("{key}.interval"), interval, INTERVAL)?;
            within(&format!("{key}.timeout"), timeout, TIMEOUT)?;
        }
        let r = &self.remediation;
        for (key, value) in [
            ("hang_after", r.hang_after),
            ("cooldown", r.cooldown),
            ("boot_grace", r.boot_grace),
            ("backoff_initial", r.backoff_initial),
            ("backoff_max", r.backoff_max),
            ("window", r.window),
            ("reset_after", r.reset_after),
            ("recovery_timeout", r.recovery_timeout),
            ("blocked_after", r.blocked_after),
        ] {
            within(&format!("remediation.{key}"), value, POLICY)?;
        }
        for (key, value) in [
            ("max_restarts", r.max_restarts),
            ("failure_threshold", r.failure_threshold),
            ("keep_dumps", r.keep_dumps),
        ] {
            if value > MAX_COUNT {
                return Err((
                    format!("remediation.{key}"),
                    format!("{value} is above the maximum {MAX_COUNT}"),
                ));
            }
        }
        let p = &self.paths;
        for (key, path) in [
            ("proc", &p.proc),
            ("cgroup", &p.cgroup),
            ("state_dir", &p.state_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err((format!("paths.{key}"), "must not be empty".into()));
            }
        }
        Ok(())
    }
}

/// Every top-level key but `runtime` is a section, and so is each runtime's
/// `restart`: serde would read an array given for one by position
/// (`remediation = [false, true]` as enabled = false, dry_run = true).
pub(super) fn check_tables(file: &toml::Table) -> Result<(), Invalid> {
    let not_a_table = |key: String| {
        Err((
            key,
            "must be a table, e.g. [section] or { key = value }".into(),
        ))
    };
    for (key, value) in file {
        if key != "runtime" && !value.is_table() {
            return not_a_table(key.clone());
        }
    }
    let runtimes = file.get("runtime").and_then(|r| r.as_array());
    for (i, rt) in runtimes.into_iter().flatten().enumerate() {
        if rt.get("restart").is_some_and(|r| !r.is_table()) {
            return not_a_table(format!("runtime[{i}].restart"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use proptest::prelude::*;
    use std::path::Path;

    fn error(text: &str) -> String {
        Config::parse(Path::new("/etc/nv.toml"), text)
            .expect_err(text)
            .to_string()
    }

    #[test]
    fn huge_and_tiny_durations_are_rejected_naming_the_key() {
        for (text, key) in [
            ("[cpu]\ninterval = \"18446744073709551615s\"\n", "cpu.interval"),
            ("[cpu]\ninterval = \"1ns\"\n", "cpu.interval"),
            ("[dns]\ninterval = \"1ms\"\ntimeout = \"1ms\"\n", "dns.interval"),
            ("[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\ninterval = \"18446744073709551615s\"\ntimeout = \"18446744073709551615s\"\n", "runtime[0].interval"),
            ("[remediation]\nwindow = \"18446744073709551615s\"\n", "remediation.window"),
            ("[remediation]\nbackoff_max = \"100years\"\n", "remediation.backoff_max"),
            ("[remediation]\nmax_restarts = 4000000000\n", "remediation.max_restarts"),
        ] {
            let e = error(text);
            assert!(e.contains(key) && (e.contains("maximum") || e.contains("minimum")), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn sections_given_as_arrays_and_empty_paths_are_rejected() {
        let e = error("remediation = [false, true]\n");
        assert!(
            e.contains("remediation") && e.contains("must be a table"),
            "{e}"
        );
        let e = error(
            "[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\nrestart = [\"signal\"]\n",
        );
        assert!(e.contains("runtime[0].restart"), "{e}");
        let e = error("[paths]\nstate_dir = \"\"\n");
        assert!(e.contains("paths.state_dir") && e.contains("empty"), "{e}");
    }

    #[test]
    fn a_duplicate_table_is_one_line() {
        let e = error("[server]\nlisten = \"127.0.0.1:1\"\n[server]\nlisten = \"127.0.0.1:2\"\n");
        assert!(e.contains("line 3") && e.contains("duplicate key"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    proptest! {
        /// Any duration humantime can spell, at any key: a clear one-line
        /// error or a config whose arithmetic cannot overflow.
        #[test]
        fn any_duration_is_accepted_within_bounds_or_rejected_on_one_line(
            secs in prop_oneof![Just(u64::MAX), Just(0u64), any::<u64>(), 0u64..1_000_000],
            nanos in prop_oneof![Just(0u32), Just(1u32), 0u32..1_000_000_000],
            key in prop::sample::select(vec![
                "[cpu]\ninterval", "[cpu]\ntimeout", "[dns]\ninterval", "[kubelet]\ntimeout",
                "[remediation]\nwindow", "[remediation]\nbackoff_max", "[remediation]\nhang_after",
                "[remediation]\nrecovery_timeout", "[remediation]\nreset_after",
            ]),
        ) {
            let text = format!("{key} = \"{secs}s {nanos}ns\"\n");
            match Config::parse(Path::new("p.toml"), &text) {
                Ok(c) => {
                    let r = &c.remediation;
                    for d in [c.cpu.interval, c.dns.interval, r.window, r.backoff_max, r.hang_after] {
                        // What the engine and the scheduler add and multiply.
                        prop_assert!(d.checked_mul(4).and_then(|d| d.checked_add(r.window)).is_some());
                    }
                }
                Err(e) => prop_assert_eq!(e.to_string().lines().count(), 1),
            }
        }
    }
}
