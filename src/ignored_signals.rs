//! Signals the agent receives but does not act on. Operators send SIGUSR1 to
//! daemons for a dump and tools send SIGUSR2 or SIGALRM; their default action
//! would kill the agent without a word. Each is logged and ignored (the
//! agent's state is on `/status`). Emits no metrics.

use tokio::signal::unix::{signal, SignalKind};

const IGNORED: [(SignalKind, &str); 3] = [
    (SignalKind::user_defined1(), "SIGUSR1"),
    (SignalKind::user_defined2(), "SIGUSR2"),
    (SignalKind::alarm(), "SIGALRM"),
];

/// Installs the handlers; each logs until the runtime shuts down.
pub(crate) fn ignore() -> std::io::Result<()> {
    for (kind, name) in IGNORED {
        let mut stream = signal(kind)?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!(
                    signal = name,
                    "signal ignored: nodevitals dumps nothing, see /status"
                );
            }
        });
    }
    Ok(())
}
