//! Turns Bedrock's streamed answer (AWS event-stream messages whose `chunk` payloads carry base64 Anthropic
//! stream events) into the standard Anthropic SSE a Messages client expects, and Bedrock JSON errors into
//! Anthropic error bodies. Pure over bytes: no I/O. The decoded event JSON is written as received, never
//! re-serialised.

use base64::Engine as _;
use serde::Deserialize;

use super::eventstream::{EventStreamDecoder, EventStreamError, Message};

/// Longest error message copied from Bedrock into an Anthropic error; longer ones are cut (on a char
/// boundary) so a misbehaving upstream cannot inflate every error event.
const MAX_ERROR_MESSAGE: usize = 2048;

/// Incremental Bedrock event stream → Anthropic SSE translator, one per response.
#[derive(Debug, Default)]
pub struct SseTranslator {
    decoder: EventStreamDecoder,
    /// An `error` event was written: nothing else is owed to the client at the end.
    errored: bool,
    /// A `message_start` was seen but no `message_stop` yet: ending now means the answer was cut short.
    open_message: bool,
}

impl SseTranslator {
    /// A translator at the start of a response stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input` (any split) and appends the SSE for every complete message to `out`. On a framing
    /// error it also appends an `event: error` the client understands and returns the error: the caller
    /// then stops reading the upstream.
    pub fn on_bytes(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EventStreamError> {
        let Self { decoder, errored, open_message } = self;
        let result = decoder.feed(input, &mut |m| translate_message(&m, out, errored, open_message));
        if let Err(e) = &result {
            if !*errored {
                write_error_event(out, "api_error", &format!("invalid Bedrock event stream: {e}"));
                *errored = true;
            }
        }
        result
    }

    /// Call when the upstream body ended: if the stream stopped mid-message or before `message_stop`
    /// (and no error was sent yet), appends an `event: error` so the client does not take a cut answer
    /// for a complete one.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.errored {
            return;
        }
        if self.decoder.is_mid_message() || self.open_message {
            write_error_event(out, "api_error", "Bedrock stream ended before the message was complete");
            self.errored = true;
        }
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    bytes: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct EventType<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
}

fn translate_message(m: &Message<'_>, out: &mut Vec<u8>, errored: &mut bool, open: &mut bool) {
    match m.str_header(":message-type") {
        Some("event") | None => {
            if m.str_header(":event-type") != Some("chunk") {
                return; // Bedrock sends only chunks; unknown event kinds are not the client's business.
            }
            let decoded = serde_json::from_slice::<Chunk<'_>>(m.payload)
                .ok()
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c.bytes.as_bytes()).ok());
            let Some(event) = decoded else {
                write_error_event(out, "api_error", "Bedrock sent a chunk that is not base64 JSON");
                *errored = true;
                return;
            };
            let ty = match serde_json::from_slice::<EventType<'_>>(&event) {
                Ok(t) if !t.ty.is_empty() && !t.ty.contains(['\r', '\n']) => t.ty.into_owned(),
                _ => {
                    write_error_event(out, "api_error", "Bedrock sent a chunk without an event type");
                    *errored = true;
                    return;
                }
            };
            match ty.as_str() {
                "message_start" => *open = true,
                "message_stop" => *open = false,
                "error" => *errored = true,
                _ => {}
            }
            write_event(out, &ty, &event);
        }
        Some("exception") => {
            let exception = m.str_header(":exception-type").unwrap_or("internalServerException");
            let (_, ty) = exception_error_type(exception).unwrap_or((500, "api_error"));
            let message = message_from_body(m.payload).unwrap_or_else(|| exception.to_string());
            write_error_event(out, ty, &message);
            *errored = true;
        }
        Some(_) => {
            // `:message-type error`: a protocol-level failure described by headers.
            let code = m.str_header(":error-code").unwrap_or("error");
            let msg = m.str_header(":error-message").unwrap_or("Bedrock stream error");
            write_error_event(out, "api_error", &format!("{code}: {msg}"));
            *errored = true;
        }
    }
}

