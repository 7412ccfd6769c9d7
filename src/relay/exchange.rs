//! The exchange phase: sends each attempt of a request upstream and fails over between pooled keys
//! before anything reached the client, while watching for a client that gives up waiting. Runs on a
//! worker.

use std::time::Instant;

use crate::providers::upstream::Outbound;
use crate::records::EndStatus;
use crate::runtime::http::client_leg::{send, UpstreamResponse};
use crate::runtime::http::server_leg::closed;
use crate::runtime::io::Conn;

use super::context::RequestCtx;
use super::credential;
use super::error::RelayError;
use super::gateway::WorkerService;
use super::request::render;

/// The upstream's answer head for `out`, after key failover; `None` when the client closed while
/// waiting (the upstream call was dropped and the interception ended as client_disconnected).
pub(crate) async fn exchange(
    svc: &WorkerService,
    client: &Conn,
    ctx: &mut RequestCtx<'_>,
    out: &mut Outbound,
) -> Result<Option<UpstreamResponse>, RelayError> {
    let timeouts = &svc.gw.timeouts;
    loop {
        let mut req = render(ctx, out)?;
        let sent = monoio::select! {
            r = send(&svc.upstreams, &mut req, &timeouts.upstream) => r,
            _ = async {
                // Quick answers pay nothing for the watch: it starts only once the wait is noticeable.
                monoio::time::sleep(timeouts.client_watch_after).await;
                closed(client).await
            } => {
                tracing::debug!(provider = %ctx.inst.name, "client closed while waiting for the upstream; dropping the upstream call");
                if let Some(i) = ctx.interception.take() {
                    i.end(EndStatus::ClientDisconnected);
                }
                return Ok(None);
            }
        };
        req.return_body(&mut out.body);
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(i) = ctx.interception.take() {
                    i.end(EndStatus::Failed);
                }
                return Err(e.into());
            }
        };
        ctx.timings.upstream_connected = Some(resp.connected_at);
        ctx.timings.upstream_first_byte = Some(resp.first_byte_at);
        let header = |n: &str| resp.head.header_str(n);
        // A refusal of this model alone (Bedrock's AccessDenied) is the client's answer; the key still
        // serves every other model, so the pool must not learn from it.
        let next = if ctx.inst.upstream.refuses_model_only(resp.head.status, &header) {
            None
        } else {
            let pool = &svc.gw.key_pools[ctx.route.instance];
            let retry_after = resp.head.header_str("retry-after");
            credential::after_answer(pool, ctx.credential, resp.head.status, retry_after, Instant::now())
        };
        let Some(next) = next else {
            return Ok(Some(resp));
        };
        tracing::info!(provider = %ctx.inst.name, status = resp.head.status, "upstream key failed; failing over to the next key");
        ctx.credential = next;
        let hint = credential::hint(&ctx.inst.upstream, &ctx.caller, next);
        if let Some(i) = ctx.interception.as_mut() {
            i.set_credential_hint(hint);
        }
    }
}
