//! Which connections the HTTP front keeps: at most `capacity` open at once, and
//! the newest always gets in. When full, the oldest connection with no request
//! in flight that has already been read and has nothing unread in its socket
//! (idle keep-alive, a client still sending its headers: the cheap ones to
//! hold and the slowloris ones) is closed to make room; failing that the
//! oldest with no request in flight and nothing unread, then the oldest with
//! no request in flight, else the oldest of all (a client stalled reading its
//! answer). A kubelet probe or a scrape sends its request with its first
//! packet: from its arrival until its task has parsed it, the bytes wait in
//! the socket, and once parsed the request is in flight. So a flood of
//! reconnecting clients, however fast it churns the table and however late
//! the probe's task runs, cannot push a probe out before it was read. Counts what
//! it sheds, by reason, in `nodevitals_http_connections_shed_total`.

use crate::metrics::{AgentMetrics, ShedReason};
use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// One open connection as the table sees it.
pub(crate) struct Slot {
    /// Its socket, asked how many bytes wait unread (never read or closed
    /// here; once the connection is gone, the answer is only a guess).
    fd: RawFd,
    /// Requests being answered (0 or 1 on HTTP/1.1).
    in_flight: AtomicUsize,
    /// Its task has read all the client had sent and waits for more: what
    /// was there is parsed (a request in it is in flight).
    settled: AtomicBool,
    /// Fired when the table closes the connection to make room.
    shed: Notify,
}

impl Slot {
    /// Marks a request in flight until the returned guard drops (when the
    /// answer was written out or the connection died).
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Resolves once the table has chosen this connection to be closed.
    pub(crate) async fn shed(&self) {
        self.shed.notified().await;
    }

    /// Drives `connection`, marking this slot settled the first time the
    /// connection waits (it read what there was and found no more).
    pub(crate) fn settles<F: Future + Unpin>(&self, connection: F) -> Settles<'_, F> {
        Settles {
            slot: self,
            connection,
        }
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn settled(&self) -> bool {
        self.settled.load(Ordering::Relaxed)
    }

    /// Bytes the client sent that wait in the socket, not yet read.
    fn unread(&self) -> bool {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer given; on a
        // descriptor that is not a socket (or no longer open) it fails.
        let rc = unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut n) };
        rc == 0 && n > 0
    }
}

/// A connection's future that marks its slot settled when it first waits.
pub(crate) struct Settles<'a, F> {
    slot: &'a Slot,
    connection: F,
}

impl<F: Future + Unpin> Future for Settles<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = Pin::new(&mut self.connection).poll(cx);
        if polled.is_pending() {
            self.slot.settled.store(true, Ordering::Relaxed);
        }
        polled
    }
}

pub(crate) struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections, oldest first (ids grow with age order).
pub(crate) struct Admission {
    capacity: usize,
    open: Mutex<Open>,
    /// Connections that ended, shed or not (their tickets dropped).
    closed: AtomicU64,
    metrics: AgentMetrics,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    slots: BTreeMap<u64, Arc<Slot>>,
}

