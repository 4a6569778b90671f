//! Stub-resolver emulation: one `getaddrinfo(name, AF_UNSPEC)` the way glibc's
//! resolver performs it with a given resolv.conf, so that the time measured is
//! the time an application waits. Follows glibc 2.36 `res_query.c`
//! (`__res_context_search`: ndots, search list, as-is query) and `res_send.c`
//! (`attempts` x nameservers, `rotate`, per-server timeout `timeout << ns /
//! nscount`, A and AAAA on one socket, switching to `single-request` and then
//! `single-request-reopen` after a lost answer, TC -> TCP).
//!
//! Known differences: every exchange uses a fresh socket (glibc keeps one per
//! server for the process); FORMERR is treated like NOTIMP; `LOCALDOMAIN`,
//! `RES_OPTIONS` and the hostname-derived default domain are not read.
//! No metrics here: the probe records `nodevitals_dns_lookup_duration_seconds`.

use super::message::{Answer, Rcode};
use super::resolv_conf::ResolvConf;
use super::sockets::Sockets;
use super::wire::{tcp_query, udp_exchange, Question, Reply, Sending};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How one candidate name ended, as glibc's `h_errno` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Found,
    /// NXDOMAIN (HOST_NOT_FOUND).
    NxDomain,
    /// The name exists without addresses (NO_DATA).
    NoData,
    /// SERVFAIL (TRY_AGAIN with a SERVFAIL answer).
    ServFail,
    /// Every server timed out (TRY_AGAIN).
    Timeout,
    /// REFUSED and other answers that stop the search (NO_RECOVERY).
    Error,
    /// No server reachable at all (ECONNREFUSED).
    Unreachable,
}

impl Verdict {
    /// The `result` label of `nodevitals_dns_lookups_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Found => "ok",
            Verdict::NxDomain => "nxdomain",
            Verdict::NoData => "nodata",
            Verdict::ServFail => "servfail",
            Verdict::Timeout => "timeout",
            Verdict::Error | Verdict::Unreachable => "error",
        }
    }
}

/// The next thing a search wants: a candidate to query, or its final verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Query(String),
    Done(Verdict),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AsIsFirst,
    Domain(usize),
    AsIsLast,
}

/// glibc's walk over the candidate names of one lookup, as a pure state
/// machine: `start` gives the first candidate, `next(verdict)` the one after
/// it (or the end). Candidates are absolute names.
pub(crate) struct Search<'a> {
    bare: &'a str,
    search: &'a [String],
    trailing_dot: bool,
    phase: Phase,
    saved: Option<Verdict>,
    got_nodata: bool,
    got_servfail: bool,
    root_on_list: bool,
    last: Verdict,
}

impl<'a> Search<'a> {
    pub fn start(name: &'a str, rc: &'a ResolvConf) -> (Self, Step) {
        let trailing_dot = name.ends_with('.');
        let bare = name.trim_end_matches('.');
        let dots = bare.matches('.').count();
        let mut s = Search {
            bare,
            search: &rc.search,
            trailing_dot,
            phase: Phase::Domain(0),
            saved: None,
            got_nodata: false,
            got_servfail: false,
            root_on_list: false,
            last: Verdict::NxDomain,
        };
        // Enough dots (or an absolute name): the name as is comes first.
        let step = if dots >= usize::from(rc.ndots) || trailing_dot {
            s.phase = Phase::AsIsFirst;
            Step::Query(format!("{bare}."))
        } else {
            s.domains_or_last()
        };
        (s, step)
    }

    pub fn next(&mut self, v: Verdict) -> Step {
        match self.phase {
            Phase::AsIsFirst => {
                if v == Verdict::Found || self.trailing_dot {
                    return Step::Done(v);
                }
                self.saved = Some(v);
                self.phase = Phase::Domain(0);
            }
            Phase::Domain(i) => {
                self.last = v;
                self.phase = Phase::Domain(i + 1);
                match v {
                    Verdict::Found => return Step::Done(v),
                    // ECONNREFUSED: no server anywhere; glibc gives up at once.
                    Verdict::Unreachable => return Step::Done(v),
                    Verdict::NoData => self.got_nodata = true,
                    Verdict::NxDomain => {}
                    Verdict::ServFail => self.got_servfail = true,
                    // A timeout or a hard error ends the search list; the
                    // as-is query still runs ("in case it's fully qualified").
                    Verdict::Timeout | Verdict::Error => self.phase = Phase::Domain(usize::MAX),
                }
            }
            Phase::AsIsLast => {
                self.last = v;
                return Step::Done(if v == Verdict::Found {
                    v
                } else {
                    self.verdict()
                });
            }
        }
        self.domains_or_last()
    }

