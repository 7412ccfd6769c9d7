//! Relaying a response body: the upstream body goes to the client as it arrives — each chunk written to
//! the client first, then handed to the observer — and the caller learns how it ended. Raw mode forwards
//! the upstream's bytes untouched (framing included); re-framed mode wraps payload in chunks
//! (close-delimited upstreams, translated streams). No per-chunk heap allocation: buffers are reused.
//! Runs on a worker; every wait is bounded.

use std::time::{Duration, Instant};

use crate::providers::upstream::StreamTranslator;
use crate::records::{Api, Observation};
use crate::runtime::http::client_leg::UpstreamResponse;
use crate::runtime::http::server_leg::closed;
use crate::runtime::http::{self, BodyDecoder, ResponseBody, ResponseHead};
use crate::runtime::io::Conn;
use crate::sse::{observe_json, StreamObserver};

use super::decode::{Feed, Gunzip};

/// Body reads start this small, so an idle open stream holds little memory…
pub const MIN_BODY_READ: usize = 4 * 1024;
/// …and double whenever a read fills the space, up to this, so bulk bodies move in few syscalls.
pub const MAX_BODY_READ: usize = 64 * 1024;
/// Non-streaming bodies are kept for the JSON observer up to this size; larger ones are relayed unobserved.
pub const MAX_OBSERVED_JSON: usize = 32 * 1024 * 1024;

/// The deadlines of body relaying; configured (defaults and ranges in `config::Timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// Between two reads of a streaming body, an upstream may be silent this long (long thinking pauses).
    pub upstream_idle: Duration,
    /// A client that accepts no bytes of a response for this long has stopped reading (nginx's
    /// send_timeout is the same): without a bound, such a client held its task, the upstream connection
    /// and an open interception forever.
    pub client_write: Duration,
    /// When the upstream has been silent this long mid-body, the gateway starts watching for the client
    /// leaving; shorter pauses cost nothing beyond a timer.
    pub client_watch_after_idle: Duration,
}

/// How the body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToClient {
    /// The upstream's bytes, framing included, untouched.
    Raw,
    /// The payload, re-framed as chunks (or close-delimited for an HTTP/1.0 client).
    Reframe { chunked: bool },
}

/// What the observer does with the payload.
#[derive(Default)]
pub enum Observer {
    #[default]
    None,
    Stream(Box<StreamObserver>),
    Json {
        api: Api,
        body: Vec<u8>,
        overflow: bool,
    },
    /// An upstream stream translated into the client API's SSE, which the client gets and the observer
    /// reads.
    Translated {
        translator: Box<StreamTranslator>,
        observer: Box<StreamObserver>,
    },
    /// A gzip-coded body (`Content-Encoding: gzip`): the client gets it as is, the inner observer
    /// (`Stream` or `Json`) reads it decoded.
    Gzip(Box<Gunzip<Observer>>),
}

/// What observing a body found.
pub struct Finished {
    pub observation: Option<Observation>,
    /// The whole of an event stream was observed, so a missing terminal event means it did not complete
    /// (false for JSON bodies, and for gzip streams whose observation stopped early).
    pub whole_stream: bool,
}

impl Observer {
    /// The observation, also for a body cut short.
    pub fn finish(self) -> Finished {
        match self {
            Observer::None => Finished { observation: None, whole_stream: false },
            Observer::Stream(o) => Finished { observation: Some(o.finish()), whole_stream: true },
            Observer::Json { api, body, overflow } => Finished {
                observation: (!overflow && !body.is_empty()).then(|| observe_json(api, &body)),
                whole_stream: false,
            },
            Observer::Translated { observer, .. } => {
                Finished { observation: Some(observer.finish()), whole_stream: true }
            }
            Observer::Gzip(g) => {
                let (inner, stopped) = g.finish();
                let inner = inner.finish();
                Finished { whole_stream: inner.whole_stream && stopped.is_none(), ..inner }
            }
        }
    }
}

impl Feed for Observer {
    /// Observes one piece of payload (for `Translated`, of the translated stream).
    fn feed(&mut self, data: &[u8]) {
        match self {
            Observer::None => {}
            Observer::Stream(o) => o.on_chunk(data),
            Observer::Json { body, overflow, .. } => {
                if body.len() + data.len() > MAX_OBSERVED_JSON {
                    *overflow = true;
                } else if !*overflow {
                    body.extend_from_slice(data);
                }
            }
            Observer::Translated { observer, .. } => observer.on_chunk(data),
            Observer::Gzip(g) => g.on_chunk(data),
        }
    }
}