/// A connection's place in the table; dropping it frees the place.
pub(crate) struct Ticket {
    table: Arc<Admission>,
    id: u64,
    pub(crate) slot: Arc<Slot>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.lock().slots.remove(&self.id);
        self.table.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub(crate) fn new(capacity: usize, metrics: AgentMetrics) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            open: Mutex::new(Open::default()),
            closed: AtomicU64::new(0),
            metrics,
        })
    }

    /// Connections that have ended since the table was made.
    pub(crate) fn closed(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection on socket `fd`, shedding one when the table
    /// is full.
    pub(crate) fn admit(self: &Arc<Self>, fd: RawFd) -> Ticket {
        let mut open = self.lock();
        while open.slots.len() >= self.capacity {
            if shed_one(&mut open) {
                self.metrics.count_shed(ShedReason::Capacity);
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let slot = Arc::new(Slot {
            fd,
            in_flight: AtomicUsize::new(0),
            settled: AtomicBool::new(false),
            shed: Notify::new(),
        });
        open.slots.insert(id, Arc::clone(&slot));
        Ticket {
            table: Arc::clone(self),
            id,
            slot,
        }
    }

    /// Sheds one connection to free a descriptor (the process ran out);
    /// false when none is open.
    pub(crate) fn shed_for_descriptor(&self) -> bool {
        let shed = shed_one(&mut self.lock());
        if shed {
            self.metrics.count_shed(ShedReason::Descriptors);
        }
        shed
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

/// Closes the oldest idle connection already read with nothing unread, else
/// the oldest idle one with nothing unread, else the oldest idle one, else
/// the oldest; the table forgets it at once (its task closes the socket when
/// it next runs). False when the table is empty.
fn shed_one(open: &mut Open) -> bool {
    // One pass, oldest first: each socket is asked at most once, and the
    // walk stops at the first connection of the best kind.
    let mut victim: Option<(u8, u64)> = None;
    for (id, s) in &open.slots {
        let rank = if s.busy() {
            3
        } else if s.unread() {
            2
        } else if s.settled() {
            0
        } else {
            1
        };
        if victim.is_none_or(|(best, _)| rank < best) {
            victim = Some((rank, *id));
        }
        if rank == 0 {
            break;
        }
    }
    let victim = victim.map(|(_, id)| id);
    match victim.and_then(|id| open.slots.remove(&id)) {
        Some(slot) => {
            // notify_one keeps a permit: the task sees it even if not waiting yet.
            slot.shed.notify_one();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::time::Duration;

    /// Not a descriptor: nothing unread.
    const NO_SOCKET: RawFd = -1;

    fn table(capacity: usize) -> Arc<Admission> {
        Admission::new(capacity, Metrics::new().agent.clone())
    }

    /// The server's end of a loopback connection whose client sent `sent`,
    /// with the client's end (which must stay open).
    #[allow(clippy::disallowed_methods)]
    fn accepted(sent: &[u8]) -> (std::net::TcpStream, std::net::TcpStream) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(sent).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Loopback delivers at once; wait for it anyway, bounded.
        let mut buf = [0u8; 1];
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        if !sent.is_empty() {
            assert_eq!(server.peek(&mut buf).unwrap(), 1);
        }
        (server, client)
    }

    #[tokio::test]
    async fn a_request_waiting_in_its_socket_outlives_younger_quiet_connections() {
        use std::os::fd::AsRawFd;
        let table = table(2);
        let (probe, _c1) = accepted(b"GET /healthz HTTP/1.1\r\n\r\n");
        let (quiet, _c2) = accepted(b"");
        // The probe's task read nothing yet, or read before its bytes came:
        // settled either way, and the oldest.
        let probe_t = table.admit(probe.as_raw_fd());
        let quiet_t = table.admit(quiet.as_raw_fd());
        settle(&probe_t).await;
        settle(&quiet_t).await;
        let newest = table.admit(NO_SOCKET);
        assert!(is_shed(&quiet_t.slot).await, "younger, but nothing to read");
        assert!(
            !is_shed(&probe_t.slot).await,
            "its request waits to be read"
        );
        // Even a connection not read yet goes first if nothing waits in it.
        let _newer = table.admit(NO_SOCKET);
        assert!(is_shed(&newest.slot).await);
        assert!(!is_shed(&probe_t.slot).await);
    }

    async fn is_shed(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(10), slot.shed())
            .await
            .is_ok()
    }

    /// Marks `t` settled the way its connection task would: by waiting once.
    async fn settle(t: &Ticket) {
        let mut waits = Box::pin(tokio::time::sleep(Duration::from_secs(60)));
        let _ = tokio::time::timeout(Duration::from_millis(1), t.slot.settles(&mut waits)).await;
        assert!(t.slot.settled());
    }

    #[tokio::test]
    async fn full_table_sheds_the_oldest_idle_connection_first() {
        let table = table(3);
        let busy = table.admit(NO_SOCKET);
        let _request = busy.slot.begin_request();
        let idle_old = table.admit(NO_SOCKET);
        let idle_new = table.admit(NO_SOCKET);
        for t in [&busy, &idle_old, &idle_new] {
            settle(t).await;
        }
        let newest = table.admit(NO_SOCKET);
        assert_eq!(table.len(), 3);
        assert!(is_shed(&idle_old.slot).await, "the oldest idle one goes");
        assert!(!is_shed(&busy.slot).await, "older, but answering");
        assert!(!is_shed(&idle_new.slot).await);
        assert!(!is_shed(&newest.slot).await);
    }

    #[tokio::test]
    async fn a_connection_not_yet_read_outlives_older_idle_ones_that_were() {
        let table = table(3);
        let unread = table.admit(NO_SOCKET);
        let read_old = table.admit(NO_SOCKET);
        let read_new = table.admit(NO_SOCKET);
        settle(&read_old).await;
        settle(&read_new).await;
        let newest = table.admit(NO_SOCKET);
        assert!(
            is_shed(&read_old.slot).await,
            "read and idle: the candidate"
        );
        assert!(
            !is_shed(&unread.slot).await,
            "oldest, but its request may be unread"
        );
        let _newer = table.admit(NO_SOCKET);
        assert!(is_shed(&read_new.slot).await);
        // Nothing read is left to choose: the oldest unread one goes.
        let _newest_yet = table.admit(NO_SOCKET);
        assert!(is_shed(&unread.slot).await);
        assert!(!is_shed(&newest.slot).await);
    }

    #[tokio::test]
    async fn with_every_connection_busy_the_oldest_goes_and_the_newest_gets_in() {
        let table = table(2);
        let a = table.admit(NO_SOCKET);
        let _ra = a.slot.begin_request();
        let b = table.admit(NO_SOCKET);
        let _rb = b.slot.begin_request();
        let c = table.admit(NO_SOCKET);
        assert!(is_shed(&a.slot).await);
        assert!(!is_shed(&b.slot).await);
        assert!(!is_shed(&c.slot).await);
        assert_eq!(table.len(), 2);
    }

    #[tokio::test]
    async fn a_finished_request_makes_its_connection_idle_and_a_dropped_ticket_frees_its_place() {
        let table = table(2);
        let a = table.admit(NO_SOCKET);
        drop(a.slot.begin_request());
        let b = table.admit(NO_SOCKET);
        let _rb = b.slot.begin_request();
        let c = table.admit(NO_SOCKET);
        assert!(is_shed(&a.slot).await, "idle again after its answer");
        drop(c);
        assert_eq!(table.len(), 1, "a shed, c gone");
        assert!(table.shed_for_descriptor());
        assert!(is_shed(&b.slot).await);
        assert!(!table.shed_for_descriptor(), "nothing left to shed");
    }

    #[tokio::test]
    async fn what_is_shed_is_counted_by_reason_and_every_close_is_counted() {
        let metrics = Metrics::new();
        let table = Admission::new(1, metrics.agent.clone());
        let shed_count = |reason: &str| {
            let needle = format!("nodevitals_http_connections_shed_total{{reason=\"{reason}\"}} ");
            let text = metrics.encode();
            let line = text.lines().find(|l| l.starts_with(&needle));
            line.and_then(|l| l[needle.len()..].parse::<u64>().ok())
        };
        assert_eq!(
            shed_count("capacity"),
            Some(0),
            "the series exist from start"
        );
        assert_eq!(shed_count("descriptors"), Some(0));
        let a = table.admit(NO_SOCKET);
        let b = table.admit(NO_SOCKET);
        assert!(is_shed(&a.slot).await);
        assert!(table.shed_for_descriptor());
        assert!(is_shed(&b.slot).await);
        assert!(!table.shed_for_descriptor(), "an empty table sheds nothing");
        assert_eq!(shed_count("capacity"), Some(1));
        assert_eq!(shed_count("descriptors"), Some(1));
        assert_eq!(table.closed(), 0, "shed, but their tasks still hold them");
        drop((a, b));
        assert_eq!(table.closed(), 2);
    }
}
