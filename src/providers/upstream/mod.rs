//! The upstream of a provider instance as one type: where requests go, which credentials it fails over
//! between, how a client request becomes the upstream's (path, body, method, headers, signature) and how
//! its answers come back (stream translation, error rewriting). Built once per instance at start-up. Pure:
//! no I/O and no `runtime` types; the relay renders and sends what this decides.

mod bedrock;
mod direct;

use std::time::SystemTime;

use crate::config::{AwsCredential, ProviderConfig, UpstreamUrl};
use crate::providers::request::Inspection;
use crate::records::Api;

pub(crate) use bedrock::Bedrock;
pub(crate) use direct::Direct;

/// A provider instance's upstream: the provider's own API, or Anthropic through AWS Bedrock.
pub(crate) enum Upstream {
    Direct(Direct),
    Bedrock(Bedrock),
}

/// Which upstream credential one attempt of a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential {
    /// The client's own headers go upstream (BYOK).
    Byok,
    /// Credential `n` of the instance's pool (an API key, or an AWS credential pair).
    Key(usize),
    /// No credential configured and none brought.
    None,
}

/// The request as the upstream will receive it, decided once per request (every failover attempt sends
/// the same path and body; only the credential changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// Base path plus the upstream's path and query.
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
    /// The model to record when the upstream names it differently from the client (Bedrock model ids).
    pub(crate) model: Option<String>,
    /// The answer will be a stream.
    pub(crate) stream: bool,
}

/// Why a request cannot be prepared for the upstream. Each variant says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The route exists for the provider type but this upstream does not serve it (Bedrock serves only
    /// the Messages API).
    #[error("this upstream serves only the Messages API")]
    RouteUnsupported,
    /// The client's body cannot be translated (the client's fault).
    #[error(transparent)]
    Translate(#[from] crate::providers::bedrock::BedrockError),
    /// The instance has no credential to send or sign with (the gateway's configuration is at fault).
    #[error("no upstream credential is configured for this provider (Bedrock needs an AWS access key)")]
    NoCredential,
    /// Signing failed (the gateway's fault).
    #[error(transparent)]
    Sign(#[from] crate::providers::bedrock::SignError),
}

impl UpstreamError {
    /// True when the client's request is at fault (answered 4xx); false for the gateway's own failures.
    pub(crate) fn is_client_fault(&self) -> bool {
        match self {
            UpstreamError::RouteUnsupported => true,
            // A body that does not match its inspection is the gateway's own bug.
            UpstreamError::Translate(e) => !matches!(e, crate::providers::bedrock::BedrockError::NotInspected),
            _ => false,
        }
    }
}

/// Turns an upstream event stream into the SSE of the API the client speaks, chunk by chunk.
pub(crate) struct StreamTranslator {
    inner: crate::providers::bedrock::SseTranslator,
}

/// A stream the translator could not decode; it already wrote an error event for the client.
pub(crate) use crate::providers::bedrock::EventStreamError as StreamTranslateError;

impl StreamTranslator {
    /// Appends the translation of `input` (any split) to `out`.
    pub(crate) fn on_bytes(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), StreamTranslateError> {
        self.inner.on_bytes(input, out)
    }

    /// Call at the end of the upstream body: appends an error event when the stream was cut short.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        self.inner.finish(out)
    }
}

impl Upstream {
    /// The upstream of `p`. `aws_env` is the standard AWS credential, used by a Bedrock instance that
    /// configures none.
    pub(crate) fn new(p: &ProviderConfig, aws_env: Option<&AwsCredential>) -> Upstream {
        match &p.bedrock {
            Some(cfg) => Upstream::Bedrock(Bedrock::new(cfg, aws_env)),
            None => Upstream::Direct(Direct::new(p)),
        }
    }

    /// Where requests go.
    pub(crate) fn url(&self) -> &UpstreamUrl {
        match self {
            Upstream::Direct(d) => d.url(),
            Upstream::Bedrock(b) => b.url(),
        }
    }

    /// The `Host` header of every request to it.
    pub(crate) fn host_header(&self) -> &str {
        match self {
            Upstream::Direct(d) => d.host_header(),
            Upstream::Bedrock(b) => b.host_header(),
        }
    }

