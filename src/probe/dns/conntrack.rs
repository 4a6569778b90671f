//! Conntrack drop counters from `<proc>/net/stat/nf_conntrack`: one header row
//! of field names, then one row of hex counters per CPU, summed here. They sit
//! next to the DNS metrics because a failed conntrack insert is what loses the
//! second query of a parallel A/AAAA pair.
//!
//! Feeds `nodevitals_conntrack_insert_failed_total` and
//! `nodevitals_conntrack_drop_total` (absent when the file is).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ConntrackStats {
    pub insert_failed: u64,
    pub drop: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConntrackError {
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parses the file's text; the sums wrap like the kernel's per-CPU counters.
pub(crate) fn parse_conntrack_stat(text: &str) -> Result<ConntrackStats, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no \"{name}\" column"))
    };
    let (insert_failed, drop) = (column("insert_failed")?, column("drop")?);
    let mut stats = ConntrackStats::default();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() != header.len() {
            return Err(format!(
                "row {} has {} fields, the header {}",
                i + 1,
                cells.len(),
                header.len()
            ));
        }
        let hex = |c: usize| {
            u64::from_str_radix(cells[c], 16)
                .map_err(|_| format!("row {}: \"{}\" is not hex", i + 1, cells[c]))
        };
        stats.insert_failed = stats.insert_failed.wrapping_add(hex(insert_failed)?);
        stats.drop = stats.drop.wrapping_add(hex(drop)?);
    }
    Ok(stats)
}

/// Reads the counters under the proc root; `Ok(None)` when the kernel does not
/// expose them (no conntrack module loaded), so the metrics stay absent.
pub(crate) fn read(proc_root: &Path) -> Result<Option<ConntrackStats>, ConntrackError> {
    let path = proc_root.join("net/stat/nf_conntrack");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_conntrack_stat(&text)
            .map(Some)
            .map_err(|message| ConntrackError::Parse { path, message }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConntrackError::Read { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TWO_CPUS: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
        0000001a  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 0000000a 00000001 00000000 00000000  00000000 00000000 00000000 00000000\n\
        0000001a  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 000000f0 00000002 00000000 00000000  00000000 00000000 00000000 00000000\n";

    #[test]
    fn per_cpu_rows_are_summed() {
        assert_eq!(
            parse_conntrack_stat(TWO_CPUS).unwrap(),
            ConntrackStats {
                insert_failed: 0xfa,
                drop: 3
            }
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(parse_conntrack_stat("").is_err());
        assert!(parse_conntrack_stat("entries drop\n1 2\n").is_err());
        assert!(parse_conntrack_stat("insert_failed drop\n1\n").is_err());
        assert!(parse_conntrack_stat("insert_failed drop\n1 zz\n").is_err());
    }

    #[test]
    fn absent_file_is_none_and_present_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        std::fs::create_dir_all(dir.path().join("net/stat")).unwrap();
        std::fs::write(dir.path().join("net/stat/nf_conntrack"), TWO_CPUS).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().drop, 3);
        std::fs::write(dir.path().join("net/stat/nf_conntrack"), "x").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("net/stat/nf_conntrack"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse_conntrack_stat(&text);
        }

        #[test]
        fn never_panics_on_hexish_rows(rows in proptest::collection::vec("[0-9a-fA-Fx ]{0,60}", 0..6)) {
            let text = format!("insert_failed drop other\n{}", rows.join("\n"));
            let _ = parse_conntrack_stat(&text);
        }
    }
}
