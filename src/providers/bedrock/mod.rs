//! AWS Bedrock for anthropic instances (README "AWS Bedrock"): request rewriting, SigV4 signing, the AWS
//! event-stream decoder and its translation to Anthropic SSE, and error translation. Pure over bytes: no
//! I/O, no runtime; `providers::upstream` drives these pieces for the relay.

pub mod eventstream;
pub(crate) mod request;
pub(crate) mod sign;
pub mod to_sse;

pub(crate) use eventstream::EventStreamError;
pub(crate) use request::{endpoint, signing_region, translate_request};
pub(crate) use sign::{sign, SignError};
pub(crate) use to_sse::{error_to_anthropic, SseTranslator};

/// Why a client's request body cannot be translated for Bedrock (the client's fault: 400). Signing
/// failures are [`SignError`]. Messages never contain a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BedrockError {
    /// The client's body is not a JSON object (Bedrock would refuse it anyway; answer 400 ourselves).
    #[error("request body is not a JSON object: {0}")]
    InvalidBody(String),
    /// `"model"` is present but not a string.
    #[error("\"model\" must be a string")]
    ModelNotString,
}
