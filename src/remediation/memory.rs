//! The restart histories of this agent process, by state file. They outlive
//! the engines a config reload replaces, so the budget survives `SIGHUP` even
//! when the state file cannot be written (read-only or full filesystem): an
//! engine starts from here when the process knows the target, from the file
//! only on the agent's first start. Metrics: none.

use super::history::{Event, History};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What an engine hands on to the next one.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub history: History,
    pub events: Vec<Event>,
    pub state_file_error: Option<String>,
}

#[derive(Default)]
pub struct Histories {
    kept: Mutex<HashMap<PathBuf, Kept>>,
}

impl Histories {
    pub(crate) fn get(&self, state_path: &Path) -> Option<Kept> {
        self.lock().get(state_path).cloned()
    }

    pub(crate) fn put(&self, state_path: &Path, kept: Kept) {
        self.lock().insert(state_path.to_owned(), kept);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
