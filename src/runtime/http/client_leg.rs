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

/// A fully rendered upstream request.
pub struct UpstreamRequest {
    /// The pool slot of the upstream (see [`Upstreams`]).
    pub slot: usize,
    pub key: PoolKey,
    /// Request line, headers and body, ready to write.
    pub bytes: Vec<u8>,
    pub is_head: bool,
}

/// Renders `method path`, the forwarded client headers, the gateway's own headers and the body.
pub fn render_request(
    method: &str,
    path: &str,
    host_header: &str,
    forwarded: &mut dyn Iterator<Item = &Header>,
    extra: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
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
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        write_header(&mut out, "Content-Length", body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
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
    // The buffer goes to the kernel and comes back, so a retry can send it again without a copy.
    let (res, bytes) = conn.write_all_tracked(std::mem::take(&mut req.bytes)).await;
    req.bytes = bytes;
    let write_failed = match res {
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

#[cfg(test)]
mod tests {
    use super::render_request;
    use crate::runtime::http::Header;

    #[test]
    fn requests_carry_host_forwarded_and_added_headers_and_a_length_for_posts() {
        let fwd = [Header { name: "anthropic-version".into(), value: b"2023-06-01".to_vec() }];
        let extra = vec![("x-api-key".to_string(), "k".to_string())];
        let out = render_request("POST", "/v1/messages", "api.example:8443", &mut fwd.iter(), &extra, b"{}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/messages HTTP/1.1\r\nHost: api.example:8443\r\nanthropic-version: 2023-06-01\r\n\
             x-api-key: k\r\nContent-Length: 2\r\n\r\n{}"
        );
        let get = String::from_utf8(render_request("GET", "/v1/models", "h", &mut [].iter(), &[], b"")).unwrap();
        assert_eq!(get, "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n", "no Content-Length on a bodiless GET");
        let empty_post = String::from_utf8(render_request("POST", "/x", "h", &mut [].iter(), &[], b"")).unwrap();
        assert!(empty_post.contains("Content-Length: 0\r\n"), "{empty_post}");
    }
}
