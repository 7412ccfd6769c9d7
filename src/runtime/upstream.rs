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
    /// True when it was reused from the pool: a failure before any response byte may be retried once.
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

    /// A new connection, never from the pool (used for the one retry after a dead pooled connection).
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
        let name = ServerName::try_from(key.host.clone())
            .map_err(|e| ConnectError::Tls { host: key.host.clone(), reason: e.to_string() })?;
        match monoio::time::timeout(self.timeouts.tls_handshake, self.tls.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Conn::Tls(Box::new(tls))),
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
            if now.duration_since(entry.since) < self.timeouts.idle && is_quiet(&entry.conn) {
                return Some(entry.conn);
            }
        }
        None
    }
}

/// False when an idle plain connection has bytes waiting or was closed. Bytes an upstream sends after
/// a complete response (a 204 with a body, a second unrequested response) would otherwise be read as
/// the answer to the next request on it, possibly another user's. One non-blocking peek; TLS
/// connections are not checked, since post-handshake records (session tickets) are legitimately pending.
fn is_quiet(conn: &Conn) -> bool {
    use std::os::fd::AsRawFd;
    let Conn::Plain(tcp) = conn else {
        return true;
    };
    let mut byte = 0u8;
    // SAFETY: recv on a socket descriptor we own, into one valid byte, without blocking.
    let n =
        unsafe { libc::recv(tcp.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n < 0 && matches!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::WouldBlock)
}