    fn domains_or_last(&mut self) -> Step {
        if let Phase::Domain(i) = self.phase {
            if let Some(domain) = self.search.get(i) {
                if domain.is_empty() {
                    self.root_on_list = true;
                    return Step::Query(format!("{}.", self.bare));
                }
                return Step::Query(format!("{}.{domain}.", self.bare));
            }
        }
        if self.saved.is_none() && !self.root_on_list && self.phase != Phase::AsIsLast {
            self.phase = Phase::AsIsLast;
            return Step::Query(format!("{}.", self.bare));
        }
        Step::Done(self.verdict())
    }

    /// glibc: the as-is query's reason if it ran first, else NO_DATA if any
    /// candidate had it, else TRY_AGAIN after a SERVFAIL, else the last reason.
    fn verdict(&self) -> Verdict {
        match (self.saved, self.got_nodata, self.got_servfail) {
            (Some(v), _, _) => v,
            (None, true, _) => Verdict::NoData,
            (None, false, true) => Verdict::ServFail,
            (None, false, false) => self.last,
        }
    }
}

/// The seconds glibc's `send_dg` allows one try at nameserver `ns`.
pub(crate) fn try_timeout(rc: &ResolvConf, ns: usize) -> Duration {
    let count = rc.nameservers.len().max(1) as u64;
    let mut secs = u64::from(rc.timeout_secs) << ns.min(8);
    if ns > 0 {
        secs /= count;
    }
    Duration::from_secs(secs.max(1))
}

/// What one `send_dg` call leaves: answers, or a reason to try the next server.
enum Sent {
    Answers(Vec<Answer>),
    NextServer { got_somewhere: bool },
}

/// The emulated resolver state of one lookup. glibc keeps the switch to
/// single-request in the process's resolver state; one lookup here is one
/// application's first lookup.
pub(crate) struct StubResolver<'a> {
    rc: &'a ResolvConf,
    servers: Vec<SocketAddr>,
    single_request: bool,
    single_request_reopen: bool,
    rotation: &'a AtomicU32,
    sockets: &'a Sockets,
}

impl<'a> StubResolver<'a> {
    /// `port` is 53 in production; tests serve on another one.
    pub fn new(
        rc: &'a ResolvConf,
        port: u16,
        rotation: &'a AtomicU32,
        sockets: &'a Sockets,
    ) -> Self {
        let servers = if rc.nameservers.is_empty() {
            // glibc's default when resolv.conf names no server.
            vec![SocketAddr::from(([127, 0, 0, 1], port))]
        } else {
            rc.nameservers
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect()
        };
        Self {
            rc,
            servers,
            // glibc: single-request-reopen implies single-request.
            single_request: rc.single_request || rc.single_request_reopen,
            single_request_reopen: rc.single_request_reopen,
            rotation,
            sockets,
        }
    }

    /// Resolves `name` like `getaddrinfo(name, AF_UNSPEC)`.
    pub async fn lookup(&mut self, name: &str) -> Verdict {
        let rc = self.rc;
        let (mut search, mut step) = Search::start(name, rc);
        loop {
            match step {
                Step::Done(v) => return v,
                Step::Query(candidate) => {
                    let v = match Name::from_ascii(&candidate) {
                        Ok(n) => self.query(n).await,
                        Err(_) => Verdict::Error,
                    };
                    step = search.next(v);
                }
            }
        }
    }

    async fn query(&mut self, name: Name) -> Verdict {
        let questions = [
            Question {
                name: name.clone(),
                qtype: RecordType::A,
            },
            Question {
                name,
                qtype: RecordType::AAAA,
            },
        ];
        match self.send(&questions).await {
            Ok(answers) => evaluate(&answers),
            Err(v) => v,
        }
    }

    /// glibc `__res_context_send`: `attempts` rounds over the nameservers.
    async fn send(&mut self, questions: &[Question]) -> Result<Vec<Answer>, Verdict> {
        let n = self.servers.len();
        let offset = if self.rc.rotate && n > 1 {
            self.rotation.fetch_add(1, Ordering::Relaxed) as usize % n
        } else {
            0
        };
        let mut got_somewhere = false;
        for _ in 0..self.rc.attempts {
            for shift in 0..n {
                let ns = (shift + offset) % n;
                match self.send_dg(ns, questions).await {
                    Sent::Answers(a) => return Ok(a),
                    Sent::NextServer { got_somewhere: g } => got_somewhere |= g,
                }
            }
        }
        Err(if got_somewhere {
            Verdict::Timeout
        } else {
            Verdict::Unreachable
        })
    }

