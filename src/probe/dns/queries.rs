//! One timed query per configured server x name x qtype x transport: A and
//! AAAA as one back-to-back pair on a UDP socket (pair mode), the others one
//! by one; truncated UDP answers retried over TCP.
//!
//! Metrics: `nodevitals_dns_request_duration_seconds`, `nodevitals_dns_requests_total`,
//! `nodevitals_dns_pair_lost_total`, `nodevitals_dns_truncated_total`,
//! `nodevitals_dns_mismatched_responses_total`.

use super::message::Rcode;
use super::report::Answered;
use super::wire::{tcp_query, udp_exchange, Question, Reply, Sending};
use super::DnsProbe;
use crate::config::{DnsQtype, DnsTransport};
use crate::metrics::QueryLabels;
use hickory_proto::rr::Name;
use std::net::SocketAddr;

/// One server x name x transport, with the query types to send.
pub(super) struct Target {
    pub server: SocketAddr,
    pub name: Name,
    pub label: String,
    pub transport: DnsTransport,
}

impl DnsProbe {
    /// Queries one target; returns every query sent with its result.
    pub(super) async fn probe_target(&self, t: &Target) -> Vec<Answered> {
        let has = |q| self.qtypes.contains(&q);
        let paired = t.transport == DnsTransport::Udp
            && self.pair
            && has(DnsQtype::A)
            && has(DnsQtype::AAAA);
        let singles = self
            .qtypes
            .iter()
            .filter(|q| !(paired && matches!(q, DnsQtype::A | DnsQtype::AAAA)))
            .map(|q| self.single(t, *q));
        let (mut out, pair) =
            futures_util::future::join(futures_util::future::join_all(singles), async {
                if paired {
                    self.pair(t).await
                } else {
                    Vec::new()
                }
            })
            .await;
        out.extend(pair);
        out
    }

    async fn pair(&self, t: &Target) -> Vec<Answered> {
        self.udp(t, &[DnsQtype::A, DnsQtype::AAAA]).await
    }

    async fn single(&self, t: &Target, q: DnsQtype) -> Answered {
        if t.transport == DnsTransport::Udp {
            let mut one = self.udp(t, &[q]).await;
            return one.swap_remove(0);
        }
        let reply = tcp_query(&self.sockets, t.server, &t.question(q), self.query_timeout).await;
        self.record(t, q, &reply)
    }

    /// `qtypes` sent back to back from one UDP socket (one reply each); a pair
    /// with exactly one answer missing counts as pair-lost.
    async fn udp(&self, t: &Target, qtypes: &[DnsQtype]) -> Vec<Answered> {
        let questions: Vec<Question> = qtypes.iter().map(|q| t.question(*q)).collect();
        let ex = udp_exchange(
            &self.sockets,
            t.server,
            &questions,
            Sending::Parallel,
            self.query_timeout,
        )
        .await;
        let server = t.server.to_string();
        self.metrics.count_mismatched(&server, ex.mismatched);
        let lost = ex
            .replies
            .iter()
            .filter(|r| matches!(r, Reply::Timeout { .. }))
            .count();
        if qtypes.len() == 2 && lost == 1 {
            self.metrics.count_pair_lost(&server);
        }
        let mut out = Vec::with_capacity(qtypes.len());
        for ((q, question), reply) in qtypes.iter().zip(&questions).zip(ex.replies) {
            let reply = self.finish_udp(t, question, reply).await;
            out.push(self.record(t, *q, &reply));
        }
        out
    }

    /// A truncated UDP answer is retried over TCP, as a resolver does; the
    /// application waits for both.
    async fn finish_udp(&self, t: &Target, question: &Question, reply: Reply) -> Reply {
        let truncated = reply.answer().is_some_and(|a| a.truncated);
        if !truncated {
            return reply;
        }
        self.metrics.count_truncated(&t.server.to_string());
        let before = reply.elapsed();
        tcp_query(&self.sockets, t.server, question, self.query_timeout)
            .await
            .delayed(before)
    }

    fn record(&self, t: &Target, q: DnsQtype, reply: &Reply) -> Answered {
        let result = result_label(reply);
        if let Reply::Failed { error, .. } = reply {
            tracing::debug!(server = %t.server, name = %t.label, qtype = q.as_str(), error, "dns query failed");
        }
        self.metrics
            .observe_query(&t.labels(q), result, reply.elapsed());
        Answered {
            name: t.label.clone(),
            qtype: q.as_str(),
            transport: t.transport.as_str(),
            result,
            seconds: reply.elapsed().as_secs_f64(),
        }
    }
}

impl Target {
    fn question(&self, q: DnsQtype) -> Question {
        Question {
            name: self.name.clone(),
            qtype: q.record_type(),
        }
    }

    pub(super) fn labels(&self, q: DnsQtype) -> QueryLabels {
        QueryLabels {
            server: self.server.to_string(),
            name: self.label.clone(),
            qtype: q.as_str(),
            transport: self.transport.as_str(),
        }
    }
}

fn result_label(reply: &Reply) -> &'static str {
    match reply {
        Reply::Answer { answer, .. } => match answer.rcode {
            Rcode::NoError => "noerror",
            Rcode::NxDomain => "nxdomain",
            Rcode::ServFail => "servfail",
            Rcode::Refused => "refused",
            Rcode::Other => "error",
        },
        Reply::Timeout { .. } => "timeout",
        Reply::Failed { .. } => "error",
    }
}
