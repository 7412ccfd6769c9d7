//! The client leg, up to the response head: rendering a request, sending it on a pooled or fresh
//! upstream connection, reading the response head, and the single retry when a reused keep-alive
//! connection refused the request before any byte of it left. Never sends a request twice otherwise.
//! Runs on a worker; knows HTTP/1.1 and the pool, not providers.

use std::time::{Duration, Instant};

use crate::runtime::io::{Conn, WriteFailure};
use crate::runtime::upstream::{ConnectError, PoolKey, Upstreams};

use super::{parse_response_head, write_header, HeadError, Header, ResponseHead};

/// Read granularity on the client leg.
pub const UPSTREAM_READ_SPARE: usize = 16 * 1024;

/// The deadlines of the client leg; configured (defaults and ranges in `config::Timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// How long an upstream may think before sending its response head. Non-streaming LLM calls can
    /// take minutes for long outputs.
    pub head: Duration,
    /// After a failed request write, how long to look for an answer the upstream sent before closing.
    pub early_answer_grace: Duration,
}

/// Why no response head came back.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream closed the connection before answering")]
    Closed,
    #[error("upstream sent an invalid response: connection closed inside the response head")]
    ClosedInHead,
    #[error("upstream sent an invalid response: reading the response head: {0}")]
    Read(std::io::Error),
    #[error("upstream sent an invalid response: {0}")]
    BadHead(HeadError),
}

/// Bodies up to this size are copied behind the head so the request leaves in one write; larger ones
/// are written from their own buffer, so a large body is never held twice.
pub const COALESCED_BODY_MAX: usize = 64 * 1024;

/// A fully rendered upstream request.
pub struct UpstreamRequest {
    /// The pool slot of the upstream (see [`Upstreams`]).
    pub slot: usize,
    pub key: PoolKey,
    /// Request line and headers, followed by the body when it is small (see [`COALESCED_BODY_MAX`]).
    pub head: Vec<u8>,
    /// A large body, written after `head` from its own buffer; empty when the body went with the head.
    pub body: Vec<u8>,
    pub is_head: bool,
}

impl UpstreamRequest {
    /// A request from its rendered `head` (see [`render_head`]) and its `body`: a small body is copied
    /// behind the head, a large one moves into the request; [`UpstreamRequest::return_body`] gives it
    /// back for another attempt.
    pub fn new(slot: usize, key: PoolKey, mut head: Vec<u8>, body: &mut Vec<u8>, is_head: bool) -> Self {
        let body = if body.len() <= COALESCED_BODY_MAX {
            head.extend_from_slice(body);
            Vec::new()
        } else {
            std::mem::take(body)
        };
        UpstreamRequest { slot, key, head, body, is_head }
    }

    /// Moves a body that [`UpstreamRequest::new`] took back into `to`; a small body was copied and
    /// never left it.
    pub fn return_body(&mut self, to: &mut Vec<u8>) {
        if !self.body.is_empty() {
            *to = std::mem::take(&mut self.body);
        }
    }
}