/// `event: <ty>\ndata: <json>\n\n`. JSON written by Bedrock is one line; if it ever holds raw line
/// breaks (legal JSON whitespace) each line gets its own `data:` field, which SSE joins back with `\n`.
fn write_event(out: &mut Vec<u8>, ty: &str, data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(ty.as_bytes());
    out.push(b'\n');
    if memchr::memchr2(b'\n', b'\r', data).is_none() {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.push(b'\n');
    } else {
        for line in data.split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

/// Anthropic's error body; a struct (not `json!`) so the members come out in Anthropic's order.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(serde::Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    message: &'a str,
}

fn error_json(ty: &str, message: &str) -> Vec<u8> {
    let body = ErrorBody { ty: "error", error: ErrorDetail { ty, message: truncate(message) } };
    // Serialising two strings cannot fail; the fallback only keeps this path panic-free.
    serde_json::to_vec(&body)
        .unwrap_or_else(|_| br#"{"type":"error","error":{"type":"api_error","message":"error"}}"#.to_vec())
}

fn write_error_event(out: &mut Vec<u8>, ty: &str, message: &str) {
    write_event(out, "error", &error_json(ty, message));
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ERROR_MESSAGE {
        return s;
    }
    let mut end = MAX_ERROR_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `{"message": "..."}` (or `Message`), Bedrock's error body shape.
fn message_from_body(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    serde_json::from_slice::<Body>(body).ok()?.message.filter(|m| !m.is_empty())
}

/// The Anthropic status and error type for a Bedrock exception name. Accepts the forms AWS uses:
/// `throttlingException` (stream header), `ThrottlingException:http://internal…` (`x-amzn-errortype`),
/// `com.amazon.coral#ThrottlingException` (`__type`).
fn exception_error_type(exception: &str) -> Option<(u16, &'static str)> {
    let name = exception.split(':').next().unwrap_or(exception);
    let name = name.rsplit('#').next().unwrap_or(name).trim();
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "validationexception" | "serializationexception" => (400, "invalid_request_error"),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "incompletesignature"
        | "missingauthenticationtokenexception"
        | "invalidclienttokenid" => (403, "authentication_error"),
        "accessdeniedexception" => (403, "permission_error"),
        "resourcenotfoundexception" => (404, "not_found_error"),
        "throttlingexception" | "servicequotaexceededexception" | "toomanyrequestsexception" => {
            (429, "rate_limit_error")
        }
        "modeltimeoutexception" => (408, "api_error"),
        "modelerrorexception" | "modelstreamerrorexception" | "internalserverexception" => (500, "api_error"),
        "serviceunavailableexception" | "modelnotreadyexception" => (503, "overloaded_error"),
        _ => return None,
    })
}

/// Turns a Bedrock error response (JSON `{"message": …}` plus the `x-amzn-errortype` header, passed as
/// `exception_type`) into an Anthropic error body `{"type":"error","error":{"type":…,"message":…}}`.
/// The upstream status is kept (clients' retry rules key on it: 429, 5xx); a non-error status becomes
/// 500. The error type comes from the exception name when known, else from the status. For
/// authentication failures only the first paragraph of the message is kept: AWS appends the canonical
/// request it expected, which names signed header values.
pub(crate) fn error_to_anthropic(status: u16, body: &[u8], exception_type: Option<&str>) -> (u16, Vec<u8>) {
    let status = if status < 400 { 500 } else { status };
    let body_type = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("__type").and_then(|t| t.as_str()).map(str::to_string));
    let exception = exception_type.map(str::to_string).or(body_type);
    let ty = exception
        .as_deref()
        .and_then(exception_error_type)
        .map(|(_, t)| t)
        .unwrap_or_else(|| crate::providers::errors::anthropic_type(status));
    let mut message = message_from_body(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() || text.starts_with('{') {
            exception.clone().unwrap_or_else(|| format!("Bedrock returned HTTP {status}"))
        } else {
            text.to_string()
        }
    });
    if matches!(ty, "authentication_error" | "permission_error") {
        if let Some(i) = message.find("\n\n") {
            message.truncate(i);
        }
    }
    (status, error_json(ty, &message))
}

