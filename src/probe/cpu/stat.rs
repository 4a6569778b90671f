//! Pure parsers for the kernel's CPU accounting files: `cpu.stat` (cgroup v1
//! and v2) and `cpuacct.usage`. Emits no metrics; the probe counts their
//! errors in `nodevitals_cpu_parse_errors_total{file}`.

use super::ParseError;

/// Which cgroup version wrote the file: the field names and units differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// CFS bandwidth counters, every time in nanoseconds whatever the source unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    /// `nr_bursts` and the burst time, on kernels with `cpu.cfs_burst_us` (5.14+).
    pub bursts: Option<u64>,
    pub burst_ns: Option<u64>,
}

/// One parsed `cpu.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStat {
    /// `None` on v2 when the cgroup has no cpu controller (only usage is kept).
    pub throttling: Option<Throttling>,
    /// v2 `usage_usec` in nanoseconds; v1 keeps usage in `cpuacct.usage`.
    pub usage_ns: Option<u64>,
}

/// The `key value` pairs of a flat-keyed file, rejecting lines that are not.
fn pairs(text: &str) -> impl Iterator<Item = Result<(&str, &str), ParseError>> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|line| {
        let mut it = line.split_ascii_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => Ok((k, v)),
            _ => Err(ParseError::Malformed(clip(line))),
        }
    })
}

/// At most 64 characters of hostile input go into an error message.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(super) fn number(field: &str, value: &str) -> Result<u64, ParseError> {
    value.trim().parse().map_err(|_| ParseError::BadValue {
        field: clip(field),
        value: clip(value),
    })
}

/// Parses `cpu.stat`. Fields this agent does not use are ignored (kernels add
/// fields); a known field with a bad value, or a missing required one, is an
/// error rather than a zero.
pub fn parse_cpu_stat(text: &str, version: CgroupVersion) -> Result<CpuStat, ParseError> {
    let (time_key, burst_key, unit) = match version {
        CgroupVersion::V1 => ("throttled_time", "burst_time", 1),
        CgroupVersion::V2 => ("throttled_usec", "burst_usec", 1000),
    };
    let mut f: [Option<u64>; 6] = [None; 6];
    let keys = [
        "nr_periods",
        "nr_throttled",
        time_key,
        "nr_bursts",
        burst_key,
        "usage_usec",
    ];
    for pair in pairs(text) {
        let (k, v) = pair?;
        if let Some(i) = keys.iter().position(|&key| key == k) {
            f[i] = Some(number(k, v)?);
        }
    }
    let [periods, throttled, time, bursts, burst, usage] = f;
    let scale = |ns: Option<u64>| ns.map(|v| v.saturating_mul(unit));
    let throttling = match (periods, throttled, time) {
        (Some(periods), Some(throttled_periods), Some(t)) => Some(Throttling {
            periods,
            throttled_periods,
            throttled_ns: t.saturating_mul(unit),
            bursts,
            burst_ns: scale(burst),
        }),
        // A v2 cgroup without the cpu controller has only the usage fields.
        (None, None, None) if version == CgroupVersion::V2 => None,
        _ => {
            let missing = keys[..3]
                .iter()
                .zip([periods, throttled, time])
                .find(|(_, v)| v.is_none())
                .map_or("nr_periods", |(k, _)| *k);
            return Err(ParseError::Missing(missing));
        }
    };
    let usage_ns = match version {
        CgroupVersion::V1 => None,
        CgroupVersion::V2 => Some(
            usage
                .ok_or(ParseError::Missing("usage_usec"))?
                .saturating_mul(1000),
        ),
    };
    Ok(CpuStat {
        throttling,
        usage_ns,
    })
}

