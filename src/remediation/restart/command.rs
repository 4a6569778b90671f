//! The `command` restarter: runs the configured argv under `restart.timeout`.

use super::{run_command, RestartFuture, Restarter};
use crate::remediation::defaults::RestartSpec;
use std::time::Duration;

pub(crate) struct CommandRestarter {
    argv: Vec<String>,
    timeout: Duration,
}

impl CommandRestarter {
    pub(crate) fn new(spec: &RestartSpec) -> Self {
        Self {
            argv: spec.command.clone(),
            timeout: spec.timeout,
        }
    }
}

impl Restarter for CommandRestarter {
    fn preflight(&self) -> RestartFuture {
        let program = self.argv.first().cloned().unwrap_or_default();
        Box::pin(async move { Ok(format!("restart command: {program}")) })
    }

    fn restart(&self) -> RestartFuture {
        let (argv, timeout) = (self.argv.clone(), self.timeout);
        Box::pin(async move {
            let out = run_command(&argv, timeout).await?;
            Ok(format!("ran {argv:?}: {out}"))
        })
    }
}
