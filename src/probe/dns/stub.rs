//! Stub-resolver emulation: one `getaddrinfo(name, AF_UNSPEC)` the way glibc's
//! resolver performs it with a given resolv.conf, so that the time measured is
//! the time an application waits. The candidate names come from `search.rs`;
//! each is queried as glibc 2.36 `res_query.c` and `res_send.c` do
//! (`attempts` x nameservers, `rotate`, per-server timeout `timeout << ns /
//! nscount`, A and AAAA on one socket, switching to `single-request` and then
//! `single-request-reopen` (each question from a socket of its own) after a
//! lost answer, TC -> TCP).
//!
//! Known differences: every exchange uses a fresh socket (glibc keeps one per
//! server for the process), its questions one socket between them (two under
//! `single-request-reopen`, as glibc); FORMERR is treated like NOTIMP; `LOCALDOMAIN`,
//! `RES_OPTIONS` and the hostname-derived default domain are not read.
//! No metrics here: the probe records `nodevitals_dns_lookup_duration_seconds`.

use super::message::{Answer, Rcode};
use super::resolv_conf::ResolvConf;
use super::search::{Search, Step, Verdict};
use super::sockets::Sockets;
use super::wire::{tcp_query, udp_exchange, Exchange, Question, Reply, Sending};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

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
            let ex = if self.single_request_reopen {
                reopening_exchange(self.sockets, server, questions, budget).await
            } else {
                udp_exchange(self.sockets, server, questions, sending, budget).await
            };
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

/// `single-request-reopen`: one question at a time, each from a socket of its
/// own (glibc closes and reopens its socket after the first answer, so the A
/// and AAAA of a pair leave from two ports), all within one `budget`. A
/// question whose predecessor got no answer is not sent, as with
/// `single-request`.
async fn reopening_exchange(
    sockets: &Sockets,
    server: SocketAddr,
    questions: &[Question],
    budget: Duration,
) -> Exchange {
    let deadline = Instant::now() + budget;
    let mut ex = Exchange {
        replies: Vec::with_capacity(questions.len()),
        mismatched: 0,
    };
    for q in questions {
        if ex.replies.last().is_some_and(|r| r.answer().is_none()) {
            ex.replies.push(Reply::Timeout {
                elapsed: Duration::ZERO,
            });
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let one = udp_exchange(
            sockets,
            server,
            std::slice::from_ref(q),
            Sending::Sequential,
            left,
        )
        .await;
        ex.mismatched += one.mismatched;
        ex.replies.extend(one.replies);
    }
    ex
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
