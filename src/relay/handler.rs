//! Drives requests on one client connection through their phases, in order: route, authenticate, read
//! the body, inspect it, choose the upstream request and credential, exchange (with key failover), relay
//! the response while observing it, end the record. `handle_request` reads as that list; each phase
//! lives in its own module.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use monoio::net::TcpStream;

use crate::metrics::worker::Phase;
use crate::providers::client::detect_client;
use crate::providers::errors::ErrorShape;
use crate::providers::routes::RouteKind;
use crate::providers::upstream::Outbound;
use crate::records::{EndStatus, InterceptionStart};
use crate::runtime::http::server_leg::{
    read_body, read_head, write_simple, write_simple_with, Content, NoHead, CLIENT_READ_SPARE,
};
use crate::runtime::http::{BodyKind, RequestHead};
use crate::runtime::io::Conn;
use crate::runtime::shutdown::LocalShutdown;
use crate::runtime::worker::Service;
use crate::state::breaker::Ticket;
use crate::state::readiness::NotReady;

use super::authenticate::authenticate;
use super::context::{RequestCtx, Timings};
use super::credential;
use super::error::RelayError;
use super::exchange::exchange;
use super::gateway::WorkerService;
use super::record::Interception;
use super::request::{inspect_body, outbound};
use super::response::relay_response;
use super::route::{is_preconnect, route, shape_of_partial_head};

/// The health check's answer (its length is also the answer to `HEAD /healthz`).
const HEALTHY: &[u8] = b"{\"status\":\"ok\"}";
/// The readiness check's answers.
const READY: &[u8] = b"{\"status\":\"ready\"}";
const STARTING: &[u8] = b"{\"status\":\"starting\"}";
const DRAINING: &[u8] = b"{\"status\":\"draining\"}";
/// Bodies of rejected requests up to this size are read and dropped so the connection can be kept.
const DISCARDABLE_BODY: u64 = 64 * 1024;

impl Service for WorkerService {
    async fn serve(self: Rc<Self>, conn: TcpStream, _peer: SocketAddr, shutdown: Rc<LocalShutdown>) {
        // `--max-connections`: a connection over the cap is closed before anything is read or written,
        // so the client sees the connection end (EOF or reset), never a half-served request.
        let Some(_open) = self.gw.connections.try_acquire() else {
            drop(conn);
            return;
        };
        let mut client = Conn::Plain(conn);
        serve_connection(&self, &mut client, &shutdown).await;
        client.shutdown().await;
    }

    fn abandon(&self) {
        self.inflight.abandon_all(&self.gw.sink);
    }
}

/// Serves requests on one client connection until it closes, errs, or shutdown begins.
async fn serve_connection(svc: &WorkerService, client: &mut Conn, shutdown: &Rc<LocalShutdown>) {
    let mut buf = Vec::with_capacity(CLIENT_READ_SPARE);
    loop {
        let head = match read_head(client, &mut buf, shutdown, &svc.gw.timeouts.client).await {
            Ok(h) => h,
            Err(NoHead::Closed) => return,
            Err(NoHead::Error(e)) => {
                let shape = shape_of_partial_head(&svc.gw.instances, &buf);
                answer_error(client, shape, &e.into(), false, Content::Sent).await;
                return;
            }
        };
        let keep = handle_request(svc, client, &mut buf, head, Timings::new(Instant::now())).await;
        if !keep || shutdown.is_set() {
            return;
        }
    }
}

