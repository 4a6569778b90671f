//! The diagnostic signal of `[runtime.restart]`, parsed into a typed value while
//! the config is deserialized, so remediation never sees (or re-checks) a name.
//! Metrics: none.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A signal sent to a runtime before SIGTERM so it leaves a dump behind. Only
/// signals that runtimes handle without exiting can be configured; `none`
/// disables the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DiagnosticSignal {
    None,
    Usr1,
    Usr2,
    Quit,
}

impl DiagnosticSignal {
    /// The signal number to send; `None` when the step is disabled.
    pub fn number(self) -> Option<i32> {
        match self {
            DiagnosticSignal::None => None,
            DiagnosticSignal::Usr1 => Some(libc::SIGUSR1),
            DiagnosticSignal::Usr2 => Some(libc::SIGUSR2),
            DiagnosticSignal::Quit => Some(libc::SIGQUIT),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DiagnosticSignal::None => "none",
            DiagnosticSignal::Usr1 => "SIGUSR1",
            DiagnosticSignal::Usr2 => "SIGUSR2",
            DiagnosticSignal::Quit => "SIGQUIT",
        }
    }
}

/// A name that is not one of the diagnostic signals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not one of SIGUSR1, SIGUSR2, SIGQUIT, none")]
pub struct UnknownSignal(String);

impl std::str::FromStr for DiagnosticSignal {
    type Err = UnknownSignal;

    /// `SIGUSR1` or `USR1`; `none` (or `NONE`) disables the step.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim_start_matches("SIG") {
            "none" | "NONE" => Ok(DiagnosticSignal::None),
            "USR1" => Ok(DiagnosticSignal::Usr1),
            "USR2" => Ok(DiagnosticSignal::Usr2),
            "QUIT" => Ok(DiagnosticSignal::Quit),
            _ => Err(UnknownSignal(name.to_owned())),
        }
    }
}

impl TryFrom<String> for DiagnosticSignal {
    type Error = UnknownSignal;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<DiagnosticSignal> for String {
    fn from(s: DiagnosticSignal) -> Self {
        s.as_str().to_owned()
    }
}

impl fmt::Display for DiagnosticSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_signal_numbers() {
        let number = |name: &str| name.parse::<DiagnosticSignal>().map(|s| s.number());
        assert_eq!(number("SIGUSR1"), Ok(Some(libc::SIGUSR1)));
        assert_eq!(number("USR2"), Ok(Some(libc::SIGUSR2)));
        assert_eq!(number("QUIT"), Ok(Some(libc::SIGQUIT)));
        assert_eq!(number("none"), Ok(None));
        assert!(number("SIGKILL").is_err());
        assert!(number("").is_err());
    }

    #[test]
    fn a_signal_prints_as_it_parses() {
        for s in ["SIGUSR1", "SIGUSR2", "SIGQUIT", "none"] {
            let parsed: DiagnosticSignal = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s);
        }
    }
}
