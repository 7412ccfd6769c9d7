//! The one error type of the relay and the one place errors become HTTP answers: the legs' and the
//! providers' typed errors convert into [`RelayError`] unchanged, and only here are they given a status,
//! a side to blame and a connection verdict. Messages never contain a secret.

use std::time::Duration;

use crate::providers::errors::{error_body, ErrorShape};
use crate::providers::request::InspectError;
use crate::providers::upstream::UpstreamError;
use crate::runtime::http::client_leg::ExchangeError;
use crate::runtime::http::server_leg::ReadError;

/// Which party a failure is attributed to (for logs and the interception's end status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Upstream,
    Gateway,
}

/// Everything that can stop a request before or while it is relayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    /// The request head or body could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("AI Bridge is disabled on this server (CODER_AIBRIDGE_ENABLED=false)")]
    Disabled,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("request body is not valid JSON for this API: {0}")]
    BadJson(#[from] InspectError),
    #[error("background responses (\"background\": true) are not supported by the gateway")]
    BackgroundUnsupported,
    /// `CODER_AIBRIDGE_MAX_CONCURRENCY` intercepted requests are in flight.
    #[error("AI Bridge is currently at capacity")]
    AtCapacity,
    /// The token sent `CODER_AIBRIDGE_RATE_LIMIT` requests this second; its window ends in `retry_after`.
    #[error("rate limit exceeded for this token; retry later")]
    RateLimited { retry_after: Duration },
    /// The circuit breaker of this instance, endpoint and model is open (or its half-open trials are
    /// taken); `retry_after` is when it lets requests through again.
    #[error("circuit breaker is open")]
    BreakerOpen { retry_after: Duration },
    /// Every pooled key rests or is disabled; `retry_after` is when the first resting key wakes.
    #[error("every upstream key of this provider is resting after rate limits or auth failures; retry later")]
    KeysResting { retry_after: Duration },
    /// The request could not be turned into the upstream's (the client's body, or the gateway's
    /// credentials or signer).
    #[error("cannot prepare the upstream request: {0}")]
    Prepare(#[from] UpstreamError),
    /// No response head came back from the upstream.
    #[error(transparent)]
    Upstream(#[from] ExchangeError),
}

impl RelayError {
    /// The HTTP status the client gets.
    pub(crate) fn status(&self) -> u16 {
        match self {
            RelayError::Read(e) => match e {
                ReadError::BadHead(h) => h.status(),
                ReadError::HeadTimeout | ReadError::BodyTimeout => 408,
                ReadError::BodyTooLarge { .. } => 413,
                ReadError::ClosedInHead
                | ReadError::BadChunk(_)
                | ReadError::ClosedInBody
                | ReadError::BodyIo(_)
                | ReadError::ContinueFailed(_) => 400,
            },
            RelayError::BadJson(_) => 400,
            RelayError::NotFound { .. } | RelayError::Disabled => 404,
            RelayError::Unauthorized(_) => 401,
            RelayError::BackgroundUnsupported => 501,
            RelayError::KeysResting { .. } | RelayError::RateLimited { .. } => 429,
            RelayError::AtCapacity | RelayError::BreakerOpen { .. } => 503,
            RelayError::Prepare(e) if e.is_client_fault() => 400,
            RelayError::Prepare(_) => 500,
            RelayError::Upstream(ExchangeError::Timeout) => 504,
            RelayError::Upstream(_) => 502,
        }
    }

    /// Who is to blame.
    pub(crate) fn side(&self) -> Side {
        match self {
            RelayError::Upstream(_) | RelayError::KeysResting { .. } | RelayError::BreakerOpen { .. } => Side::Upstream,
            RelayError::AtCapacity => Side::Gateway,
            RelayError::Prepare(e) if e.is_client_fault() => Side::Client,
            RelayError::Prepare(_) => Side::Gateway,
            _ => Side::Client,
        }
    }

    /// The `Retry-After` the answer carries, in whole seconds (rounded up, at least 1): set on the
    /// gateway's own 429s and 503s so a client knows when trying again can succeed.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        let wait = match self {
            RelayError::KeysResting { retry_after }
            | RelayError::RateLimited { retry_after }
            | RelayError::BreakerOpen { retry_after } => *retry_after,
            _ => return None,
        };
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).map(|s| s.max(1))
    }

    /// Whether the client connection can carry another request after this answer. Errors raised before the
    /// body was consumed leave unread bytes on the socket, so the connection must close.
    pub(crate) fn keeps_connection(&self) -> bool {
        !matches!(self, RelayError::Read(_))
    }

    /// The response body in the provider's error shape.
    pub(crate) fn body(&self, shape: ErrorShape) -> Vec<u8> {
        error_body(shape, self.status(), &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::bedrock::BedrockError;
    use crate::runtime::http::HeadError;
    use crate::runtime::upstream::ConnectError;

    fn answer(e: &RelayError) -> (u16, Side, bool) {
        (e.status(), e.side(), e.keeps_connection())
    }

    #[test]
    fn client_read_failures_are_the_clients_and_close_the_connection() {
        assert_eq!(answer(&ReadError::HeadTimeout.into()), (408, Side::Client, false));
        assert_eq!(answer(&ReadError::BodyTimeout.into()), (408, Side::Client, false));
        assert_eq!(answer(&ReadError::BodyTooLarge { limit: 10 }.into()), (413, Side::Client, false));
        assert_eq!(answer(&ReadError::BadHead(HeadError::TooLarge).into()), (431, Side::Client, false));
        assert_eq!(answer(&ReadError::ClosedInBody.into()), (400, Side::Client, false));
        let e: RelayError = ReadError::ClosedInHead.into();
        assert_eq!(e.to_string(), "malformed request body: connection closed inside the request head");
    }

    #[test]
    fn a_translation_failure_is_the_clients_only_when_its_body_is_at_fault() {
        let bad_body: RelayError = UpstreamError::Translate(BedrockError::ModelNotString).into();
        assert_eq!(answer(&bad_body), (400, Side::Client, true));
        assert_eq!(bad_body.to_string(), "cannot prepare the upstream request: \"model\" must be a string");
        let no_credential: RelayError = UpstreamError::NoCredential.into();
        assert_eq!(answer(&no_credential), (500, Side::Gateway, true));
        assert!(no_credential.to_string().starts_with("cannot prepare the upstream request: "));
    }

    #[test]
    fn upstream_failures_are_bad_gateways_except_a_timeout() {
        assert_eq!(answer(&ExchangeError::Timeout.into()), (504, Side::Upstream, true));
        assert_eq!(answer(&ExchangeError::Closed.into()), (502, Side::Upstream, true));
        assert_eq!(answer(&ExchangeError::BadHead(HeadError::BadContentLength).into()), (502, Side::Upstream, true));
        let unresolved: RelayError = ExchangeError::Connect(ConnectError::Unresolved("api.example".into())).into();
        assert_eq!(answer(&unresolved), (502, Side::Upstream, true));
        assert_eq!(unresolved.to_string(), "upstream host api.example has no resolved address");
        let resting = RelayError::KeysResting { retry_after: Duration::from_millis(2500) };
        assert_eq!(answer(&resting), (429, Side::Upstream, true));
        assert_eq!(resting.retry_after_secs(), Some(3), "rounded up");
        assert_eq!(RelayError::KeysResting { retry_after: Duration::ZERO }.retry_after_secs(), Some(1));
        assert_eq!(RelayError::Disabled.retry_after_secs(), None);
        assert_eq!(answer(&RelayError::AtCapacity), (503, Side::Gateway, true));
        let limited = RelayError::RateLimited { retry_after: Duration::from_millis(300) };
        assert_eq!((answer(&limited), limited.retry_after_secs()), ((429, Side::Client, true), Some(1)));
        let open = RelayError::BreakerOpen { retry_after: Duration::from_millis(29_001) };
        assert_eq!((answer(&open), open.retry_after_secs()), ((503, Side::Upstream, true), Some(30)));
        assert_eq!(open.to_string(), "circuit breaker is open");
    }

    #[test]
    fn errors_render_in_the_callers_provider_shape() {
        let e = RelayError::Unauthorized("invalid, expired or revoked gateway token");
        let anthropic: serde_json::Value = serde_json::from_slice(&e.body(ErrorShape::Anthropic)).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "authentication_error");
        let openai: serde_json::Value = serde_json::from_slice(&e.body(ErrorShape::OpenAi)).unwrap();
        assert_eq!(openai["error"]["message"], "invalid, expired or revoked gateway token");
        assert_eq!(answer(&RelayError::BackgroundUnsupported), (501, Side::Client, true));
    }
}
