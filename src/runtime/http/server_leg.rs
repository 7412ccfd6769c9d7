//! The server leg: reading request heads and bodies from a client within their limits and deadlines,
//! writing short complete answers, and noticing a client that closed. Runs on a worker; every wait is
//! bounded. Knows HTTP/1.1, not providers: what an error means for the client is the relay's to say.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::runtime::io::Conn;
use crate::runtime::shutdown::LocalShutdown;

use super::head::Malformed;
use super::{parse_request_head, write_header, write_status_line, BodyKind, ChunkError, ChunkedDecoder};
use super::{HeadError, RequestHead};

/// Read granularity on the server leg.
pub const CLIENT_READ_SPARE: usize = 16 * 1024;
/// Room left past a Content-Length body in its buffer, so that a small in-place edit of the body (the
/// relay inserts `stream_options.include_usage`, at most 41 bytes) does not reallocate, and so copy,
/// a large one.
pub const BODY_EDIT_ROOM: usize = 64;
/// Pause after a spurious readiness report while watching for a client's close.
const CLOSED_POLL_BACKOFF: Duration = Duration::from_millis(50);

/// The deadlines of the server leg; configured (defaults and ranges in `config::Timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// A keep-alive connection may sit idle this long between requests before it is closed.
    pub keepalive_idle: Duration,
    /// Once the first byte of a head arrived, the whole head must arrive within this (slowloris
    /// defence; 408).
    pub head_read: Duration,
    /// Each read of a request body must make progress within this.
    pub body_read: Duration,
    /// The whole request body must arrive within this, however steadily it trickles (a client sending
    /// one byte every 59 s would otherwise hold a connection forever).
    pub body_total: Duration,
}

/// Why a request could not be read. Never holds request bytes.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("malformed request head: {0}")]
    BadHead(#[from] HeadError),
    #[error("request head not received in time")]
    HeadTimeout,
    #[error("malformed request body: connection closed inside the request head")]
    ClosedInHead,
    #[error("request body larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed request body: {0}")]
    BadChunk(ChunkError),
    #[error("malformed request body: connection closed inside the request body")]
    ClosedInBody,
    #[error("malformed request body: reading the request body: {0}")]
    BodyIo(std::io::Error),
    #[error("malformed request body: client went away")]
    ContinueFailed(std::io::Error),
    #[error("request body not received in time")]
    BodyTimeout,
}

/// How reading the next request head ended without a head.
#[derive(Debug)]
pub enum NoHead {
    /// The client closed, idled out, or the server is shutting down: close quietly.
    Closed,
    /// The client sent something that must be answered with an error before closing.
    Error(ReadError),
}

/// Reads until `buf` starts with a complete request head; parses it and removes it from `buf`.
pub async fn read_head(
    client: &mut Conn,
    buf: &mut Vec<u8>,
    shutdown: &Rc<LocalShutdown>,
    timeouts: &ClientTimeouts,
) -> Result<RequestHead, NoHead> {
    let mut head_deadline = None;
    loop {
        if !buf.is_empty() {
            match parse_request_head(buf) {
                // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without Host. The head
                // stays in `buf`, so the answer takes the shape of the instance it names.
                Ok(Some(head)) if head.minor_version >= 1 && head.header("host").is_none() => {
                    return Err(NoHead::Error(ReadError::BadHead(HeadError::Malformed(Malformed::MissingHost))));
                }
                Ok(Some(head)) => {
                    buf.drain(..head.head_len);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(NoHead::Error(ReadError::BadHead(e))),
            }
            if head_deadline.is_none() {
                head_deadline = Some(Instant::now() + timeouts.head_read);
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
                    r = monoio::time::timeout(timeouts.keepalive_idle, client.read_more(owned, CLIENT_READ_SPARE)) => match r {
                        Ok(r) => r,
                        Err(_) => return Err(NoHead::Closed),
                    },
                    _ = shutdown.wait() => return Err(NoHead::Closed),
                }
            }
            Some(deadline) => {
                match monoio::time::timeout_at(deadline.into(), client.read_more(owned, CLIENT_READ_SPARE)).await {
                    Ok(r) => r,
                    Err(_) => return Err(NoHead::Error(ReadError::HeadTimeout)),
                }
            }
        };
        *buf = owned;
        match res {
            Ok(0) => {
                return Err(if buf.is_empty() { NoHead::Closed } else { NoHead::Error(ReadError::ClosedInHead) });
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
    timeouts: &ClientTimeouts,
) -> Result<Vec<u8>, ReadError> {
    let deadline = Instant::now() + timeouts.body_total;
    let mut reader = BodyReader { client, buf, deadline, read_timeout: timeouts.body_read };
    match head.body {
        BodyKind::Empty => Ok(Vec::new()),
        BodyKind::Length(n) => {
            if n > limit as u64 {
                return Err(ReadError::BodyTooLarge { limit });
            }
            let n = n as usize;
            if head.expect_continue && reader.buf.len() < n {
                send_continue(reader.client).await?;
            }
            // The read buffer becomes the body: a large body is never copied out of it. It gets the
            // announced size at once (within the limit checked above): growing it step by step would
            // leave every outgrown buffer resident until the allocator purges it. Only the pages the
            // body's bytes land in are ever touched.
            reader.buf.reserve_exact((n + BODY_EDIT_ROOM).saturating_sub(reader.buf.len()));
            while reader.buf.len() < n {
                reader.read_some(1).await?;
            }
            Ok(split_body(reader.buf, n))
        }
        BodyKind::Chunked => {
            if head.expect_continue && reader.buf.is_empty() {
                send_continue(reader.client).await?;
            }
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            loop {
                let mut too_large = false;
                let progress = decoder
                    .decode(reader.buf, &mut |data: &[u8]| {
                        if body.len() + data.len() > limit {
                            too_large = true;
                        } else {
                            body.extend_from_slice(data);
                        }
                    })
                    .map_err(ReadError::BadChunk)?;
                if too_large {
                    return Err(ReadError::BodyTooLarge { limit });
                }
                reader.buf.drain(..progress.consumed);
                if progress.done {
                    return Ok(body);
                }
                reader.read_some(CLIENT_READ_SPARE).await?;
            }
        }
    }
}

/// Takes the first `n` bytes of `buf` as the body, leaving what follows them (a pipelined request)
/// in `buf`. Only those following bytes are copied.
fn split_body(buf: &mut Vec<u8>, n: usize) -> Vec<u8> {
    let rest = buf.get(n..).map(<[u8]>::to_vec).unwrap_or_default();
    let mut body = std::mem::replace(buf, rest);
    body.truncate(n);
    body
}

async fn send_continue(client: &mut Conn) -> Result<(), ReadError> {
    let (res, _) = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
    res.map_err(ReadError::ContinueFailed)
}

/// A body being read: the connection, its buffer and the deadlines that bound each read.
struct BodyReader<'a> {
    client: &'a mut Conn,
    buf: &'a mut Vec<u8>,
    deadline: Instant,
    read_timeout: Duration,
}

impl BodyReader<'_> {
    /// Reads what has arrived into the buffer's free room, first making at least `spare` bytes free.
    async fn read_some(&mut self, spare: usize) -> Result<(), ReadError> {
        let owned = std::mem::take(self.buf);
        let read_deadline = self.deadline.min(Instant::now() + self.read_timeout);
        let (res, owned) = monoio::time::timeout_at(read_deadline.into(), self.client.read_more(owned, spare))
            .await
            .map_err(|_| ReadError::BodyTimeout)?;
        *self.buf = owned;
        match res {
            Ok(0) => Err(ReadError::ClosedInBody),
            Ok(_) => Ok(()),
            Err(e) => Err(ReadError::BodyIo(e)),
        }
    }
}

/// While waiting for an upstream's answer, a client that gives up is noticed at once rather than when
/// the answer comes (up to the upstream head timeout, ten minutes later): the caller drops the upstream
/// call, so the provider stops generating for nobody. Resolves only when the client closed its
/// connection; stays pending when it sent more bytes (a pipelined request, left unread for its turn) or
/// on TLS.
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

/// Whether a short answer's body is sent. Never in answer to HEAD: that answer carries the headers a
/// GET would get, Content-Length included, and no content (RFC 9110 §9.3.2); a body sent anyway would
/// be read by a pipelining client as the start of its next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Sent,
    Omitted,
}

