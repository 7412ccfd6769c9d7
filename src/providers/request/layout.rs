//! The one pass over a request body that every reader of it builds on: validates the whole body with the
//! strict scanner (`scan`) and notes where each top-level member is and which of them the gateway reads,
//! keys compared decoded (so `"stre\u0061m"` is `stream` for the inspector, the include_usage edit and
//! the Bedrock rewrite alike). Pure over bytes: no I/O; decodes no value (that is `inspect`'s job).

use std::ops::Range;

use super::scan::{self, Invalid, Tail};
use super::InspectError;
use crate::records::Api;

/// The top-level members the gateway reads or edits, recognised by their decoded key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Model,
    Stream,
    Background,
    StreamOptions,
    Messages,
    Input,
    Metadata,
    ServiceTier,
    Container,
    AnthropicVersion,
    AnthropicBeta,
}

/// Longest [`Field`] name, in bytes.
const LONGEST_NAME: usize = "anthropic_version".len();
/// Bytes one character of a key can take when written as an escape (`\u0061`): a key longer than this
/// many times [`LONGEST_NAME`] cannot decode to a field name, so it is not decoded.
const MAX_ESCAPE_LEN: usize = 6;

impl Field {
    /// Every field, for tests that go through all of them.
    #[cfg(test)]
    pub const ALL: [Field; 11] = [
        Field::Model,
        Field::Stream,
        Field::Background,
        Field::StreamOptions,
        Field::Messages,
        Field::Input,
        Field::Metadata,
        Field::ServiceTier,
        Field::Container,
        Field::AnthropicVersion,
        Field::AnthropicBeta,
    ];

    /// The member's key as the provider's parser sees it (decoded).
    pub fn name(self) -> &'static str {
        match self {
            Field::Model => "model",
            Field::Stream => "stream",
            Field::Background => "background",
            Field::StreamOptions => "stream_options",
            Field::Messages => "messages",
            Field::Input => "input",
            Field::Metadata => "metadata",
            Field::ServiceTier => "service_tier",
            Field::Container => "container",
            Field::AnthropicVersion => "anthropic_version",
            Field::AnthropicBeta => "anthropic_beta",
        }
    }

    fn named(decoded: &[u8]) -> Option<Field> {
        Some(match decoded {
            b"model" => Field::Model,
            b"stream" => Field::Stream,
            b"background" => Field::Background,
            b"stream_options" => Field::StreamOptions,
            b"messages" => Field::Messages,
            b"input" => Field::Input,
            b"metadata" => Field::Metadata,
            b"service_tier" => Field::ServiceTier,
            b"container" => Field::Container,
            b"anthropic_version" => Field::AnthropicVersion,
            b"anthropic_beta" => Field::AnthropicBeta,
            _ => return None,
        })
    }

    /// The field the (validated) key string at `key`, quotes included, names once its escapes are decoded.
    fn of_key(b: &[u8], key: &Range<usize>) -> Option<Field> {
        let inner = &b[key.start + 1..key.end - 1];
        if memchr::memchr(b'\\', inner).is_none() {
            return Field::named(inner);
        }
        if inner.len() > MAX_ESCAPE_LEN * LONGEST_NAME {
            return None;
        }
        scan::decode_string(b, key.clone()).ok().and_then(|s| Field::named(s.as_bytes()))
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// One top-level member: byte ranges into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key string, quotes included.
    pub key: Range<usize>,
    /// The value.
    pub value: Range<usize>,
    /// Which field the decoded key names, if the gateway reads it.
    pub field: Option<Field>,
}

impl Member {
    /// From the key's opening quote to the value's last byte: what an edit copies to keep the member.
    pub fn span(&self) -> Range<usize> {
        self.key.start..self.value.end
    }
}

/// The (last) `stream_options` member's value, as the include_usage edit needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOptions {
    /// An object: where its `{` is, whether it has members, and its last `include_usage` value.
    Object {
        open: usize,
        empty: bool,
        include_usage: Option<Range<usize>>,
        /// `include_usage` is given more than once (refused by the strict inspector on chat completions).
        repeated: bool,
    },
    /// Anything else (null, a number…): the whole value.
    Other(Range<usize>),
}

