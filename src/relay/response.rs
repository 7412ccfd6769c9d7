//! The response phase: decides how the upstream's answer reaches the client (rewritten whole, relayed
//! raw, re-framed, translated), which observer reads it, what the client's response head says, and how
//! the interception ends. The body bytes themselves move in `body`.

use std::time::Instant;

use crate::providers::upstream::StreamTranslator;
use crate::records::EndStatus;
use crate::runtime::http::client_leg::UpstreamResponse;
use crate::runtime::http::server_leg::{write_simple, Content};
use crate::runtime::http::{self, ResponseBody, ResponseHead};
use crate::runtime::io::Conn;
use crate::sse::StreamObserver;

use super::body::{client_framing, read_body_to_vec, relay_body, BodyEnd, BodyPlan, Observer, ToClient};
use super::context::RequestCtx;
use super::decode::{Gunzip, MAX_DECODED};
use super::gateway::WorkerService;

/// Upstream error bodies that must be rewritten are read up to this size.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// Relays the upstream's answer to the client and ends the interception. `translator` is set when the
/// upstream's stream must be translated for the client. Returns whether the client connection may
/// carry another request.
pub(crate) async fn relay_response(
    svc: &WorkerService,
    client: &mut Conn,
    ctx: &mut RequestCtx<'_>,
    mut upstream: UpstreamResponse,
    translator: Option<StreamTranslator>,
) -> bool {
    let status = upstream.head.status;
    if let Some(i) = ctx.interception.as_mut() {
        i.set_upstream_status(status);
    }
    let ok = (200..300).contains(&status);
    let http11 = ctx.head.minor_version >= 1;
    let keep_client = ctx.head.keep_alive && http11;
    let upstream_api = &ctx.inst.upstream;
    let timeouts = svc.gw.timeouts.body;

    if !ok && upstream_api.rewrites_errors() {
        let raw = read_body_to_vec(&mut upstream, MAX_ERROR_BODY, timeouts.upstream_idle).await;
        let head = &upstream.head;
        let (st, body) = upstream_api.rewrite_error(status, &|n| head.header_str(n), &raw);
        let content = Content::for_method(&ctx.head.method);
        let sent = write_simple(client, st, "application/json", &body, keep_client, content).await;
        ctx.timings.client_first_byte = Some(Instant::now());
        if let Some(i) = ctx.interception.take() {
            i.end(if sent { EndStatus::Completed } else { EndStatus::ClientDisconnected });
        }
        return sent && keep_client;
    }

    let translator = translator.filter(|_| ok);
    let translated = translator.is_some();
    let mut observer = observer_for(ctx, &upstream.head, translator);
    let to_client = client_framing(&upstream.head, http11, translated);
    let keep_after = keep_client && (to_client != ToClient::Reframe { chunked: false });
    let head_bytes = client_head(&upstream.head, to_client, keep_after, translated);

    let plan = BodyPlan { head_bytes, to_client, timeouts };
    let relayed = relay_body(&mut upstream, client, plan, &mut observer).await;
    ctx.timings.client_first_byte = relayed.first_write;
    match relayed.end {
        BodyEnd::Complete { reusable: true } => svc.upstreams.checkin(ctx.inst.pool_slot, upstream.conn),
        _ => drop(upstream),
    }
    if let Some(mut i) = ctx.interception.take() {
        let mut status = match relayed.end {
            BodyEnd::Complete { .. } => EndStatus::Completed,
            BodyEnd::ClientGone => EndStatus::ClientDisconnected,
            BodyEnd::UpstreamFailed => EndStatus::Failed,
        };
        let finished = observer.finish();
        if let Some(obs) = finished.observation {
            // A stream that carried a provider error, or ended without its terminal event, did not
            // complete even though its HTTP framing did.
            if status == EndStatus::Completed && (obs.error.is_some() || (finished.whole_stream && !obs.complete)) {
                status = EndStatus::Failed;
            }
            i.observed(obs);
        }
        i.end(status);
    }
    matches!(relayed.end, BodyEnd::Complete { .. }) && keep_after
}

