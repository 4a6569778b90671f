//! A fault-injecting DNS responder on a loopback address: answers A/AAAA from a
//! fixed table (NXDOMAIN otherwise, NODATA for a known name without that
//! family) after a configured delay, drops chosen answers (every AAAA, every
//! Nth), and records every query it receives in order. A fake by necessity:
//! no real server can be told to lose exactly these packets.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::time::Instant;

/// Which answers never leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropRule {
    None,
    EveryAaaa,
    /// The Nth, 2Nth, ... query received (counting every query).
    EveryNth(u64),
}

/// One query as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Lower-case, absolute.
    pub name: String,
    pub qtype: String,
    pub source: SocketAddr,
}

#[derive(Default)]
struct State {
    drop: Option<DropRule>,
    delay: Duration,
    received: Vec<Received>,
    dropped: u64,
    seen: u64,
    /// Answers sent, and the sum of their delays as realized (receive to
    /// send, scheduling included).
    answered: u64,
    realized: Duration,
}

pub struct Responder {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Names the responder knows, with their addresses.
pub struct Zone {
    pub v4: BTreeMap<String, Ipv4Addr>,
    pub v6: BTreeMap<String, Ipv6Addr>,
}

impl Zone {
    /// `names` resolve to 192.0.2.1 and 2001:db8::1; `v4_only` to 192.0.2.2.
    pub fn new(names: &[&str], v4_only: &[&str]) -> Zone {
        let abs = |n: &&str| format!("{}.", n.trim_end_matches('.').to_lowercase());
        let mut v4 = BTreeMap::new();
        let mut v6 = BTreeMap::new();
        for n in names {
            v4.insert(abs(n), Ipv4Addr::new(192, 0, 2, 1));
            v6.insert(abs(n), "2001:db8::1".parse().unwrap());
        }
        for n in v4_only {
            v4.insert(abs(n), Ipv4Addr::new(192, 0, 2, 2));
        }
        Zone { v4, v6 }
    }
}

struct Due {
    received: Instant,
    at: Instant,
    bytes: Vec<u8>,
    to: SocketAddr,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.at.cmp(&self.at)
    }
}

impl Responder {
    /// Serves UDP on `addr` (port 0: any free port).
    pub fn start(addr: SocketAddr, zone: Zone) -> Responder {
        let socket = UdpSocket::bind(addr)
            .unwrap_or_else(|e| panic!("bind the test DNS responder on {addr}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            drop: Some(DropRule::None),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Due>();
        let sender_socket = socket.try_clone().unwrap();
        let sender_stop = Arc::clone(&stop);
        let sender_state = Arc::clone(&state);
        let sender =
            std::thread::spawn(move || send_loop(sender_socket, rx, sender_state, sender_stop));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !sp.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let received = Instant::now();
                if let Some((bytes, delay)) = answer(&buf[..n], from, &zone, &st) {
                    let _ = tx.send(Due {
                        received,
                        at: received + delay,
                        bytes,
                        to: from,
                    });
                }
            }
        });
        Responder {
            addr,
            state,
            stop,
            threads: vec![receiver, sender],
        }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn set_drop(&self, drop: DropRule) {
        self.state.lock().unwrap().drop = Some(drop);
    }

    /// Answers dropped so far.
    pub fn dropped(&self) -> u64 {
        self.state.lock().unwrap().dropped
    }

    /// Answers sent so far and the total of their realized delays.
    pub fn answered(&self) -> (u64, Duration) {
        let st = self.state.lock().unwrap();
        (st.answered, st.realized)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn clear_received(&self) {
        self.state.lock().unwrap().received.clear();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Builds the answer to one datagram and decides its fate; `None` = no answer.
fn answer(
    bytes: &[u8],
    from: SocketAddr,
    zone: &Zone,
    state: &Mutex<State>,
) -> Option<(Vec<u8>, Duration)> {
    let query = Message::from_vec(bytes).ok()?;
    let q = query.queries().first()?.clone();
    let name = q.name().to_lowercase().to_ascii();
    let mut st = state.lock().unwrap();
    st.seen += 1;
    st.received.push(Received {
        name: name.clone(),
        qtype: q.query_type().to_string(),
        source: from,
    });
    let drop = match st.drop.unwrap_or(DropRule::None) {
        DropRule::None => false,
        DropRule::EveryAaaa => q.query_type() == RecordType::AAAA,
        DropRule::EveryNth(n) => n > 0 && st.seen.is_multiple_of(n),
    };
    if drop {
        st.dropped += 1;
        return None;
    }
    let delay = st.delay;
    std::mem::drop(st);
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_query(q.clone());
    let known = zone.v4.contains_key(&name) || zone.v6.contains_key(&name);
    let rdata = match q.query_type() {
        RecordType::A => zone.v4.get(&name).map(|ip| RData::A(A(*ip))),
        RecordType::AAAA => zone.v6.get(&name).map(|ip| RData::AAAA(AAAA(*ip))),
        _ => None,
    };
    match (rdata, known) {
        (Some(r), _) => {
            m.add_answer(Record::from_rdata(Name::from_ascii(&name).unwrap(), 30, r));
        }
        (None, true) => {}
        (None, false) => {
            m.set_response_code(ResponseCode::NXDomain);
        }
    }
    Some((m.to_vec().ok()?, delay))
}

fn send_loop(
    socket: UdpSocket,
    rx: mpsc::Receiver<Due>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
) {
    let mut heap = BinaryHeap::new();
    while !stop.load(Ordering::Relaxed) {
        let wait = heap
            .peek()
            .map(|d: &Due| d.at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok(d) => heap.push(d),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if heap.is_empty() {
                    return;
                }
            }
        }
        while heap.peek().is_some_and(|d| d.at <= Instant::now()) {
            let d = heap.pop().unwrap();
            if socket.send_to(&d.bytes, d.to).is_ok() {
                let mut st = state.lock().unwrap();
                st.answered += 1;
                st.realized += d.received.elapsed();
            }
        }
    }
}