/// Where the parts of one request body are: what the edits work on instead of walking the body again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Length of the body the ranges point into: an edit given another body refuses it.
    len: usize,
    /// Index of the top-level `{`.
    open: usize,
    members: Vec<Member>,
    stream_options: Option<StreamOptions>,
}

impl Layout {
    /// Whether `body` can be the body this layout was made from (the ranges all fall inside it).
    pub fn fits(&self, body: &[u8]) -> bool {
        body.len() == self.len
    }

    /// Index of the top-level `{`.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The top-level members, in body order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The last member naming `field` (the provider's parser keeps the last duplicate).
    pub fn last(&self, field: Field) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.field == Some(field))
    }

    /// The last `stream_options` member's value.
    pub fn stream_options(&self) -> Option<&StreamOptions> {
        self.stream_options.as_ref()
    }
}

/// What the prompt-carrying member (`messages`, or Responses `input`) holds, by the kind of its value.
// One per inspection, on the stack: boxing the tail would allocate per request instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(super) enum PromptValue {
    /// A string (a Responses `input` shorthand).
    Text(Range<usize>),
    /// An array, with its last elements.
    List(Tail),
    /// Anything else: no prompt.
    Other,
}

/// What the pass found: the layout, the prompt member's value, the Anthropic `metadata.user_id` value, and
/// (first in body order) a field the gateway reads given twice.
pub(super) struct Pass {
    pub layout: Layout,
    pub prompt: Option<PromptValue>,
    /// The last `metadata` member's last `user_id` value (Anthropic Messages only): Claude Code names its
    /// session there when it sends no session header.
    pub user_id: Option<Range<usize>>,
    pub duplicate: Option<Field>,
}

/// The member holding the prompt for `api`.
pub(super) fn prompt_field(api: Api) -> Field {
    match api {
        Api::ChatCompletions | Api::Messages => Field::Messages,
        Api::Responses => Field::Input,
    }
}

/// Validates the whole body (UTF-8, then JSON by the scanner's rules, depth included) and lays out its
/// top-level object. Every value is skipped except the prompt member's array, whose last elements are
/// kept, and `stream_options` and (Anthropic) `metadata`, whose members are looked at.
pub(super) fn lay_out(api: Api, b: &[u8]) -> Result<Pass, InspectError> {
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
    let prompt_field = prompt_field(api);
    // Fields whose duplicates make the request ambiguous to the gateway: the ones it reads for `api`.
    let checked = Field::Model.bit()
        | Field::Stream.bit()
        | Field::Background.bit()
        | Field::StreamOptions.bit()
        | prompt_field.bit();
    let (mut seen, mut duplicate) = (0u16, None);
    let mut prompt = None;
    let mut members = Vec::with_capacity(8);
    let end = scan::members(b, open, |key, v| {
        let field = Field::of_key(b, &key);
        let end = match field {
            Some(f) if f == prompt_field => {
                let (end, value) = prompt_value(b, v)?;
                prompt = Some(value);
                end
            }
            _ => scan::skip_value(b, v)?,
        };
        if let Some(f) = field.filter(|f| f.bit() & checked != 0) {
            if seen & f.bit() != 0 {
                duplicate.get_or_insert(f);
            }
            seen |= f.bit();
        }
        members.push(Member { key, value: v..end, field });
        Ok(end)
    })?;
    if scan::skip_ws(b, end) != b.len() {
        return Err(InspectError::InvalidJson);
    }
    let mut layout = Layout { len: b.len(), open, members, stream_options: None };
    layout.stream_options = match layout.last(Field::StreamOptions) {
        Some(m) if b[m.value.start] == b'{' => Some(stream_options_object(b, m.value.start)?),
        Some(m) => Some(StreamOptions::Other(m.value.clone())),
        None => None,
    };
    // Not a checked field: a repeated `metadata` is the provider's business, and like its parser the
    // session lookup keeps the last one. The object is small (Claude Code sends only `user_id`).
    let user_id = match layout.last(Field::Metadata) {
        Some(m) if api == Api::Messages && b[m.value.start] == b'{' => metadata_user_id(b, m.value.start)?,
        _ => None,
    };
    Ok(Pass { layout, prompt, user_id, duplicate })
}

