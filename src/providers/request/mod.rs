//! Request inspection and the one surgical request edit of DESIGN §2: reads model, stream flag, prompt,
//! `background` and `include_usage` from an intercepted body, and forces
//! `stream_options.include_usage = true` on chat completions streams without re-serialising the body.
//! Pure over bytes: no I/O. Inspection builds no DOM: one validating pass over the body (`scan`) notes
//! where the few fields it needs are, and only the last message is walked again.

mod scan;

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod reference;

use std::ops::Range;

use crate::records::{Api, RequestInfo};
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

/// Where the prompt-carrying field (`messages`, or Responses `input`) was, by the kind of its value.
#[derive(Debug, Clone)]
enum PromptField {
    /// A string (a Responses `input` shorthand).
    Text(Range<usize>),
    /// An array, with the range of its last element (None when empty).
    List(Option<Range<usize>>),
    /// Anything else: no prompt.
    Other,
}

/// The value ranges of the top-level members the inspector reads; the last duplicate wins, as in the
/// provider's parser and in `with_include_usage`.
#[derive(Debug, Default)]
struct TopLevel {
    model: Option<Range<usize>>,
    stream: Option<Range<usize>>,
    background: Option<Range<usize>>,
    stream_options: Option<Range<usize>>,
    prompt: Option<PromptField>,
}

/// Reads what the records need from an intercepted request body of `api`.
///
/// The whole body is validated (the same inputs are rejected as by simd-json, see `scan`), but only the
/// top level is looked at: every other value is skipped, and only the last element of `messages`/`input`
/// is read. Requests that providers' parsers could read differently from the gateway are refused: a field
/// the gateway reads given twice ([`InspectError::DuplicateField`]) and nesting deeper than
/// `MAX_JSON_DEPTH` ([`InspectError::TooDeep`]).
pub fn inspect(api: Api, body: &[u8]) -> Result<RequestInfo, InspectError> {
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
    scan_request(api, body, false)
}

/// The scan behind [`inspect`]. With `strict` off, duplicate keys resolve to the last occurrence and depth
/// is not limited (what the reference DOM implementation does, for the equivalence tests).
fn scan_request(api: Api, body: &[u8], strict: bool) -> Result<RequestInfo, InspectError> {
    let b = body;
    if std::str::from_utf8(b).is_err() {
        return Err(InspectError::InvalidJson);
    }
    let open = scan::skip_ws(b, 0);
    if b.get(open) != Some(&b'{') {
        let end = scan::skip_value(b, open)?;
        if scan::skip_ws(b, end) != b.len() {
            return Err(InspectError::InvalidJson);
        }
        return Err(InspectError::NotAnObject);
    }
    let prompt_key = match api {
        Api::ChatCompletions | Api::Messages => "messages",
        Api::Responses => "input",
    };
    let mut top = TopLevel::default();
    let mut duplicate: Option<&'static str> = None;
    let end = scan::members(b, open, |key, v| {
        if scan::string_is(b, &key, prompt_key) {
            if top.prompt.is_some() {
                duplicate.get_or_insert(if api == Api::Responses { "input" } else { "messages" });
            }
            return match b.get(v) {
                Some(b'[') => {
                    let (end, last) = scan::array_last(b, v)?;
                    top.prompt = Some(PromptField::List(last));
                    Ok(end)
                }
                Some(b'"') => {
                    let end = scan::skip_string(b, v)?;
                    top.prompt = Some(PromptField::Text(v..end));
                    Ok(end)
                }
                _ => {
                    top.prompt = Some(PromptField::Other);
                    scan::skip_value(b, v)
                }
            };
        }
        let end = scan::skip_value(b, v)?;
        let (slot, name) = if scan::string_is(b, &key, "model") {
            (&mut top.model, "model")
        } else if scan::string_is(b, &key, "stream") {
            (&mut top.stream, "stream")
        } else if scan::string_is(b, &key, "background") {
            (&mut top.background, "background")
        } else if scan::string_is(b, &key, "stream_options") {
            (&mut top.stream_options, "stream_options")
        } else {
            return Ok(end);
        };
        if slot.is_some() {
            duplicate.get_or_insert(name);
        }
        *slot = Some(v..end);
        Ok(end)
    })?;
    if scan::skip_ws(b, end) != b.len() {
        return Err(InspectError::InvalidJson);
    }
    if let Some(name) = duplicate.filter(|_| strict) {
        return Err(InspectError::DuplicateField(name));
    }

    let model = match top.model {
        None => String::new(),
        Some(r) if &b[r.clone()] == b"null" => String::new(),
        Some(r) if b[r.start] == b'"' => scan::decode_string(b, r)?,
        Some(_) => return Err(InspectError::WrongType("model")),
    };
    let stream = bool_field(b, top.stream, "stream")?;
    let background = api == Api::Responses && bool_field(b, top.background, "background")?;
    let include_usage = api == Api::ChatCompletions
        && match top.stream_options {
            Some(r) if b[r.start] == b'{' => {
                let list = scan::member_list(b, r.start)?;
                if strict && list.iter().filter(|m| scan::string_is(b, &m.key, "include_usage")).count() > 1 {
                    return Err(InspectError::DuplicateField("include_usage"));
                }
                scan::last_member(b, &list, "include_usage").is_some_and(|v| &b[v] == b"true")
            }
            _ => false,
        };
    let prompt = match (api, top.prompt) {
        (Api::Responses, Some(PromptField::Text(r))) => Some(scan::decode_string(b, r)?),
        (_, Some(PromptField::List(Some(last)))) => last_user_message(b, last)?,
        _ => None,
    };
    Ok(RequestInfo { model, stream, prompt, background, include_usage })
}