/// Parses v1 `cpuacct.usage`: total CPU time in nanoseconds.
pub fn parse_cpuacct_usage(text: &str) -> Result<u64, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Missing("cpuacct.usage"));
    }
    number("cpuacct.usage", text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // As printed by Linux 6.x for a cgroup v1 `cpu` controller with a quota.
    const V1: &str = "nr_periods 1204\nnr_throttled 1180\nthrottled_time 106293785201\nnr_bursts 0\nburst_time 0\n";
    // As printed by Linux 6.x for a cgroup v2 cgroup with the cpu controller.
    const V2: &str = "usage_usec 8419503\nuser_usec 8227651\nsystem_usec 191852\ncore_sched.force_idle_usec 0\nnr_periods 1204\nnr_throttled 1180\nthrottled_usec 106293785\nnr_bursts 2\nburst_usec 1500\n";

    #[test]
    fn v1_times_are_nanoseconds() {
        let s = parse_cpu_stat(V1, CgroupVersion::V1).unwrap();
        let t = s.throttling.unwrap();
        assert_eq!((t.periods, t.throttled_periods), (1204, 1180));
        assert_eq!(t.throttled_ns, 106_293_785_201);
        assert_eq!(t.bursts, Some(0));
        assert_eq!(s.usage_ns, None);
    }

    #[test]
    fn v2_microseconds_become_nanoseconds() {
        let s = parse_cpu_stat(V2, CgroupVersion::V2).unwrap();
        let t = s.throttling.unwrap();
        assert_eq!(t.throttled_ns, 106_293_785_000);
        assert_eq!(t.burst_ns, Some(1_500_000));
        assert_eq!(s.usage_ns, Some(8_419_503_000));
    }

    #[test]
    fn old_kernels_without_burst_fields_parse() {
        let s = parse_cpu_stat(
            "nr_periods 3\nnr_throttled 1\nthrottled_time 5\n",
            CgroupVersion::V1,
        )
        .unwrap();
        assert_eq!(s.throttling.unwrap().bursts, None);
    }

    #[test]
    fn v2_without_cpu_controller_has_usage_only() {
        let s = parse_cpu_stat(
            "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
            CgroupVersion::V2,
        )
        .unwrap();
        assert_eq!(s.throttling, None);
        assert_eq!(s.usage_ns, Some(10_000));
    }

    #[test]
    fn missing_and_garbage_fields_are_errors_not_zeros() {
        let missing = parse_cpu_stat("nr_periods 3\nthrottled_time 5\n", CgroupVersion::V1);
        assert_eq!(missing, Err(ParseError::Missing("nr_throttled")));
        assert_eq!(
            parse_cpu_stat("", CgroupVersion::V1),
            Err(ParseError::Missing("nr_periods"))
        );
        let bad = parse_cpu_stat(
            "nr_periods x\nnr_throttled 1\nthrottled_time 5\n",
            CgroupVersion::V1,
        );
        assert!(matches!(bad, Err(ParseError::BadValue { .. })), "{bad:?}");
        let neg = parse_cpu_stat(
            "nr_periods -1\nnr_throttled 1\nthrottled_time 5\n",
            CgroupVersion::V1,
        );
        assert!(neg.is_err());
        let torn = parse_cpu_stat("nr_periods 1 2\n", CgroupVersion::V1);
        assert!(matches!(torn, Err(ParseError::Malformed(_))), "{torn:?}");
        assert!(parse_cpu_stat("nr_periods 1\n", CgroupVersion::V2).is_err());
        assert!(parse_cpu_stat(
            "nr_periods 1\nnr_throttled 0\nthrottled_usec 0\n",
            CgroupVersion::V2
        )
        .is_err());
    }

    #[test]
    fn cpuacct_usage() {
        assert_eq!(parse_cpuacct_usage("123456789\n"), Ok(123_456_789));
        assert!(parse_cpuacct_usage("").is_err());
        assert!(parse_cpuacct_usage("12 34\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC*") {
            let _ = parse_cpu_stat(&s, CgroupVersion::V1);
            let _ = parse_cpu_stat(&s, CgroupVersion::V2);
            let _ = parse_cpuacct_usage(&s);
        }

        #[test]
        fn never_panics_on_near_valid_lines(
            lines in proptest::collection::vec(
                ("(nr_periods|nr_throttled|throttled_time|throttled_usec|usage_usec|burst_usec|nr_bursts|x)",
                 "[0-9]{0,25}|-?[0-9]{1,5}|[a-z]{1,3}"),
                0..12)
        ) {
            let text: String = lines.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
            for v in [CgroupVersion::V1, CgroupVersion::V2] {
                if let Ok(stat) = parse_cpu_stat(&text, v) {
                    if let Some(t) = stat.throttling {
                        // Whatever parsed came from the text, not from a default.
                        let from_text = lines
                            .iter()
                            .any(|(k, v)| k == "nr_periods" && v.parse() == Ok(t.periods));
                        prop_assert!(from_text, "{:?}", text);
                    }
                }
            }
        }
    }
}
