//! Request inspection and the surgical request edits, over one validating pass of the body: `layout`
//! validates it and notes where its top-level members are (keys compared decoded), `inspect` decodes
//! what the records need (model, stream flag, prompt, `background`, `include_usage`, Anthropic
//! `metadata.user_id`) and the last turn's tool-result ids, and the edits (`include_usage` here, the Bedrock rewrite in `bedrock::request`) work
//! on the layout, copying every byte they do not change. Pure over bytes: no I/O; builds no DOM.

mod include_usage;
mod layout;
mod turn;

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod reference;
#[cfg(test)]
pub(crate) mod strategies;

use std::ops::Range;

pub use include_usage::{set_include_usage, with_include_usage};
pub use layout::{Field, Layout, Member, StreamOptions};

use crate::records::{Api, RequestInfo};
use crate::sse::json_scan as scan;
use layout::{lay_out, Pass};
use scan::Invalid;

/// Why a request body could not be inspected (the relay answers 400 in the provider's error shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The body is not valid JSON.
    #[error("request body is not valid JSON")]
    InvalidJson,
    /// The body is JSON but not an object.
    #[error("request body is not a JSON object")]
    NotAnObject,
    /// Arrays or objects nest deeper than the gateway's JSON readers (and the providers') accept.
    #[error("request body nests deeper than {} levels", crate::sse::MAX_JSON_DEPTH)]
    TooDeep,
    /// A field the gateway reads appears twice in one object. JSON parsers disagree on which copy wins,
    /// so the gateway could record and edit a different request than the one the provider runs (e.g.
    /// `"stream":false,"stream":true`): such a request is refused rather than guessed at.
    #[error("request field `{0}` appears more than once")]
    DuplicateField(&'static str),
    /// A known field has the wrong JSON type.
    #[error("request field `{0}` has the wrong type")]
    WrongType(&'static str),
}

impl From<Invalid> for InspectError {
    fn from(_: Invalid) -> Self {
        InspectError::InvalidJson
    }
}

/// Everything the gateway learns from an intercepted request body in its one pass: what the records
/// need, the tool-result ids of the last turn, and where the members are for the edits
/// ([`with_include_usage`], the Bedrock rewrite), which take it with the same body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Model, stream flag, prompt, `background`, `include_usage`.
    pub info: RequestInfo,
    /// The ids of the tool results the last turn answers, in body order (see `turn::last_turn`);
    /// the coming sessions feature links a request to the tool calls it answers by them.
    pub tool_result_ids: Vec<String>,
    /// Anthropic Messages `metadata.user_id`, when a string of at most `MAX_USER_ID_LEN` bytes: Claude
    /// Code names its session in it when it sends no session header (see `client::detect_client`).
    pub metadata_user_id: Option<String>,
    /// Where the top-level members are.
    pub layout: Layout,
}

/// Longest `metadata.user_id` read, in body bytes. Claude Code's is under 200 bytes; the value is
/// untrusted, and a session id drawn from a longer one would be dropped as too long anyway.
const MAX_USER_ID_LEN: usize = 1024;

/// Reads what the gateway needs from an intercepted request body of `api`.
///
/// The whole body is validated (the same inputs are rejected as by simd-json, see `scan`), but only the
/// top level is looked at: every other value is skipped, and only the last elements of `messages`/`input`
/// are read. Requests that providers' parsers could read differently from the gateway are refused: a
/// field the gateway reads given twice ([`InspectError::DuplicateField`]) and nesting deeper than
/// `MAX_JSON_DEPTH` ([`InspectError::TooDeep`]). Keys are compared decoded: `"stre\u0061m"` is `stream`.
pub fn inspect(api: Api, body: &[u8]) -> Result<Inspection, InspectError> {
    match scan_request(api, body, true) {
        // Only on this error path is the body walked again, to say why it was refused.
        Err(InspectError::InvalidJson) if !crate::sse::nesting_within(body, crate::sse::MAX_JSON_DEPTH) => {
            Err(InspectError::TooDeep)
        }
        other => other,
    }
}

/// The lenient scan, for the equivalence tests against the reference implementation.
#[cfg(test)]
fn inspect_lenient(api: Api, body: &[u8]) -> Result<RequestInfo, InspectError> {
    scan_request(api, body, false).map(|i| i.info)
}

