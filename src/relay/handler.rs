//! The request phases, in order: route, authenticate, read the body, inspect it, pick a credential, talk
//! to the upstream (with key failover), relay the response while observing it, record. Each phase is a
//! small function; `handle_request` reads as the list of them.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use crate::auth::Principal;
use crate::providers::bedrock::request::translate_request;
use crate::providers::bedrock::to_sse::{error_to_anthropic, SseTranslator};
use crate::providers::client::detect_client;
use crate::providers::errors::ErrorShape;
use crate::providers::request::{inspect, with_include_usage, Inspection};
use crate::providers::routes::{classify, split_bridge_path, upstream_path, RouteKind};
use crate::records::{Api, EndStatus, InterceptionStart, RequestInfo};
use crate::runtime::http::{self, BodyKind, RequestHead, ResponseBody};
use crate::runtime::io::Conn;
use crate::runtime::shutdown::LocalShutdown;
use crate::sse::StreamObserver;

use super::client::{closed, read_body, read_head, write_simple, NoHead, CLIENT_READ_SPARE};
use super::error::RelayError;
use super::exchange::{send, UpstreamRequest, UpstreamResponse};
use super::record::Interception;
use super::response::{client_framing, relay_body, BodyEnd, Observer, ToClient};
use super::upstream_request::{credential_hint, credential_kind, pool_size, render, Credential};
use super::{default_shape, Instance, WorkerService};

/// Bodies of rejected requests up to this size are read and dropped so the connection can be kept.
const DISCARDABLE_BODY: u64 = 64 * 1024;
/// How long the upstream may take to answer before the gateway starts watching for the client leaving.
const CLIENT_WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// Upstream error bodies that must be rewritten (Bedrock) are read up to this size.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// Serves requests on one client connection until it closes, errs, or shutdown begins.
pub(super) async fn serve_connection(svc: &WorkerService, client: &mut Conn, shutdown: &Rc<LocalShutdown>) {
    let mut buf = Vec::with_capacity(CLIENT_READ_SPARE);
    loop {
        let head = match read_head(client, &mut buf, shutdown).await {
            Ok(h) => h,
            Err(NoHead::Closed) => return,
            Err(NoHead::Error(e)) => {
                answer_error(client, shape_of_partial_head(svc, &buf), &e, false).await;
                return;
            }
        };
        let keep = handle_request(svc, client, &mut buf, head).await;
        if !keep || shutdown.is_set() {
            return;
        }
    }
}

/// The error shape for a head that could not be parsed (too large, malformed, too slow): the shape of
/// the instance its request line names, when it names one, so an Anthropic client still gets an
/// Anthropic error.
fn shape_of_partial_head(svc: &WorkerService, buf: &[u8]) -> ErrorShape {
    let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len()).min(http::MAX_HEAD_BYTES);
    let target = buf[..line_end].split(|&b| b == b' ').nth(1).and_then(|t| std::str::from_utf8(t).ok());
    target
        .and_then(split_bridge_path)
        .and_then(|(name, _)| svc.gw.instance_index(name))
        .map_or_else(default_shape, |i| svc.gw.instances[i].shape)
}

/// Who is calling and with which upstream credential policy.
struct Caller {
    principal: Principal,
    /// The client keeps its own provider credential (`X-Coder-AI-Governance-Token` auth).
    byok: bool,
}

async fn handle_request(svc: &WorkerService, client: &mut Conn, buf: &mut Vec<u8>, head: RequestHead) -> bool {
    let keep_alive = head.keep_alive;
    let target = head.target.clone();
    let path_only = target.split('?').next().unwrap_or("");

    if path_only == "/healthz" && (head.method == "GET" || head.method == "HEAD") {
        let keep = discard_small_body(client, buf, &head).await && keep_alive;
        return write_simple(client, 200, "application/json", b"{\"status\":\"ok\"}", keep).await && keep;
    }

    // Route.
    let routed = route(svc, &head, &target);
    let (inst_idx, rest, kind) = match routed {
        Ok(r) => r,
        Err((shape, e)) => return reject(client, buf, &head, shape, e).await,
    };
    let inst = &svc.gw.instances[inst_idx];

    // Authenticate.
    let caller = match authenticate(svc, &head) {
        Ok(c) => c,
        Err(e) => return reject(client, buf, &head, inst.shape, e).await,
    };

    // Read the body.
    let body = match read_body(client, buf, &head, svc.gw.config.max_body_size).await {
        Ok(b) => b,
        Err(e) => {
            answer_error(client, inst.shape, &e, false).await;
            return false;
        }
    };
    if buf.is_empty() {
        // Nothing pipelined: give the read buffer back while the (possibly long) response streams, so an
        // open stream holds as little memory as possible. The next head read allocates anew.
        *buf = Vec::new();
    }

    match proxy(svc, client, &head, inst_idx, &rest, kind, caller, body).await {
        Ok(keep) => keep && keep_alive,
        Err(e) => {
            let keep = e.keeps_connection() && keep_alive;
            answer_error(client, inst.shape, &e, keep).await && keep
        }
    }
}

