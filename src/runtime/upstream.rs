//! The upstream client's connections: DNS answers from the off-worker cache, connect with a timeout,
//! TLS (rustls, ring), and a per-worker keep-alive pool keyed by scheme, host and port. Knows nothing of
//! HTTP semantics or providers; runs on a worker and never blocks.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::TlsConnector;
use rustls::pki_types::ServerName;

use super::dns::DnsCache;
use super::io::Conn;
use crate::config::UpstreamUrl;

/// The deadlines of making and keeping upstream connections (set by configuration, `config::Timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolTimeouts {
    /// How long a TCP connect to an upstream may take per address.
    pub connect: Duration,
    /// How long the TLS handshake may take.
    pub tls_handshake: Duration,
    /// Idle pooled connections older than this are not reused.
    pub idle: Duration,
}

/// At most this many idle connections are kept per upstream per worker.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 512;

/// Why an upstream connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("upstream host {0} has no resolved address")]
    Unresolved(String),
    #[error("connecting to upstream {host} timed out")]
    Timeout { host: String },
    #[error("connecting to upstream {host}: {source}")]
    Io { host: String, source: std::io::Error },
    #[error("TLS with upstream {host}: {reason}")]
    Tls { host: String, reason: String },
}

/// Identifies a pool of interchangeable connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl PoolKey {
    pub(crate) fn of(url: &UpstreamUrl) -> PoolKey {
        PoolKey { tls: url.tls, host: url.host.clone(), port: url.port }
    }
}

/// A connection checked out of the pool (or freshly made).
pub(crate) struct UpstreamConn {
    pub(crate) conn: Conn,
    /// True when it was reused from the pool: a write that provably sent nothing may be retried once on a
    /// fresh connection.
    pub(crate) reused: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The per-worker upstream connector and pool. Idle connections are kept per slot: the caller gives each
/// upstream it uses a small fixed index (the relay uses the provider instance's), so finding a pooled
/// connection is an array index, not a hash of the host name.
pub(crate) struct Upstreams {
    dns: DnsCache,
    tls: TlsConnector,
    timeouts: PoolTimeouts,
    idle: RefCell<Vec<Vec<Idle>>>,
}

impl Upstreams {
    /// A connector with `slots` pools.
    pub(crate) fn new(
        dns: DnsCache,
        tls_config: Arc<rustls::ClientConfig>,
        slots: usize,
        timeouts: PoolTimeouts,
    ) -> Upstreams {
        Upstreams {
            dns,
            tls: TlsConnector::from(tls_config),
            timeouts,
            idle: RefCell::new((0..slots).map(|_| Vec::new()).collect()),
        }
    }

    /// A pooled connection from `slot` if a fresh-enough one is idle, else a new one to `key`.
    pub(crate) async fn checkout(&self, slot: usize, key: &PoolKey) -> Result<UpstreamConn, ConnectError> {
        if let Some(conn) = self.take_idle(slot) {
            return Ok(UpstreamConn { conn, reused: true });
        }
        Ok(UpstreamConn { conn: self.connect(key).await?, reused: false })
    }

    /// A new connection, never from the pool (used for the one retry after a pooled connection refused
    /// the request before any byte of it left).
    pub(crate) async fn connect(&self, key: &PoolKey) -> Result<Conn, ConnectError> {
        let addrs: Vec<SocketAddr> =
            self.dns.lookup(&key.host, key.port).ok_or_else(|| ConnectError::Unresolved(key.host.clone()))?;
        let mut last_err = None;
        for addr in addrs {
            match monoio::time::timeout(self.timeouts.connect, TcpStream::connect_addr(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    if !key.tls {
                        return Ok(Conn::Plain(tcp));
                    }
                    return self.handshake(key, tcp).await;
                }
                Ok(Err(e)) => last_err = Some(ConnectError::Io { host: key.host.clone(), source: e }),
                Err(_) => last_err = Some(ConnectError::Timeout { host: key.host.clone() }),
            }
        }
        Err(last_err.unwrap_or_else(|| ConnectError::Unresolved(key.host.clone())))
    }

    async fn handshake(&self, key: &PoolKey, tcp: TcpStream) -> Result<Conn, ConnectError> {
        use std::os::fd::AsRawFd;
        let name = ServerName::try_from(key.host.clone())
            .map_err(|e| ConnectError::Tls { host: key.host.clone(), reason: e.to_string() })?;
        let fd = tcp.as_raw_fd();
        match monoio::time::timeout(self.timeouts.tls_handshake, self.tls.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Conn::Tls(Box::new(tls), fd)),
            Ok(Err(e)) => Err(ConnectError::Tls { host: key.host.clone(), reason: e.to_string() }),
            Err(_) => Err(ConnectError::Timeout { host: key.host.clone() }),
        }
    }

