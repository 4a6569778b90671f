//! A stand-in for the kubelet's healthz endpoint: no kubelet can run on this
//! machine, so a loopback HTTP listener answers `200 ok` the way kubelet does,
//! or, told to be unhealthy, `500` with a failed check as kubelet does then.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct FakeKubelet {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
}

const HEALTHY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const UNHEALTHY: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 67\r\nConnection: close\r\n\r\n[+]ping ok\n[-]syncloop failed: reason withheld\nhealthz check failed";

impl FakeKubelet {
    pub fn start() -> FakeKubelet {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake kubelet");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let healthy = Arc::new(AtomicBool::new(true));
        let answer_ok = Arc::clone(&healthy);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let ok = answer_ok.load(Ordering::Relaxed);
                        let _ = s.write_all(if ok { HEALTHY } else { UNHEALTHY });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeKubelet {
            addr,
            stop,
            healthy,
        }
    }

    /// From the next request on, answers as a healthy or a failing kubelet.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