/// Finds the instance and route kind; errors carry the shape to answer in.
fn route(
    svc: &WorkerService,
    head: &RequestHead,
    target: &str,
) -> Result<(usize, String, RouteKind), (ErrorShape, RelayError)> {
    let not_found = || RelayError::NotFound {
        method: head.method.clone(),
        path: target.split('?').next().unwrap_or("").to_string(),
    };
    let Some((name, rest)) = split_bridge_path(target) else {
        return Err((default_shape(), not_found()));
    };
    if !svc.gw.config.enabled {
        return Err((default_shape(), RelayError::Disabled));
    }
    let Some(idx) = svc.gw.instance_index(name) else {
        return Err((default_shape(), not_found()));
    };
    let inst = &svc.gw.instances[idx];
    let path_only = rest.split('?').next().unwrap_or("");
    match classify(inst.config.kind, &head.method, path_only) {
        Some(kind) => Ok((idx, rest.to_string(), kind)),
        None => Err((inst.shape, not_found())),
    }
}

/// Checks the gateway token: `X-Coder-AI-Governance-Token` (BYOK), else `Authorization: Bearer`, else
/// `X-Api-Key`.
fn authenticate(svc: &WorkerService, head: &RequestHead) -> Result<Caller, RelayError> {
    let (token, byok) = if let Some(t) = head.header_str("x-coder-ai-governance-token") {
        (t.trim().to_string(), true)
    } else if let Some(auth) = head.header_str("authorization") {
        let t = bearer_token(auth).unwrap_or("");
        (t.trim().to_string(), false)
    } else if let Some(k) = head.header_str("x-api-key") {
        (k.trim().to_string(), false)
    } else {
        return Err(RelayError::Unauthorized("missing gateway token: send Authorization: Bearer <token> or X-Api-Key"));
    };
    if token.is_empty() {
        return Err(RelayError::Unauthorized("missing gateway token: send Authorization: Bearer <token> or X-Api-Key"));
    }
    match svc.gw.tokens.verify_memo(&token, SystemTime::now(), &mut svc.token_memo.borrow_mut()) {
        Ok(principal) => Ok(Caller { principal, byok }),
        Err(_) => Err(RelayError::Unauthorized("invalid, expired or revoked gateway token")),
    }
}

/// The credentials of an `Authorization: Bearer …` value; the scheme name is case-insensitive (RFC 9110
/// §11.1).
pub(super) fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Answers an error raised before the body was read; keeps the connection only if the body was small
/// enough to read and drop.
async fn reject(client: &mut Conn, buf: &mut Vec<u8>, head: &RequestHead, shape: ErrorShape, e: RelayError) -> bool {
    let keep = head.keep_alive && e.keeps_connection() && discard_small_body(client, buf, head).await;
    answer_error(client, shape, &e, keep).await && keep
}

async fn discard_small_body(client: &mut Conn, buf: &mut Vec<u8>, head: &RequestHead) -> bool {
    match head.body {
        BodyKind::Empty => true,
        BodyKind::Length(n) if n <= DISCARDABLE_BODY => {
            read_body(client, buf, head, DISCARDABLE_BODY as usize).await.is_ok()
        }
        _ => false,
    }
}

async fn answer_error(client: &mut Conn, shape: ErrorShape, e: &RelayError, keep: bool) -> bool {
    if e.status() >= 500 {
        tracing::warn!(status = e.status(), side = ?e.side(), error = %e, "request failed");
    } else {
        tracing::debug!(status = e.status(), error = %e, "request rejected");
    }
    write_simple(client, e.status(), "application/json", &e.body(shape), keep).await
}

