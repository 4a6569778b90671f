//! DNS probe: every configured server x name x qtype x transport, one timed
//! query each (A and AAAA as a back-to-back pair from one UDP socket, as glibc
//! and musl send them); then every `lookups` name resolved the way glibc would
//! with the configured resolv.conf; and the kernel's conntrack drop counters.
//! Publishes the `dns` section of `/status` (`report`), and each round's
//! verdict (did any resolver answer) for the `NodeDNSUnhealthy` condition.
//!
//! Metrics: `nodevitals_dns_request_duration_seconds`, `nodevitals_dns_requests_total`,
//! `nodevitals_dns_pair_lost_total`, `nodevitals_dns_truncated_total`,
//! `nodevitals_dns_mismatched_responses_total`, `nodevitals_dns_lookup_duration_seconds`,
//! `nodevitals_dns_lookups_total`, `nodevitals_conntrack_insert_failed_total`,
//! `nodevitals_conntrack_drop_total`.

pub(crate) mod conntrack;
pub(crate) mod message;
mod queries;
mod report;
pub(crate) mod resolv_conf;
pub(crate) mod search;
pub(crate) mod sockets;
pub(crate) mod stub;
pub(crate) mod wire;

use super::{Probe, ProbeFuture};
use crate::config::{DnsConfig, DnsQtype};
use crate::metrics::{DnsMetrics, QueryLabels};
use crate::status::StatusBoard;
use crate::vocabulary::{Outcome, ProbeError, ProbeResult, ServiceRound};
use hickory_proto::rr::Name;
use queries::Target;
use resolv_conf::{parse_resolv_conf, ResolvConf};
use sockets::{NetnsError, Sockets};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Port of the nameservers of resolv.conf (it cannot name another).
const DNS_PORT: u16 = 53;

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("{path}: cannot read resolv.conf: {source}")]
    ResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: names no nameserver and dns.servers is empty")]
    NoServers { path: PathBuf },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

pub struct DnsProbe {
    interval: Duration,
    query_timeout: Duration,
    targets: Vec<Target>,
    qtypes: Vec<DnsQtype>,
    pair: bool,
    lookups: Vec<String>,
    resolv_conf: PathBuf,
    proc_root: PathBuf,
    rotation: AtomicU32,
    sockets: Sockets,
    metrics: DnsMetrics,
    status: Arc<StatusBoard>,
    recent: Mutex<report::Recent>,
    rounds: watch::Sender<Option<ServiceRound>>,
}

fn absolute(name: &str) -> Option<Name> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn read_resolv_conf(path: &Path) -> Result<ResolvConf, DnsSetupError> {
    std::fs::read_to_string(path)
        .map(|t| parse_resolv_conf(&t))
        .map_err(|source| DnsSetupError::ResolvConf {
            path: path.to_owned(),
            source,
        })
}

impl DnsProbe {
    pub fn new(
        config: &DnsConfig,
        proc_root: &Path,
        metrics: DnsMetrics,
        status: Arc<StatusBoard>,
    ) -> Result<Self, DnsSetupError> {
        let servers: Vec<SocketAddr> = if config.servers.is_empty() && !config.names.is_empty() {
            let rc = read_resolv_conf(&config.resolv_conf)?;
            if rc.nameservers.is_empty() {
                return Err(DnsSetupError::NoServers {
                    path: config.resolv_conf.clone(),
                });
            }
            rc.nameservers
                .iter()
                .map(|ip| SocketAddr::new(*ip, DNS_PORT))
                .collect()
        } else {
            config.servers.iter().map(|s| s.0).collect()
        };
        let mut targets = Vec::new();
        for server in &servers {
            for name in &config.names {
                // Validated when the config was parsed.
                let Some(abs) = absolute(&name.0) else {
                    continue;
                };
                for transport in &config.transports {
                    targets.push(Target {
                        server: *server,
                        name: abs.clone(),
                        label: name.0.clone(),
                        transport: *transport,
                    });
                }
            }
        }
        let probe = Self {
            interval: config.interval,
            query_timeout: config.timeout,
            targets,
            qtypes: config.qtypes.clone(),
            pair: config.pair,
            lookups: config.lookups.iter().map(|l| l.0.clone()).collect(),
            resolv_conf: config.resolv_conf.clone(),
            proc_root: proc_root.to_owned(),
            rotation: AtomicU32::new(rand::random()),
            sockets: match &config.netns {
                Some(path) => Sockets::in_netns(path)?,
                None => Sockets::host(),
            },
            metrics,
            status,
            recent: Mutex::default(),
            rounds: watch::Sender::new(None),
        };
        let labels: Vec<QueryLabels> = probe
            .targets
            .iter()
            .flat_map(|t| probe.qtypes.iter().map(|q| t.labels(*q)))
            .collect();
        probe.metrics.init(&labels, &probe.lookups);
        Ok(probe)
    }

