//! The persisted restart history of one target, a small JSON file under
//! `paths.state_dir`, written atomically (temp file, fsync, rename, fsync of the
//! directory) so an agent restart never resets the budget or the backoff. A
//! corrupt or unreadable file is reported and read as "the budget is spent",
//! never as "no restarts happened"; that conservative history is written back
//! at once, so it holds until a real window has passed, across reloads and
//! agent restarts. Reads are bounded ([`MAX_FILE_BYTES`]) and what is loaded
//! is trimmed to what the policy can use. Metrics: none (the engine counts
//! errors).

use super::history::{Event, History, WallClock, MAX_EVENTS};
use super::machine::Policy;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const VERSION: u32 = 1;

/// The largest state file read. One this agent writes holds at most
/// `MAX_EVENTS` events and `max_restarts` restarts: a few kilobytes.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

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

    /// The history the file stands for under `p`: only the newest
    /// `max_restarts` restarts count (more cannot spend more budget), a step
    /// and a next allowed time no longer than `backoff_max` (a time further
    /// ahead, from a clock stepped back or an edited file, saturates there:
    /// it lengthens the guard, it never wraps to "no backoff").
    pub(crate) fn history(&self, clock: WallClock, p: &Policy) -> History {
        let mut restarts: Vec<Instant> = self
            .restarts_unix
            .iter()
            .map(|u| clock.to_instant(*u))
            .collect();
        restarts.sort_unstable();
        let keep = restarts
            .len()
            .saturating_sub(p.max_restarts.max(1) as usize);
        restarts.drain(..keep);
        History {
            restarts,
            step: Duration::try_from_secs_f64(self.backoff_step_seconds)
                .unwrap_or(p.backoff_max)
                .min(p.backoff_max),
            next_allowed: self
                .next_allowed_unix
                .map(|u| clock.to_future_instant(u, p.backoff_max)),
            answered: self.answered,
        }
    }

    /// The newest [`MAX_EVENTS`] events, as `/status` shows them.
    pub(crate) fn into_events(mut self) -> Vec<Event> {
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
        self.events
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
        next_allowed: Some(clock.after(p.backoff_max)),
        // A restart budget was spent on it: the endpoint is taken as real.
        answered: true,
    }
}

/// Reads the state file. `Ok(None)`: no file yet (nothing ever happened).
pub(crate) fn load(path: &Path) -> Result<Option<Persisted>, StateFileError> {
    match read_bounded(path) {
        Ok(bytes) if bytes.len() as u64 > MAX_FILE_BYTES => Err(StateFileError::Corrupt {
            path: path.to_owned(),
            message: format!("larger than {MAX_FILE_BYTES} bytes"),
        }),
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

/// At most one byte more than [`MAX_FILE_BYTES`]: enough to tell it is too big.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The history in the state file. An unusable file yields the conservative
/// history along with the error to report; a corrupt one is set aside and
/// the conservative history written in its place (best effort: the engine
/// also keeps it in memory).
pub(crate) fn load_history(
    path: &Path,
    policy: &Policy,
    clock: WallClock,
) -> Result<(History, Vec<Event>), (History, StateFileError)> {
    match load(path) {
        Ok(Some(saved)) => Ok((saved.history(clock, policy), saved.into_events())),
        Ok(None) => Ok((History::default(), Vec::new())),
        Err(e) => {
            let history = conservative(policy, clock);
            if matches!(e, StateFileError::Corrupt { .. }) {
                set_aside(path);
                if let Err(w) = save(path, &Persisted::from_history(&history, &[], clock)) {
                    tracing::warn!(error = %w, "cannot write the conservative history back");
                }
            }
            Err((history, e))
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
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&json)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        // A full filesystem must not also keep a torn temp file.
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
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
        let h2 = back.history(clock, &policy());
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

    fn persisted(next_allowed_unix: Option<f64>) -> Persisted {
        Persisted {
            version: VERSION,
            restarts_unix: Vec::new(),
            backoff_step_seconds: 60.0,
            next_allowed_unix,
            events: Vec::new(),
            answered: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_far_future_backoff_saturates_at_backoff_max_instead_of_vanishing() {
        let p = policy();
        let clock = WallClock::now();
        for far in [clock.unix + 1e7, 1e300] {
            let h = persisted(Some(far)).history(clock, &p);
            assert_eq!(h.next_allowed, Some(clock.instant + p.backoff_max), "{far}");
        }
        let near = persisted(Some(clock.unix + 30.0)).history(clock, &p);
        assert_eq!(
            near.next_allowed,
            Some(clock.instant + Duration::from_secs(30))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_loaded_is_trimmed_to_what_the_policy_uses() {
        tokio::time::advance(Duration::from_secs(7200)).await;
        let p = policy();
        let clock = WallClock::now();
        let mut big = persisted(None);
        big.restarts_unix = (0..500).map(|i| clock.unix - f64::from(i)).collect();
        big.events = vec![event(); 5_000];
        big.backoff_step_seconds = 1e12;
        let h = big.history(clock, &p);
        assert_eq!(h.restarts.len(), p.max_restarts as usize);
        assert_eq!(
            h.restarts.last(),
            Some(&clock.instant),
            "the newest are kept"
        );
        assert_eq!(h.step, p.backoff_max);
        assert_eq!(big.into_events().len(), MAX_EVENTS);
    }

    #[test]
    fn an_oversized_file_is_corrupt_without_being_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.json");
        let f = std::fs::File::create(&path).unwrap();
        // Sparse: 64 MiB that cost no disk, and must cost no memory either.
        f.set_len(64 << 20).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_corrupt_file_is_replaced_by_the_conservative_history_so_it_outlives_a_reload() {
        let p = policy();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.json");
        std::fs::write(&path, b"garbage").unwrap();
        let (first, e) = load_history(&path, &p, WallClock::now()).unwrap_err();
        assert!(matches!(e, StateFileError::Corrupt { .. }));
        assert!(dir.path().join("docker.json.corrupt").exists());
        tokio::time::advance(Duration::from_secs(12)).await;
        // The next engine (a reload, an agent restart) reads a spent budget.
        let (again, _) = load_history(&path, &p, WallClock::now()).unwrap();
        assert_eq!(again.restarts.len(), first.restarts.len());
        assert_eq!(again.restarts.len(), p.max_restarts as usize);
        assert!(again.next_allowed > Some(tokio::time::Instant::now()));
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
