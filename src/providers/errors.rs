//! Error bodies in each provider's own JSON shape, so SDKs surface the gateway's errors the way they
//! surface the provider's. Pure: builds bytes, no I/O.

use crate::config::ProviderType;

/// The family of error JSON to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorShape {
    /// `{"error":{"message","type","param","code"}}` (OpenAI, Copilot, and routes of no provider).
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

impl ErrorShape {
    pub(crate) fn of(kind: ProviderType) -> ErrorShape {
        match kind {
            ProviderType::Anthropic => ErrorShape::Anthropic,
            ProviderType::OpenAi | ProviderType::Copilot => ErrorShape::OpenAi,
        }
    }
}

/// Renders an error body. `status` picks the provider's error type name; `message` must hold no secret.
pub(crate) fn error_body(shape: ErrorShape, status: u16, message: &str) -> Vec<u8> {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_string());
    match shape {
        ErrorShape::OpenAi => {
            let (kind, code) = openai_type(status);
            format!(r#"{{"error":{{"message":{msg},"type":"{kind}","param":null,"code":"{code}"}}}}"#).into_bytes()
        }
        ErrorShape::Anthropic => {
            format!(r#"{{"type":"error","error":{{"type":"{}","message":{msg}}}}}"#, anthropic_type(status))
                .into_bytes()
        }
    }
}

fn openai_type(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "bad_request"),
        401 => ("invalid_request_error", "invalid_api_key"),
        403 => ("invalid_request_error", "forbidden"),
        404 => ("invalid_request_error", "not_found"),
        408 => ("invalid_request_error", "request_timeout"),
        413 => ("invalid_request_error", "request_too_large"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        431 => ("invalid_request_error", "headers_too_large"),
        501 => ("invalid_request_error", "not_implemented"),
        502 | 504 => ("server_error", "upstream_error"),
        503 => ("server_error", "service_unavailable"),
        _ if status >= 500 => ("server_error", "internal_error"),
        _ => ("invalid_request_error", "bad_request"),
    }
}

/// Anthropic's error `type` for an HTTP status (also used for Bedrock errors turned into Anthropic's shape).
pub(crate) fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_as_the_providers_do() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body(ErrorShape::OpenAi, 401, "bad \"token\"")).unwrap();
        assert_eq!(v["error"]["message"], "bad \"token\"");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        let v: serde_json::Value = serde_json::from_slice(&error_body(ErrorShape::Anthropic, 401, "no")).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        let v: serde_json::Value = serde_json::from_slice(&error_body(ErrorShape::Anthropic, 413, "big")).unwrap();
        assert_eq!(v["error"]["type"], "request_too_large");
    }
}