    /// glibc `send_dg` for one server, including its fallbacks.
    async fn send_dg(&mut self, ns: usize, questions: &[Question]) -> Sent {
        let server = self.servers[ns];
        let budget = try_timeout(self.rc, ns);
        loop {
            let sending = if self.single_request || self.single_request_reopen {
                Sending::Sequential
            } else {
                Sending::Parallel
            };
            let ex = udp_exchange(self.sockets, server, questions, sending, budget).await;
            let answers: Vec<Answer> = ex
                .replies
                .iter()
                .filter_map(|r| r.answer().copied())
                .collect();
            if answers.iter().any(|a| a.truncated) {
                return tcp_fallback(self.sockets, server, questions, budget).await;
            }
            if answers.iter().any(|a| a.referral) {
                return Sent::NextServer {
                    got_somewhere: true,
                };
            }
            let good: Vec<Answer> = answers.iter().copied().filter(usable).collect();
            if answers.len() == questions.len() {
                return if good.is_empty() {
                    Sent::NextServer {
                        got_somewhere: true,
                    }
                } else {
                    Sent::Answers(answers)
                };
            }
            if ex.replies.iter().any(|r| matches!(r, Reply::Failed { .. })) {
                return Sent::NextServer {
                    got_somewhere: !answers.is_empty(),
                };
            }
            // Timed out with part of the answers: glibc suspects a server or
            // firewall that mishandles two queries from one socket and retries
            // one at a time, then one at a time on a fresh socket.
            if good.is_empty() {
                return Sent::NextServer {
                    got_somewhere: true,
                };
            }
            if !self.single_request {
                self.single_request = true;
            } else if !self.single_request_reopen {
                self.single_request_reopen = true;
            } else {
                return Sent::Answers(good);
            }
        }
    }
}

/// SERVFAIL, REFUSED and NOTIMP send glibc to the next server.
fn usable(a: &Answer) -> bool {
    !matches!(a.rcode, Rcode::ServFail | Rcode::Refused | Rcode::Other)
}

async fn tcp_fallback(
    sockets: &Sockets,
    server: SocketAddr,
    questions: &[Question],
    budget: Duration,
) -> Sent {
    let mut answers = Vec::with_capacity(questions.len());
    for q in questions {
        match tcp_query(sockets, server, q, budget).await {
            Reply::Answer { answer, .. } => answers.push(answer),
            _ => {
                return Sent::NextServer {
                    got_somewhere: true,
                }
            }
        }
    }
    Sent::Answers(answers)
}

