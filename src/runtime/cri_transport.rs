//! The HTTP/2 connection under the CRI client: one per runtime, over its unix
//! socket, made on first use and made again once it has closed (the runtime
//! restarted). Plain hyper rather than tonic's channel: one connection to one
//! local socket needs no balancing, buffering or discovery layers, and the
//! binary stays smaller. Deadlines are the probe's. Emits no metrics.

use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::UnixStream;
use tonic::body::BoxBody;

/// The live connection to one runtime socket, shared by every request.
#[derive(Clone)]
pub struct Connection {
    socket: PathBuf,
    current: Arc<tokio::sync::Mutex<Option<SendRequest<BoxBody>>>>,
}

impl Connection {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            current: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// A sender on the open connection, connecting first if there is none.
    /// Requests racing here wait for one connection rather than each opening
    /// their own.
    pub async fn sender(&self) -> std::io::Result<Sender> {
        let mut current = self.current.lock().await;
        if let Some(send) = current.as_ref().filter(|s| !s.is_closed()) {
            return Ok(Sender(send.clone()));
        }
        *current = None;
        let stream = UnixStream::connect(&self.socket).await?;
        let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        let socket = self.socket.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(socket = %socket.display(), error = %e, "CRI connection closed");
            }
        });
        *current = Some(send.clone());
        Ok(Sender(send))
    }
}

/// One request stream's handle on the connection, as tonic's `Grpc` wants it.
pub struct Sender(SendRequest<BoxBody>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tower_service::Service<http::Request<BoxBody>> for Sender {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<BoxBody>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}
