//! The persisted restart history of one target, a small JSON file under
//! `paths.state_dir`, written atomically (temp file, fsync, rename, fsync of the
//! directory) so an agent restart never resets the budget or the backoff. A
//! corrupt or unreadable file is reported and read as "the budget is spent",
//! never as "no restarts happened". Metrics: none (the engine counts errors).

use super::history::{Event, History, WallClock};
use super::machine::Policy;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateFileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file's content. Times are Unix seconds: `Instant`s do not survive a
/// process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Persisted {
    pub version: u32,
    pub restarts_unix: Vec<f64>,
    pub backoff_step_seconds: f64,
    pub next_allowed_unix: Option<f64>,
    pub events: Vec<Event>,
    /// Whether the runtime ever answered at this endpoint; absent in older files.
    #[serde(default)]
    pub answered: bool,
}

impl Persisted {
    pub(crate) fn from_history(h: &History, events: &[Event], clock: WallClock) -> Self {
        Self {
            version: VERSION,
            restarts_unix: h.restarts.iter().map(|t| clock.to_unix(*t)).collect(),
            backoff_step_seconds: h.step.as_secs_f64(),
            next_allowed_unix: h.next_allowed.map(|t| clock.to_unix(t)),
            events: events.to_vec(),
            answered: h.answered,
        }
    }

    pub(crate) fn history(&self, clock: WallClock) -> History {
        History {
            restarts: self
                .restarts_unix
                .iter()
                .map(|u| clock.to_instant(*u))
                .collect(),
            step: Duration::try_from_secs_f64(self.backoff_step_seconds).unwrap_or_default(),
            next_allowed: self.next_allowed_unix.map(|u| clock.to_future_instant(u)),
            answered: self.answered,
        }
    }
}

/// Parses the file's bytes; pure. Rejects other versions and non-finite or
/// negative times, which no writer produces.
pub(crate) fn parse(bytes: &[u8]) -> Result<Persisted, String> {
    let p: Persisted = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if p.version != VERSION {
        return Err(format!("unknown version {}", p.version));
    }
    let times = p
        .restarts_unix
        .iter()
        .chain(p.next_allowed_unix.iter())
        .chain(std::iter::once(&p.backoff_step_seconds));
    for t in times {
        if !t.is_finite() || *t < 0.0 {
            return Err(format!("invalid time {t}"));
        }
    }
    Ok(p)
}

/// The history a corrupt or unreadable file stands for: the whole budget spent
/// just now and the longest backoff, so a broken file can never allow a storm.
pub(crate) fn conservative(p: &Policy, clock: WallClock) -> History {
    History {
        restarts: vec![clock.instant; p.max_restarts.max(1) as usize],
        step: p.backoff_max,
        next_allowed: Some(clock.instant + p.backoff_max),
        // A restart budget was spent on it: the endpoint is taken as real.
        answered: true,
    }
}

/// Reads the state file. `Ok(None)`: no file yet (nothing ever happened).
pub(crate) fn load(path: &Path) -> Result<Option<Persisted>, StateFileError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes)
            .map(Some)
            .map_err(|message| StateFileError::Corrupt {
                path: path.to_owned(),
                message,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The history in the state file. A corrupt file is set aside; an unusable
/// file yields the conservative history along with the error to report.
pub(crate) fn load_history(
    path: &Path,
    policy: &Policy,
    clock: WallClock,
) -> Result<(History, Vec<Event>), (History, StateFileError)> {
    match load(path) {
        Ok(Some(saved)) => Ok((saved.history(clock), saved.events)),
        Ok(None) => Ok((History::default(), Vec::new())),
        Err(e) => {
            if matches!(e, StateFileError::Corrupt { .. }) {
                set_aside(path);
            }
            Err((conservative(policy, clock), e))
        }
    }
}

/// Keeps a corrupt file for inspection before it is overwritten.
pub(crate) fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    if let Err(e) = std::fs::rename(path, &aside) {
        tracing::warn!(path = %path.display(), error = %e, "cannot set the corrupt state file aside");
    }
}

/// Writes atomically: a reader (or the next agent) sees the old or the new
/// content, never a torn file, even across a power loss.
pub(crate) fn save(path: &Path, content: &Persisted) -> Result<(), StateFileError> {
    let err = |source| StateFileError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let json = serde_json::to_vec_pretty(content).map_err(|e| err(std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&json).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy::from(&crate::config::RemediationConfig::default())
    }

    fn event() -> Event {
        Event {
            at_unix: 1_700_000_000.0,
            method: "signal".into(),
            result: "success".into(),
            recovery_seconds: Some(1.5),
            running_before: Some(2),
            running_after: Some(0),
            detail: "SIGTERM to 42".into(),
            diagnosis: None,
            dump: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn round_trips_through_the_file() {
        tokio::time::advance(Duration::from_secs(7200)).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/docker.json");
        let clock = WallClock::now();
        let h = History {
            restarts: vec![
                clock.instant - Duration::from_secs(100),
                clock.instant - Duration::from_secs(10),
            ],
            step: Duration::from_secs(120),
            next_allowed: Some(clock.instant + Duration::from_secs(110)),
            answered: true,
        };
        save(&path, &Persisted::from_history(&h, &[event()], clock)).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.events, vec![event()]);
        let h2 = back.history(clock);
        assert_eq!(h2.step, h.step);
        assert!(h2.answered);
        for (a, b) in h.restarts.iter().zip(&h2.restarts) {
            assert!(a.max(b).duration_since(*a.min(b)) < Duration::from_millis(1));
        }
        let (a, b) = (h.next_allowed.unwrap(), h2.next_allowed.unwrap());
        assert!(a.max(b).duration_since(a.min(b)) < Duration::from_millis(1));
        assert!(!dir.path().join("sub/docker.json.tmp").exists());
    }

    #[test]
    fn missing_file_is_no_history_but_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.json");
        assert!(load(&path).unwrap().is_none());
        std::fs::write(&path, b"{\"version\": 1, \"restarts_unix\": [").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("docker.json") && e.contains("corrupt"), "{e}");
        set_aside(&path);
        assert!(dir.path().join("docker.json.corrupt").exists());
        assert!(load(&path).unwrap().is_none());
    }

    #[test]
    fn rejects_versions_and_bad_times() {
        let ok = r#"{"version":1,"restarts_unix":[1.0],"backoff_step_seconds":60,"next_allowed_unix":null,"events":[]}"#;
        assert!(parse(ok.as_bytes()).is_ok());
        for bad in [
            ok.replace("\"version\":1", "\"version\":2"),
            ok.replace("[1.0]", "[-5.0]"),
            ok.replace("60", "1e999"),
            ok.replace("\"events\":[]", "\"events\":[],\"extra\":1"),
            String::new(),
            "null".into(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn conservative_history_spends_the_budget() {
        let p = policy();
        let clock = WallClock::now();
        let h = conservative(&p, clock);
        assert_eq!(h.restarts.len(), p.max_restarts as usize);
        assert_eq!(h.next_allowed, Some(clock.instant + p.backoff_max));
    }

    #[test]
    fn unreadable_file_is_an_error_not_absence() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: read fails with EISDIR.
        let path = dir.path().join("docker.json");
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(load(&path), Err(StateFileError::Read { .. })));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_json(s in r#"\{"version":[0-9],"restarts_unix":\[[-0-9.e,]{0,20}\],"backoff_step_seconds":[-0-9.e]{1,8},"next_allowed_unix":(null|[0-9.]{1,6}),"events":\[\]\}"#) {
            let _ = parse(s.as_bytes());
        }
    }
}
