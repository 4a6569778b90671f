//! The HTTP server (hyper 1, HTTP/1.1): `/metrics`, `/healthz`, `/readyz`,
//! `/status`, `/`. Read-only: no endpoint changes state. `/metrics` speaks
//! OpenMetrics or the Prometheus text format, as the client asks.

use crate::body::Chunks;
use crate::health::Health;
use crate::metrics::{exposition, Metrics};
use crate::status::StatusBoard;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the accept queue. Caps the memory a
/// scrape storm can cost.
const MAX_CONNECTIONS: usize = 64;
/// A client that does not send its headers in this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub status: Arc<StatusBoard>,
    pub health: Arc<Health>,
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: AppState) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
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