    /// A short name for logs.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Upstream::Direct(_) => "direct",
            Upstream::Bedrock(_) => "bedrock",
        }
    }

    /// How many credentials requests can fail over between.
    pub(crate) fn pool_size(&self) -> usize {
        match self {
            Upstream::Direct(d) => d.pool_size(),
            Upstream::Bedrock(b) => b.pool_size(),
        }
    }

    /// A masked hint of credential `k` of the pool, for records; never the secret.
    pub(crate) fn key_hint(&self, k: usize) -> Option<String> {
        match self {
            Upstream::Direct(d) => d.key_hint(k),
            Upstream::Bedrock(b) => b.key_hint(k),
        }
    }

    /// Turns the client's body (already inspected, and edited when `api` asked for it) for `rest` (path and
    /// query after the instance name) into what the upstream receives. `inspection` is what the one scan of
    /// the body found (intercepted routes only); a rewrite edits the body on its spans. `anthropic_beta` is
    /// the client's `anthropic-beta` header values, which Bedrock takes in the body instead.
    pub(crate) fn prepare(
        &self,
        api: Option<Api>,
        rest: &str,
        body: Vec<u8>,
        inspection: Option<&Inspection>,
        anthropic_beta: &[&str],
    ) -> Result<Outbound, UpstreamError> {
        match self {
            Upstream::Direct(d) => Ok(d.prepare(rest, body, inspection.is_some_and(|i| i.info.stream))),
            Upstream::Bedrock(b) => b.prepare(api, body, inspection, anthropic_beta),
        }
    }

    /// The request method the upstream gets.
    pub(crate) fn method<'a>(&self, client_method: &'a str) -> &'a str {
        match self {
            Upstream::Direct(_) => client_method,
            Upstream::Bedrock(_) => "POST",
        }
    }

    /// True for client headers this upstream must not receive, beyond the ones no upstream gets
    /// (hop-by-hop, host, framing, the gateway's token): credentials unless the caller brought its own,
    /// and whatever this upstream sets itself.
    pub(crate) fn drops_header(&self, name: &str, byok: bool) -> bool {
        let credential = name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key");
        match self {
            Upstream::Direct(_) => credential && !byok,
            Upstream::Bedrock(_) => credential || bedrock::sets_header(name),
        }
    }

    /// The headers this upstream adds for `credential`: its API key, or Bedrock's content negotiation
    /// and SigV4 signature over `out` (signed as of `now`).
    pub(crate) fn added_headers(
        &self,
        out: &Outbound,
        credential: Credential,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, UpstreamError> {
        match self {
            Upstream::Direct(d) => d.added_headers(credential),
            Upstream::Bedrock(b) => b.added_headers(out, credential, now),
        }
    }

    /// The translator the answer to `out` needs before the client can read it, if any (Bedrock's event
    /// stream becomes Anthropic SSE).
    pub(crate) fn translator(&self, out: &Outbound) -> Option<StreamTranslator> {
        match self {
            Upstream::Direct(_) => None,
            Upstream::Bedrock(_) => out.stream.then(|| StreamTranslator { inner: Default::default() }),
        }
    }

    /// True when this upstream's error answers (non-2xx) are rewritten before the client sees them, so the
    /// relay reads them whole first.
    pub(crate) fn rewrites_errors(&self) -> bool {
        matches!(self, Upstream::Bedrock(_))
    }

    /// True when the upstream's error answer refuses the request's model but not the credential (Bedrock's
    /// 403 `AccessDeniedException`): the answer is relayed and the key stays in use for other models.
    /// `header` looks up the upstream's response headers.
    pub(crate) fn refuses_model_only<'h>(&self, status: u16, header: &dyn Fn(&str) -> Option<&'h str>) -> bool {
        match self {
            Upstream::Direct(_) => false,
            Upstream::Bedrock(_) => bedrock::refuses_model_only(status, header),
        }
    }

    /// The client's answer for an upstream error answer: status and body in the client API's shape.
    /// `header` looks up the upstream's response headers.
    pub(crate) fn rewrite_error<'h>(
        &self,
        status: u16,
        header: &dyn Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        match self {
            Upstream::Direct(_) => (status, body.to_vec()),
            Upstream::Bedrock(_) => bedrock::rewrite_error(status, header, body),
        }
    }
}

#[cfg(test)]
mod tests;
