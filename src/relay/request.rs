//! The request-side phases: inspecting the body (and the one edit it may need), turning it into the
//! upstream's request, and rendering each attempt's bytes with the headers the upstream may see. Pure:
//! no I/O.

use std::time::SystemTime;

use crate::providers::request::{inspect, set_include_usage};
use crate::providers::upstream::{Credential, Outbound, Upstream, UpstreamError};
use crate::records::Api;
use crate::runtime::http::client_leg::{render_head, UpstreamRequest};
use crate::runtime::http::{is_connection_nominated, is_hop_by_hop, Header};

use super::context::RequestCtx;
use super::error::RelayError;

/// Inspects the body of an intercepted route into `ctx.info` and returns the body to send: chat
/// completions streams gain `stream_options.include_usage` so their usage can be recorded.
pub(crate) fn inspect_body(ctx: &mut RequestCtx<'_>, mut body: Vec<u8>) -> Result<Vec<u8>, RelayError> {
    let Some(api) = ctx.route.api() else {
        return Ok(body);
    };
    let inspection = inspect(api, &body)?;
    let info = &inspection.info;
    if api == Api::Responses && info.background {
        return Err(RelayError::BackgroundUnsupported);
    }
    // The edit is made on the inspection's spans, so the layout describes the body before it; only chat
    // bodies are edited and only Messages bodies are rewritten again (by an upstream that translates them).
    if api == Api::ChatCompletions && info.stream && !info.include_usage {
        set_include_usage(&inspection, &mut body);
    }
    ctx.info = Some(inspection);
    Ok(body)
}

/// The request as the instance's upstream receives it.
pub(crate) fn outbound(ctx: &RequestCtx<'_>, body: Vec<u8>) -> Result<Outbound, RelayError> {
    let betas: Vec<&str> =
        ctx.head.headers_named("anthropic-beta").filter_map(|v| std::str::from_utf8(v).ok()).collect();
    ctx.inst.upstream.prepare(ctx.route.api(), &ctx.route.rest, body, ctx.info.as_ref(), &betas).map_err(|e| match e {
        UpstreamError::RouteUnsupported => {
            RelayError::NotFound { method: ctx.head.method.clone(), path: ctx.route.rest.clone() }
        }
        e => RelayError::Prepare(e),
    })
}

/// True for client headers that no upstream receives: hop-by-hop and connection-nominated ones, the
/// ones the gateway writes itself (host, framing), `accept-encoding` (the relay observes bodies in
/// clear), and the gateway's own BYOK token.
fn never_forwarded(name: &str) -> bool {
    is_hop_by_hop(name)
        || name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("accept-encoding")
        || name.eq_ignore_ascii_case("expect")
        || name.eq_ignore_ascii_case("x-coder-ai-governance-token")
}

/// The client headers `upstream` receives for a request carrying `credential`.
pub(crate) fn forwarded<'h>(
    upstream: &'h Upstream,
    headers: &'h [Header],
    credential: Credential,
) -> impl Iterator<Item = &'h Header> + 'h {
    let byok = credential == Credential::Byok;
    headers.iter().filter(move |h| {
        !never_forwarded(&h.name) && !upstream.drops_header(&h.name, byok) && !is_connection_nominated(headers, &h.name)
    })
}