/// The observer of a successful answer: a translated stream is always read (the client needs the
/// translation); otherwise only what is recorded, by the answer's content type.
fn observer_for(ctx: &RequestCtx<'_>, head: &ResponseHead, translator: Option<StreamTranslator>) -> Observer {
    let Some(api) = ctx.route.api() else {
        return Observer::None;
    };
    if let Some(translator) = translator {
        return Observer::Translated { translator: Box::new(translator), observer: Box::new(StreamObserver::new(api)) };
    }
    if !(200..300).contains(&head.status) || ctx.interception.is_none() {
        return Observer::None;
    }
    let plain = if head.header_str("content-type").unwrap_or_default().starts_with("text/event-stream") {
        Observer::Stream(Box::new(StreamObserver::new(api)))
    } else {
        Observer::Json { api, body: Vec::new(), overflow: false }
    };
    match ContentCoding::of(head) {
        ContentCoding::Identity => plain,
        ContentCoding::Gzip => Observer::Gzip(Box::new(Gunzip::new(plain, MAX_DECODED))),
        // Bytes the observers cannot read would only yield a garbled record.
        ContentCoding::Other => {
            tracing::debug!("upstream body has a content coding the gateway does not decode; not observed");
            Observer::None
        }
    }
}

/// The content coding of an upstream body, as far as observation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentCoding {
    Identity,
    Gzip,
    Other,
}

impl ContentCoding {
    fn of(head: &ResponseHead) -> ContentCoding {
        let Some(value) = head.header_str("content-encoding") else {
            return ContentCoding::Identity;
        };
        // Codings are listed in the order they were applied; only a lone gzip (or identity) is decoded.
        let mut codings =
            value.split(',').map(str::trim).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        match (codings.next(), codings.next()) {
            (None, _) => ContentCoding::Identity,
            (Some(c), None) if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => {
                ContentCoding::Gzip
            }
            _ => ContentCoding::Other,
        }
    }
}

/// The client response head: the upstream's status and end-to-end headers, with the gateway's framing.
/// `event_stream` marks a body the gateway translated into SSE.
pub(crate) fn client_head(up: &ResponseHead, to_client: ToClient, keep_alive: bool, event_stream: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    http::write_status_line(&mut out, up.status);
    for h in &up.headers {
        if http::is_hop_by_hop_in(&up.headers, &h.name) {
            continue;
        }
        // RFC 9110 §8.6: no Content-Length on a 204 (a client may otherwise wait for a body that the
        // gateway, rightly, never relays).
        if (matches!(to_client, ToClient::Reframe { .. }) || up.status == 204)
            && h.name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        if event_stream && h.name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        http::write_header(&mut out, &h.name, &h.value);
    }
    if event_stream {
        http::write_header(&mut out, "Content-Type", b"text/event-stream");
        http::write_header(&mut out, "Cache-Control", b"no-cache");
    }
    match to_client {
        ToClient::Raw if matches!(up.body, ResponseBody::Chunked) => {
            http::write_header(&mut out, "Transfer-Encoding", b"chunked")
        }
        ToClient::Reframe { chunked: true } => http::write_header(&mut out, "Transfer-Encoding", b"chunked"),
        _ => {}
    }
    if !keep_alive {
        http::write_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::http::parse_response_head;

    fn response(raw: &str) -> ResponseHead {
        parse_response_head(raw.as_bytes(), false).unwrap().unwrap()
    }

    fn head_text(up: &ResponseHead, http11: bool, translated: bool, keep: bool) -> String {
        let to_client = client_framing(up, http11, translated);
        String::from_utf8(client_head(up, to_client, keep, translated)).unwrap()
    }

    #[test]
    fn raw_relays_keep_the_upstreams_length_or_chunking() {
        let up = response("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(client_framing(&up, true, false), ToClient::Raw);
        assert_eq!(
            head_text(&up, true, false, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
        );
        let chunked = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(
            head_text(&chunked, true, false, false),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn close_delimited_and_chunked_bodies_are_reframed_for_the_clients_version() {
        let close = response("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
        assert_eq!(client_framing(&close, true, false), ToClient::Reframe { chunked: true });
        assert_eq!(client_framing(&close, false, false), ToClient::Reframe { chunked: false });
        let chunked = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(client_framing(&chunked, false, false), ToClient::Reframe { chunked: false });
        assert_eq!(head_text(&chunked, false, false, false), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn a_translated_stream_is_announced_as_sse_without_the_upstreams_length_or_type() {
        let up = response(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nContent-Length: 99\r\nX-Amzn-RequestId: r1\r\n\r\n",
        );
        assert_eq!(
            head_text(&up, true, true, true),
            "HTTP/1.1 200 OK\r\nX-Amzn-RequestId: r1\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn no_content_length_on_a_204() {
        let up = response("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n");
        assert_eq!(head_text(&up, true, false, true), "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    }
}