/// How relaying the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The whole body went to the client; `reusable` says whether the upstream connection may be pooled.
    Complete { reusable: bool },
    /// The client could not be written to.
    ClientGone,
    /// The upstream reset, timed out or sent garbage mid-body.
    UpstreamFailed,
}

/// Chooses the client framing for an upstream response head.
pub fn client_framing(head: &ResponseHead, client_http11: bool, reframe: bool) -> ToClient {
    match head.body {
        ResponseBody::CloseDelimited => ToClient::Reframe { chunked: client_http11 },
        ResponseBody::Chunked if !client_http11 => ToClient::Reframe { chunked: false },
        _ if reframe => ToClient::Reframe { chunked: client_http11 },
        _ => ToClient::Raw,
    }
}

/// How the body is to go to the client.
pub struct BodyPlan {
    /// The client response head, written with the first payload.
    pub head_bytes: Vec<u8>,
    pub to_client: ToClient,
    pub timeouts: BodyTimeouts,
}

/// How relaying ended, and when the client got its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub end: BodyEnd,
    pub first_write: Option<Instant>,
}

/// Relays the body of `upstream` (starting with the bytes read past its head) to the client.
pub async fn relay_body(
    upstream: &mut UpstreamResponse,
    client: &mut Conn,
    plan: BodyPlan,
    observer: &mut Observer,
) -> Relayed {
    let mut first_write = None;
    let end = relay(upstream, client, plan, observer, &mut first_write).await;
    Relayed { end, first_write }
}

async fn relay(
    upstream: &mut UpstreamResponse,
    client: &mut Conn,
    plan: BodyPlan,
    observer: &mut Observer,
    first_write: &mut Option<Instant>,
) -> BodyEnd {
    let BodyPlan { mut head_bytes, to_client, timeouts } = plan;
    let upstream_head = &upstream.head;
    let mut buf = std::mem::take(&mut upstream.leftover);
    let mut framing = BodyDecoder::for_response(upstream_head.body);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut translated: Vec<u8> = Vec::new();
    let mut head_pending = true;
    let mut eof = false;
    let mut spare = MIN_BODY_READ;
    loop {
        // 1. Find the payload in what we have and where the response ends.
        ranges.clear();
        let (consumed, done) = match decode(&mut framing, &buf, &mut ranges, eof) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "upstream sent a malformed body");
                // Still give the client what was valid so far, then cut.
                let _ = write_to_client(client, std::mem::take(&mut head_bytes), timeouts.client_write).await;
                return BodyEnd::UpstreamFailed;
            }
        };
        buf.truncate(consumed);

        // 2. Write to the client first.
        let write_ok = match to_client {
            ToClient::Raw => {
                if head_pending {
                    head_bytes.extend_from_slice(&buf);
                    write_to_client(client, std::mem::take(&mut head_bytes), timeouts.client_write)
                        .await
                        .map(|b| head_bytes = b)
                        .is_some()
                } else if buf.is_empty() {
                    true
                } else {
                    write_to_client(client, std::mem::take(&mut buf), timeouts.client_write)
                        .await
                        .map(|b| buf = b)
                        .is_some()
                }
            }
            ToClient::Reframe { chunked } => {
                out.clear();
                if head_pending {
                    out.append(&mut head_bytes);
                }
                if let Observer::Translated { translator, .. } = observer {
                    translated.clear();
                    for &(s, e) in &ranges {
                        if let Err(err) = translator.on_bytes(&buf[s..e], &mut translated) {
                            tracing::warn!(error = %err, "upstream event stream could not be decoded");
                        }
                    }
                    if done {
                        translator.finish(&mut translated);
                    }
                    push_payload(&mut out, &translated, chunked);
                } else {
                    for &(s, e) in &ranges {
                        push_payload(&mut out, &buf[s..e], chunked);
                    }
                }
                if done && chunked {
                    out.extend_from_slice(http::LAST_CHUNK);
                }
                if out.is_empty() {
                    true
                } else {
                    write_to_client(client, std::mem::take(&mut out), timeouts.client_write)
                        .await
                        .map(|b| out = b)
                        .is_some()
                }
            }
        };
        if !write_ok {
            return BodyEnd::ClientGone;
        }
        if head_pending {
            *first_write = Some(Instant::now());
        }
        head_pending = false;

        // 3. Then observe.
        match observer {
            Observer::None => {}
            Observer::Translated { .. } => observer.feed(&translated),
            _ => {
                for &(s, e) in &ranges {
                    observer.feed(&buf[s..e]);
                }
            }
        }

        if done {
            let reusable = !matches!(framing, BodyDecoder::CloseDelimited) && upstream_head.keep_alive;
            if let Err(e) = client.flush().await {
                tracing::debug!(error = %e, "flushing the client failed");
                return BodyEnd::ClientGone;
            }
            return BodyEnd::Complete { reusable };
        }
        if eof {
            return BodyEnd::UpstreamFailed;
        }

        // 4. Read more.
        buf.clear();
        if buf.capacity() > 4 * spare {
            buf.shrink_to(spare);
        }
        let (res, owned) = monoio::select! {
            r = monoio::time::timeout(timeouts.upstream_idle, upstream.conn.read_more(buf, spare)) => match r {
                Ok(r) => r,
                Err(_) => return BodyEnd::UpstreamFailed,
            },
            // A long upstream pause (thinking) must not hide a client that left: its interception
            // would stay open, and the provider keep generating, for up to the upstream idle timeout.
            _ = async {
                monoio::time::sleep(timeouts.client_watch_after_idle).await;
                closed(client).await
            } => return BodyEnd::ClientGone,
        };
        buf = owned;
        match res {
            Ok(0) => eof = true,
            Ok(n) if n >= spare => spare = (spare * 2).min(MAX_BODY_READ),
            Ok(_) => {}
            Err(_) => return BodyEnd::UpstreamFailed,
        }
    }
}

