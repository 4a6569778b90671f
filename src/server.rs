//! The HTTP server (hyper 1, HTTP/1.1): `/metrics`, `/healthz`, `/readyz`,
//! `/status`, `/`. Read-only: no endpoint changes state. `/metrics` speaks
//! OpenMetrics or the Prometheus text format, as the client asks.

use crate::body::Chunks;
use crate::health::Health;
use crate::metrics::{exposition, Metrics};
use crate::status::StatusBoard;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Socket, Type};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

mod admission;
mod write_deadline;

use admission::{Admission, InFlight, Ticket};
use write_deadline::WriteDeadline;

/// Connections held open at most, whatever clients do (see `admission`);
/// lowered to a quarter of the descriptor limit when that is smaller.
const MAX_CONNECTIONS: usize = 256;
/// A client must send a request's headers within this time, counted from the
/// connection's start or the end of its previous answer: also the keep-alive
/// idle timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that reads none of its answer for this long is disconnected.
const WRITE_STALL: Duration = Duration::from_secs(5);
/// The kernel's send buffer per connection (it doubles the value). The
/// default grows to megabytes, in which a client that pipelines requests and
/// reads nothing gets hundreds of answers rendered before its writes stall;
/// this keeps that to a few, yet holds a large `/metrics` in a few round trips.
const SEND_BUFFER_BYTES: usize = 64 * 1024;
/// Bytes of request headers buffered per connection (hyper's minimum); a
/// longer head is refused. GETs carry no more.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How often, at most, the heap's free pages are handed back to the kernel,
/// and only when connections closed since the last time: their buffers
/// (about 16 KiB each, a few MiB under a flood) would otherwise stay resident.
const RELEASE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    pub health: Arc<Health>,
}

/// Connections the kernel queues before the agent accepts them (capped by
/// `net.core.somaxconn`). A burst of connects beyond the queue has SYNs
/// dropped, and a kubelet probe caught in it waits a 1 s retransmission.
const ACCEPT_BACKLOG: i32 = 4096;

/// Binds the server's socket; must be called inside the tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Serves on `listener` until the task is dropped. Accepting never waits for
/// a free slot: a new connection takes the place of an old one (`admission`).
pub async fn serve(listener: TcpListener, state: AppState) {
    let table = Admission::new(connection_capacity(), state.metrics.agent.clone());
    let mut release = tokio::time::interval(RELEASE_EVERY);
    release.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed_at_release = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = release.tick() => {
                let closed = table.closed();
                if closed != closed_at_release {
                    closed_at_release = closed;
                    crate::memory::release_free_pages();
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors: free one held by a client, else back
                // off instead of spinning.
                if !table.shed_for_descriptor() {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let ticket = table.admit(std::os::fd::AsRawFd::as_raw_fd(&stream));
        tokio::spawn(serve_connection(stream, ticket, state.clone()));
    }
}

/// [`MAX_CONNECTIONS`], or a quarter of the descriptor limit if smaller: the
/// probes' sockets and files need the rest.
fn connection_capacity() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    soft.map_or(MAX_CONNECTIONS, |n| {
        usize::try_from(n / 4).map_or(MAX_CONNECTIONS, |q| q.clamp(16, MAX_CONNECTIONS))
    })
}

async fn serve_connection(stream: TcpStream, ticket: Ticket, state: AppState) {
    if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
        tracing::debug!(error = %e, "cannot bound the send buffer");
    }
    let slot = Arc::clone(&ticket.slot);
    let svc = hyper::service::service_fn(move |req| {
        let in_flight = slot.begin_request();
        let resp = route(&state, &req).map(|body| Answer {
            body,
            _in_flight: in_flight,
        });
        async move { Ok::<_, Infallible>(resp) }
    });
    let io = TokioIo::new(WriteDeadline::new(stream, WRITE_STALL));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, svc);
    let conn = std::pin::pin!(conn);
    tokio::select! {
        r = ticket.slot.settles(conn) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = ticket.slot.shed() => tracing::debug!("connection closed to make room for a newer one"),
    }
}

/// A response body that keeps its connection marked busy until it has been
/// written out (or the connection died).
struct Answer {
    body: Chunks,
    _in_flight: InFlight,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn route(state: &AppState, req: &Request<Incoming>) -> Response<Chunks> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => metrics(state, req),
        "/healthz" => {
            let stuck = state.health.stuck();
            if stuck.is_empty() {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("probe loops stuck: {}\n", stuck.join(", ")),
                )
            }
        }
        "/readyz" => {
            let pending = state.health.not_ready();
            if pending.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("waiting for first run of: {}\n", pending.join(", ")),
                )
            }
        }
        "/status" => {
            let body = serde_json::to_string_pretty(&state.status.to_json()).unwrap_or_default();
            with_type(text(StatusCode::OK, body + "\n"), "application/json")
        }
        "/" => crate::page::response(&state.status),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the 0.0.4 text
/// format for everyone else (curl, promtool); gzip when `Accept-Encoding`
/// allows it (Prometheus always sends `gzip`; curl and wrk send nothing).
fn metrics(state: &AppState, req: &Request<Incoming>) -> Response<Chunks> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let openmetrics = header(ACCEPT).is_some_and(exposition::wants_openmetrics);
    let gzip = header(ACCEPT_ENCODING).is_some_and(exposition::accepts_gzip);
    let compressed = gzip
        .then(|| state.metrics.exposition_gzip(openmetrics))
        .flatten();
    let is_gzip = compressed.is_some();
    let body = compressed.unwrap_or_else(|| state.metrics.exposition(openmetrics));
    let content_type = if openmetrics {
        exposition::OPENMETRICS_TYPE
    } else {
        exposition::TEXT_TYPE
    };
    let mut resp = with_type(Response::new(body), content_type);
    let headers = resp.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if is_gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

fn text(status: StatusCode, body: String) -> Response<Chunks> {
    let mut resp = Response::new(Chunks::from(body));
    *resp.status_mut() = status;
    with_type(resp, "text/plain; charset=utf-8")
}

fn with_type(mut resp: Response<Chunks>, content_type: &'static str) -> Response<Chunks> {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests;
