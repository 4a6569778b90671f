//! The `config` section of `/status` (and of the page at `/`): the config in
//! force as TOML, where it came from and when it was applied, and the last
//! reload that was rejected, with its error. Metrics: none (reloads are counted
//! by `nodevitals_config_reloads_total` in `metrics/agent.rs`).

use crate::config::{Config, ConfigSource};
use std::time::{SystemTime, UNIX_EPOCH};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// What the agent knows about its config over reloads.
#[derive(Debug, Default)]
pub(crate) struct ConfigStatus {
    applied_unix: f64,
    reloads: u64,
    /// The last rejected reload: when, and why.
    last_failure: Option<(f64, String)>,
    /// Whether the most recent reload was the rejected one.
    failing: bool,
}

impl ConfigStatus {
    pub(crate) fn applied(&mut self) {
        self.applied_unix = unix_now();
        self.failing = false;
    }

    pub(crate) fn reloaded(&mut self) {
        self.reloads += 1;
        self.applied();
    }

    pub(crate) fn rejected(&mut self, error: String) {
        self.reloads += 1;
        self.last_failure = Some((unix_now(), error));
        self.failing = true;
    }

    pub(crate) fn section(&self, source: &ConfigSource, config: &Config) -> serde_json::Value {
        let origin = if source.path().exists() {
            source.path().display().to_string()
        } else {
            "built-in defaults".to_owned()
        };
        let toml =
            toml::to_string_pretty(config).unwrap_or_else(|e| format!("# not printable: {e}"));
        serde_json::json!({
            "source": origin,
            "applied_unix": self.applied_unix,
            "reloads": self.reloads,
            "last_reload_rejected": self.failing,
            "last_failure": self.last_failure.as_ref().map(|(at, error)| serde_json::json!({
                "at_unix": at,
                "error": error,
            })),
            "effective": toml,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_reload_is_kept_after_a_good_one() {
        let source = ConfigSource::Default("/nonexistent/config.toml".into());
        let config = Config::default();
        let mut s = ConfigStatus::default();
        s.applied();
        let j = s.section(&source, &config);
        assert_eq!(j["source"], "built-in defaults");
        assert!(j["last_failure"].is_null());
        assert!(j["effective"].as_str().unwrap().contains("[remediation]"));
        s.rejected("config.toml: line 3: unknown key".into());
        let j = s.section(&source, &config);
        assert_eq!(j["last_reload_rejected"], true);
        assert_eq!(
            j["last_failure"]["error"],
            "config.toml: line 3: unknown key"
        );
        s.reloaded();
        let j = s.section(&source, &config);
        assert_eq!(j["last_reload_rejected"], false);
        assert_eq!(j["reloads"], 2);
        assert!(j["last_failure"]["at_unix"].as_f64().unwrap() > 0.0);
    }
}