/// A boolean field: absent or null → false; any other non-boolean is a client error.
fn bool_field(b: &[u8], v: Option<Range<usize>>, key: &'static str) -> Result<bool, InspectError> {
    match v.map(|r| &b[r]) {
        None | Some(b"null") | Some(b"false") => Ok(false),
        Some(b"true") => Ok(true),
        Some(_) => Err(InspectError::WrongType(key)),
    }
}

/// The decoded string at `r`, or None when that value is not a string.
fn as_text(b: &[u8], r: Option<Range<usize>>) -> Result<Option<String>, Invalid> {
    match r {
        Some(r) if b[r.start] == b'"' => scan::decode_string(b, r).map(Some),
        _ => Ok(None),
    }
}

/// The text of the last message of a message (or Responses item) list, only when its role is `user`.
/// Responses items without a `type` are messages; other item types (tool outputs…) are not prompts.
fn last_user_message(b: &[u8], last: Range<usize>) -> Result<Option<String>, Invalid> {
    if b[last.start] != b'{' {
        return Ok(None);
    }
    let list: Vec<scan::Member> = scan::member_list(b, last.start)?;
    if let Some(t) = as_text(b, scan::last_member(b, &list, "type"))? {
        if t != "message" {
            return Ok(None);
        }
    }
    if as_text(b, scan::last_member(b, &list, "role"))?.as_deref() != Some("user") {
        return Ok(None);
    }
    match scan::last_member(b, &list, "content") {
        Some(c) => content_text(b, c),
        None => Ok(None),
    }
}

/// A content value as text: a string, or the text parts of a content-part array joined with `\n`
/// (`text` for chat and Anthropic, `input_text` for Responses).
fn content_text(b: &[u8], content: Range<usize>) -> Result<Option<String>, Invalid> {
    match b[content.start] {
        b'"' => return scan::decode_string(b, content).map(Some),
        b'[' => {}
        _ => return Ok(None),
    }
    let mut parts = Vec::new();
    for part in scan::element_list(b, content.start)? {
        if b[part.start] != b'{' {
            continue;
        }
        let list = scan::member_list(b, part.start)?;
        let kind = as_text(b, scan::last_member(b, &list, "type"))?;
        if !matches!(kind.as_deref(), Some("text" | "input_text")) {
            continue;
        }
        if let Some(text) = as_text(b, scan::last_member(b, &list, "text"))? {
            parts.push(text);
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("\n")) })
}

