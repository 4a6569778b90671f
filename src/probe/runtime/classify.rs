//! Turning what the OS and the runtime client say into an [`Outcome`]:
//! absent socket or refused connection = `refused` (down); not a socket or
//! permission denied = `misconfigured` (never remediated); a reply with an error
//! = `error`.

use super::CallError;
use crate::probe::{Outcome, ProbeError};
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Checks the socket file before connecting, because connecting to a regular
/// file fails with the same `ECONNREFUSED` as a stopped daemon.
pub fn check_socket(path: &Path) -> Result<(), ProbeError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(()),
        Ok(_) => Err(ProbeError::new(
            Outcome::Misconfigured,
            format!("{} exists but is not a socket", path.display()),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(ProbeError::new(
            Outcome::Refused,
            format!("{} does not exist: is the runtime running?", path.display()),
        )),
        Err(e) => Err(ProbeError::new(
            classify_io(e.kind()).0,
            format!("cannot stat {}: {e}", path.display()),
        )),
    }
}

/// The outcome of a failed connection or request, from its `io::ErrorKind`, and
/// whether the runtime can be said to have answered.
pub fn classify_io(kind: ErrorKind) -> (Outcome, bool) {
    match kind {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => (Outcome::Refused, false),
        ErrorKind::PermissionDenied => (Outcome::Misconfigured, false),
        ErrorKind::TimedOut => (Outcome::Timeout, false),
        _ => (Outcome::Error, false),
    }
}

/// Classifies any client error by the first `io::Error` in its source chain;
/// without one, it is a bad answer (`error`).
pub fn classify_error(err: &(dyn std::error::Error + 'static), path: &Path) -> CallError {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let (outcome, answered) = classify_io(io.kind());
            let hint = if outcome == Outcome::Misconfigured {
                " (the agent needs read/write access to the socket: run as root or in the runtime's group)"
            } else {
                ""
            };
            return CallError {
                outcome,
                answered,
                message: format!("{}: {io}{hint}", path.display()),
            };
        }
        source = e.source();
    }
    CallError {
        outcome: Outcome::Error,
        answered: false,
        message: format!("{}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_socket(&dir.path().join("nope.sock")).unwrap_err();
        assert_eq!(e.outcome, Outcome::Refused);
    }

    #[test]
    fn regular_file_is_misconfigured() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("file.sock");
        std::fs::write(&p, b"").unwrap();
        let e = check_socket(&p).unwrap_err();
        assert_eq!(e.outcome, Outcome::Misconfigured);
        assert!(e.message.contains("not a socket"), "{}", e.message);
    }

    #[test]
    fn real_socket_passes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.sock");
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(check_socket(&p).is_ok());
    }

    #[test]
    fn io_kinds_map_to_outcomes() {
        assert_eq!(
            classify_io(ErrorKind::ConnectionRefused).0,
            Outcome::Refused
        );
        assert_eq!(
            classify_io(ErrorKind::PermissionDenied).0,
            Outcome::Misconfigured
        );
        assert_eq!(classify_io(ErrorKind::ConnectionReset).0, Outcome::Error);
    }

    #[test]
    fn error_chain_is_searched_for_io_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("request failed")]
        struct Wrapper(#[source] std::io::Error);
        let e = Wrapper(std::io::Error::from(ErrorKind::PermissionDenied));
        let c = classify_error(&e, Path::new("/run/x.sock"));
        assert_eq!(c.outcome, Outcome::Misconfigured);
        let plain = std::fmt::Error;
        assert_eq!(
            classify_error(&plain, Path::new("/x")).outcome,
            Outcome::Error
        );
    }
}
