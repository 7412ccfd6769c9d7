//! The one error type of the relay and the one place it becomes an HTTP answer. Every error knows which
//! side failed; messages never contain a secret.

use crate::providers::errors::{error_body, ErrorShape};
use crate::runtime::http::HeadError;
use crate::runtime::upstream::ConnectError;

/// Which party a failure is attributed to (for logs and the interception's end status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Gateway,
}

/// Everything that can stop a request before or while it is relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("malformed request head: {0}")]
    BadHead(#[from] HeadError),
    #[error("request head not received in time")]
    HeadTimeout,
    #[error("request body larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed request body: {0}")]
    BadBody(String),
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("AI Bridge is disabled on this server (CODER_AIBRIDGE_ENABLED=false)")]
    Disabled,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("request body is not valid JSON for this API: {0}")]
    BadJson(String),
    #[error("background responses (\"background\": true) are not supported by the gateway")]
    BackgroundUnsupported,
    #[error("every upstream key of this provider is resting after rate limits or auth failures; retry later")]
    KeysResting,
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("upstream sent an invalid response: {0}")]
    UpstreamProtocol(String),
    #[error("upstream closed the connection before answering")]
    UpstreamClosed,
    #[error("cannot prepare the upstream request: {0}")]
    Translate(String),
}

impl RelayError {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            RelayError::BadHead(e) => e.status(),
            RelayError::HeadTimeout | RelayError::BodyTimeout => 408,
            RelayError::BodyTooLarge { .. } => 413,
            RelayError::BadBody(_) | RelayError::BadJson(_) => 400,
            RelayError::NotFound { .. } | RelayError::Disabled => 404,
            RelayError::Unauthorized(_) => 401,
            RelayError::BackgroundUnsupported => 501,
            RelayError::Connect(_) | RelayError::UpstreamProtocol(_) | RelayError::UpstreamClosed => 502,
            RelayError::UpstreamTimeout => 504,
            RelayError::KeysResting => 429,
            RelayError::Translate(_) => 400,
        }
    }

    /// Who is to blame.
    pub fn side(&self) -> Side {
        match self {
            RelayError::Connect(_)
            | RelayError::KeysResting
            | RelayError::UpstreamTimeout
            | RelayError::UpstreamProtocol(_)
            | RelayError::UpstreamClosed => Side::Upstream,
            RelayError::Translate(_) => Side::Gateway,
            _ => Side::Client,
        }
    }

    /// Whether the client connection can carry another request after this answer. Errors raised before the
    /// body was consumed leave unread bytes on the socket, so the connection must close.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            RelayError::NotFound { .. }
                | RelayError::Disabled
                | RelayError::Unauthorized(_)
                | RelayError::BadJson(_)
                | RelayError::BackgroundUnsupported
                | RelayError::Connect(_)
                | RelayError::KeysResting
                | RelayError::UpstreamTimeout
                | RelayError::UpstreamProtocol(_)
                | RelayError::UpstreamClosed
                | RelayError::Translate(_)
        )
    }

    /// The response body in the provider's error shape.
    pub fn body(&self, shape: ErrorShape) -> Vec<u8> {
        error_body(shape, self.status(), &self.to_string())
    }
}