impl Content {
    /// The rule for an answer to a request with `method`.
    pub fn for_method(method: &str) -> Content {
        if method.eq_ignore_ascii_case("HEAD") {
            Content::Omitted
        } else {
            Content::Sent
        }
    }
}

/// A complete small response (status, content type, body), framed with Content-Length.
pub fn simple_response(status: u16, content_type: &str, body: &[u8], keep_alive: bool, content: Content) -> Vec<u8> {
    simple_response_with(status, content_type, &[], body, keep_alive, content)
}

/// [`simple_response`] with `extra` headers (e.g. `Retry-After` on the gateway's own 429 and 503).
pub fn simple_response_with(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    content: Content,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    write_status_line(&mut out, status);
    write_header(&mut out, "Content-Type", content_type.as_bytes());
    for (name, value) in extra {
        write_header(&mut out, name, value.as_bytes());
    }
    write_header(&mut out, "Content-Length", body.len().to_string().as_bytes());
    if !keep_alive {
        write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if content == Content::Sent {
        out.extend_from_slice(body);
    }
    out
}

/// Writes a complete small response. Returns false when the write failed.
pub async fn write_simple(
    client: &mut Conn,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    content: Content,
) -> bool {
    client.write_all(simple_response(status, content_type, body, keep_alive, content)).await.0.is_ok()
}

/// Writes a complete small response with `extra` headers. Returns false when the write failed.
pub async fn write_simple_with(
    client: &mut Conn,
    status: u16,
    extra: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    content: Content,
) -> bool {
    let bytes = simple_response_with(status, "application/json", extra, body, keep_alive, content);
    client.write_all(bytes).await.0.is_ok()
}

#[cfg(test)]
mod tests {
    use super::{simple_response, split_body, Content};

    #[test]
    fn a_body_is_its_read_buffer_and_only_pipelined_bytes_are_copied() {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"{\"a\":1}");
        let at = buf.as_ptr();
        let body = split_body(&mut buf, 7);
        assert_eq!((body.as_slice(), body.as_ptr()), (&b"{\"a\":1}"[..], at), "the buffer itself");
        assert!(buf.is_empty());

        let mut buf = b"{}GET / HTTP/1.1\r\n".to_vec();
        let body = split_body(&mut buf, 2);
        assert_eq!((body.as_slice(), buf.as_slice()), (&b"{}"[..], &b"GET / HTTP/1.1\r\n"[..]));
    }

    #[test]
    fn simple_responses_are_length_framed_and_say_when_the_connection_closes() {
        let kept = simple_response(404, "application/json", b"{}", true, Content::Sent);
        assert_eq!(kept, b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
        let closing = String::from_utf8(simple_response(200, "text/plain", b"", false, Content::Sent)).unwrap();
        assert!(closing.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"), "{closing}");
    }

    #[test]
    fn answers_to_head_announce_the_length_and_leave_the_body_out() {
        let head = simple_response(200, "application/json", b"{}", true, Content::for_method("HEAD"));
        assert_eq!(head, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(Content::for_method("head"), Content::Omitted);
        assert_eq!(Content::for_method("GET"), Content::Sent);
    }
}