/// Writes `bytes` to the client; None when the write failed or the client took longer than `timeout` to
/// accept them. Gives the buffer back for reuse.
async fn write_to_client(client: &mut Conn, bytes: Vec<u8>, timeout: Duration) -> Option<Vec<u8>> {
    match monoio::time::timeout(timeout, client.write_all(bytes)).await {
        Ok((Ok(()), b)) => Some(b),
        Ok((Err(_), _)) => None,
        Err(_) => {
            tracing::debug!("client stopped reading; giving up on it");
            None
        }
    }
}

fn push_payload(out: &mut Vec<u8>, payload: &[u8], chunked: bool) {
    if payload.is_empty() {
        return;
    }
    if chunked {
        http::write_chunk(out, payload);
    } else {
        out.extend_from_slice(payload);
    }
}

/// Decodes the framing of `buf`: fills `ranges` with the payload slices and returns how many bytes belong
/// to this response and whether it is complete. `eof` means the upstream closed after `buf`, which ends a
/// close-delimited body.
fn decode(
    framing: &mut BodyDecoder,
    buf: &[u8],
    ranges: &mut Vec<(usize, usize)>,
    eof: bool,
) -> Result<(usize, bool), String> {
    let base = buf.as_ptr() as usize;
    let r = framing
        .decode(buf, &mut |data: &[u8]| {
            let s = data.as_ptr() as usize - base;
            ranges.push((s, s + data.len()));
        })
        .map_err(|e| e.to_string())?;
    Ok((r.consumed, r.done || (eof && matches!(framing, BodyDecoder::CloseDelimited))))
}

/// Reads a whole upstream body into memory (at most `limit` bytes are kept), decoding its framing. For
/// small bodies that must be rewritten before the client sees them (translated errors). `idle` bounds
/// each read.
pub async fn read_body_to_vec(upstream: &mut UpstreamResponse, limit: usize, idle: Duration) -> Vec<u8> {
    let mut framing = BodyDecoder::for_response(upstream.head.body);
    let mut buf = std::mem::take(&mut upstream.leftover);
    let mut body = Vec::new();
    let mut ranges = Vec::new();
    let mut eof = false;
    loop {
        ranges.clear();
        let Ok((_, done)) = decode(&mut framing, &buf, &mut ranges, eof) else {
            return body;
        };
        for &(s, e) in &ranges {
            let take = (e - s).min(limit.saturating_sub(body.len()));
            body.extend_from_slice(&buf[s..s + take]);
        }
        if done || eof {
            return body;
        }
        buf.clear();
        let (res, owned) = match monoio::time::timeout(idle, upstream.conn.read_more(buf, MAX_BODY_READ)).await {
            Ok(r) => r,
            Err(_) => return body,
        };
        buf = owned;
        match res {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(_) => return body,
        }
    }
}
