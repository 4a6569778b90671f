//! The `dns` section of `/status` (and of the page at `/`): per server the
//! queries of the last run with their result and latency, and the slowest
//! query of each of the recent runs; the lookups' results; the conntrack
//! counters as last read. Metrics: none (the probe's metrics are in `metrics/dns.rs`).

use super::conntrack::ConntrackStats;
use std::collections::{BTreeMap, VecDeque};

/// Runs whose slowest query is kept per server.
pub(super) const RECENT_RUNS: usize = 20;

/// One query of a run as the section shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Answered {
    pub name: String,
    pub qtype: &'static str,
    pub transport: &'static str,
    pub result: &'static str,
    pub seconds: f64,
}

/// The slowest query per server over the last [`RECENT_RUNS`] runs, oldest
/// first; servers no longer probed are dropped at the next run.
#[derive(Debug, Default)]
pub(super) struct Recent(BTreeMap<String, VecDeque<f64>>);

impl Recent {
    /// Adds one run's answers (server, answer) and returns the section.
    pub(super) fn section(
        &mut self,
        answers: &[(String, Answered)],
        lookups: &[(String, &'static str)],
        conntrack: Result<Option<ConntrackStats>, String>,
    ) -> serde_json::Value {
        let mut servers: BTreeMap<&str, Vec<&Answered>> = BTreeMap::new();
        for (server, a) in answers {
            servers.entry(server).or_default().push(a);
        }
        self.0.retain(|s, _| servers.contains_key(s.as_str()));
        let mut out = serde_json::Map::new();
        for (server, queries) in servers {
            let slowest = queries.iter().map(|a| a.seconds).fold(0.0, f64::max);
            let recent = self.0.entry(server.to_owned()).or_default();
            if recent.len() == RECENT_RUNS {
                recent.pop_front();
            }
            recent.push_back(slowest);
            out.insert(
                server.to_owned(),
                serde_json::json!({ "queries": queries, "recent_slowest_seconds": recent }),
            );
        }
        let (conntrack, conntrack_error) = match conntrack {
            Ok(c) => (
                c.map(|c| serde_json::json!({ "insert_failed": c.insert_failed, "drop": c.drop })),
                None,
            ),
            Err(e) => (None, Some(e)),
        };
        serde_json::json!({
            "servers": out,
            "lookups": lookups
                .iter()
                .map(|(name, result)| serde_json::json!({ "name": name, "result": result }))
                .collect::<Vec<_>>(),
            "conntrack": conntrack,
            "conntrack_error": conntrack_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(seconds: f64) -> Answered {
        Answered {
            name: "a.test.".into(),
            qtype: "A",
            transport: "udp",
            result: "noerror",
            seconds,
        }
    }

    #[test]
    fn keeps_the_slowest_query_of_recent_runs_per_server() {
        let mut r = Recent::default();
        let run = |r: &mut Recent, s: f64| {
            r.section(
                &[
                    ("127.0.0.1:53".into(), answer(s)),
                    ("127.0.0.1:53".into(), answer(s / 2.0)),
                ],
                &[],
                Ok(None),
            )
        };
        for i in 0..RECENT_RUNS + 3 {
            run(&mut r, i as f64);
        }
        let s = run(&mut r, 100.0);
        let recent = s["servers"]["127.0.0.1:53"]["recent_slowest_seconds"]
            .as_array()
            .unwrap();
        assert_eq!(recent.len(), RECENT_RUNS);
        assert_eq!(recent.last().unwrap(), 100.0);
        assert_eq!(s["servers"]["127.0.0.1:53"]["queries"][1]["seconds"], 50.0);
        // A server that is no longer probed is forgotten.
        let s = r.section(&[("127.0.0.2:53".into(), answer(1.0))], &[], Ok(None));
        assert!(s["servers"].get("127.0.0.1:53").is_none());
        assert_eq!(r.0.len(), 1);
    }

    #[test]
    fn conntrack_counters_or_the_reason_they_are_missing() {
        let mut r = Recent::default();
        let stats = ConntrackStats {
            insert_failed: 3,
            drop: 1,
        };
        let s = r.section(&[], &[("x".into(), "ok")], Ok(Some(stats)));
        assert_eq!(s["conntrack"]["insert_failed"], 3);
        assert_eq!(s["lookups"][0]["result"], "ok");
        let s = r.section(&[], &[], Err("unreadable".into()));
        assert!(s["conntrack"].is_null());
        assert_eq!(s["conntrack_error"], "unreadable");
    }
}
