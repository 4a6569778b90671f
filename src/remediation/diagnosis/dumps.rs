//! Keeps the stack dump a runtime writes when sent its diagnostic signal:
//! dockerd writes `goroutine-stacks-<time>.log` into its exec root on SIGUSR1
//! (and logs the path). The newest such file written since the restart was
//! decided is copied, at most [`MAX_DUMP_BYTES`], into `<state_dir>/dumps`,
//! and only the newest `keep` copies of a target are kept. Metrics: none (the
//! engine sets `nodevitals_remediation_dumps_kept`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A dump bigger than this is cut (a dockerd with thousands of goroutines
/// writes a few MB; the head holds the blocked goroutines' summary lines).
pub(crate) const MAX_DUMP_BYTES: u64 = 16 << 20;

/// Names of the files dockerd writes on SIGUSR1.
const DOCKER_DUMP_PREFIX: &str = "goroutine-stacks-";

#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    #[error("no {DOCKER_DUMP_PREFIX}*.log written since the restart was decided in {dir}")]
    NotWritten { dir: PathBuf },
    #[error("cannot keep the stack dump {from} in {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

/// dockerd's exec root from its command line (`--exec-root=DIR` or
/// `--exec-root DIR`), else its default `/var/run/docker`.
pub(crate) fn docker_exec_root(cmdline: &[u8]) -> PathBuf {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(dir) = arg.strip_prefix("--exec-root=") {
            found = Some(dir.to_owned());
        } else if arg == "--exec-root" {
            found = args.get(i + 1).cloned();
        }
    }
    PathBuf::from(
        found
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/var/run/docker".into()),
    )
}

/// The newest `goroutine-stacks-*.log` in `dir` modified at or after `since`.
fn newest_dump(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(DOCKER_DUMP_PREFIX) && name.ends_with(".log")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(modified, _)| *modified >= since)
        .max()
        .map(|(_, path)| path)
}

/// Copies the dump written into `dir` since `since` to
/// `<keep_dir>/<target>-<unix>-<its name>`, then removes all but the newest
/// `keep` dumps of `target`. Returns the kept copy's path.
pub(crate) fn capture(
    dir: &Path,
    since: SystemTime,
    keep_dir: &Path,
    target: &str,
    unix: u64,
    keep: usize,
) -> Result<PathBuf, DumpError> {
    let from = newest_dump(dir, since).ok_or_else(|| DumpError::NotWritten { dir: dir.into() })?;
    let name = from
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let to = keep_dir.join(format!("{target}-{unix}-{name}"));
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(keep_dir)?;
        let mut source = std::fs::File::open(&from)?.take(MAX_DUMP_BYTES);
        let mut dest = std::fs::File::create(&to)?;
        std::io::copy(&mut source, &mut dest)?;
        dest.sync_all()
    };
    copy().map_err(|source| DumpError::Copy {
        from: from.clone(),
        to: to.clone(),
        source,
    })?;
    rotate(keep_dir, target, keep);
    Ok(to)
}

/// The kept dumps of `target`, oldest first (names start with the Unix time).
pub(crate) fn kept(keep_dir: &Path, target: &str) -> Vec<PathBuf> {
    let prefix = format!("{target}-");
    let mut dumps: Vec<(u64, PathBuf)> = std::fs::read_dir(keep_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let unix = name
                .strip_prefix(&prefix)?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            Some((unix, e.path()))
        })
        .collect();
    dumps.sort();
    dumps.into_iter().map(|(_, p)| p).collect()
}

fn rotate(keep_dir: &Path, target: &str, keep: usize) {
    let dumps = kept(keep_dir, target);
    let excess = dumps.len().saturating_sub(keep);
    for old in &dumps[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(path = %old.display(), error = %e, "cannot remove an old stack dump");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exec_root_from_the_command_line() {
        assert_eq!(
            docker_exec_root(b"dockerd\0--exec-root=/run/x\0-H\0unix:///s"),
            PathBuf::from("/run/x")
        );
        assert_eq!(
            docker_exec_root(b"dockerd\0--exec-root\0/run/y\0"),
            PathBuf::from("/run/y")
        );
        assert_eq!(
            docker_exec_root(b"dockerd\0--exec-root"),
            PathBuf::from("/var/run/docker")
        );
        assert_eq!(docker_exec_root(b""), PathBuf::from("/var/run/docker"));
    }

    #[test]
    fn captures_the_newest_dump_cut_to_size_and_rotates() {
        let exec = tempfile::tempdir().unwrap();
        let keep = tempfile::tempdir().unwrap();
        let since = SystemTime::now() - Duration::from_secs(5);
        let err = capture(exec.path(), since, keep.path(), "docker", 1, 2).unwrap_err();
        assert!(matches!(err, DumpError::NotWritten { .. }), "{err}");
        std::fs::write(exec.path().join("unrelated.log"), "x").unwrap();
        for unix in 10..15 {
            let name = format!("goroutine-stacks-{unix}.log");
            std::fs::write(exec.path().join(&name), format!("dump {unix}")).unwrap();
            let kept_path = capture(exec.path(), since, keep.path(), "docker", unix, 2).unwrap();
            assert!(kept_path.starts_with(keep.path()));
        }
        let left = kept(keep.path(), "docker");
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left[1].to_string_lossy().contains("docker-14-"), "{left:?}");
        assert!(kept(keep.path(), "containerd").is_empty());
        // A dump older than the decision is not this restart's.
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(capture(exec.path(), later, keep.path(), "docker", 20, 2).is_err());
    }
}
