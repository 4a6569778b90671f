//! Where the probe's sockets live: the agent's own network namespace, or
//! another one (a pod's `/proc/<pid>/ns/net`, an `ip netns` name under
//! `/var/run/netns/`) so DNS is seen exactly as from inside it. A socket keeps
//! the namespace it was created in, so one helper thread enters the namespace
//! once (setns(2) changes only the calling thread) and creates sockets there on
//! request; all I/O then happens on the tokio runtime as usual. No metrics.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("{path}: cannot open network namespace: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: cannot enter network namespace: {source}")]
    Enter { path: PathBuf, source: io::Error },
}

enum Request {
    Udp(SocketAddr, oneshot::Sender<io::Result<std::net::UdpSocket>>),
    Tcp(SocketAddr, oneshot::Sender<io::Result<std::net::TcpStream>>),
}

/// Creates the probe's sockets, in the agent's namespace or in another.
pub(crate) struct Sockets {
    /// To the helper thread living in the namespace; it exits when this drops.
    netns: Option<mpsc::Sender<Request>>,
}

fn wildcard_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

impl Sockets {
    /// Sockets in the agent's own namespace.
    pub fn host() -> Self {
        Sockets { netns: None }
    }

    /// Starts a helper thread inside the network namespace at `path`.
    pub fn in_netns(path: &Path) -> Result<Self, NetnsError> {
        let ns = File::open(path).map_err(|source| NetnsError::Open {
            path: path.to_owned(),
            source,
        })?;
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("dns-netns".into())
            .spawn(move || {
                // SAFETY: setns(2) on a valid open fd; it affects only this thread.
                let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                let result = if entered == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                };
                let ok = result.is_ok();
                let _ = ready_tx.send(result);
                if ok {
                    serve(rx);
                }
            })
            .map_err(|source| NetnsError::Enter {
                path: path.to_owned(),
                source,
            })?;
        let entered = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace helper thread exited")));
        entered.map_err(|source| NetnsError::Enter {
            path: path.to_owned(),
            source,
        })?;
        Ok(Sockets { netns: Some(tx) })
    }

    /// A UDP socket bound to the wildcard address of `server`'s family and
    /// connected to it (so ICMP unreachable comes back as ECONNREFUSED and the
    /// kernel drops datagrams from any other source).
    pub async fn udp(&self, server: SocketAddr) -> io::Result<UdpSocket> {
        let socket = match &self.netns {
            None => UdpSocket::bind(wildcard_for(server)).await?,
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                ask(tx, Request::Udp(wildcard_for(server), reply))?;
                UdpSocket::from_std(answer(rx.await)?)?
            }
        };
        socket.connect(server).await?;
        Ok(socket)
    }

    pub async fn tcp(&self, server: SocketAddr) -> io::Result<TcpStream> {
        match &self.netns {
            None => TcpStream::connect(server).await,
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                ask(tx, Request::Tcp(server, reply))?;
                let socket = tokio::net::TcpSocket::from_std_stream(answer(rx.await)?);
                socket.connect(server).await
            }
        }
    }
}

fn ask(tx: &mpsc::Sender<Request>, r: Request) -> io::Result<()> {
    tx.send(r)
        .map_err(|_| io::Error::other("the namespace helper thread exited"))
}

fn answer<T>(r: Result<io::Result<T>, oneshot::error::RecvError>) -> io::Result<T> {
    r.unwrap_or_else(|_| Err(io::Error::other("the namespace helper thread exited")))
}

/// The helper thread's loop: create each socket here, non-blocking, and hand
/// it back; ends when the `Sockets` is dropped.
fn serve(rx: mpsc::Receiver<Request>) {
    for request in rx {
        match request {
            Request::Udp(bind, reply) => {
                let s = std::net::UdpSocket::bind(bind).and_then(|s| {
                    s.set_nonblocking(true)?;
                    Ok(s)
                });
                let _ = reply.send(s);
            }
            Request::Tcp(server, reply) => {
                let domain = socket2::Domain::for_address(server);
                let s = socket2::Socket::new(
                    domain,
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )
                .and_then(|s| {
                    s.set_nonblocking(true)?;
                    Ok(std::net::TcpStream::from(s))
                });
                let _ = reply.send(s);
            }
        }
    }
}