/// One request, phase by phase. Returns whether the connection may carry another request.
async fn handle_request(
    svc: &WorkerService,
    client: &mut Conn,
    buf: &mut Vec<u8>,
    head: RequestHead,
    mut timings: Timings,
) -> bool {
    let gw = &svc.gw;
    let keep_alive = head.keep_alive;
    let content = Content::for_method(&head.method);
    if is_probe(&head, "/readyz") {
        let keep = discard_small_body(svc, client, buf, &head).await && keep_alive;
        let (status, body) = match gw.readiness.check() {
            Ok(()) => (200, READY),
            Err(NotReady::Starting) => (503, STARTING),
            Err(NotReady::Draining) => (503, DRAINING),
        };
        return write_simple(client, status, "application/json", body, keep, content).await && keep;
    }
    if is_health_check(&head) || is_preconnect(&gw.instances, gw.config.enabled, &head) {
        let keep = discard_small_body(svc, client, buf, &head).await && keep_alive;
        let body: &[u8] = if is_health_check(&head) { HEALTHY } else { b"" };
        return write_simple(client, 200, "application/json", body, keep, content).await && keep;
    }

    let route = match route(&gw.instances, gw.config.enabled, &head) {
        Ok(r) => r,
        Err(refusal) => return reject(svc, client, buf, &head, refusal.shape, refusal.error).await,
    };
    let inst = &gw.instances[route.instance];
    let caller = match authenticate(&gw.tokens, &svc.token_memo, &head) {
        Ok(c) => c,
        Err(e) => return reject(svc, client, buf, &head, inst.shape, e).await,
    };
    // Overload protection, before the body is read: a refused request never reaches the upstream and
    // starts no interception. The permit is held until the request ends.
    if let Err(retry_after) = gw.rate.check(&caller.principal.token_id, Instant::now()) {
        return reject(svc, client, buf, &head, inst.shape, RelayError::RateLimited { retry_after }).await;
    }
    let _permit = match route.kind {
        RouteKind::Intercept(_) => match gw.concurrency.try_acquire() {
            Some(p) => Some(p),
            None => return reject(svc, client, buf, &head, inst.shape, RelayError::AtCapacity).await,
        },
        RouteKind::Passthrough => None,
    };
    // Counted from here: the request is routed, authenticated and admitted, whatever happens to it next.
    let _inflight = match (svc.metrics(), route.api()) {
        (Some(m), Some(api)) => Some(m.inflight(route.instance, api)),
        (Some(m), None) => {
            m.passthrough(route.instance, &head.method, &route.rest);
            None
        }
        (None, _) => None,
    };
    let body = match read_body(client, buf, &head, gw.config.max_body_size, &gw.timeouts.client).await {
        Ok(b) => b,
        Err(e) => {
            answer_error(client, inst.shape, &e.into(), false, content).await;
            return false;
        }
    };
    timings.body_read = Some(Instant::now());
    if buf.is_empty() {
        // Nothing pipelined: give the read buffer back while the (possibly long) response streams, so an
        // open stream holds as little memory as possible. The next head read allocates anew.
        *buf = Vec::new();
    }

    let mut ctx = RequestCtx::new(head, route, inst, caller, timings);
    let keep = match proxy(svc, client, &mut ctx, body).await {
        Ok(keep) => keep && keep_alive,
        Err(e) => {
            if let Some(i) = ctx.interception.take() {
                i.end(EndStatus::Failed);
            }
            let keep = e.keeps_connection() && keep_alive;
            answer_error(client, inst.shape, &e, keep, Content::for_method(&ctx.head.method)).await && keep
        }
    };
    end_request(svc, &mut ctx);
    keep
}

/// The phases after the body was read: inspect → choose the upstream request and credential → start
/// the record → exchange → relay the response.
async fn proxy(
    svc: &WorkerService,
    client: &mut Conn,
    ctx: &mut RequestCtx<'_>,
    body: Vec<u8>,
) -> Result<bool, RelayError> {
    let body = inspect_body(ctx, body)?;
    let mut out = outbound(ctx, body)?;
    ctx.credential = credential::first(&ctx.caller, &svc.gw.key_pools[ctx.route.instance], Instant::now())?;
    start_record(svc, ctx, out.model.clone());
    // An open breaker refuses here: the interception just started ends failed, nothing goes upstream.
    let breaker = admit_to_breaker(svc, ctx, &out)?;

    let Some(upstream) = exchange(svc, client, ctx, &mut out).await? else {
        return Ok(false);
    };
    let status = upstream.head.status;
    let translator = ctx.inst.upstream.translator(&out);
    drop(out);
    if let Some(i) = ctx.interception.as_mut() {
        i.commit_start();
    }
    let keep = relay_response(svc, client, ctx, upstream, translator).await;
    // Settled when the request ends (a half-open trial holds its place until then), by the status.
    if let Some(ticket) = breaker {
        ticket.settle(Some(status), Instant::now());
    }
    Ok(keep)
}

/// The breaker's permission for an intercepted request (`None`: breaker disabled, or not intercepted).
/// The ticket is settled with the upstream's status when the response ends; dropped on any other path
/// (no upstream answer), it counts as no answer.
fn admit_to_breaker<'g>(
    svc: &'g WorkerService,
    ctx: &RequestCtx<'_>,
    out: &Outbound,
) -> Result<Option<Ticket<'g>>, RelayError> {
    let (RouteKind::Intercept(api), Some(inspection)) = (ctx.route.kind, ctx.info.as_ref()) else {
        return Ok(None);
    };
    let model = out.model.as_deref().unwrap_or(&inspection.info.model);
    svc.gw
        .breakers
        .admit(&ctx.inst.name, api.as_str(), model, Instant::now())
        .map_err(|retry_after| RelayError::BreakerOpen { retry_after })
}

