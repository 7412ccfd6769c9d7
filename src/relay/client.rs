//! The client leg: reading request heads and bodies within their limits and deadlines, and writing the
//! gateway's own short answers (health, errors). Runs on a worker; every wait is bounded.

use std::rc::Rc;
use std::time::Duration;

use crate::runtime::http::{self, BodyKind, ChunkedDecoder, RequestHead};
use crate::runtime::io::Conn;
use crate::runtime::shutdown::LocalShutdown;

use super::error::RelayError;

/// A keep-alive connection may sit idle this long between requests before it is closed.
pub const KEEPALIVE_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Once the first byte of a head arrived, the whole head must arrive within this (slowloris defence; 408).
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Each read of a request body must make progress within this.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole request body must arrive within this, however steadily it trickles (a client sending one
/// byte every 59 s would otherwise hold a connection forever). Generous: 32 MiB at about 1 Mbit/s.
pub const BODY_TOTAL_TIMEOUT: Duration = Duration::from_secs(300);
/// Read granularity on the client leg.
pub const CLIENT_READ_SPARE: usize = 16 * 1024;

/// How reading the next request head ended without a head.
pub enum NoHead {
    /// The client closed, idled out, or the server is shutting down: close quietly.
    Closed,
    /// The client sent something that must be answered with an error before closing.
    Error(RelayError),
}

/// Reads until `buf` starts with a complete request head; parses it and removes it from `buf`.
pub async fn read_head(
    client: &mut Conn,
    buf: &mut Vec<u8>,
    shutdown: &Rc<LocalShutdown>,
) -> Result<RequestHead, NoHead> {
    let mut head_deadline = None;
    loop {
        if !buf.is_empty() {
            match http::parse_request_head(buf) {
                Ok(Some(head)) => {
                    buf.drain(..head.head_len);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(NoHead::Error(RelayError::BadHead(e))),
            }
            if head_deadline.is_none() {
                head_deadline = Some(std::time::Instant::now() + HEAD_READ_TIMEOUT);
            }
        }
        let owned = std::mem::take(buf);
        let (res, owned) = match head_deadline {
            None => {
                if shutdown.is_set() {
                    return Err(NoHead::Closed);
                }
                // Idle between requests: give up quietly on timeout or shutdown.
                monoio::select! {
                    r = monoio::time::timeout(KEEPALIVE_IDLE_TIMEOUT, client.read_more(owned, CLIENT_READ_SPARE)) => match r {
                        Ok(r) => r,
                        Err(_) => return Err(NoHead::Closed),
                    },
                    _ = shutdown.wait() => return Err(NoHead::Closed),
                }
            }
            Some(deadline) => {
                match monoio::time::timeout_at(deadline.into(), client.read_more(owned, CLIENT_READ_SPARE)).await {
                    Ok(r) => r,
                    Err(_) => return Err(NoHead::Error(RelayError::HeadTimeout)),
                }
            }
        };
        *buf = owned;
        match res {
            Ok(0) => {
                return Err(if buf.is_empty() {
                    NoHead::Closed
                } else {
                    NoHead::Error(RelayError::BadBody("connection closed inside the request head".into()))
                });
            }
            Ok(_) => {}
            Err(_) => return Err(NoHead::Closed),
        }
    }
}

/// Reads the request body announced by `head` (Content-Length or chunked), at most `limit` bytes.
/// Bytes of the next pipelined request stay in `buf`.
pub async fn read_body(
    client: &mut Conn,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    limit: usize,
) -> Result<Vec<u8>, RelayError> {
    let deadline = std::time::Instant::now() + BODY_TOTAL_TIMEOUT;
    match head.body {
        BodyKind::Empty => Ok(Vec::new()),
        BodyKind::Length(n) => {
            if n > limit as u64 {
                return Err(RelayError::BodyTooLarge { limit });
            }
            let n = n as usize;
            if head.expect_continue && buf.len() < n {
                send_continue(client).await?;
            }
            while buf.len() < n {
                read_some(client, buf, n - buf.len(), deadline).await?;
            }
            let body = buf[..n].to_vec();
            buf.drain(..n);
            Ok(body)
        }
        BodyKind::Chunked => {
            if head.expect_continue && buf.is_empty() {
                send_continue(client).await?;
            }
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            loop {
                let mut too_large = false;
                let progress = decoder
                    .decode(buf, &mut |data: &[u8]| {
                        if body.len() + data.len() > limit {
                            too_large = true;
                        } else {
                            body.extend_from_slice(data);
                        }
                    })
                    .map_err(|e| RelayError::BadBody(e.to_string()))?;
                if too_large {
                    return Err(RelayError::BodyTooLarge { limit });
                }
                buf.drain(..progress.consumed);
                if progress.done {
                    return Ok(body);
                }
                read_some(client, buf, CLIENT_READ_SPARE, deadline).await?;
            }
        }
    }
}

async fn send_continue(client: &mut Conn) -> Result<(), RelayError> {
    let (res, _) = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
    res.map_err(|_| RelayError::BadBody("client went away".into()))
}

async fn read_some(
    client: &mut Conn,
    buf: &mut Vec<u8>,
    want: usize,
    deadline: std::time::Instant,
) -> Result<(), RelayError> {
    let owned = std::mem::take(buf);
    let spare = want.clamp(CLIENT_READ_SPARE, 1 << 20);
    let read_deadline = deadline.min(std::time::Instant::now() + BODY_READ_TIMEOUT);
    let (res, owned) = monoio::time::timeout_at(read_deadline.into(), client.read_more(owned, spare))
        .await
        .map_err(|_| RelayError::BodyTimeout)?;
    *buf = owned;
    match res {
        Ok(0) => Err(RelayError::BadBody("connection closed inside the request body".into())),
        Ok(_) => Ok(()),
        Err(e) => Err(RelayError::BadBody(format!("reading the request body: {e}"))),
    }
}

/// While waiting for an upstream's answer, a client that gives up is noticed at once rather than when
/// the answer comes (up to the upstream head timeout, ten minutes later): the upstream call is dropped,
/// so the provider stops generating for nobody, and the interception ends as client_disconnected.
/// Resolves only when the client closed its connection; stays pending when it sent more bytes (a
/// pipelined request, left unread for its turn) or on TLS.
pub async fn closed(client: &Conn) {
    use std::os::fd::AsRawFd;
    let Conn::Plain(tcp) = client else {
        return std::future::pending().await;
    };
    loop {
        if tcp.readable(true).await.is_err() {
            return;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a valid byte on a socket we own, without blocking.
        let n = unsafe {
            libc::recv(tcp.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        };
        match n {
            0 => return,
            n if n > 0 => return std::future::pending().await,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => {
                // A spurious wake-up (the legacy driver's relaxed readiness): do not spin.
                monoio::time::sleep(CLOSED_POLL_BACKOFF).await;
            }
            _ => return,
        }
    }
}

/// Pause after a spurious readiness report while watching for a client's close.
const CLOSED_POLL_BACKOFF: Duration = Duration::from_millis(50);

/// Writes a complete small response (status, content type, body). Returns false when the write failed.
pub async fn write_simple(client: &mut Conn, status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> bool {
    let mut out = Vec::with_capacity(160 + body.len());
    http::write_status_line(&mut out, status);
    http::write_header(&mut out, "Content-Type", content_type.as_bytes());
    http::write_header(&mut out, "Content-Length", body.len().to_string().as_bytes());
    if !keep_alive {
        http::write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    client.write_all(out).await.0.is_ok()
}