    /// Returns to `slot` a connection whose last response was read completely and which may be kept alive.
    pub(crate) fn checkin(&self, slot: usize, conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        let Some(list) = idle.get_mut(slot) else {
            return;
        };
        if list.len() >= POOL_MAX_IDLE_PER_HOST {
            // Full: make room by dropping connections that have idled out, else drop this one.
            let now = Instant::now();
            let max_idle = self.timeouts.idle;
            list.retain(|e| now.duration_since(e.since) < max_idle);
        }
        if list.len() < POOL_MAX_IDLE_PER_HOST {
            list.push(Idle { conn, since: Instant::now() });
        }
    }

    fn take_idle(&self, slot: usize) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(slot)?;
        let now = Instant::now();
        // Most recently returned first: the warmest connection is the least likely to be closed.
        while let Some(entry) = list.pop() {
            if now.duration_since(entry.since) < self.timeouts.idle && is_reusable(&entry.conn) {
                return Some(entry.conn);
            }
        }
        None
    }
}

/// Whether an idle connection may carry the next request. Checked right before reuse, so that a
/// connection the upstream closed while it idled is dropped before any byte of a request is written on
/// it: only then is sending the request on another connection certain not to send it twice.
///
/// Closed (FIN, reset or a pending socket error) rules a connection out, plain or TLS. A plain connection
/// with bytes waiting is ruled out too: bytes an upstream sends after a complete response (a 204 with a
/// body, a second unrequested response, a 408 on its idle timeout) would otherwise be read as the answer
/// to the next request on it, possibly another user's. TLS connections may legitimately have records
/// pending (session tickets), so waiting bytes alone do not rule them out. One non-blocking poll.
fn is_reusable(conn: &Conn) -> bool {
    let mut pfd = libc::pollfd { fd: conn.raw_fd(), events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: poll on one valid pollfd for a descriptor we own, with a zero timeout (never blocks).
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        return false;
    }
    let closed = pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    let waiting = pfd.revents & libc::POLLIN != 0;
    !closed && (!waiting || matches!(conn, Conn::Tls(..)))
}

#[cfg(test)]
mod tests {
    use super::is_reusable;
    use crate::runtime::io::{Conn, WriteFailure};
    use std::io::Write;
    use std::net::{Shutdown, TcpListener};
    use std::time::{Duration, Instant};

    /// A plain gateway-side connection and the std socket of its peer.
    async fn pair() -> (Conn, std::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = monoio::net::TcpStream::connect_addr(listener.local_addr().unwrap()).await.unwrap();
        (Conn::Plain(tcp), listener.accept().unwrap().0)
    }

    /// Polls `cond` until it holds, for socket state the kernel delivers asynchronously.
    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn run(f: impl std::future::Future<Output = ()>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(f);
    }

    #[test]
    fn idle_connections_are_reused_only_while_open_and_quiet() {
        run(async {
            let (quiet, _peer) = pair().await;
            assert!(is_reusable(&quiet), "an open, quiet connection is reused");

            let (closed, peer) = pair().await;
            peer.shutdown(Shutdown::Write).unwrap();
            eventually("a connection the upstream closed (FIN) is never reused", || !is_reusable(&closed));

            let (chatty, mut peer) = pair().await;
            peer.write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n").unwrap();
            eventually("unrequested bytes on a plain connection rule it out", || !is_reusable(&chatty));
        });
    }

    #[test]
    fn a_write_on_a_reset_connection_is_known_to_have_sent_nothing() {
        run(async {
            let (mut conn, peer) = pair().await;
            socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO)).unwrap();
            drop(peer);
            eventually("the reset arrives", || !is_reusable(&conn));
            let (res, buf) = conn.write_all_tracked(b"POST / HTTP/1.1\r\n\r\n".to_vec()).await;
            assert!(matches!(res, Err(WriteFailure::NothingSent(_))), "{res:?}");
            assert_eq!(buf, b"POST / HTTP/1.1\r\n\r\n", "the request comes back for a retry");

            let (mut conn, _peer) = pair().await;
            let (res, _) = conn.write_all_tracked(vec![b'x'; 64]).await;
            assert!(res.is_ok(), "{res:?}");
        });
    }
}
