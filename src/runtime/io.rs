//! One byte stream type for both legs: a plain TCP connection or rustls over TCP. Runs on a worker:
//! every call is an async monoio operation, never a blocking one.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;

/// A connection to a client or an upstream, plain or TLS. The TLS stream keeps its socket's descriptor
/// beside it: the stream gives no access to its TCP half, and the pool must check a pooled connection's
/// socket before reusing it.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>, RawFd),
}

/// How far a failed write got, for a caller that must know whether the peer may have received anything.
#[derive(Debug)]
pub enum WriteFailure {
    /// The kernel accepted no byte of the buffer: the peer cannot have seen any of it.
    NothingSent(io::Error),
    /// Some bytes may have left (a partial plain write, or any TLS failure, whose record layer may have
    /// written part of a record before failing).
    MaybeSent(io::Error),
}

impl Conn {
    /// Reads more bytes into the spare capacity of `buf`, appending after its current length, after
    /// making sure at least `min_spare` bytes are free (the caller bounds how much it keeps). Returns the
    /// number of bytes read (0 at end of stream) and the buffer.
    pub(crate) async fn read_more(&mut self, mut buf: Vec<u8>, min_spare: usize) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() - buf.len() < min_spare {
            buf.reserve(min_spare);
        }
        let len = buf.len();
        let cap = buf.capacity();
        let slice = monoio::buf::SliceMut::new(buf, len, cap);
        let (res, slice) = match self {
            Conn::Plain(s) => s.read(slice).await,
            Conn::Tls(s, _) => s.read(slice).await,
        };
        (res, slice.into_inner())
    }

    /// Writes the whole buffer and hands it back for reuse.
    pub(crate) async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s, _) => s.write_all(buf).await,
        };
        (res.map(|_| ()), buf)
    }

    /// Writes the whole buffer like [`Conn::write_all`], telling a failure that provably sent nothing
    /// apart from one that may have sent part of the buffer (the upstream leg retries only the former).
    pub async fn write_all_tracked(&mut self, mut buf: Vec<u8>) -> (Result<(), WriteFailure>, Vec<u8>) {
        let s = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s, _) => {
                let (res, buf) = s.write_all(buf).await;
                return (res.map(|_| ()).map_err(WriteFailure::MaybeSent), buf);
            }
        };
        let len = buf.len();
        let mut written = 0;
        while written < len {
            let (res, slice) = s.write(buf.slice(written..)).await;
            buf = slice.into_inner();
            let failure = match res {
                Ok(0) => io::Error::new(io::ErrorKind::WriteZero, "the connection accepted no more bytes"),
                Ok(n) => {
                    written += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            let failure =
                if written == 0 { WriteFailure::NothingSent(failure) } else { WriteFailure::MaybeSent(failure) };
            return (Err(failure), buf);
        }
        (Ok(()), buf)
    }

    /// Flushes buffered TLS records; a no-op for plain TCP.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush().await,
            Conn::Tls(s, _) => s.flush().await,
        }
    }

    /// Closes the write side politely (TLS close_notify, TCP FIN).
    pub(crate) async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s, _) => s.shutdown().await,
        };
    }

    /// The socket's descriptor, for non-blocking state checks (peeks, polls) that never read data.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Conn::Plain(s) => s.as_raw_fd(),
            Conn::Tls(_, fd) => *fd,
        }
    }
}