/// The prompt member's value starting at `v`, validated; returns where it ends.
fn prompt_value(b: &[u8], v: usize) -> Result<(usize, PromptValue), Invalid> {
    Ok(match b.get(v) {
        Some(b'[') => {
            let (end, tail) = scan::array_tail(b, v)?;
            (end, PromptValue::List(tail))
        }
        Some(b'"') => {
            let end = scan::skip_string(b, v)?;
            (end, PromptValue::Text(v..end))
        }
        _ => (scan::skip_value(b, v)?, PromptValue::Other),
    })
}

/// The last `user_id` value of the (validated) `metadata` object at `open`.
fn metadata_user_id(b: &[u8], open: usize) -> Result<Option<Range<usize>>, Invalid> {
    let mut user_id = None;
    scan::members(b, open, |key, v| {
        let end = scan::skip_value(b, v)?;
        if scan::string_is(b, &key, "user_id") {
            user_id = Some(v..end);
        }
        Ok(end)
    })?;
    Ok(user_id)
}

/// The members of the (validated) `stream_options` object at `open` that the edit needs.
fn stream_options_object(b: &[u8], open: usize) -> Result<StreamOptions, Invalid> {
    let (mut empty, mut include_usage, mut repeated) = (true, None, false);
    scan::members(b, open, |key, v| {
        let end = scan::skip_value(b, v)?;
        empty = false;
        if scan::string_is(b, &key, "include_usage") {
            repeated |= include_usage.is_some();
            include_usage = Some(v..end);
        }
        Ok(end)
    })?;
    Ok(StreamOptions::Object { open, empty, include_usage, repeated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(body: &str) -> Layout {
        lay_out(Api::ChatCompletions, body.as_bytes()).unwrap().layout
    }

    #[test]
    fn every_field_is_recognised_plain_and_escaped() {
        for f in Field::ALL {
            let escaped: String = f.name().chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            for key in [f.name().to_owned(), escaped] {
                let body = format!(r#"{{"{key}":1}}"#);
                let l = layout(&body);
                assert_eq!(l.members()[0].field, Some(f), "{body}");
            }
        }
        let l = layout(r#"{"models":1,"Model":2,"mode\u006c ":3}"#);
        assert!(l.members().iter().all(|m| m.field.is_none()));
    }

    #[test]
    fn member_ranges_and_stream_options() {
        let body =
            r#" { "a" : [1, {"b":"}"}] ,"stre\u0061m":true, "stream_options" : {"x":1,"include_usage":false} } "#;
        let l = layout(body);
        let b = body.as_bytes();
        assert_eq!(l.open(), 1);
        let spans: Vec<&str> = l.members().iter().map(|m| &body[m.span()]).collect();
        assert_eq!(
            spans,
            [r#""a" : [1, {"b":"}"}]"#, r#""stre\u0061m":true"#, r#""stream_options" : {"x":1,"include_usage":false}"#]
        );
        assert_eq!(&b[l.last(Field::Stream).unwrap().value.clone()], b"true");
        let Some(StreamOptions::Object { empty: false, include_usage: Some(iu), repeated: false, .. }) =
            l.stream_options()
        else {
            panic!("{:?}", l.stream_options());
        };
        assert_eq!(&body[iu.clone()], "false");
        assert_eq!(layout(r#"{"stream_options":null}"#).stream_options(), Some(&StreamOptions::Other(18..22)));
        assert!(matches!(
            layout(r#"{"stream_options":{}}"#).stream_options(),
            Some(StreamOptions::Object { empty: true, include_usage: None, .. })
        ));
    }

    #[test]
    fn duplicates_of_read_fields_are_noted_in_body_order() {
        let pass = |api, body: &str| lay_out(api, body.as_bytes()).unwrap().duplicate;
        assert_eq!(pass(Api::Messages, r#"{"stream":1,"model":1,"model":2,"stream":2}"#), Some(Field::Model));
        assert_eq!(pass(Api::Messages, r#"{"messages":1,"mess\u0061ges":2}"#), Some(Field::Messages));
        // `input` is read only from Responses bodies; Bedrock's fields are dropped, not read.
        assert_eq!(pass(Api::Messages, r#"{"input":1,"input":2,"metadata":1,"metadata":2}"#), None);
        assert_eq!(pass(Api::Responses, r#"{"input":1,"input":2}"#), Some(Field::Input));
    }
}
