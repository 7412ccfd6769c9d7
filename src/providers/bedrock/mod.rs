//! AWS Bedrock for anthropic instances (README "AWS Bedrock"): request rewriting, SigV4 signing, the AWS
//! event-stream decoder and its translation to Anthropic SSE, and error translation. Pure over bytes: no
//! I/O, no runtime; `providers::upstream` drives these pieces for the relay.

pub mod eventstream;
pub mod request;
pub mod sign;
pub mod to_sse;

pub use eventstream::{encode_message, EventStreamDecoder, EventStreamError, HeaderValue, Message};
pub use request::{
    endpoint, signing_region, translate_request, translate_request_with_betas, BedrockRequest, DEFAULT_REGION,
};
pub use sign::{credentials_from_env, sign, SignError};
pub use to_sse::{error_to_anthropic, SseTranslator};

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