/// The scan behind [`inspect`]. With `strict` off, duplicate keys resolve to the last occurrence and depth
/// is not limited (what the reference DOM implementation does, for the equivalence tests).
fn scan_request(api: Api, body: &[u8], strict: bool) -> Result<Inspection, InspectError> {
    let b = body;
    let Pass { layout, prompt, user_id, duplicate } = lay_out(api, b)?;
    if let Some(field) = duplicate.filter(|_| strict) {
        return Err(InspectError::DuplicateField(field.name()));
    }
    let value = |f: Field| layout.last(f).map(|m| m.value.clone());
    let model = match value(Field::Model) {
        None => String::new(),
        Some(r) if &b[r.clone()] == b"null" => String::new(),
        Some(r) if b[r.start] == b'"' => scan::decode_string(b, r)?,
        Some(_) => return Err(InspectError::WrongType("model")),
    };
    let stream = bool_field(b, value(Field::Stream), "stream")?;
    let background = api == Api::Responses && bool_field(b, value(Field::Background), "background")?;
    let include_usage = api == Api::ChatCompletions
        && match layout.stream_options() {
            Some(StreamOptions::Object { include_usage, repeated, .. }) => {
                if strict && *repeated {
                    return Err(InspectError::DuplicateField("include_usage"));
                }
                include_usage.as_ref().is_some_and(|v| &b[v.clone()] == b"true")
            }
            _ => false,
        };
    let (prompt_text, tool_result_ids) = turn::last_turn(api, b, prompt.as_ref())?;
    let metadata_user_id = match user_id {
        Some(r) if b[r.start] == b'"' && r.len() <= MAX_USER_ID_LEN => Some(scan::decode_string(b, r)?),
        _ => None,
    };
    Ok(Inspection {
        info: RequestInfo { model, stream, prompt: prompt_text, background, include_usage },
        tool_result_ids,
        metadata_user_id,
        layout,
    })
}

