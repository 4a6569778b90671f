//! `nodevitals once`: every enabled probe once, a readable table, and an exit
//! code for scripts (0 all healthy, 1 otherwise). The doctor command for a node.

use crate::agent;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::run_once;
use crate::vocabulary::ProbeResult;
use std::fmt::Write as _;
use std::time::Duration;

pub struct Row {
    pub probe: String,
    pub result: ProbeResult,
    pub latency: Duration,
}

/// Runs every probe of `config` once, concurrently, each under its deadline.
pub async fn run(config: &Config) -> Vec<Row> {
    let metrics = Metrics::new();
    let status = std::sync::Arc::new(crate::status::StatusBoard::default());
    let built = agent::build(config, &metrics, &status);
    let runs = built.probes.into_iter().map(|p| async move {
        let probe = p.name().to_owned();
        let (result, latency) = run_once(p).await;
        Row {
            probe,
            result,
            latency,
        }
    });
    futures_util::future::join_all(runs).await
}

/// The report table; one row per probe.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<14} {:>10}  DETAIL",
        "PROBE", "OUTCOME", "LATENCY"
    );
    for r in rows {
        let (outcome, detail) = match &r.result {
            Ok(d) => ("ok".to_owned(), d.clone()),
            Err(e) => (e.outcome.to_string(), e.message.clone()),
        };
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:>8.1}ms  {}",
            r.probe,
            outcome,
            r.latency.as_secs_f64() * 1000.0,
            detail
        );
    }
    if rows.is_empty() {
        out.push_str("(no probes enabled)\n");
    }
    out
}

pub fn all_healthy(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.result.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::{Outcome, ProbeError};

    #[test]
    fn table_shows_outcome_and_detail() {
        let rows = vec![
            Row {
                probe: "docker".into(),
                result: Ok("3 running containers".into()),
                latency: Duration::from_micros(1500),
            },
            Row {
                probe: "kubelet".into(),
                result: Err(ProbeError::new(Outcome::Refused, "connection refused")),
                latency: Duration::from_millis(1),
            },
        ];
        let t = render(&rows);
        assert!(t.contains("docker"), "{t}");
        assert!(t.contains("1.5ms"), "{t}");
        assert!(t.contains("refused"), "{t}");
        assert!(!all_healthy(&rows));
        assert!(all_healthy(&rows[..1]));
    }
}
