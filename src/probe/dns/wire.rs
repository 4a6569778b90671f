//! Timed DNS exchanges on our own sockets: several questions on one UDP socket
//! (back-to-back like glibc/musl, or one after the other), and one question per
//! TCP connection. Each answer is timed from the moment its own query left.
//! No metrics: callers record what they learn.

use super::message::{build_query, parse_response, response_id, Answer};
use super::sockets::Sockets;
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Large enough for any UDP answer without EDNS (512) and most with it.
const UDP_BUFFER: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    /// Absolute.
    pub name: Name,
    pub qtype: RecordType,
}

/// What became of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Answer {
        answer: Answer,
        elapsed: Duration,
    },
    /// No valid answer before the deadline; `elapsed` is the time waited.
    Timeout {
        elapsed: Duration,
    },
    /// The socket failed (ICMP unreachable, connection refused, reset).
    Failed {
        error: String,
        elapsed: Duration,
    },
}

impl Reply {
    pub fn elapsed(&self) -> Duration {
        match self {
            Reply::Answer { elapsed, .. }
            | Reply::Timeout { elapsed }
            | Reply::Failed { elapsed, .. } => *elapsed,
        }
    }

    /// The same reply, as seen by a client that had already waited `by`.
    pub fn delayed(mut self, by: Duration) -> Reply {
        match &mut self {
            Reply::Answer { elapsed, .. }
            | Reply::Timeout { elapsed }
            | Reply::Failed { elapsed, .. } => *elapsed += by,
        }
        self
    }

    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Reply::Answer { answer, .. } => Some(answer),
            _ => None,
        }
    }
}

/// How the questions of one UDP exchange are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sending {
    /// All at once, before any answer (glibc's default, musl).
    Parallel,
    /// The next one once the previous is answered (`single-request`).
    Sequential,
}

/// The replies of one exchange, in question order, and how many datagrams
/// were ignored because they answered something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub replies: Vec<Reply>,
    pub mismatched: u32,
}

fn query_ids(n: usize) -> Vec<u16> {
    let mut ids: Vec<u16> = Vec::with_capacity(n);
    while ids.len() < n {
        let id = rand::random::<u16>();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Sends `questions` from one fresh UDP socket to `server` and waits until each
/// is answered or `budget` (for the whole exchange) runs out.
pub(crate) async fn udp_exchange(
    sockets: &Sockets,
    server: SocketAddr,
    questions: &[Question],
    sending: Sending,
    budget: Duration,
) -> Exchange {
    let started = Instant::now();
    let deadline = started + budget;
    let failed = |error: String| Exchange {
        replies: questions
            .iter()
            .map(|_| Reply::Failed {
                error: error.clone(),
                elapsed: started.elapsed(),
            })
            .collect(),
        mismatched: 0,
    };
    let socket = match sockets.udp(server).await {
        Ok(s) => s,
        Err(e) => return failed(format!("socket to {server}: {e}")),
    };
    let ids = query_ids(questions.len());
    let wires: Vec<Vec<u8>> = questions
        .iter()
        .zip(&ids)
        .map(|(q, id)| build_query(*id, &q.name, q.qtype))
        .collect();
    let mut sent: Vec<Option<Instant>> = vec![None; questions.len()];
    let mut replies: Vec<Option<Reply>> = vec![None; questions.len()];
    let mut mismatched = 0;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        // Send what is due: everything at once, or the next once the previous
        // has its reply. A socket error (often the ICMP unreachable of an
        // earlier datagram, reported on a later call) ends the exchange.
        let mut error = None;
        for i in 0..questions.len() {
            let due = sent[i].is_none()
                && (sending == Sending::Parallel || i == 0 || replies[i - 1].is_some());
            if due && error.is_none() {
                sent[i] = Some(Instant::now());
                if let Err(e) = socket.send(&wires[i]).await {
                    error = Some(format!("send to {server}: {e}"));
                }
            }
        }
        if error.is_none() && replies.iter().all(Option::is_some) {
            break;
        }
        let n = match error {
            Some(e) => Err(e),
            None => match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(r) => r.map_err(|e| format!("receive from {server}: {e}")),
            },
        };
        let n = match n {
            Ok(n) => n,
            Err(error) => {
                for (reply, at) in replies.iter_mut().zip(&sent) {
                    if reply.is_none() {
                        let elapsed = at.map(|t| t.elapsed()).unwrap_or_default();
                        *reply = Some(Reply::Failed {
                            error: error.clone(),
                            elapsed,
                        });
                    }
                }
                break;
            }
        };
        let now = Instant::now();
        let bytes = &buf[..n];
        let slot = response_id(bytes)
            .and_then(|id| ids.iter().position(|x| *x == id))
            .filter(|i| replies[*i].is_none() && sent[*i].is_some());
        let parsed = slot.map(|i| {
            let q = &questions[i];
            (i, parse_response(bytes, ids[i], &q.name, q.qtype))
        });
        match parsed {
            Some((i, Ok(answer))) => {
                let at = sent[i].unwrap_or(started);
                replies[i] = Some(Reply::Answer {
                    answer,
                    elapsed: now.saturating_duration_since(at),
                });
            }
            _ => mismatched += 1,
        }
    }
    let replies = replies
        .into_iter()
        .zip(&sent)
        .map(|(r, at)| {
            r.unwrap_or_else(|| Reply::Timeout {
                elapsed: at.map_or(Duration::ZERO, |t| deadline.saturating_duration_since(t)),
            })
        })
        .collect();
    Exchange {
        replies,
        mismatched,
    }
}

