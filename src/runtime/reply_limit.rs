//! A size bound on what a runtime may send: a stream that fails its reads once
//! more than a limit has arrived. The Docker client opens one connection per
//! request through it, so the bound is per reply, headers included; a socket
//! streaming an endless `/containers/json` costs at most the limit, and the
//! memory goes with the connection. Emits no metrics.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest reply read from a runtime: `/containers/json` with a thousand
/// containers is about 2 MB.
pub const MAX_REPLY_BYTES: u64 = 8 * 1024 * 1024;

pub struct ReadLimit<S> {
    inner: S,
    left: u64,
    limit: u64,
}

impl<S> ReadLimit<S> {
    pub fn new(inner: S, limit: u64) -> Self {
        Self {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got = (buf.filled().len() - before) as u64;
        if got > this.left {
            // Nothing past the limit is handed on: the reader sees an error,
            // not a buffer that grew beyond what it was told was read.
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reply larger than {} bytes", this.limit),
            )));
        }
        this.left -= got;
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_up_to_the_limit_then_fails() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let chunk = [b'x'; 4096];
            while tx.write_all(&chunk).await.is_ok() {}
        });
        let mut s = ReadLimit::new(rx, 10_000);
        let mut got = Vec::new();
        let e = s.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(got.len() <= 10_000, "{}", got.len());

        let (mut tx, rx) = tokio::io::duplex(64);
        tx.write_all(b"short").await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        ReadLimit::new(rx, 5).read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"short");
    }
}
