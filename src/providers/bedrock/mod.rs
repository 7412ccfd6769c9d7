//! AWS Bedrock for anthropic instances (README "AWS Bedrock"): request rewriting, SigV4 signing, the AWS
//! event-stream decoder and its translation to Anthropic SSE, and error translation. Pure over bytes: no
//! I/O, no runtime; `providers::upstream` drives these pieces for the relay.

pub mod eventstream;
pub mod request;
pub(crate) mod sign;
pub mod to_sse;

/// The Bedrock settings of an instance, for the benches and fuzz targets that drive the rewrite.
pub use crate::config::BedrockConfig;
pub(crate) use eventstream::EventStreamError;
pub(crate) use request::{endpoint, signing_region};
pub use request::{translate_request, translate_request_with_betas};
pub(crate) use sign::{sign, SignError};
pub(crate) use to_sse::{error_to_anthropic, SseTranslator};

/// Why a client's request body cannot be translated for Bedrock (the client's fault: 400). Signing
/// failures are [`SignError`]. Messages never contain a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BedrockError {
    /// The body given to the rewrite is not the one its inspection was made from: a gateway bug, not the
    /// client's fault (the client's body was validated by the inspection).
    #[error("request body does not match its inspection")]
    NotInspected,
    /// `"model"` is present but not a string (null: the inspector refuses every other type).
    #[error("\"model\" must be a string")]
    ModelNotString,
}