/// glibc `__res_context_query` on the answers of one candidate: found if either
/// has records; otherwise the first answer's rcode (the second's when the first
/// is NOERROR) says why.
fn evaluate(answers: &[Answer]) -> Verdict {
    if answers
        .iter()
        .any(|a| a.rcode == Rcode::NoError && a.answers > 0)
    {
        return Verdict::Found;
    }
    let Some(first) = answers.first() else {
        return Verdict::Timeout;
    };
    let second = answers.get(1).unwrap_or(first);
    let rcode = if first.rcode == Rcode::NoError {
        second.rcode
    } else {
        first.rcode
    };
    match rcode {
        Rcode::NxDomain => Verdict::NxDomain,
        Rcode::ServFail => Verdict::ServFail,
        Rcode::NoError => Verdict::NoData,
        Rcode::Refused | Rcode::Other => Verdict::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dns::resolv_conf::parse_resolv_conf;

    /// Walks the search with canned verdicts per candidate; returns the
    /// candidates tried and the final verdict.
    fn walk(name: &str, conf: &str, verdicts: &[(&str, Verdict)]) -> (Vec<String>, Verdict) {
        let rc = parse_resolv_conf(conf);
        let (mut search, mut step) = Search::start(name, &rc);
        let mut tried = Vec::new();
        loop {
            match step {
                Step::Done(v) => return (tried, v),
                Step::Query(c) => {
                    let v = verdicts
                        .iter()
                        .find(|(n, _)| *n == c)
                        .map_or(Verdict::NxDomain, |(_, v)| *v);
                    tried.push(c);
                    step = search.next(v);
                }
            }
        }
    }

    const POD: &str =
        "search ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";

    #[test]
    fn external_name_in_a_pod_walks_the_whole_search_list() {
        let (tried, v) = walk("example.com", POD, &[("example.com.", Verdict::Found)]);
        assert_eq!(
            tried,
            [
                "example.com.ns.svc.cluster.local.",
                "example.com.svc.cluster.local.",
                "example.com.cluster.local.",
                "example.com."
            ]
        );
        assert_eq!(v, Verdict::Found);
    }

    #[test]
    fn enough_dots_or_a_trailing_dot_go_as_is_first() {
        let conf = "search a.example\noptions ndots:1\n";
        let (tried, v) = walk("x.y", conf, &[]);
        assert_eq!(tried, ["x.y.", "x.y.a.example."]);
        assert_eq!(v, Verdict::NxDomain);
        let (tried, _) = walk("x.y.", conf, &[]);
        assert_eq!(tried, ["x.y."]);
        let (tried, _) = walk("x", conf, &[("x.a.example.", Verdict::Found)]);
        assert_eq!(tried, ["x.a.example."]);
    }

    #[test]
    fn nodata_is_kept_and_timeouts_stop_the_search() {
        let (tried, v) = walk(
            "svc",
            POD,
            &[("svc.ns.svc.cluster.local.", Verdict::NoData)],
        );
        assert_eq!(tried.len(), 4);
        assert_eq!(v, Verdict::NoData);
        let (tried, v) = walk("svc", POD, &[("svc.svc.cluster.local.", Verdict::Timeout)]);
        assert_eq!(
            tried,
            [
                "svc.ns.svc.cluster.local.",
                "svc.svc.cluster.local.",
                "svc."
            ]
        );
        assert_eq!(v, Verdict::NxDomain);
    }

    #[test]
    fn root_in_the_search_list_replaces_the_final_as_is_query() {
        let (tried, _) = walk("x", "search a.example .\n", &[]);
        assert_eq!(tried, ["x.a.example.", "x."]);
    }

    #[test]
    fn per_server_timeouts_follow_glibc() {
        let rc = parse_resolv_conf(
            "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:2\n",
        );
        let secs: Vec<u64> = (0..3).map(|ns| try_timeout(&rc, ns).as_secs()).collect();
        assert_eq!(secs, [2, 1, 2]);
        let rc = parse_resolv_conf("options timeout:0\n");
        assert_eq!(try_timeout(&rc, 0), Duration::from_secs(1));
    }

    #[test]
    fn pair_verdicts() {
        let a = |rcode, answers| Answer {
            rcode,
            answers,
            truncated: false,
            referral: false,
        };
        assert_eq!(
            evaluate(&[a(Rcode::NoError, 1), a(Rcode::NoError, 0)]),
            Verdict::Found
        );
        assert_eq!(
            evaluate(&[a(Rcode::NoError, 0), a(Rcode::NoError, 0)]),
            Verdict::NoData
        );
        assert_eq!(
            evaluate(&[a(Rcode::NoError, 0), a(Rcode::NxDomain, 0)]),
            Verdict::NxDomain
        );
        assert_eq!(
            evaluate(&[a(Rcode::ServFail, 0), a(Rcode::NoError, 0)]),
            Verdict::ServFail
        );
        assert_eq!(evaluate(&[a(Rcode::Refused, 0)]), Verdict::Error);
    }

    /// The 5-second-delay pattern with `timeout:5`: the AAAA answer never
    /// comes, so glibc waits out three timeouts (pair, single-request,
    /// single-request-reopen) and then returns what it has.
    #[tokio::test(start_paused = true)]
    async fn a_lost_aaaa_costs_three_timeouts() {
        let server = crate::probe::dns::wire::tests::a_only_server().await;
        let rc = parse_resolv_conf("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n");
        let rotation = AtomicU32::new(0);
        let sockets = Sockets::host();
        let mut stub = StubResolver::new(&rc, server.port(), &rotation, &sockets);
        let started = tokio::time::Instant::now();
        let verdict = stub.lookup("a.example.").await;
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        // The A answer carried no records: NODATA.
        assert_eq!(verdict, Verdict::NoData);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_server_is_skipped_and_reopen_gives_up_after_one_timeout() {
        let server = crate::probe::dns::wire::tests::a_only_server().await;
        // Nothing listens on 127.0.0.2: ICMP unreachable, next server at once.
        let rc = parse_resolv_conf(
            "nameserver 127.0.0.2\nnameserver 127.0.0.1\noptions rotate timeout:1 single-request-reopen\n",
        );
        let rotation = AtomicU32::new(0);
        let sockets = Sockets::host();
        let mut stub = StubResolver::new(&rc, server.port(), &rotation, &sockets);
        let started = tokio::time::Instant::now();
        assert_eq!(stub.lookup("a.example.").await, Verdict::NoData);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(rotation.load(Ordering::Relaxed), 1);
    }
}