#[allow(clippy::too_many_arguments)]
async fn proxy(
    svc: &WorkerService,
    client: &mut Conn,
    head: &RequestHead,
    inst_idx: usize,
    rest: &str,
    kind: RouteKind,
    caller: Caller,
    mut body: Vec<u8>,
) -> Result<bool, RelayError> {
    let inst = &svc.gw.instances[inst_idx];
    let api = match kind {
        RouteKind::Intercept(api) => Some(api),
        RouteKind::Passthrough => None,
    };

    // Inspect and edit the request.
    let mut inspection: Option<Inspection> = None;
    if let Some(api) = api {
        let ins = inspect(api, &body).map_err(|e| RelayError::BadJson(e.to_string()))?;
        if api == Api::Responses && ins.info.background {
            return Err(RelayError::BackgroundUnsupported);
        }
        if api == Api::ChatCompletions && ins.info.stream && !ins.info.include_usage {
            if let Some(edited) = with_include_usage(&ins, &body) {
                body = edited;
            }
        }
        inspection = Some(ins);
    }

    // Where it goes.
    let (path, mut recorded_model, stream) = match (&inst.bedrock, &inst.config.bedrock, &inspection) {
        (Some(_), Some(cfg), Some(ins)) if api == Some(Api::Messages) => {
            // Messages bodies are never edited above, so the inspection's layout still fits the body.
            let br = translate_request(cfg, ins, &body).map_err(|e| RelayError::Translate(e.to_string()))?;
            body = br.body;
            (format!("{}{}", inst.target.base_path, br.path), Some(br.model_id), br.stream)
        }
        (Some(_), Some(_), _) => {
            return Err(RelayError::NotFound { method: head.method.clone(), path: rest.to_string() });
        }
        _ => (
            upstream_path(inst.config.kind, &inst.target.base_path, rest),
            None,
            inspection.as_ref().is_some_and(|i| i.info.stream),
        ),
    };
    let info: Option<RequestInfo> = inspection.map(|i| i.info);
    let bedrock_stream = inst.bedrock.is_some() && stream;

    // Pick the first credential.
    let now = Instant::now();
    let mut credential = if caller.byok {
        Credential::Byok
    } else if pool_size(inst) == 0 {
        Credential::None
    } else if pool_size(inst) == 1 {
        // A single key has nothing to fail over to: the provider's own answer (429 with its
        // Retry-After, 401) is what the client should see, every time, not a gateway-made refusal.
        Credential::Key(0)
    } else {
        match svc.key_pools[inst_idx].borrow_mut().pick(now) {
            Some(k) => Credential::Key(k),
            None => return Err(RelayError::KeysResting),
        }
    };

    // Start recording.
    let mut interception = info.filter(|_| svc.gw.recording).map(|ri| {
        let ua = head.header_str("user-agent").map(str::to_string);
        let client_info = detect_client(ua.as_deref(), &|n: &str| head.header_str(n).map(str::to_string));
        let model = recorded_model.take().unwrap_or(ri.model);
        Interception::start(
            &svc.gw.sink,
            &svc.inflight,
            InterceptionStart {
                interception_id: crate::sink::new_interception_id(),
                initiator_id: caller.principal.user.to_string(),
                provider: inst.config.kind.as_str(),
                provider_name: inst.config.name.clone(),
                model,
                client: client_info.name.to_string(),
                client_session_id: client_info.session_id,
                user_agent: ua,
                credential_kind: credential_kind(credential),
                credential_hint: credential_hint(inst, head, credential),
                started_at: SystemTime::now(),
            },
            ri.prompt,
        )
    });

    // Send, failing over between keys before anything reached the client.
    let upstream = loop {
        let mut req = UpstreamRequest {
            slot: inst.pool_slot,
            key: inst.pool_key.clone(),
            bytes: render(inst, head, &path, credential, &body, stream)?,
            is_head: head.method == "HEAD",
        };
        let sent = monoio::select! {
            r = send(&svc.upstreams, &mut req) => r,
            _ = async {
                // Quick answers pay nothing for the watch: it starts only once the wait is noticeable.
                monoio::time::sleep(CLIENT_WATCH_AFTER).await;
                closed(client).await
            } => {
                tracing::debug!(provider = %inst.config.name, "client closed while waiting for the upstream; dropping the upstream call");
                if let Some(i) = interception.take() {
                    i.end(EndStatus::ClientDisconnected);
                }
                return Ok(false);
            }
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(i) = interception.take() {
                    i.end(EndStatus::Failed);
                }
                return Err(e);
            }
        };
        if let (Credential::Key(k), true) = (credential, pool_size(inst) > 1) {
            let retry_after = resp.head.header_str("retry-after");
            let mut pool = svc.key_pools[inst_idx].borrow_mut();
            let verdict = pool.on_response(k, resp.head.status, retry_after, Instant::now());
            if verdict.fail_over() {
                if let Some(next) = pool.next_after(k, Instant::now()) {
                    tracing::info!(provider = %inst.config.name, status = resp.head.status, "upstream key failed; failing over to the next key");
                    credential = Credential::Key(next);
                    if let Some(i) = interception.as_mut() {
                        i.set_credential_hint(credential_hint(inst, head, credential));
                    }
                    continue;
                }
            }
        }
        break resp;
    };

    drop(body);
    if let Some(i) = interception.as_mut() {
        i.commit_start();
    }
    relay_response(svc, client, head, inst, api, bedrock_stream, upstream, interception).await
}