    async fn check(&self) -> ProbeResult {
        let conntrack = conntrack::read(&self.proc_root);
        match &conntrack {
            Ok(stats) => self
                .metrics
                .set_conntrack(stats.map(|s| (s.insert_failed, s.drop))),
            Err(e) => tracing::warn!(error = %e, "conntrack counters not read"),
        }
        let queries =
            futures_util::future::join_all(self.targets.iter().map(|t| self.probe_target(t))).await;
        let answers: Vec<(String, report::Answered)> = self
            .targets
            .iter()
            .zip(queries)
            .flat_map(|(t, answers)| answers.into_iter().map(|a| (t.server.to_string(), a)))
            .collect();
        let mut results: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, a) in &answers {
            *results.entry(a.result).or_default() += 1;
        }
        let lookups = self.run_lookups().await;
        let section = self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .section(&answers, &lookups, conntrack.map_err(|e| e.to_string()));
        self.status.set_section("dns", section);
        let result = summarize(&results, &lookups);
        self.rounds.send_replace(Some(ServiceRound::of(
            answered(&results, &lookups),
            &result,
        )));
        result
    }

    /// Each round's verdict on the node's DNS, for its node condition.
    pub fn rounds(&self) -> watch::Receiver<Option<ServiceRound>> {
        self.rounds.subscribe()
    }

    /// Runs every lookup concurrently, each bounded so the run ends inside its
    /// deadline; a lookup cut short is recorded as a timeout at the bound (the
    /// application would have waited at least that long).
    async fn run_lookups(&self) -> Vec<(String, &'static str)> {
        if self.lookups.is_empty() {
            return Vec::new();
        }
        let rc = match read_resolv_conf(&self.resolv_conf) {
            Ok(rc) => rc,
            Err(e) => {
                tracing::warn!(error = %e, "lookups skipped");
                return self.lookups.iter().map(|n| (n.clone(), "error")).collect();
            }
        };
        let budget = self.interval.mul_f64(0.9);
        let rc = &rc;
        let runs = self.lookups.iter().map(|name| async move {
            let started = Instant::now();
            let mut stub = stub::StubResolver::new(rc, DNS_PORT, &self.rotation, &self.sockets);
            let result = tokio::time::timeout(budget, stub.lookup(name))
                .await
                .map_or("timeout", |v| v.as_str());
            self.metrics.observe_lookup(name, result, started.elapsed());
            (name.clone(), result)
        });
        futures_util::future::join_all(runs).await
    }
}

/// A result that is an answer of a working resolver (a name that does not
/// exist is still an answer).
fn is_answer(result: &str) -> bool {
    matches!(result, "noerror" | "nxdomain" | "ok" | "nodata")
}

/// Whether any server answered any query, or any lookup succeeded: false
/// only when every resolver of the round failed (timeouts, SERVFAIL,
/// refusals).
fn answered(queries: &BTreeMap<&'static str, usize>, lookups: &[(String, &'static str)]) -> bool {
    queries.keys().any(|r| is_answer(r)) || lookups.iter().any(|(_, r)| is_answer(r))
}

/// An answer (even NXDOMAIN) is a healthy server; a timeout is a timeout;
/// anything else is an error.
fn summarize(
    queries: &BTreeMap<&'static str, usize>,
    lookups: &[(String, &'static str)],
) -> ProbeResult {
    let total: usize = queries.values().sum();
    let counts: Vec<String> = queries.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut detail = format!("{total} queries: {}", counts.join(", "));
    if !lookups.is_empty() {
        let l: Vec<String> = lookups.iter().map(|(n, r)| format!("{n}={r}")).collect();
        detail.push_str(&format!("; lookups: {}", l.join(", ")));
    }
    let bad = |r: &str| !is_answer(r);
    let timeouts = queries.contains_key("timeout") || lookups.iter().any(|(_, r)| *r == "timeout");
    if timeouts {
        return Err(ProbeError::new(Outcome::Timeout, detail));
    }
    if queries.keys().any(|r| bad(r)) || lookups.iter().any(|(_, r)| bad(r)) {
        return Err(ProbeError::new(Outcome::Error, detail));
    }
    Ok(detail)
}

impl Probe for DnsProbe {
    fn name(&self) -> &str {
        "dns"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// Queries end by `timeout` (twice with a TCP retry); lookups by 90% of
    /// the interval, so the run fits in its interval.
    fn timeout(&self) -> Duration {
        self.interval
    }

    fn run(&self) -> ProbeFuture<'_> {
        Box::pin(self.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_classifies_runs() {
        let q = |pairs: &[(&'static str, usize)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        let ok = summarize(
            &q(&[("noerror", 3), ("nxdomain", 1)]),
            &[("a".into(), "ok")],
        );
        assert_eq!(
            ok.unwrap(),
            "4 queries: 3 noerror, 1 nxdomain; lookups: a=ok"
        );
        let t = summarize(&q(&[("noerror", 1), ("timeout", 1)]), &[]).unwrap_err();
        assert_eq!(t.outcome, Outcome::Timeout);
        let e = summarize(&q(&[("servfail", 1)]), &[]).unwrap_err();
        assert_eq!(e.outcome, Outcome::Error);
        let l = summarize(&q(&[]), &[("a".into(), "servfail")]).unwrap_err();
        assert_eq!(l.outcome, Outcome::Error);
    }

    #[test]
    fn missing_resolv_conf_names_its_path() {
        let c = DnsConfig {
            resolv_conf: "/nonexistent/resolv.conf".into(),
            ..DnsConfig::default()
        };
        let status = Arc::new(StatusBoard::default());
        let e = DnsProbe::new(
            &c,
            Path::new("/proc"),
            crate::metrics::Metrics::new().dns,
            status,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/nonexistent/resolv.conf"), "{e}");
    }
}
