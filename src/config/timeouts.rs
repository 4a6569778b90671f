//! Probe deadlines that fit what a user writes: a probe whose `timeout` is not
//! set gets `min(default, interval)`, as Prometheus does for `scrape_timeout`,
//! so `[cpu] interval = "2s"` alone is valid. An explicit timeout longer than
//! its interval stays an error (`check_probe_timing`). Emits no metrics.

use super::Config;
use std::time::Duration;

/// Whether the section at `path` (`"cpu"`, `"runtime"` with an index) sets
/// `timeout` in the file's own text.
fn sets_timeout(table: &toml::Table, section: &str, index: Option<usize>) -> bool {
    let entry = table.get(section);
    let entry = match index {
        Some(i) => entry.and_then(|v| v.as_array()).and_then(|a| a.get(i)),
        None => entry,
    };
    entry
        .and_then(|v| v.as_table())
        .is_some_and(|t| t.contains_key("timeout"))
}

/// An unset timeout holds its default; it shrinks to fit a shorter interval.
fn fit(timeout: &mut Duration, interval: Duration, set: bool) {
    if !set {
        *timeout = (*timeout).min(interval);
    }
}

impl Config {
    /// Fits every timeout the file did not set into its probe's interval.
    /// `table` is the file the config was deserialized from.
    pub(super) fn fit_unset_timeouts(&mut self, table: &toml::Table) {
        for (i, rt) in self.runtimes.iter_mut().enumerate() {
            fit(
                &mut rt.timeout,
                rt.interval,
                sets_timeout(table, "runtime", Some(i)),
            );
        }
        let k = &mut self.kubelet;
        fit(
            &mut k.timeout,
            k.interval,
            sets_timeout(table, "kubelet", None),
        );
        let d = &mut self.dns;
        fit(&mut d.timeout, d.interval, sets_timeout(table, "dns", None));
        let c = &mut self.cpu;
        fit(&mut c.timeout, c.interval, sets_timeout(table, "cpu", None));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(Path::new("/etc/nv.toml"), text)
    }

    #[test]
    fn an_unset_timeout_fits_a_short_interval() {
        let c = parse("[cpu]\ninterval = \"2s\"\n").unwrap();
        assert_eq!(c.cpu.timeout, Duration::from_secs(2));
        let c = parse("[kubelet]\ninterval = \"1s\"\n[dns]\ninterval = \"500ms\"\n").unwrap();
        assert_eq!(c.kubelet.timeout, Duration::from_secs(1));
        assert_eq!(c.dns.timeout, Duration::from_millis(500));
        let rt = "[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\ninterval = \"3s\"\n[remediation]\nhang_after = \"10s\"\n";
        assert_eq!(
            parse(rt).unwrap().runtimes[0].timeout,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn an_unset_timeout_keeps_its_default_under_a_long_interval() {
        let c = parse("[cpu]\ninterval = \"1m\"\n[dns]\ninterval = \"1m\"\n").unwrap();
        assert_eq!(c.cpu.timeout, Duration::from_secs(10));
        assert_eq!(c.dns.timeout, Duration::from_secs(2));
    }

    #[test]
    fn an_explicit_timeout_is_kept_and_still_checked() {
        let c = parse("[cpu]\ninterval = \"20s\"\ntimeout = \"15s\"\n").unwrap();
        assert_eq!(c.cpu.timeout, Duration::from_secs(15));
        let e = parse("[cpu]\ninterval = \"2s\"\ntimeout = \"3s\"\n").unwrap_err();
        assert!(e.to_string().contains("cpu.timeout"), "{e}");
        let e = parse("[[runtime]]\nkind = \"docker\"\nendpoint = \"/d.sock\"\ninterval = \"1s\"\ntimeout = \"2s\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("runtime[0].timeout"), "{e}");
    }
}