/// Relays the upstream response to the client and records how it went.
#[allow(clippy::too_many_arguments)]
async fn relay_response(
    svc: &WorkerService,
    client: &mut Conn,
    head: &RequestHead,
    inst: &Instance,
    api: Option<Api>,
    bedrock_stream: bool,
    upstream: UpstreamResponse,
    mut interception: Option<Interception>,
) -> Result<bool, RelayError> {
    let UpstreamResponse { conn: mut up, head: up_head, leftover } = upstream;
    let status = up_head.status;
    if let Some(i) = interception.as_mut() {
        i.set_upstream_status(status);
    }
    let ok = (200..300).contains(&status);
    let http11 = head.minor_version >= 1;
    let keep_client = head.keep_alive && http11;

    // Bedrock errors are rewritten into Anthropic's error shape, so they are read whole first.
    if inst.bedrock.is_some() && !ok {
        let exception = up_head.header_str("x-amzn-errortype");
        let raw = read_whole(&mut up, &up_head, leftover).await;
        let (st, body) = error_to_anthropic(status, &raw, exception);
        let sent = write_simple(client, st, "application/json", &body, keep_client).await;
        if let Some(i) = interception.take() {
            i.end(if sent { EndStatus::Completed } else { EndStatus::ClientDisconnected });
        }
        return Ok(sent && keep_client);
    }

    let content_type = up_head.header_str("content-type").unwrap_or_default();
    let mut observer = match api {
        Some(_) if !ok || (interception.is_none() && !bedrock_stream) => Observer::None,
        Some(Api::Messages) if bedrock_stream => Observer::Bedrock {
            translator: Box::new(SseTranslator::new()),
            observer: Box::new(StreamObserver::new(Api::Messages)),
        },
        Some(api) if content_type.starts_with("text/event-stream") => {
            Observer::Stream(Box::new(StreamObserver::new(api)))
        }
        Some(api) => Observer::Json { api, body: Vec::new(), overflow: false },
        None => Observer::None,
    };
    let reframe = bedrock_stream && ok;
    let to_client = client_framing(&up_head, http11, reframe);
    let keep_after = keep_client && (to_client != ToClient::Reframe { chunked: false });
    let head_bytes = client_head(&up_head, to_client, keep_after, reframe);

    let end = relay_body(&mut up, client, &up_head, head_bytes, leftover, to_client, &mut observer).await;
    match end {
        BodyEnd::Complete { reusable } if reusable => svc.upstreams.checkin(inst.pool_slot, up),
        _ => drop(up),
    }
    if let Some(mut i) = interception.take() {
        let mut status = match end {
            BodyEnd::Complete { .. } => EndStatus::Completed,
            BodyEnd::ClientGone => EndStatus::ClientDisconnected,
            BodyEnd::UpstreamFailed => EndStatus::Failed,
        };
        let streamed = matches!(observer, Observer::Stream(_) | Observer::Bedrock { .. });
        if let Some(obs) = observer.finish() {
            // A stream that carried a provider error, or ended without its terminal event, did not
            // complete even though its HTTP framing did.
            if status == EndStatus::Completed && (obs.error.is_some() || (streamed && !obs.complete)) {
                status = EndStatus::Failed;
            }
            i.observed(obs);
        }
        i.end(status);
    }
    Ok(matches!(end, BodyEnd::Complete { .. }) && keep_after)
}

/// The client response head: the upstream's status and end-to-end headers, with the gateway's framing.
fn client_head(up: &http::ResponseHead, to_client: ToClient, keep_alive: bool, event_stream: bool) -> Vec<u8> {
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

/// Reads a (small) upstream body whole, decoding its framing; used for errors that must be rewritten.
async fn read_whole(up: &mut Conn, head: &http::ResponseHead, leftover: Vec<u8>) -> Vec<u8> {
    super::response::read_body_to_vec(up, head, leftover, MAX_ERROR_BODY).await
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc "), Some("abc"));
        assert_eq!(bearer_token("bearer   abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token(""), None);
    }
}
