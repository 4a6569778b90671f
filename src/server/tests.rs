//! Property tests of the HTTP front: whatever a client sends (garbage,
//! requests cut into slow pieces, pipelined requests it never reads), the
//! server keeps running and the next normal client gets its `/healthz`.

use super::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn state() -> AppState {
    AppState {
        metrics: Arc::new(Metrics::new()),
        status: Arc::new(StatusBoard::default()),
        health: Arc::new(Health::default()),
    }
}

/// A normal client's `/healthz` on a new connection: the status line.
async fn healthz(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Sends `pieces` to the server with `pause_ms` between them, reads nothing
/// unless `read`, then runs a normal client alongside while the hostile
/// connection stays open: it must be answered well before the hostile one
/// could time out (`HEADER_TIMEOUT`).
fn survives(pieces: Vec<Vec<u8>>, pause_ms: u64, read: bool) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, state()));
        let mut hostile = TcpStream::connect(addr).await.unwrap();
        for p in &pieces {
            if hostile.write_all(p).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        if read {
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_millis(200), hostile.read_to_end(&mut sink))
                    .await;
        }
        let line = tokio::time::timeout(Duration::from_secs(5), healthz(addr))
            .await
            .expect("/healthz answered alongside the hostile client");
        prop_assert_eq!(line, "HTTP/1.1 200 OK");
        prop_assert!(!server.is_finished(), "the server is still serving");
        server.abort();
        Ok(())
    })
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        Just(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        Just(b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec()),
        Just(b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        Just(b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..256),
        "[ -~]{0,64}\r\n".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn malformed_and_pipelined_requests_never_stop_the_server(
        requests in proptest::collection::vec(request(), 1..40),
        read in any::<bool>(),
    ) {
        survives(vec![requests.concat()], 0, read)?;
    }

    #[test]
    fn a_request_cut_into_slow_pieces_never_stops_the_server(
        request in request(),
        cuts in proptest::collection::vec(1usize..8, 1..6),
        pause_ms in 0u64..40,
    ) {
        let mut pieces = Vec::new();
        let mut rest = request.as_slice();
        for c in cuts {
            let (head, tail) = rest.split_at(c.min(rest.len()));
            pieces.push(head.to_vec());
            rest = tail;
        }
        pieces.push(rest.to_vec());
        survives(pieces, pause_ms, true)?;
    }
}