/// A boolean field: absent or null → false; any other non-boolean is a client error.
fn bool_field(b: &[u8], v: Option<Range<usize>>, key: &'static str) -> Result<bool, InspectError> {
    match v.map(|r| &b[r]) {
        None | Some(b"null") | Some(b"false") => Ok(false),
        Some(b"true") => Ok(true),
        Some(_) => Err(InspectError::WrongType(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(api: Api, body: &[u8]) -> Result<RequestInfo, InspectError> {
        inspect(api, body).map(|i| i.info)
    }

    #[test]
    fn inspect_chat_messages_and_responses() {
        let chat = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}"#;
        let i = info(Api::ChatCompletions, chat).unwrap();
        assert_eq!(
            i,
            RequestInfo {
                model: "gpt-4o".into(),
                stream: true,
                // The last text part: earlier ones are context the client put before the typed text.
                prompt: Some("b".into()),
                background: false,
                include_usage: true
            }
        );
        let msgs =
            br#"{"model":"claude","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#;
        assert_eq!(info(Api::Messages, msgs).unwrap().prompt, None);
        let resp = br#"{"model":"gpt-5","input":"hello","background":true}"#;
        let i = info(Api::Responses, resp).unwrap();
        assert_eq!((i.prompt.as_deref(), i.background, i.stream), (Some("hello"), true, false));
        let items = br#"{"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]}]}"#;
        assert_eq!(info(Api::Responses, items).unwrap().prompt.as_deref(), Some("q"));
        let tool_out = br#"{"model":"gpt-5","input":[{"role":"user","content":"q"},{"type":"function_call_output","call_id":"c","output":"r"}]}"#;
        assert_eq!(info(Api::Responses, tool_out).unwrap().prompt, None);
    }

    /// Escaped keys are the keys they decode to: the provider's parser reads `"stre\u0061m":true` as
    /// `stream: true`, so the gateway must too.
    #[test]
    fn escaped_keys_are_read_decoded() {
        let body = br#"{"mod\u0065l":"m\u00e9","stre\u0061m":true,"stream_opti\u006fns":{"include\u005fusage":true},"m\u0065ssages":[{"role":"user","content":"q"}]}"#;
        let i = info(Api::ChatCompletions, body).unwrap();
        assert_eq!(
            (i.model.as_str(), i.stream, i.include_usage, i.prompt.as_deref()),
            ("m\u{e9}", true, true, Some("q"))
        );
        // And their duplicates are duplicates.
        let dup = br#"{"stream":false,"stre\u0061m":true}"#;
        assert_eq!(info(Api::ChatCompletions, dup), Err(InspectError::DuplicateField("stream")));
        let dup = br#"{"model":"a","\u006dodel":"b"}"#;
        assert_eq!(info(Api::Messages, dup), Err(InspectError::DuplicateField("model")));
        let dup = br#"{"stream_options":{"include_usage":false,"include_usag\u0065":true}}"#;
        assert_eq!(info(Api::ChatCompletions, dup), Err(InspectError::DuplicateField("include_usage")));
        assert_eq!(info(Api::Messages, br#"{"stre\u0061m":"yes"}"#), Err(InspectError::WrongType("stream")));
    }

    /// Claude Code's `metadata.user_id` comes out of the same pass (decoded), for the session lookup.
    #[test]
    fn metadata_user_id_of_messages_requests() {
        let user_id = |api, body: &str| inspect(api, body.as_bytes()).unwrap().metadata_user_id;
        let cc =
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/requests/claude_code_first_turn.json"));
        let id = user_id(Api::Messages, cc).unwrap();
        assert!(id.starts_with(r#"{"device_id":"#) && id.contains(r#""session_id":"0199e3a4-"#), "{id}");
        assert_eq!(user_id(Api::Messages, r#"{"metadata":{"user_id":"a\u005fb"}}"#).as_deref(), Some("a_b"));
        // The last `metadata`, and its last `user_id`, as the provider's parser reads them.
        let dup = r#"{"metadata":{"user_id":"one"},"metadata":{"user_id":"two","user_\u0069d":"three"}}"#;
        assert_eq!(user_id(Api::Messages, dup).as_deref(), Some("three"));
        for body in [
            r#"{"metadata":{"user_id":5}}"#.to_owned(),
            r#"{"metadata":"user_id"}"#.to_owned(),
            r#"{"metadata":{"x":{"user_id":"nested"}}}"#.to_owned(),
            r#"{"user_id":"top"}"#.to_owned(),
            format!(r#"{{"metadata":{{"user_id":"{}"}}}}"#, "u".repeat(MAX_USER_ID_LEN)),
        ] {
            assert_eq!(user_id(Api::Messages, &body), None, "{body}");
        }
        let at_limit = format!(r#"{{"metadata":{{"user_id":"{}"}}}}"#, "u".repeat(MAX_USER_ID_LEN - 2));
        assert_eq!(user_id(Api::Messages, &at_limit).map(|u| u.len()), Some(MAX_USER_ID_LEN - 2));
        // Only Anthropic Messages carry it.
        let other = r#"{"metadata":{"user_id":"u"}}"#;
        assert_eq!((user_id(Api::ChatCompletions, other), user_id(Api::Responses, other)), (None, None));
    }

    #[test]
    fn inspect_errors_are_typed() {
        assert_eq!(info(Api::Messages, b"{"), Err(InspectError::InvalidJson));
        assert_eq!(info(Api::Messages, b"[]"), Err(InspectError::NotAnObject));
        assert_eq!(info(Api::Messages, br#"{"model":1}"#), Err(InspectError::WrongType("model")));
        assert_eq!(info(Api::Messages, br#"{"model":"m","stream":"yes"}"#), Err(InspectError::WrongType("stream")));
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
                let _ = inspect(api, &body);
            }
        }
    }
}

#[cfg(test)]
mod strict_tests {
    use super::{inspect, InspectError};
    use crate::records::Api;

    #[test]
    fn ambiguous_requests_are_refused() {
        let dup = br#"{"model":"a","stream":false,"stream":true,"messages":[]}"#;
        assert_eq!(inspect(Api::ChatCompletions, dup), Err(InspectError::DuplicateField("stream")));
        let dup = br#"{"model":"a","stream":true,"stream_options":{"include_usage":true,"include_usage":false}}"#;
        assert_eq!(inspect(Api::ChatCompletions, dup), Err(InspectError::DuplicateField("include_usage")));
        let dup = br#"{"model":"a","messages":[],"messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(inspect(Api::Messages, dup), Err(InspectError::DuplicateField("messages")));
        let deep = format!(r#"{{"model":"a","messages":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert_eq!(inspect(Api::Messages, deep.as_bytes()), Err(InspectError::TooDeep));
        // Duplicates of fields the gateway does not read are the provider's business.
        let ok = br#"{"model":"a","temperature":1,"temperature":0,"messages":[]}"#;
        assert!(inspect(Api::Messages, ok).is_ok());
    }
}
