//! An HTTP response body made of shared byte chunks. hyper writes the chunks
//! with vectored writes, so a chunk is never copied into a response buffer:
//! the CPU series of `/metrics` (about 900 KB with 1,000 containers) are
//! rendered once per snapshot and every scrape sends those same bytes.
//! The length is exact, so responses carry a `Content-Length`. Emits no
//! metrics.

use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(Debug)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    /// Bytes not yet handed out by `poll_frame`.
    len: u64,
}

impl Chunks {
    /// The chunks in order; empty ones are dropped (an empty data frame is
    /// useless to send).
    pub(crate) fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Self { chunks, len }
    }

    /// The whole body in one buffer: a copy, for `Metrics::encode` (tests and
    /// benchmarks), never for serving.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }
}

impl From<String> for Chunks {
    fn from(s: String) -> Self {
        Self::new([Bytes::from(s)])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(this.chunks.pop_front().map(|c| {
            this.len -= c.len() as u64;
            Ok(Frame::data(c))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// The data frames of a body, in order.
#[cfg(test)]
pub(crate) async fn frames(mut body: Chunks) -> Vec<Bytes> {
    use http_body_util::BodyExt;
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.extend(frame.ok().and_then(|f| f.into_data().ok()));
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn frames_are_the_chunks_in_order_with_an_exact_length() {
        let shared = Bytes::from_static(b"shared series\n");
        let body = Chunks::new([
            Bytes::from("head\n"),
            Bytes::new(),
            shared.clone(),
            Bytes::from_static(b"# EOF\n"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(25));
        assert_eq!(body.to_vec(), b"head\nshared series\n# EOF\n");

        let mut body = body;
        let head = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(head, "head\n");
        assert_eq!(body.size_hint().exact(), Some(20), "what is left to send");
        assert!(!body.is_end_stream());
        let frames = frames(body).await;
        assert_eq!(frames.len(), 2, "the empty chunk is not sent");
        // The shared chunk is sent as is, not copied.
        assert_eq!(frames[0].as_ptr(), shared.as_ptr());
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let mut body = Chunks::from(String::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }
}
