//! One byte stream type for both legs: a plain TCP connection or rustls over TCP. Runs on a worker:
//! every call is an async monoio operation, never a blocking one.

use std::io;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;

/// A connection to a client or an upstream, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
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
            Conn::Tls(s) => s.read(slice).await,
        };
        (res, slice.into_inner())
    }

    /// Writes the whole buffer and hands it back for reuse.
    pub(crate) async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s) => s.write_all(buf).await,
        };
        (res.map(|_| ()), buf)
    }

    /// Flushes buffered TLS records; a no-op for plain TCP.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush().await,
            Conn::Tls(s) => s.flush().await,
        }
    }

    /// Closes the write side politely (TLS close_notify, TCP FIN).
    pub(crate) async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
        };
    }
}