/// Opens the interception of an inspected request (when recording is on). `model` replaces the
/// requested model when the upstream names it differently.
fn start_record(svc: &WorkerService, ctx: &mut RequestCtx<'_>, model: Option<String>) {
    let (Some(inspection), Some(api)) = (ctx.info.as_mut().filter(|_| svc.gw.recording), ctx.route.api()) else {
        return;
    };
    let head = &ctx.head;
    let ua = head.header_str("user-agent").map(str::to_string);
    let header = |n: &str| head.header_str(n).map(str::to_string);
    let client_info = detect_client(ua.as_deref(), &header, inspection.metadata_user_id.as_deref());
    let start = InterceptionStart {
        interception_id: crate::sink::new_interception_id(),
        initiator_id: ctx.caller.principal.user.to_string(),
        provider: ctx.inst.kind.as_str(),
        provider_name: ctx.inst.name.clone(),
        model: model.unwrap_or_else(|| inspection.info.model.clone()),
        client: client_info.name.to_string(),
        client_session_id: client_info.session_id,
        user_agent: ua,
        correlating_tool_call_id: inspection.tool_result_ids.last().cloned(),
        credential_kind: credential::kind(ctx.credential),
        credential_hint: credential::hint(&ctx.inst.upstream, &ctx.caller, ctx.credential),
        started_at: SystemTime::now(),
        gateway_id: svc.gw.config.gateway_id.clone(),
        api,
    };
    let prompt = inspection.info.prompt.take();
    ctx.interception = Some(Interception::start(&svc.gw.sink, &svc.inflight, start, prompt));
}

/// The last phase: the request's timings are final (the interception, if any, has ended); the gateway's
/// own share of them goes to the metrics.
fn end_request(svc: &WorkerService, ctx: &mut RequestCtx<'_>) {
    let t = &mut ctx.timings;
    t.end = Some(Instant::now());
    if let Some(m) = svc.metrics() {
        let between = |from: Option<Instant>, to: Option<Instant>| Some(to?.saturating_duration_since(from?));
        if let Some(d) = between(Some(t.head_read), t.body_read) {
            m.overhead(Phase::RequestRead, d);
        }
        if let Some(d) = between(t.body_read, t.upstream_connected) {
            m.overhead(Phase::UpstreamConnect, d);
        }
        if let Some(d) = between(t.upstream_first_byte, t.client_first_byte) {
            m.overhead(Phase::ResponseRelay, d);
        }
        if let Some(d) = between(t.upstream_connected, t.upstream_first_byte) {
            m.upstream_ttfb(ctx.route.instance, d);
        }
    }
    tracing::trace!(
        provider = %ctx.inst.name,
        body_read = ?t.since_head(t.body_read),
        upstream_connected = ?t.since_head(t.upstream_connected),
        upstream_first_byte = ?t.since_head(t.upstream_first_byte),
        client_first_byte = ?t.since_head(t.client_first_byte),
        total = ?t.since_head(t.end),
        "request timings"
    );
}

fn is_health_check(head: &RequestHead) -> bool {
    is_probe(head, "/healthz")
}

/// `GET` or `HEAD` on `path` (query ignored): the liveness and readiness probes.
fn is_probe(head: &RequestHead, path: &str) -> bool {
    head.target.split('?').next() == Some(path) && (head.method == "GET" || head.method == "HEAD")
}

/// Answers an error raised before the body was read; keeps the connection only if the body was small
/// enough to read and drop.
async fn reject(
    svc: &WorkerService,
    client: &mut Conn,
    buf: &mut Vec<u8>,
    head: &RequestHead,
    shape: ErrorShape,
    e: RelayError,
) -> bool {
    let keep = head.keep_alive && e.keeps_connection() && discard_small_body(svc, client, buf, head).await;
    answer_error(client, shape, &e, keep, Content::for_method(&head.method)).await && keep
}

async fn discard_small_body(svc: &WorkerService, client: &mut Conn, buf: &mut Vec<u8>, head: &RequestHead) -> bool {
    match head.body {
        BodyKind::Empty => true,
        BodyKind::Length(n) if n <= DISCARDABLE_BODY => {
            read_body(client, buf, head, DISCARDABLE_BODY as usize, &svc.gw.timeouts.client).await.is_ok()
        }
        _ => false,
    }
}

async fn answer_error(client: &mut Conn, shape: ErrorShape, e: &RelayError, keep: bool, content: Content) -> bool {
    if e.status() >= 500 {
        tracing::warn!(status = e.status(), side = ?e.side(), error = %e, "request failed");
    } else {
        tracing::debug!(status = e.status(), error = %e, "request rejected");
    }
    let body = e.body(shape);
    match e.retry_after_secs() {
        Some(secs) => {
            let secs = secs.to_string();
            write_simple_with(client, e.status(), &[("Retry-After", &secs)], &body, keep, content).await
        }
        None => write_simple(client, e.status(), "application/json", &body, keep, content).await,
    }
}
