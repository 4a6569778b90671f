//! Turning what the OS and the runtime client say into an [`Outcome`]:
//! absent socket or refused connection = `refused` (down); not a socket or
//! permission denied = `misconfigured` (never remediated); a reply with an error
//! = `error`; a gRPC status the runtime sent = `error`, or `misconfigured` when it
//! says the socket does not serve the API or refuses us.

use super::CallError;
use crate::vocabulary::{Outcome, ProbeError};
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

/// Classifies a failed gRPC call. A status carrying a source error was made up
/// by the client from a transport failure (no answer: classified by its io
/// error); one without was sent by the runtime, which therefore answered.
pub fn classify_status(status: &tonic::Status, path: &Path) -> CallError {
    if let Some(source) = std::error::Error::source(status) {
        return classify_error(source, path);
    }
    let (outcome, hint) = match status.code() {
        tonic::Code::Unimplemented => (
            Outcome::Misconfigured,
            " (the socket does not serve CRI v1: is it the runtime's CRI socket, and is containerd's CRI plugin enabled?)",
        ),
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
            (Outcome::Misconfigured, "")
        }
        _ => (Outcome::Error, ""),
    };
    CallError {
        outcome,
        answered: true,
        message: format!(
            "{}: the runtime answered {:?}: {}{hint}",
            path.display(),
            status.code(),
            status.message()
        ),
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

    #[test]
    fn grpc_statuses_sent_by_the_runtime_are_answers() {
        let p = Path::new("/run/containerd/containerd.sock");
        let unimplemented =
            tonic::Status::unimplemented("unknown service runtime.v1.RuntimeService");
        let c = classify_status(&unimplemented, p);
        assert_eq!((c.outcome, c.answered), (Outcome::Misconfigured, true));
        assert!(c.message.contains("CRI plugin"), "{}", c.message);
        let internal = classify_status(&tonic::Status::internal("boom"), p);
        assert_eq!(
            (internal.outcome, internal.answered),
            (Outcome::Error, true)
        );
    }

    #[test]
    fn grpc_statuses_from_transport_errors_are_classified_by_their_io_error() {
        let io = std::io::Error::from(ErrorKind::ConnectionRefused);
        let s = tonic::Status::from_error(Box::new(io));
        let c = classify_status(&s, Path::new("/x.sock"));
        assert_eq!((c.outcome, c.answered), (Outcome::Refused, false));
    }
}
