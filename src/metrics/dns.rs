//! DNS and conntrack metrics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sub-millisecond (loopback, node-local cache) to a minute (a stub lookup that
/// walks the search list through timeouts), with edges just past 1 s, 5 s and
/// 10 s so that "answered after one resolver timeout" (the 5 s DNS delay) is its
/// own bucket instead of blending into "slow".
pub(crate) const DNS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5,
    2.0, 3.0, 5.0, 5.5, 8.0, 10.0, 10.5, 15.0, 20.0, 30.0, 60.0,
];

fn dns_histogram() -> Histogram {
    Histogram::new(DNS_BUCKETS.iter().copied())
}

/// The closed set of `result` values of `nodevitals_dns_requests_total`.
pub(crate) const QUERY_RESULTS: &[&str] = &[
    "noerror", "nxdomain", "servfail", "refused", "timeout", "error",
];

/// The closed set of `result` values of `nodevitals_dns_lookups_total`.
pub(crate) const LOOKUP_RESULTS: &[&str] =
    &["ok", "nxdomain", "nodata", "servfail", "timeout", "error"];

/// One probed query: which server, name, type and transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueryLabels {
    pub server: String,
    pub name: String,
    pub qtype: &'static str,
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    server: String,
    name: String,
    qtype: &'static str,
    transport: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    name: String,
    result: &'static str,
}

#[derive(Clone)]
pub struct DnsMetrics {
    request_duration: Family<QueryLabels, Histogram>,
    requests: Family<ResultLabels, Counter>,
    pair_lost: Family<ServerLabels, Counter>,
    truncated: Family<ServerLabels, Counter>,
    mismatched: Family<ServerLabels, Counter>,
    lookup_duration: Family<NameLabels, Histogram>,
    lookups: Family<LookupLabels, Counter>,
    conntrack: Arc<ConntrackCollector>,
}

impl DnsMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            request_duration: Family::new_with_constructor(dns_histogram),
            requests: Family::default(),
            pair_lost: Family::default(),
            truncated: Family::default(),
            mismatched: Family::default(),
            lookup_duration: Family::new_with_constructor(dns_histogram),
            lookups: Family::default(),
            conntrack: Arc::default(),
        };
        r.register(
            "dns_request_duration_seconds",
            "Latency of one DNS query to one server, from its send to its answer (timeouts at the deadline)",
            m.request_duration.clone(),
        );
        r.register(
            "dns_requests",
            "DNS queries by result: the answer's rcode, timeout, or error (socket failure, bad answer)",
            m.requests.clone(),
        );
        r.register(
            "dns_pair_lost",
            "A and AAAA queries sent back-to-back from one UDP socket where exactly one answer never came",
            m.pair_lost.clone(),
        );
        r.register(
            "dns_truncated",
            "UDP answers with the TC bit, retried over TCP like a resolver does",
            m.truncated.clone(),
        );
        r.register(
            "dns_mismatched_responses",
            "Datagrams ignored because they did not answer a query in flight (wrong id or question)",
            m.mismatched.clone(),
        );
        r.register(
            "dns_lookup_duration_seconds",
            "Time an application waits for one getaddrinfo-style lookup, emulating glibc with the configured resolv.conf",
            m.lookup_duration.clone(),
        );
        r.register(
            "dns_lookups",
            "Emulated stub-resolver lookups by result",
            m.lookups.clone(),
        );
        r.register_collector(Box::new(Arc::clone(&m.conntrack)));
        m
    }

    /// Creates the series of the configured queries and lookups at 0.
    pub(crate) fn init(&self, queries: &[QueryLabels], lookups: &[String]) {
        for q in queries {
            let _ = self.request_duration.get_or_create(q);
            for result in QUERY_RESULTS {
                let _ = self.requests.get_or_create(&result_labels(q, result));
            }
            let server = ServerLabels {
                server: q.server.clone(),
            };
            let _ = self.pair_lost.get_or_create(&server);
            let _ = self.truncated.get_or_create(&server);
            let _ = self.mismatched.get_or_create(&server);
        }
        for name in lookups {
            let labels = NameLabels { name: name.clone() };
            let _ = self.lookup_duration.get_or_create(&labels);
            for result in LOOKUP_RESULTS {
                let _ = self.lookups.get_or_create(&LookupLabels {
                    name: name.clone(),
                    result,
                });
            }
        }
    }

    pub(crate) fn observe_query(&self, q: &QueryLabels, result: &'static str, elapsed: Duration) {
        self.request_duration
            .get_or_create(q)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&result_labels(q, result)).inc();
    }

    pub(crate) fn count_pair_lost(&self, server: &str) {
        self.server_counter(&self.pair_lost, server, 1);
    }

    pub(crate) fn count_truncated(&self, server: &str) {
        self.server_counter(&self.truncated, server, 1);
    }

    pub(crate) fn count_mismatched(&self, server: &str, n: u32) {
        self.server_counter(&self.mismatched, server, u64::from(n));
    }

    fn server_counter(&self, family: &Family<ServerLabels, Counter>, server: &str, n: u64) {
        family
            .get_or_create(&ServerLabels {
                server: server.to_owned(),
            })
            .inc_by(n);
    }

    pub(crate) fn observe_lookup(&self, name: &str, result: &'static str, elapsed: Duration) {
        self.lookup_duration
            .get_or_create(&NameLabels {
                name: name.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        self.lookups
            .get_or_create(&LookupLabels {
                name: name.to_owned(),
                result,
            })
            .inc();
    }

    /// The kernel's conntrack counters as last read; `None` removes the series.
    pub(crate) fn set_conntrack(&self, counters: Option<(u64, u64)>) {
        *self.conntrack.0.lock().unwrap_or_else(|e| e.into_inner()) = counters;
    }
}

fn result_labels(q: &QueryLabels, result: &'static str) -> ResultLabels {
    ResultLabels {
        server: q.server.clone(),
        name: q.name.clone(),
        qtype: q.qtype,
        transport: q.transport,
        result,
    }
}

/// Emits the kernel's own counters (insert_failed, drop) from the last read:
/// they are totals kept by the kernel, so they are mirrored, not accumulated,
/// and absent when the kernel does not expose them.
#[derive(Debug, Default)]
struct ConntrackCollector(Mutex<Option<(u64, u64)>>);

impl Collector for ConntrackCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((insert_failed, drop)) = *self.0.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "conntrack_insert_failed",
                "Conntrack entries that could not be inserted (the race that drops one of two parallel DNS queries), summed over CPUs",
                insert_failed,
            ),
            (
                "conntrack_drop",
                "Packets dropped by conntrack, summed over CPUs",
                drop,
            ),
        ] {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(m)?;
        }
        Ok(())
    }
}