/// The Anthropic status an exception name stands for (e.g. `throttlingException` → 429), so tests can
/// check the mapping without building a response.
#[cfg(test)]
pub(crate) fn exception_status(exception_type: &str) -> Option<u16> {
    exception_error_type(exception_type).map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::encode_message;
    use super::*;

    fn chunk(event_json: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(event_json);
        // Bedrock pads chunk payloads with a "p" member to hide lengths; it must be ignored.
        encode_message(
            &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
            format!(r#"{{"bytes":"{b64}","p":"abcdefghijklmnopqrstuvwxyzABCDEFGH"}}"#).as_bytes(),
        )
    }

    fn exception(kind: &str, message: &str) -> Vec<u8> {
        encode_message(
            &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
            format!(r#"{{"message":"{message}"}}"#).as_bytes(),
        )
    }

    const EVENTS: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check — ünïcode."}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_bdrk_01","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":42,"invocationLatency":1234,"firstByteLatency":456}}"#,
    ];

    fn realistic_stream() -> Vec<u8> {
        EVENTS.iter().flat_map(|e| chunk(e)).collect()
    }

    fn expected_sse() -> String {
        EVENTS
            .iter()
            .map(|e| {
                let ty = serde_json::from_str::<serde_json::Value>(e).unwrap()["type"].as_str().unwrap().to_string();
                format!("event: {ty}\ndata: {e}\n\n")
            })
            .collect()
    }

    #[test]
    fn realistic_stream_becomes_exact_anthropic_sse() {
        let mut t = SseTranslator::new();
        let mut out = Vec::new();
        t.on_bytes(&realistic_stream(), &mut out).unwrap();
        t.finish(&mut out);
        let got = String::from_utf8(out).unwrap();
        assert_eq!(got, expected_sse());
        assert!(got.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
        assert!(got.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":21,\"outputTokenCount\":42,\"invocationLatency\":1234,\"firstByteLatency\":456}}\n\n"));
    }

    #[test]
    fn realistic_stream_split_at_every_byte() {
        let stream = realistic_stream();
        let want = expected_sse();
        for cut in 0..=stream.len() {
            let mut t = SseTranslator::new();
            let mut out = Vec::new();
            t.on_bytes(&stream[..cut], &mut out).unwrap();
            t.on_bytes(&stream[cut..], &mut out).unwrap();
            t.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "split at {cut}");
        }
    }

    #[test]
    fn exceptions_become_anthropic_error_events() {
        let cases = [
            ("throttlingException", "rate_limit_error"),
            ("modelStreamErrorException", "api_error"),
            ("validationException", "invalid_request_error"),
            ("internalServerException", "api_error"),
            ("serviceUnavailableException", "overloaded_error"),
            ("somethingNewException", "api_error"),
        ];
        for (kind, ty) in cases {
            let mut stream = chunk(EVENTS[0]);
            stream.extend(exception(kind, "Too many \\\"tokens\\\""));
            let mut t = SseTranslator::new();
            let mut out = Vec::new();
            t.on_bytes(&stream, &mut out).unwrap();
            t.finish(&mut out);
            let want = format!(
                "event: message_start\ndata: {}\n\nevent: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{ty}\",\"message\":\"Too many \\\"tokens\\\"\"}}}}\n\n",
                EVENTS[0]
            );
            assert_eq!(String::from_utf8(out).unwrap(), want, "{kind}");
        }
    }

    #[test]
    fn cut_stream_ends_with_an_error_event() {
        let stream = realistic_stream();
        // Cut inside the last message.
        let mut t = SseTranslator::new();
        let mut out = Vec::new();
        t.on_bytes(&stream[..stream.len() - 5], &mut out).unwrap();
        t.finish(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Bedrock stream ended before the message was complete\"}}\n\n"), "{s}");
        // Cut cleanly between messages but before message_stop.
        let first_two: Vec<u8> = EVENTS[..2].iter().flat_map(|e| chunk(e)).collect();
        let mut t = SseTranslator::new();
        let mut out = Vec::new();
        t.on_bytes(&first_two, &mut out).unwrap();
        t.finish(&mut out);
        assert!(String::from_utf8(out).unwrap().ends_with(
            "\"type\":\"api_error\",\"message\":\"Bedrock stream ended before the message was complete\"}}\n\n"
        ));
    }

    #[test]
    fn corrupt_frames_emit_one_error_and_fail() {
        let mut stream = chunk(EVENTS[0]);
        let n = stream.len();
        stream[n - 1] ^= 0xff;
        let mut t = SseTranslator::new();
        let mut out = Vec::new();
        let err = t.on_bytes(&stream, &mut out).unwrap_err();
        assert!(matches!(err, EventStreamError::MessageCrc { .. }));
        assert!(t.on_bytes(b"more", &mut out).is_err());
        t.finish(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches("event: error\n").count(), 1, "{s}");
        assert!(s.starts_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"invalid Bedrock event stream: "));
    }

    #[test]
    fn bad_chunk_payload_is_an_error_event() {
        let bad = encode_message(&[(":event-type", "chunk"), (":message-type", "event")], br#"{"bytes":"!!!"}"#);
        let mut t = SseTranslator::new();
        let mut out = Vec::new();
        t.on_bytes(&bad, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\"type\":\"api_error\""));
    }

    #[test]
    fn multi_line_json_gets_one_data_field_per_line() {
        let mut out = Vec::new();
        write_event(&mut out, "ping", b"{\r\n\"type\": \"ping\"\n}");
        assert_eq!(out, b"event: ping\ndata: {\ndata: \"type\": \"ping\"\ndata: }\n\n");
    }

    fn parse(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn http_errors_map_to_anthropic_shapes() {
        let (s, b) = error_to_anthropic(
            400,
            br#"{"message":"messages: field required"}"#,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/"),
        );
        assert_eq!(s, 400);
        assert_eq!(
            b,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}}"#
        );

        let (s, b) = error_to_anthropic(
            429,
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            Some("ThrottlingException"),
        );
        assert_eq!((s, parse(&b)["error"]["type"].as_str()), (429, Some("rate_limit_error")));

        let (s, b) = error_to_anthropic(403, br#"{"Message":"The request signature we calculated does not match.\n\nThe Canonical String for this request should have been\nPOST\nx-amz-security-token:SECRET"}"#, Some("InvalidSignatureException"));
        let v = parse(&b);
        assert_eq!((s, v["error"]["type"].as_str()), (403, Some("authentication_error")));
        assert_eq!(v["error"]["message"], "The request signature we calculated does not match.");
        assert!(!String::from_utf8_lossy(&b).contains("SECRET"));

        let (_, b) = error_to_anthropic(
            403,
            br#"{"message":"You don't have access to the model"}"#,
            Some("AccessDeniedException"),
        );
        assert_eq!(parse(&b)["error"]["type"], "permission_error");

        // Type from the body's __type, or from the status alone.
        let (_, b) = error_to_anthropic(
            404,
            br#"{"__type":"com.amazon.coral#ResourceNotFoundException","message":"no model"}"#,
            None,
        );
        assert_eq!(parse(&b)["error"]["type"], "not_found_error");
        for (status, ty) in [
            (401, "authentication_error"),
            (500, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (418, "invalid_request_error"),
        ] {
            let (s, b) = error_to_anthropic(status, b"", None);
            assert_eq!(s, status);
            let v = parse(&b);
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], ty, "{status}");
            assert_eq!(v["error"]["message"], format!("Bedrock returned HTTP {status}"));
        }
        let (s, b) = error_to_anthropic(503, b"upstream connect error", Some("ServiceUnavailableException"));
        assert_eq!((s, parse(&b)["error"]["message"].as_str()), (503, Some("upstream connect error")));
        assert_eq!(error_to_anthropic(200, b"", None).0, 500);
        assert_eq!(exception_status("throttlingException"), Some(429));
        assert_eq!(exception_status("nope"), None);
    }

    #[test]
    fn long_messages_are_truncated_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_MESSAGE);
        let body = serde_json::to_vec(&serde_json::json!({"message": long})).unwrap();
        let (_, b) = error_to_anthropic(400, &body, None);
        let m = parse(&b)["error"]["message"].as_str().unwrap().len();
        assert!((MAX_ERROR_MESSAGE - 1..=MAX_ERROR_MESSAGE).contains(&m), "{m}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut t = SseTranslator::new();
            let mut out = Vec::new();
            let _ = t.on_bytes(&data, &mut out);
            t.finish(&mut out);
            let _ = error_to_anthropic(400, &data, std::str::from_utf8(&data).ok());
        }
    }
}
