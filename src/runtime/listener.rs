//! Listening sockets: one `SO_REUSEPORT` listener per worker, all bound to the same address. They are
//! created on the main thread so that a port-0 address resolves once and every worker shares that port.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of each listener: enough for bursts of new connections at saturation.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `count` listeners with `SO_REUSEPORT` on `addr`; returns them and the address actually bound.
pub(crate) fn bind_reuseport(addr: &str, count: usize) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let mut target = addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("cannot resolve listen address {addr:?}"))
    })?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&target.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: TcpListener = socket.into();
        // After the first bind, a port-0 request has become a real port: bind the rest to it.
        target = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok((listeners, target))
}
