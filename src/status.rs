//! The status board behind `GET /status`: per probe the last outcome, error,
//! latency and consecutive failures; other parts (remediation, CPU) publish
//! their own JSON sections.

use crate::vocabulary::{Outcome, ProbeResult};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Serialize)]
pub struct ProbeStatus {
    pub outcome: Option<Outcome>,
    pub detail: String,
    pub error: Option<String>,
    pub latency_seconds: f64,
    pub consecutive_failures: u64,
    pub runs: u64,
    pub last_run_unix: f64,
}

#[derive(Default)]
pub struct StatusBoard {
    probes: Mutex<BTreeMap<String, ProbeStatus>>,
    sections: Mutex<BTreeMap<&'static str, serde_json::Value>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl StatusBoard {
    /// Keeps only the named probes (at start and after a reload).
    pub fn retain(&self, names: &[String]) {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes.retain(|k, _| names.contains(k));
        for n in names {
            probes.entry(n.clone()).or_insert_with(|| ProbeStatus {
                outcome: None,
                detail: "not run yet".into(),
                error: None,
                latency_seconds: 0.0,
                consecutive_failures: 0,
                runs: 0,
                last_run_unix: 0.0,
            });
        }
    }

    pub fn record(&self, probe: &str, result: &ProbeResult, latency: Duration) {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = probes.get_mut(probe) else {
            return;
        };
        s.runs += 1;
        s.latency_seconds = latency.as_secs_f64();
        s.last_run_unix = unix_now();
        match result {
            Ok(detail) => {
                s.outcome = Some(Outcome::Ok);
                s.detail = detail.clone();
                s.error = None;
                s.consecutive_failures = 0;
            }
            Err(e) => {
                s.outcome = Some(e.outcome);
                s.error = Some(e.message.clone());
                s.consecutive_failures += 1;
            }
        }
    }

    pub fn probes(&self) -> BTreeMap<String, ProbeStatus> {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes a named section of `/status` (replacing the previous value).
    pub fn set_section(&self, name: &'static str, value: serde_json::Value) {
        self.sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, value);
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        doc.insert(
            "probes".into(),
            serde_json::to_value(self.probes()).unwrap_or_default(),
        );
        for (k, v) in self
            .sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            doc.insert((*k).to_owned(), v.clone());
        }
        serde_json::Value::Object(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::ProbeError;

    #[test]
    fn records_failures_and_recovery() {
        let b = StatusBoard::default();
        b.retain(&["docker".into()]);
        let fail: ProbeResult = Err(ProbeError::new(Outcome::Timeout, "no answer"));
        b.record("docker", &fail, Duration::from_millis(5));
        b.record("docker", &fail, Duration::from_millis(5));
        let s = &b.probes()["docker"];
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.outcome, Some(Outcome::Timeout));
        b.record("docker", &Ok("fine".into()), Duration::from_millis(1));
        let j = b.to_json();
        assert_eq!(j["probes"]["docker"]["outcome"], "ok");
        assert_eq!(j["probes"]["docker"]["consecutive_failures"], 0);
    }
}