/// One question on a fresh TCP connection; the time includes the handshake, as
/// an application falling back to TCP pays it.
pub(crate) async fn tcp_query(
    sockets: &Sockets,
    server: SocketAddr,
    question: &Question,
    budget: Duration,
) -> Reply {
    let started = Instant::now();
    let result = tokio::time::timeout(budget, tcp_exchange(sockets, server, question)).await;
    let elapsed = started.elapsed();
    match result {
        Err(_) => Reply::Timeout { elapsed },
        Ok(Err(error)) => Reply::Failed { error, elapsed },
        Ok(Ok(answer)) => Reply::Answer { answer, elapsed },
    }
}

async fn tcp_exchange(
    sockets: &Sockets,
    server: SocketAddr,
    q: &Question,
) -> Result<Answer, String> {
    let mut stream = sockets
        .tcp(server)
        .await
        .map_err(|e| format!("connect {server}: {e}"))?;
    let id = rand::random::<u16>();
    let query = build_query(id, &q.name, q.qtype);
    let len = u16::try_from(query.len()).map_err(|_| "query too long".to_owned())?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&query);
    let io = |e: std::io::Error| format!("{server} over tcp: {e}");
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut response).await.map_err(io)?;
    parse_response(&response, id, &q.name, q.qtype).map_err(|e| format!("{server}: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType};

    /// A loopback server that answers only A queries, immediately (NOERROR,
    /// no records); every other query is swallowed.
    pub(crate) async fn a_only_server() -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if q.queries()[0].query_type() != RecordType::A {
                    continue;
                }
                let mut r = q.clone();
                r.set_message_type(MessageType::Response)
                    .set_recursion_available(true);
                let _ = socket.send_to(&r.to_vec().unwrap(), from).await;
            }
        });
        addr
    }

    fn pair() -> [Question; 2] {
        let name = Name::from_ascii("a.example.").unwrap();
        [RecordType::A, RecordType::AAAA].map(|qtype| Question {
            name: name.clone(),
            qtype,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_times_out_at_the_budget_and_the_other_is_kept() {
        let server = a_only_server().await;
        let budget = Duration::from_secs(5);
        let started = Instant::now();
        let ex = udp_exchange(&Sockets::host(), server, &pair(), Sending::Parallel, budget).await;
        assert_eq!(started.elapsed(), budget);
        assert!(
            matches!(ex.replies[0], Reply::Answer { elapsed, .. } if elapsed < Duration::from_millis(1))
        );
        assert_eq!(ex.replies[1], Reply::Timeout { elapsed: budget });
        assert_eq!(ex.mismatched, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn sequential_sending_waits_for_each_answer() {
        let server = a_only_server().await;
        let budget = Duration::from_secs(2);
        let mut questions = pair();
        questions.reverse();
        // AAAA first and never answered: A is never sent.
        let ex = udp_exchange(
            &Sockets::host(),
            server,
            &questions,
            Sending::Sequential,
            budget,
        )
        .await;
        assert_eq!(ex.replies[0], Reply::Timeout { elapsed: budget });
        assert_eq!(
            ex.replies[1],
            Reply::Timeout {
                elapsed: Duration::ZERO
            }
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_failure_not_a_timeout() {
        // Bind then drop: nothing listens there, the kernel answers ICMP.
        let addr = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let ex = udp_exchange(
            &Sockets::host(),
            addr,
            &pair(),
            Sending::Parallel,
            Duration::from_secs(5),
        )
        .await;
        assert!(
            ex.replies.iter().all(|r| matches!(r, Reply::Failed { .. })),
            "{:?}",
            ex.replies
        );
        let tcp = tcp_query(&Sockets::host(), addr, &pair()[0], Duration::from_secs(5)).await;
        assert!(matches!(tcp, Reply::Failed { .. }), "{tcp:?}");
    }
}
