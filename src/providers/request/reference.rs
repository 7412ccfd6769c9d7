//! The inspector as it was before the scanner, over a full DOM of the body: the one copy of the old DOM
//! inspector, the test-only reference the scanning inspector is checked against (`equivalence`); must
//! not be used outside tests.
//!
//! The old code read simd-json's `BorrowedValue`, whose lookups return the first of duplicate keys (for
//! objects of up to 32 members; beyond, whichever the hash table finds), whereas the provider's parser
//! and the edits take the last. This is the same code over a `serde_json::Value` built by simd-json's own
//! parser (same accepted inputs, same string and number decoding) whose maps keep the last duplicate:
//! the behaviour the scanner has. The prompt follows the current rule (the last text part of the last
//! user message), not the old one (every text part joined).

use super::InspectError;
use crate::records::{Api, RequestInfo};

/// The old inspector, with duplicate keys resolved to the last occurrence.
pub fn inspect(api: Api, body: &[u8]) -> Result<RequestInfo, InspectError> {
    let mut copy = body.to_vec();
    let v: serde_json::Value = simd_json::serde::from_slice(&mut copy).map_err(|_| InspectError::InvalidJson)?;
    if !v.is_object() {
        return Err(InspectError::NotAnObject);
    }
    let model = match v.get("model") {
        None => String::new(),
        Some(m) if m.is_null() => String::new(),
        Some(m) => m.as_str().ok_or(InspectError::WrongType("model"))?.to_owned(),
    };
    let bool_field = |key: &'static str| match v.get(key) {
        None => Ok(false),
        Some(b) if b.is_null() => Ok(false),
        Some(b) => b.as_bool().ok_or(InspectError::WrongType(key)),
    };
    let stream = bool_field("stream")?;
    let background = api == Api::Responses && bool_field("background")?;
    let include_usage = api == Api::ChatCompletions
        && v.get("stream_options").and_then(|o| o.get("include_usage")).and_then(|b| b.as_bool()).unwrap_or(false);
    let prompt = match api {
        Api::ChatCompletions | Api::Messages => v.get("messages").and_then(last_user_message),
        Api::Responses => match v.get("input") {
            Some(serde_json::Value::String(s)) => Some(s.to_string()),
            Some(items) => last_user_message(items),
            None => None,
        },
    };
    Ok(RequestInfo { model, stream, prompt, background, include_usage })
}

fn last_user_message(list: &serde_json::Value) -> Option<String> {
    let last = list.as_array()?.last()?;
    if let Some(t) = last.get("type").and_then(|t| t.as_str()) {
        if t != "message" {
            return None;
        }
    }
    if last.get("role").and_then(|r| r.as_str()) != Some("user") {
        return None;
    }
    let content = last.get("content")?;
    if let Some(s) = content.as_str() {
        return Some(s.to_owned());
    }
    // The last text part is the prompt (what the person typed; earlier parts are the agent's context).
    content
        .as_array()?
        .iter()
        .rev()
        .filter(|p| matches!(p.get("type").and_then(|t| t.as_str()), Some("text" | "input_text")))
        .find_map(|p| p.get("text").and_then(|t| t.as_str()))
        .map(str::to_owned)
}
