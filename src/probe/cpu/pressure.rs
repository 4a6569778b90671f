//! Pure parser for pressure stall information: a cgroup's `cpu.pressure` and
//! the node's `/proc/pressure/cpu`. Feeds
//! `nodevitals_container_cpu_pressure_seconds_total` and
//! `nodevitals_node_cpu_pressure_seconds_total`.

use super::stat::{clip, number};
use super::ParseError;

/// Cumulative stall time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub some_us: u64,
    /// The `full` line exists on Linux 5.13+ (always 0 at node level for CPU).
    pub full_us: Option<u64>,
}

/// Parses `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` lines. Only
/// `total` is used: averages are derivable from the counter by Prometheus.
pub fn parse_pressure(text: &str) -> Result<Pressure, ParseError> {
    let (mut some, mut full) = (None, None);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_ascii_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => return Err(ParseError::Malformed(clip(line))),
        };
        let total = words
            .find_map(|w| w.strip_prefix("total="))
            .ok_or(ParseError::Missing("total"))?;
        *slot = Some(number("total", total)?);
    }
    Ok(Pressure {
        some_us: some.ok_or(ParseError::Missing("some"))?,
        full_us: full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_some_and_full() {
        let p = parse_pressure(
            "some avg10=5.54 avg60=5.67 avg300=4.76 total=32347291\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some_us, 32_347_291);
        assert_eq!(p.full_us, Some(0));
    }

    #[test]
    fn pre_5_13_kernels_have_no_full_line() {
        let p = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").unwrap();
        assert_eq!(p.full_us, None);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "full avg10=0.00 total=3\n",
            "some avg10=0.00\n",
            "some total=x\n",
            "sometimes total=1\n",
        ] {
            assert!(parse_pressure(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_pressure(&s);
        }

        #[test]
        fn totals_round_trip(some in any::<u64>(), full in any::<u64>()) {
            let text = format!("some avg10=1.00 avg60=0.50 avg300=0.10 total={some}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n");
            prop_assert_eq!(parse_pressure(&text), Ok(Pressure { some_us: some, full_us: Some(full) }));
        }
    }
}