/// The upstream request of one attempt, with the current credential. A large body moves into the
/// request rather than being copied behind the head; the exchange returns it to `out` after the attempt
/// ([`UpstreamRequest::return_body`]) for the next one.
pub(crate) fn render(ctx: &RequestCtx<'_>, out: &mut Outbound) -> Result<UpstreamRequest, RelayError> {
    let inst = ctx.inst;
    let upstream = &inst.upstream;
    let added = upstream.added_headers(out, ctx.credential, SystemTime::now())?;
    let mut headers = forwarded(upstream, &ctx.head.headers, ctx.credential);
    let method = upstream.method(&ctx.head.method);
    let head = render_head(method, &out.path, upstream.host_header(), &mut headers, &added, out.body.len());
    Ok(UpstreamRequest::new(inst.pool_slot, inst.pool_key.clone(), head, &mut out.body, ctx.head.method == "HEAD"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::testing::{ctx, head, instances};
    use crate::runtime::http::RequestHead;

    fn names(upstream: &Upstream, h: &RequestHead, c: Credential) -> Vec<String> {
        forwarded(upstream, &h.headers, c).map(|h| h.name.to_ascii_lowercase()).collect()
    }

    fn client_head() -> RequestHead {
        head(
            "POST /api/v2/aibridge/x/v1/messages",
            &[
                ("Host", "gw"),
                ("Authorization", "Bearer sk-own"),
                ("X-Api-Key", "sk-own"),
                ("X-Coder-AI-Governance-Token", "aibr_t"),
                ("Anthropic-Version", "2023-06-01"),
                ("X-Amz-Date", "20200101T000000Z"),
                ("Content-Type", "application/json"),
                ("Accept-Encoding", "gzip"),
                ("Connection", "keep-alive, x-private"),
                ("X-Private", "1"),
                ("User-Agent", "sdk"),
                ("Content-Length", "2"),
            ],
        )
    }

    #[test]
    fn direct_upstreams_get_the_client_headers_but_auth_only_for_byok() {
        let insts = instances();
        let h = client_head();
        let central = names(&insts[1].upstream, &h, Credential::None);
        assert_eq!(central, ["anthropic-version", "x-amz-date", "content-type", "user-agent"]);
        let byok = names(&insts[1].upstream, &h, Credential::Byok);
        assert_eq!(
            byok,
            ["authorization", "x-api-key", "anthropic-version", "x-amz-date", "content-type", "user-agent"]
        );
    }

    #[test]
    fn bedrock_never_gets_client_credentials_amz_headers_or_headers_it_signs_itself() {
        let insts = instances();
        let h = client_head();
        for c in [Credential::Key(0), Credential::Byok] {
            assert_eq!(names(&insts[2].upstream, &h, c), ["user-agent"], "{c:?}");
        }
    }

    #[test]
    fn a_direct_attempt_carries_its_key_in_the_providers_header() {
        let insts = instances();
        let mut c =
            ctx(&insts[0], "POST /api/v2/aibridge/openai/v1/chat/completions", &[("Authorization", "Bearer aibr_t")]);
        c.credential = Credential::Key(0);
        let mut out = outbound(&c, b"{}".to_vec()).unwrap();
        assert_eq!(out.path, "/v1/chat/completions");
        let text = String::from_utf8(render(&c, &mut out).unwrap().head).unwrap();
        assert!(text.starts_with("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"), "{text}");
        assert!(text.contains("\r\nauthorization: Bearer sk-test-key-0000001\r\n"), "{text}");
        assert!(!text.contains("aibr_t"), "the gateway token never goes upstream: {text}");
    }

    #[test]
    fn a_bedrock_attempt_is_translated_and_signed_and_needs_a_credential() {
        let insts = instances();
        let mut c = ctx(&insts[2], "POST /api/v2/aibridge/bedrock/v1/messages", &[("X-Api-Key", "aibr_t")]);
        let body = br#"{"model":"claude-haiku-4-5","max_tokens":5,"stream":true,"messages":[]}"#.to_vec();
        let body = inspect_body(&mut c, body).unwrap();
        let mut out = outbound(&c, body).unwrap();
        assert!(out.stream);
        assert_eq!(out.model.as_deref(), Some("small-model"));
        assert_eq!(out.path, "/model/small-model/invoke-with-response-stream");

        c.credential = Credential::Key(0);
        let text = String::from_utf8(render(&c, &mut out).unwrap().head).unwrap();
        assert!(text.starts_with("POST /model/small-model/invoke-with-response-stream HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\naccept: application/vnd.amazon.eventstream\r\n"), "{text}");
        assert!(text.contains("\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"), "{text}");
        assert!(!text.contains("aibr_t"), "{text}");

        c.credential = Credential::None;
        let Err(e) = render(&c, &mut out) else { panic!("rendered without a credential") };
        assert_eq!((e.status(), e.side()), (500, crate::relay::error::Side::Gateway), "{e}");
    }

    #[test]
    fn bedrock_serves_only_messages_and_refuses_a_bad_body_as_the_clients_fault() {
        let insts = instances();
        let models = ctx(&insts[2], "GET /api/v2/aibridge/bedrock/v1/models", &[]);
        assert!(matches!(outbound(&models, Vec::new()), Err(RelayError::NotFound { .. })));
        let mut c = ctx(&insts[2], "POST /api/v2/aibridge/bedrock/v1/messages", &[]);
        let e = inspect_body(&mut c, br#"{"model":5}"#.to_vec()).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        // `null` passes inspection (no model recorded) but Bedrock needs a string to pick its model.
        let body = inspect_body(&mut c, br#"{"model":null}"#.to_vec()).unwrap();
        let e = outbound(&c, body).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
    }

    #[test]
    fn inspection_refuses_bad_json_and_background_responses_and_asks_streams_for_usage() {
        let insts = instances();
        let mut c = ctx(&insts[0], "POST /api/v2/aibridge/openai/v1/chat/completions", &[]);
        assert!(matches!(inspect_body(&mut c, b"{nope".to_vec()), Err(RelayError::BadJson(_))));
        let body = inspect_body(&mut c, br#"{"model":"m","stream":true,"messages":[]}"#.to_vec()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(c.info.as_ref().map(|i| i.info.model.as_str()), Some("m"));

        let mut r = ctx(&insts[0], "POST /api/v2/aibridge/openai/v1/responses", &[]);
        let e = inspect_body(&mut r, br#"{"model":"m","background":true,"input":"hi"}"#.to_vec()).unwrap_err();
        assert!(matches!(e, RelayError::BackgroundUnsupported));

        let mut passthrough = ctx(&insts[0], "GET /api/v2/aibridge/openai/v1/models", &[]);
        assert_eq!(inspect_body(&mut passthrough, b"not json".to_vec()).unwrap(), b"not json");
        assert!(passthrough.info.is_none());
    }
}
