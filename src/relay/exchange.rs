//! The upstream leg up to the response head: rendering the upstream request, sending it on a pooled or
//! fresh connection, reading the response head, and the single retry when a reused keep-alive connection
//! turns out dead before any response byte. Runs on a worker.

use std::time::Duration;

use crate::runtime::http::{self, Header, ResponseHead};
use crate::runtime::io::Conn;
use crate::runtime::upstream::{PoolKey, Upstreams};

use super::error::RelayError;

/// How long an upstream may think before sending its response head. Non-streaming LLM calls can take
/// minutes for long outputs.
pub const UPSTREAM_HEAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Read granularity on the upstream leg.
pub const UPSTREAM_READ_SPARE: usize = 16 * 1024;

/// A fully rendered upstream request.
pub struct UpstreamRequest {
    /// The pool slot of the instance (see [`Upstreams`]).
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
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + body.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    http::write_header(&mut out, "Host", host_header.as_bytes());
    for h in forwarded {
        http::write_header(&mut out, &h.name, &h.value);
    }
    for (name, value) in extra {
        http::write_header(&mut out, name, value.as_bytes());
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        http::write_header(&mut out, "Content-Length", body.len().to_string().as_bytes());
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
}

/// Sends `req` and reads the response head. A reused connection that fails before any response byte is
/// replaced by a fresh one once; nothing had reached the client, so the retry is safe.
pub async fn send(upstreams: &Upstreams, req: &mut UpstreamRequest) -> Result<UpstreamResponse, RelayError> {
    let first = upstreams.checkout(req.slot, &req.key).await?;
    match attempt(first.conn, req).await {
        Ok(r) => Ok(r),
        Err(Attempt::DeadBeforeAnswer(e)) if first.reused => {
            tracing::debug!(error = %e, host = %req.key.host, "pooled upstream connection was dead; retrying once on a fresh one");
            let conn = upstreams.connect(&req.key).await?;
            attempt(conn, req).await.map_err(Attempt::into_error)
        }
        Err(a) => Err(a.into_error()),
    }
}

enum Attempt {
    /// Write failed, or the connection closed before a single response byte.
    DeadBeforeAnswer(RelayError),
    Failed(RelayError),
}

impl Attempt {
    fn into_error(self) -> RelayError {
        match self {
            Attempt::DeadBeforeAnswer(e) | Attempt::Failed(e) => e,
        }
    }
}

async fn attempt(mut conn: Conn, req: &mut UpstreamRequest) -> Result<UpstreamResponse, Attempt> {
    // The buffer goes to the kernel and comes back, so a retry can send it again without a copy.
    let (res, bytes) = conn.write_all(std::mem::take(&mut req.bytes)).await;
    req.bytes = bytes;
    if res.is_err() {
        return Err(Attempt::DeadBeforeAnswer(RelayError::UpstreamClosed));
    }
    if conn.flush().await.is_err() {
        return Err(Attempt::DeadBeforeAnswer(RelayError::UpstreamClosed));
    }
    let mut buf = Vec::with_capacity(UPSTREAM_READ_SPARE);
    let deadline = std::time::Instant::now() + UPSTREAM_HEAD_TIMEOUT;
    loop {
        let (res, owned) =
            match monoio::time::timeout_at(deadline.into(), conn.read_more(buf, UPSTREAM_READ_SPARE)).await {
                Ok(r) => r,
                Err(_) => return Err(Attempt::Failed(RelayError::UpstreamTimeout)),
            };
        buf = owned;
        match res {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Attempt::DeadBeforeAnswer(RelayError::UpstreamClosed)),
            Ok(0) => {
                return Err(Attempt::Failed(RelayError::UpstreamProtocol(
                    "connection closed inside the response head".into(),
                )))
            }
            Err(e) => {
                return Err(Attempt::Failed(RelayError::UpstreamProtocol(format!("reading the response head: {e}"))))
            }
            Ok(_) => {}
        }
        loop {
            match http::parse_response_head(&buf, req.is_head) {
                Ok(Some(head)) if (100..200).contains(&head.status) => {
                    // Interim answers (100 Continue, 103 Early Hints) are not relayed.
                    buf.drain(..head.head_len);
                    continue;
                }
                Ok(Some(head)) => {
                    let leftover = buf.split_off(head.head_len);
                    return Ok(UpstreamResponse { conn, head, leftover });
                }
                Ok(None) => break,
                Err(e) => return Err(Attempt::Failed(RelayError::UpstreamProtocol(e.to_string()))),
            }
        }
    }
}
