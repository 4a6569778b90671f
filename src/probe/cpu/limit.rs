//! Pure parsers for CPU limits: v2 `cpu.max`, v1 `cpu.cfs_quota_us` and
//! `cpu.cfs_period_us`. Emits no metrics; feeds
//! `nodevitals_container_cpu_limit_cores`.

use super::stat::{clip, number};
use super::ParseError;

/// A CFS bandwidth limit: `quota_us` of CPU time per `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// `None` = unlimited (`max` on v2, `-1` on v1).
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl Limit {
    /// The limit in cores (quota / period), `None` when unlimited.
    pub fn cores(&self) -> Option<f64> {
        let quota = self.quota_us?;
        // A zero period cannot be configured; guard anyway so it never divides.
        (self.period_us > 0).then(|| quota as f64 / self.period_us as f64)
    }
}

fn period(value: &str) -> Result<u64, ParseError> {
    match number("period", value)? {
        0 => Err(ParseError::BadValue {
            field: "period".into(),
            value: "0".into(),
        }),
        p => Ok(p),
    }
}

/// Parses v2 `cpu.max`: `"<quota|max> <period>"`.
pub fn parse_cpu_max(text: &str) -> Result<Limit, ParseError> {
    let mut it = text.split_ascii_whitespace();
    let (Some(quota), Some(period_text), None) = (it.next(), it.next(), it.next()) else {
        return Err(ParseError::Malformed(clip(text)));
    };
    let quota_us = match quota {
        "max" => None,
        q => Some(number("quota", q)?),
    };
    Ok(Limit {
        quota_us,
        period_us: period(period_text)?,
    })
}

/// Parses v1 `cpu.cfs_quota_us`: microseconds, or `-1` for unlimited.
pub fn parse_cfs_quota(text: &str) -> Result<Option<u64>, ParseError> {
    match text.trim() {
        "-1" => Ok(None),
        "" => Err(ParseError::Missing("cpu.cfs_quota_us")),
        q => number("quota", q).map(Some),
    }
}

/// Parses v1 `cpu.cfs_period_us`: microseconds, never 0.
pub fn parse_cfs_period(text: &str) -> Result<u64, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Missing("cpu.cfs_period_us"));
    }
    period(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_max_limited_and_unlimited() {
        let l = parse_cpu_max("50000 100000\n").unwrap();
        assert_eq!(l.cores(), Some(0.5));
        let u = parse_cpu_max("max 100000\n").unwrap();
        assert_eq!((u.quota_us, u.cores()), (None, None));
    }

    #[test]
    fn cpu_max_garbage_is_an_error() {
        for bad in ["", "max", "50000", "a 100000", "1 0", "1 2 3", "-5 100000"] {
            assert!(parse_cpu_max(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn v1_quota_and_period() {
        assert_eq!(parse_cfs_quota("-1\n"), Ok(None));
        assert_eq!(parse_cfs_quota("10000\n"), Ok(Some(10_000)));
        assert_eq!(parse_cfs_period("100000\n"), Ok(100_000));
        assert!(parse_cfs_quota("").is_err());
        assert!(parse_cfs_quota("-2").is_err());
        assert!(parse_cfs_period("0").is_err());
        assert!(parse_cfs_period("").is_err());
        let l = Limit {
            quota_us: Some(10_000),
            period_us: 100_000,
        };
        assert_eq!(l.cores(), Some(0.1));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_cpu_max(&s);
            let _ = parse_cfs_quota(&s);
            let _ = parse_cfs_period(&s);
        }

        #[test]
        fn cores_are_finite(q in proptest::option::of(any::<u64>()), p in any::<u64>()) {
            let text = format!("{} {p}", q.map_or("max".to_owned(), |q| q.to_string()));
            if let Ok(l) = parse_cpu_max(&text) {
                prop_assert!(l.cores().is_none_or(f64::is_finite));
            }
        }
    }
}