/// Renders the head of `method path`: Host, the forwarded client headers, the gateway's own headers
/// and the framing of a body of `body_len` bytes.
pub fn render_head(
    method: &str,
    path: &str,
    host_header: &str,
    forwarded: &mut dyn Iterator<Item = &Header>,
    extra: &[(String, String)],
    body_len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(&mut out, "Host", host_header.as_bytes());
    for h in forwarded {
        write_header(&mut out, &h.name, &h.value);
    }
    for (name, value) in extra {
        write_header(&mut out, name, value.as_bytes());
    }
    if body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        write_header(&mut out, "Content-Length", body_len.to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The upstream's answer head, the connection it came on, and body bytes already read past the head.
pub struct UpstreamResponse {
    pub conn: Conn,
    pub head: ResponseHead,
    pub leftover: Vec<u8>,
    /// When the connection that answered was ready (checked out of the pool, or connected).
    pub connected_at: Instant,
    /// When the first response byte arrived.
    pub first_byte_at: Instant,
}

/// Sends `req` and reads the response head, sending the request at most once: a provider that received
/// it may be generating (and billing) an answer, so a second copy is sent only when the first provably
/// never left. That is the case when a reused connection refuses the very first write with no byte
/// accepted (the pool already drops connections found closed before reuse); then the request goes once
/// more, on a fresh connection. A connection that fails after any byte of the request left is an error
/// (the client gets a 502), never a retry.
pub async fn send(
    upstreams: &Upstreams,
    req: &mut UpstreamRequest,
    timeouts: &UpstreamTimeouts,
) -> Result<UpstreamResponse, ExchangeError> {
    let first = upstreams.checkout(req.slot, &req.key).await?;
    match attempt(first.conn, first.reused, req, timeouts).await {
        Ok(r) => Ok(r),
        Err(Attempt::NotSent(e)) => {
            tracing::debug!(error = %e, host = %req.key.host, "pooled upstream connection refused the request before any byte of it left; sending it on a fresh one");
            let conn = upstreams.connect(&req.key).await?;
            attempt(conn, false, req, timeouts).await.map_err(Attempt::into_error)
        }
        Err(Attempt::Failed(e)) => Err(e),
    }
}

enum Attempt {
    /// A reused connection failed the first write with no byte of the request accepted: safe to resend.
    NotSent(std::io::Error),
    /// Anything else; the upstream may have received the request.
    Failed(ExchangeError),
}

impl Attempt {
    fn into_error(self) -> ExchangeError {
        match self {
            Attempt::NotSent(_) => ExchangeError::Closed,
            Attempt::Failed(e) => e,
        }
    }
}

async fn attempt(
    mut conn: Conn,
    reused: bool,
    req: &mut UpstreamRequest,
    timeouts: &UpstreamTimeouts,
) -> Result<UpstreamResponse, Attempt> {
    let connected_at = Instant::now();
    // The buffers go to the kernel and come back, so a retry can send them again without a copy.
    let write_failed = match write_request(&mut conn, req).await {
        // Bytes waiting on a reused connection that took none of the request cannot be its answer (an
        // idle-timeout 408, say), so it is not read: the request goes on a fresh connection instead.
        Err(WriteFailure::NothingSent(e)) if reused => return Err(Attempt::NotSent(e)),
        Err(WriteFailure::NothingSent(e) | WriteFailure::MaybeSent(e)) => {
            tracing::debug!(error = %e, "upstream request write failed; looking briefly for an early answer");
            true
        }
        Ok(()) => conn.flush().await.is_err(),
    };
    // An upstream may answer and close before reading the whole request (a 413 or 401 from a front
    // that refuses the body). The write then fails, but its answer is the one the client must see,
    // so a failed write still looks, briefly, for a response head.
    let mut buf = Vec::with_capacity(UPSTREAM_READ_SPARE);
    let wait = if write_failed { timeouts.early_answer_grace } else { timeouts.head };
    let deadline = Instant::now() + wait;
    let mut first_byte_at = None;
    loop {
        let (res, owned) =
            match monoio::time::timeout_at(deadline.into(), conn.read_more(buf, UPSTREAM_READ_SPARE)).await {
                Ok(r) => r,
                Err(_) if write_failed => return Err(Attempt::Failed(ExchangeError::Closed)),
                Err(_) => return Err(Attempt::Failed(ExchangeError::Timeout)),
            };
        buf = owned;
        match res {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Attempt::Failed(ExchangeError::Closed)),
            Ok(0) => return Err(Attempt::Failed(ExchangeError::ClosedInHead)),
            Err(e) => return Err(Attempt::Failed(ExchangeError::Read(e))),
            Ok(_) => {}
        }
        let first_byte_at = *first_byte_at.get_or_insert_with(Instant::now);
        loop {
            match parse_response_head(&buf, req.is_head) {
                Ok(Some(head)) if (100..200).contains(&head.status) => {
                    // Interim answers (100 Continue, 103 Early Hints) are not relayed.
                    buf.drain(..head.head_len);
                    continue;
                }
                Ok(Some(mut head)) => {
                    // A connection whose request was not fully written is never reused.
                    head.keep_alive &= !write_failed;
                    let leftover = buf.split_off(head.head_len);
                    return Ok(UpstreamResponse { conn, head, leftover, connected_at, first_byte_at });
                }
                Ok(None) => break,
                Err(e) => return Err(Attempt::Failed(ExchangeError::BadHead(e))),
            }
        }
    }
}

/// Writes the head, then a large body from its own buffer. Both buffers go to the kernel and come
/// back, so a retry can send them again without a copy.
/// Writes the head, then the body when it travels on its own. Only a head write that took no byte can
/// be [`WriteFailure::NothingSent`]: once the head left, any later failure may have reached the upstream.
async fn write_request(conn: &mut Conn, req: &mut UpstreamRequest) -> Result<(), WriteFailure> {
    let (res, head) = conn.write_all_tracked(std::mem::take(&mut req.head)).await;
    req.head = head;
    res?;
    if req.body.is_empty() {
        return Ok(());
    }
    let (res, body) = conn.write_all_tracked(std::mem::take(&mut req.body)).await;
    req.body = body;
    res.map_err(|e| match e {
        WriteFailure::NothingSent(e) | WriteFailure::MaybeSent(e) => WriteFailure::MaybeSent(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PoolKey {
        PoolKey { host: "h".into(), port: 1, tls: false }
    }

    #[test]
    fn heads_carry_host_forwarded_and_added_headers_and_a_length_for_posts() {
        let fwd = [Header { name: "anthropic-version".into(), value: b"2023-06-01".to_vec() }];
        let extra = vec![("x-api-key".to_string(), "k".to_string())];
        let out = render_head("POST", "/v1/messages", "api.example:8443", &mut fwd.iter(), &extra, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/messages HTTP/1.1\r\nHost: api.example:8443\r\nanthropic-version: 2023-06-01\r\n\
             x-api-key: k\r\nContent-Length: 2\r\n\r\n"
        );
        let get = String::from_utf8(render_head("GET", "/v1/models", "h", &mut [].iter(), &[], 0)).unwrap();
        assert_eq!(get, "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n", "no Content-Length on a bodiless GET");
        let empty_post = String::from_utf8(render_head("POST", "/x", "h", &mut [].iter(), &[], 0)).unwrap();
        assert!(empty_post.contains("Content-Length: 0\r\n"), "{empty_post}");
    }

    #[test]
    fn small_bodies_follow_the_head_and_large_ones_move_without_a_copy() {
        let mut small = b"{}".to_vec();
        let mut req = UpstreamRequest::new(0, key(), b"HEAD\r\n\r\n".to_vec(), &mut small, false);
        assert_eq!((req.head.as_slice(), req.body.len()), (&b"HEAD\r\n\r\n{}"[..], 0));
        req.return_body(&mut small);
        assert_eq!(small, b"{}", "a copied body stays where it was");

        let mut large = vec![b'x'; COALESCED_BODY_MAX + 1];
        let at = large.as_ptr();
        let mut req = UpstreamRequest::new(0, key(), b"HEAD\r\n\r\n".to_vec(), &mut large, false);
        assert!(large.is_empty());
        assert_eq!(req.head, b"HEAD\r\n\r\n");
        assert_eq!(req.body.as_ptr(), at, "the body's own buffer, not a copy");
        req.return_body(&mut large);
        assert_eq!((large.len(), large.as_ptr()), (COALESCED_BODY_MAX + 1, at));
    }
}
