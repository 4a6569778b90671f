//! gzip bodies for `/metrics` built from a pre-compressed tail. The CPU series
//! (about 900 KB with 1,000 containers) are compressed once per snapshot into
//! a [`Deflated`] stream; each scrape compresses only its small head (the
//! registry's metrics) and sends ONE gzip member (RFC 1952):
//! header, the head as raw DEFLATE ended by a sync flush (byte-aligned, not
//! final), the shared tail's raw DEFLATE (compressed on its own, so it never
//! refers back into the head; it ends with the final block), then the CRC-32
//! of the whole body (the two parts' CRCs combined) and its length mod 2^32.
//! One member, not two concatenated ones: some clients read only the first.
//! Emits no metrics.

use crate::body::Chunks;
use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};
use hyper::body::Bytes;

/// Level 1: the fastest; the series compress about tenfold anyway.
const LEVEL: Compression = Compression::fast();

/// The member header: magic, CM = deflate, no flags, no mtime, XFL 4 (fastest
/// compression), OS 255 (unknown).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// Raw DEFLATE of some bytes, ending with the final block, with what the
/// trailer needs to know about the uncompressed bytes.
#[derive(Clone, Debug)]
pub(crate) struct Deflated {
    data: Bytes,
    crc: Hasher,
    len: u64,
}

impl Deflated {
    /// `input` compressed as the end of a stream. `None` if the compressor
    /// failed (it has no reason to: the output grows as needed).
    pub(crate) fn new(input: &[u8]) -> Option<Self> {
        let mut data = deflate(input, FlushCompress::Finish)?;
        // Kept until the next snapshot: without the spare capacity.
        data.shrink_to_fit();
        let mut crc = Hasher::new();
        crc.update(input);
        Some(Self {
            data: Bytes::from(data),
            crc,
            len: input.len() as u64,
        })
    }
}

/// The gzip member of `head` followed by `tail`'s bytes, as three chunks:
/// header and compressed head, the shared compressed tail (not copied), the
/// trailer. `None` if the compressor failed.
pub(crate) fn member(head: &[u8], tail: &Deflated) -> Option<Chunks> {
    let mut first = HEADER.to_vec();
    first.extend(deflate(head, FlushCompress::Sync)?);
    let mut crc = Hasher::new();
    crc.update(head);
    crc.combine(&tail.crc);
    // ISIZE is the length modulo 2^32: the truncation is the format's.
    let len = (head.len() as u64).wrapping_add(tail.len) as u32;
    let mut trailer = Vec::with_capacity(8);
    trailer.extend(crc.finalize().to_le_bytes());
    trailer.extend(len.to_le_bytes());
    Some(Chunks::new([
        Bytes::from(first),
        tail.data.clone(),
        Bytes::from(trailer),
    ]))
}

/// Raw DEFLATE (no zlib header) of `input`. With `Finish` the stream ends
/// with the final block; with `Sync` it ends on a byte boundary with no final
/// block, so another stream's blocks can follow.
fn deflate(input: &[u8], flush: FlushCompress) -> Option<Vec<u8>> {
    let mut c = Compress::new(LEVEL, false);
    let mut out = Vec::with_capacity(input.len() / 8 + 64);
    loop {
        let consumed = usize::try_from(c.total_in()).ok()?;
        let rest = input.get(consumed..)?;
        let status = match c.compress_vec(rest, &mut out, flush) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "gzip compression failed");
                return None;
            }
        };
        let all_in = c.total_in() == input.len() as u64;
        // Done once the stream has ended (Finish) or everything is in and the
        // flush did not fill the output (Sync: room left means it completed).
        match status {
            Status::StreamEnd => return Some(out),
            Status::Ok | Status::BufError
                if flush == FlushCompress::Sync && all_in && out.len() < out.capacity() =>
            {
                return Some(out)
            }
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    /// The whole body in one buffer.
    fn bytes(body: &Chunks) -> Vec<u8> {
        body.to_vec()
    }

    /// Decoded by flate2, which checks the CRC and length, and must end at
    /// the end of the first member.
    pub(crate) fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut d = GzDecoder::new(gz);
        let mut out = Vec::new();
        d.read_to_end(&mut out).expect("flate2 rejected the member");
        assert!(d.into_inner().is_empty(), "bytes after the first member");
        out
    }

    /// Decoded by the system's gzip, which rejects a wrong CRC or length.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn system_gunzip(gz: &[u8]) -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gzip is not installed: apt-get install gzip");
        let mut stdin = child.stdin.take().unwrap();
        let input = gz.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "gzip -dc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn check(head: &[u8], tail: &[u8]) {
        let body = member(head, &Deflated::new(tail).unwrap()).unwrap();
        let gz = bytes(&body);
        let whole = [head, tail].concat();
        assert_eq!(gunzip(&gz), whole);
        assert_eq!(system_gunzip(&gz), whole);
    }

    #[test]
    fn a_member_decodes_to_head_then_tail() {
        // The tail repeats the head: compressed separately, it must not refer
        // back into it.
        let head = b"nodevitals_up 1\nnodevitals_build_info{version=\"0.1.0\"} 1\n".repeat(20);
        let tail: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("nodevitals_up 1\nseries{{id=\"{i:064x}\"}} {i}\n").into_bytes())
            .collect();
        check(&head, &tail);
        check(b"", &tail);
        check(&head, b"");
        check(b"", b"");
    }

    #[test]
    fn incompressible_bytes_round_trip() {
        // Stored blocks, output larger than the input: the output grows.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        check(&noise[..100_000], &noise[100_000..]);
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_corrupted_trailer_is_rejected_by_gzip() {
        // The decoders used above do check the trailer.
        let body = member(b"head\n", &Deflated::new(b"tail\n").unwrap()).unwrap();
        let mut gz = bytes(&body);
        let n = gz.len();
        gz[n - 8] ^= 1;
        let status = Command::new("gzip")
            .arg("-t")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&gz)?;
                c.wait()
            })
            .expect("gzip is not installed: apt-get install gzip");
        assert!(!status.success());
        assert!(GzDecoder::new(&gz[..])
            .read_to_end(&mut Vec::new())
            .is_err());
    }
}