/// Returns the body with `stream_options.include_usage` set to true, touching only the bytes needed:
/// the member is inserted (or its value replaced) and everything else is kept byte for byte. None when
/// it is already true, or when the body is not a JSON object (then it is forwarded as received).
pub fn with_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        return None;
    }
    let open = skip_ws(body, 0);
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let members = object_members(body, open)?;
    let found = members[..].iter().rev().find(|m| key_is(body, m, b"stream_options"));
    let splice = |at: std::ops::Range<usize>, with: &[u8]| {
        let mut out = Vec::with_capacity(body.len() + with.len());
        out.extend_from_slice(&body[..at.start]);
        out.extend_from_slice(with);
        out.extend_from_slice(&body[at.end..]);
        out
    };
    let Some(opts) = found else {
        let with: &[u8] = if members.is_empty() {
            br#""stream_options":{"include_usage":true}"#
        } else {
            br#""stream_options":{"include_usage":true},"#
        };
        return Some(splice(open + 1..open + 1, with));
    };
    if body[opts.value.start] != b'{' {
        return Some(splice(opts.value.clone(), br#"{"include_usage":true}"#));
    }
    let inner = object_members(body, opts.value.start)?;
    match inner[..].iter().rev().find(|m| key_is(body, m, b"include_usage")) {
        Some(iu) if &body[iu.value.clone()] == b"true" => None,
        Some(iu) => Some(splice(iu.value.clone(), b"true")),
        None => {
            let at = opts.value.start + 1;
            let with: &[u8] = if inner.is_empty() { br#""include_usage":true"# } else { br#""include_usage":true,"# };
            Some(splice(at..at, with))
        }
    }
}

/// One member of a JSON object: byte ranges of its key (with quotes) and of its value.
#[derive(Debug, Clone)]
struct Member {
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// Compares a member's key with `name`, decoding escapes (`"stream\u005foptions"` is the same key).
fn key_is(body: &[u8], m: &Member, name: &[u8]) -> bool {
    let k = &body[m.key.clone()];
    if memchr::memchr(b'\\', k).is_some() {
        return serde_json::from_slice::<String>(k).is_ok_and(|s| s.as_bytes() == name);
    }
    k.len() == name.len() + 2 && &k[1..k.len() - 1] == name
}

/// The members of the object opening at `open` (the body is known to be valid JSON).
fn object_members(b: &[u8], open: usize) -> Option<Vec<Member>> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if *b.get(i)? == b'}' {
        return Some(out);
    }
    loop {
        let key_end = skip_string(b, i)?;
        let colon = skip_ws(b, key_end);
        if *b.get(colon)? != b':' {
            return None;
        }
        let vstart = skip_ws(b, colon + 1);
        let vend = skip_value(b, vstart)?;
        out.push(Member { key: i..key_end, value: vstart..vend });
        i = skip_ws(b, vend);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let mut j = i + 1;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[k] == b'\\' {
            j = k + 2;
        } else {
            return Some(k + 1);
        }
    }
}

/// End (exclusive) of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edit(s: &str) -> Option<String> {
        with_include_usage(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn include_usage_insert_replace_and_noop() {
        assert_eq!(
            edit(r#"{"model":"m", "stream":true}"#).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"m", "stream":true}"#
        );
        assert_eq!(edit("{ }").unwrap(), r#"{"stream_options":{"include_usage":true} }"#);
        assert_eq!(
            edit(r#"{"stream_options": {"include_usage" : false}, "x":"}"}"#).unwrap(),
            r#"{"stream_options": {"include_usage" : true}, "x":"}"}"#
        );
        assert_eq!(edit(r#"{"stream_options":null}"#).unwrap(), r#"{"stream_options":{"include_usage":true}}"#);
        assert_eq!(
            edit(r#"{"stream_options":{"a":[1,{"b":"\"}"}]}}"#).unwrap(),
            r#"{"stream_options":{"include_usage":true,"a":[1,{"b":"\"}"}]}}"#
        );
        assert_eq!(edit(r#"{"stream_options":{}}"#).unwrap(), r#"{"stream_options":{"include_usage":true}}"#);
        assert_eq!(edit(r#"{"stream_options":{"include_usage":true},"m":1}"#), None);
        assert_eq!(edit(r#"[1]"#), None);
        assert_eq!(edit(r#"{"a":"#), None);
    }

    #[test]
    fn inspect_chat_messages_and_responses() {
        let chat = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}"#;
        let i = inspect(Api::ChatCompletions, chat).unwrap();
        assert_eq!(
            i,
            RequestInfo {
                model: "gpt-4o".into(),
                stream: true,
                prompt: Some("a\nb".into()),
                background: false,
                include_usage: true
            }
        );
        let msgs =
            br#"{"model":"claude","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#;
        assert_eq!(inspect(Api::Messages, msgs).unwrap().prompt, None);
        let resp = br#"{"model":"gpt-5","input":"hello","background":true}"#;
        let i = inspect(Api::Responses, resp).unwrap();
        assert_eq!((i.prompt.as_deref(), i.background, i.stream), (Some("hello"), true, false));
        let items = br#"{"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]}]}"#;
        assert_eq!(inspect(Api::Responses, items).unwrap().prompt.as_deref(), Some("q"));
        let tool_out = br#"{"model":"gpt-5","input":[{"role":"user","content":"q"},{"type":"function_call_output","call_id":"c","output":"r"}]}"#;
        assert_eq!(inspect(Api::Responses, tool_out).unwrap().prompt, None);
    }

    #[test]
    fn inspect_errors_are_typed() {
        assert_eq!(inspect(Api::Messages, b"{"), Err(InspectError::InvalidJson));
        assert_eq!(inspect(Api::Messages, b"[]"), Err(InspectError::NotAnObject));
        assert_eq!(inspect(Api::Messages, br#"{"model":1}"#), Err(InspectError::WrongType("model")));
        assert_eq!(inspect(Api::Messages, br#"{"model":"m","stream":"yes"}"#), Err(InspectError::WrongType("stream")));
    }

    proptest! {
        #[test]
        fn edit_result_is_valid_json_with_include_usage_true(
            keys in proptest::collection::vec("[a-z_\"\\\\]{0,6}", 0..5),
            opts in prop_oneof![Just(None), Just(Some("null".to_owned())), Just(Some("{}".to_owned())),
                Just(Some(r#"{"include_usage":false}"#.to_owned())), Just(Some(r#"{"x":[1,"}"]}"#.to_owned()))],
        ) {
            let mut obj = serde_json::Map::new();
            for k in keys {
                obj.insert(k.clone(), serde_json::Value::String(k));
            }
            let mut body = serde_json::to_string_pretty(&obj).unwrap();
            if let Some(o) = opts {
                body.insert_str(1, &format!("\"stream_options\": {o} {}", if obj.is_empty() { "" } else { "," }));
            }
            let out = with_include_usage(body.as_bytes()).expect("edit needed");
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&v["stream_options"]["include_usage"], &serde_json::Value::Bool(true));
            prop_assert!(with_include_usage(&out).is_none());
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = with_include_usage(&body);
            let _ = inspect(Api::ChatCompletions, &body);
            let _ = inspect(Api::Responses, &body);
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
