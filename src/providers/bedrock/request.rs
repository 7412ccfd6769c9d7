//! Turns an Anthropic Messages request into a Bedrock `InvokeModel` request: picks the Bedrock model,
//! builds the percent-encoded path, and rewrites the body from the inspector's layout of it (every kept
//! member's bytes are copied as received; members are recognised by their decoded key). Pure over bytes:
//! no I/O, no signing (see `sign.rs`), no JSON walking of its own (the inspection validated the body).

use crate::config::{BedrockConfig, UpstreamUrl};
use crate::providers::request::{Field, Inspection};

use super::BedrockError;

/// The Messages API version Bedrock requires in the body (it has no `anthropic-version` header).
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Region used when an instance sets none: us-east-1 offers every Anthropic model Bedrock hosts.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Body members removed: the model and stream flag move into the path, and Bedrock answers 400 to
/// members of the first-party API it does not know (`metadata`, `service_tier`, `container`).
/// `anthropic_version` is removed because this module writes Bedrock's (a body `anthropic_beta` is
/// removed too, but only when header betas replace it).
pub const REMOVED_MEMBERS: &[Field] =
    &[Field::Model, Field::Stream, Field::Metadata, Field::ServiceTier, Field::Container, Field::AnthropicVersion];

/// The `anthropic-beta` flags Bedrock's InvokeModel accepts in the body's `anthropic_beta`, as listed in
/// AWS's Bedrock user guide ("Anthropic Claude Messages API" → "Request and Response", parameter
/// `anthropic_beta`). Bedrock answers 400 to a flag it does not know, and clients such as Claude Code send
/// first-party-only flags (`claude-code-20250219`, `oauth-2025-04-20`, …) on every request, so any other
/// flag is dropped rather than failing the request. Only flags that page names are listed; a flag missing
/// here is merely not enabled.
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
];

/// A request ready to sign and send to Bedrock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockRequest {
    /// `/model/{percent-encoded id}/invoke` or `…/invoke-with-response-stream` (without the base path).
    pub path: String,
    /// The Bedrock model id, not encoded (for records and logs).
    pub model_id: String,
    /// The rewritten JSON body.
    pub body: Vec<u8>,
    /// The client asked for a stream: the response is an AWS event stream to translate to SSE.
    pub stream: bool,
}

/// Rewrites an Anthropic Messages body for Bedrock. See [`translate_request_with_betas`].
pub fn translate_request(
    cfg: &BedrockConfig,
    inspection: &Inspection,
    body: &[u8],
) -> Result<BedrockRequest, BedrockError> {
    translate_request_with_betas(cfg, inspection, body, &[])
}

/// Rewrites an Anthropic Messages body for Bedrock, from its inspection (`body` must be the body
/// `inspection` was made from): model = `small_fast_model` when the requested model contains `haiku`,
/// else `model`; the stream flag the inspector read chooses `invoke-with-response-stream`; the body gains
/// `"anthropic_version":"bedrock-2023-05-31"` and loses [`REMOVED_MEMBERS`]. `anthropic_beta` holds the
/// client's `anthropic-beta` header values (each may be a comma-separated list): Bedrock reads beta flags
/// from the body member `anthropic_beta`, not from a header, so the ones in [`BEDROCK_BETAS`] go there
/// (each once, in the client's order) and replace a body `anthropic_beta`; the others are dropped.
pub fn translate_request_with_betas(
    cfg: &BedrockConfig,
    inspection: &Inspection,
    body: &[u8],
    anthropic_beta: &[&str],
) -> Result<BedrockRequest, BedrockError> {
    let layout = &inspection.layout;
    if !layout.fits(body) {
        return Err(BedrockError::NotInspected);
    }
    // The inspector reads a null model as no model; Bedrock's rewrite has always refused it.
    if layout.last(Field::Model).is_some_and(|m| body[m.value.start] != b'"') {
        return Err(BedrockError::ModelNotString);
    }
    let model_id = if inspection.info.model.contains("haiku") { &cfg.small_fast_model } else { &cfg.model };
    let stream = inspection.info.stream;

    let betas = accepted_betas(anthropic_beta);

    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    out.extend_from_slice(b"\"anthropic_version\":\"");
    out.extend_from_slice(BEDROCK_ANTHROPIC_VERSION.as_bytes());
    out.push(b'"');
    if !betas.is_empty() {
        out.extend_from_slice(b",\"anthropic_beta\":");
        // serde_json escapes header text that is not plain JSON string content; a Vec<&str> cannot fail.
        out.extend_from_slice(&serde_json::to_vec(&betas).unwrap_or_else(|_| b"[]".to_vec()));
    }
    for m in layout.members() {
        let removed =
            m.field.is_some_and(|f| REMOVED_MEMBERS.contains(&f) || (!betas.is_empty() && f == Field::AnthropicBeta));
        if !removed {
            out.push(b',');
            out.extend_from_slice(&body[m.span()]);
        }
    }
    out.push(b'}');

    let action = if stream { "invoke-with-response-stream" } else { "invoke" };
    Ok(BedrockRequest {
        path: format!("/model/{}/{action}", encode_path_segment(model_id)),
        model_id: model_id.clone(),
        body: out,
        stream,
    })
}

/// The flags of `header_values` (comma-separated lists) that Bedrock accepts, each once, in order.
fn accepted_betas<'a>(header_values: &[&'a str]) -> Vec<&'a str> {
    let mut betas: Vec<&str> = Vec::new();
    for b in header_values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if BEDROCK_BETAS.contains(&b) && !betas.contains(&b) {
            betas.push(b);
        }
    }
    betas
}

/// The upstream to call: the configured base URL, else `https://bedrock-runtime.{region}.amazonaws.com`.
pub fn endpoint(cfg: &BedrockConfig) -> UpstreamUrl {
    if let Some(url) = &cfg.base_url {
        return url.clone();
    }
    UpstreamUrl {
        tls: true,
        host: format!("bedrock-runtime.{}.amazonaws.com", signing_region(cfg)),
        port: 443,
        base_path: String::new(),
    }
}

/// The region the SigV4 credential scope names (must match the endpoint's region).
pub fn signing_region(cfg: &BedrockConfig) -> &str {
    cfg.region.as_deref().filter(|r| !r.is_empty()).unwrap_or(DEFAULT_REGION)
}

/// Percent-encodes one path segment the way SigV4 and the AWS SDKs do: everything but the unreserved
/// set `A-Z a-z 0-9 - _ . ~` becomes `%XX` (uppercase), so `v1:0` → `v1%3A0` and an inference-profile
/// ARN's `/` → `%2F`. The signer then encodes the path once more for the canonical request.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 0xf) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::request::inspect;
    use crate::providers::request::strategies::{escaped_key, raw_object};
    use crate::records::Api;
    use proptest::prelude::*;

    fn cfg() -> BedrockConfig {
        BedrockConfig {
            region: Some("eu-west-1".into()),
            base_url: None,
            credentials: vec![],
            model: "global.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
            small_fast_model: "global.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        }
    }

    fn translate_betas(body: &[u8], betas: &[&str]) -> Result<BedrockRequest, BedrockError> {
        let inspection = inspect(Api::Messages, body).expect("a valid Messages body");
        translate_request_with_betas(&cfg(), &inspection, body, betas)
    }

    fn translate(body: &[u8]) -> Result<BedrockRequest, BedrockError> {
        translate_betas(body, &[])
    }

    #[test]
    fn sonnet_stream_request_is_rewritten_byte_for_byte() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"temperature":0.70,"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"h\u00e9llo \"x\""}],"service_tier":"auto","big":12345678901234567890}"#;
        let r = translate(body).unwrap();
        assert!(r.stream);
        assert_eq!(r.model_id, "global.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(r.path, "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream");
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"temperature":0.70,"messages":[{"role":"user","content":"h\u00e9llo \"x\""}],"big":12345678901234567890}"#
        );
    }

    #[test]
    fn haiku_goes_to_the_small_fast_model_and_non_stream_to_invoke() {
        let body = b" { \"model\" : \"claude-haiku-4-5\" ,\n \"stream\": false, \"container\": \"c1\", \"system\" : [ {\"type\":\"text\",\"text\":\"}]\"} ] } ";
        let r = translate(body).unwrap();
        assert!(!r.stream);
        assert_eq!(r.model_id, "global.anthropic.claude-haiku-4-5-20251001-v1:0");
        assert_eq!(r.path, "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke");
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","system" : [ {"type":"text","text":"}]"} ]}"#
        );
    }

    #[test]
    fn betas_move_into_the_body_and_version_is_replaced() {
        let body = br#"{"anthropic_version":"2023-06-01","anthropic_beta":["old"],"max_tokens":5}"#;
        let r = translate_betas(
            body,
            &["context-1m-2025-08-07, interleaved-thinking-2025-05-14", "computer-use-2025-01-24"],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07","interleaved-thinking-2025-05-14","computer-use-2025-01-24"],"max_tokens":5}"#
        );
        // Without header betas the client's body member is kept.
        let r = translate(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["old"],"max_tokens":5}"#
        );
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
    }

    /// Claude Code's betas as it sends them: first-party-only flags are dropped, not refused; duplicates
    /// and blanks disappear; a header with no accepted flag leaves the body's own member alone.
    #[test]
    fn only_the_betas_bedrock_accepts_reach_the_body() {
        let body = br#"{"max_tokens":5}"#;
        let header = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14, ,token-efficient-tools-2025-02-19";
        let r = translate_betas(body, &[header, "interleaved-thinking-2025-05-14", "c\"3"]).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["interleaved-thinking-2025-05-14","token-efficient-tools-2025-02-19"],"max_tokens":5}"#
        );
        // Matching is exact: a near miss or another case is not Bedrock's flag.
        assert_eq!(
            accepted_betas(&["Context-1m-2025-08-07", "context-1m", "context-1m-2025-08-07x"]),
            Vec::<&str>::new()
        );
        let body = br#"{"anthropic_beta":["mine"],"max_tokens":5}"#;
        let r = translate_betas(body, &["claude-code-20250219"]).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["mine"],"max_tokens":5}"#
        );
    }

    #[test]
    fn missing_model_uses_the_default_and_empty_object_works() {
        let r = translate(b"{}").unwrap();
        assert_eq!(r.body, br#"{"anthropic_version":"bedrock-2023-05-31"}"#);
        assert_eq!(r.model_id, cfg().model);
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert_eq!(translate(br#"{"model":null}"#), Err(BedrockError::ModelNotString));
        let inspection = inspect(Api::Messages, br#"{"max_tokens":1}"#).unwrap();
        assert_eq!(translate_request(&cfg(), &inspection, br#"{"max_tokens":10}"#), Err(BedrockError::NotInspected));
    }

    /// Members are recognised by their decoded key, as the inspector and Bedrock's parser read them: an
    /// escaped `stream` is the stream flag (so the streaming action) and is dropped like the plain one.
    #[test]
    fn escaped_keys_are_dropped_and_read_decoded() {
        let body = br#"{"stre\u0061m":true,"mod\u0065l":"claude-h\u0061iku-4-5","met\u0061data":{},"max_tokens":1,"anthropic_versio\u006e":"x","\u0073ervice_tier":"auto","cont\u0061iner":"c"}"#;
        let r = translate(body).unwrap();
        assert!(r.stream);
        assert_eq!(r.path, "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream");
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1}"#
        );
        let body = br#"{"anthropic_bet\u0061":["old"],"stream_options":{"include_usage":true}}"#;
        let r = translate_betas(body, &["output-128k-2025-02-19"]).unwrap();
        assert!(!r.stream);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["output-128k-2025-02-19"],"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn path_segment_encoding_follows_sigv4() {
        assert_eq!(encode_path_segment("a.b-c_d~e:0"), "a.b-c_d~e%3A0");
        assert_eq!(
            encode_path_segment("arn:aws:bedrock:us-east-1:123:inference-profile/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fx"
        );
        assert_eq!(encode_path_segment("é %"), "%C3%A9%20%25");
    }

    #[test]
    fn endpoint_uses_base_url_or_region() {
        let mut c = cfg();
        assert_eq!(endpoint(&c).host, "bedrock-runtime.eu-west-1.amazonaws.com");
        assert!(endpoint(&c).tls);
        c.region = None;
        assert_eq!(endpoint(&c).host, "bedrock-runtime.us-east-1.amazonaws.com");
        assert_eq!(signing_region(&c), "us-east-1");
        c.base_url = Some(UpstreamUrl::parse("http://127.0.0.1:9000/br").unwrap());
        let e = endpoint(&c);
        assert_eq!((e.tls, e.host.as_str(), e.port, e.base_path.as_str()), (false, "127.0.0.1", 9000, "/br"));
    }

    /// A Messages body as its raw members, in order: random members (escaped keys, any values) with the
    /// model (a string) and the stream flag (a boolean or null) among them when present, their keys
    /// maybe escaped too.
    fn body_members() -> impl Strategy<Value = Vec<(String, String)>> {
        let model = (escaped_key("model"), prop::sample::select(vec!["claude-sonnet-4-5", "claude-haiku-4-5", ""]))
            .prop_map(|(k, m)| ("model".to_owned(), format!("{k}:\"{m}\"")));
        let stream = (escaped_key("stream"), prop::sample::select(vec!["true", "false", "null"]))
            .prop_map(|(k, v)| ("stream".to_owned(), format!("{k} : {v}")));
        (
            raw_object(&["model", "stream"]),
            proptest::option::of(model),
            proptest::option::of(stream),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut members, model, stream, at_model, at_stream)| {
                for (m, at) in [(model, at_model), (stream, at_stream)] {
                    if let Some(m) = m {
                        members.insert(at.index(members.len() + 1), m);
                    }
                }
                members
            })
    }

    proptest! {
        /// For any Messages body (escaped keys included), the rewrite is valid JSON equal to the body
        /// without the removed members plus Bedrock's version (and betas), every kept member copied byte
        /// for byte in order, and the action follows the stream flag.
        #[test]
        fn rewrite_drops_only_the_removed_members_and_copies_the_rest(
            members in body_members(),
            betas in prop::sample::select(vec![
                vec![],
                vec!["claude-code-20250219"],
                vec!["context-1m-2025-08-07"],
                vec!["claude-code-20250219, output-128k-2025-02-19", "c\"3", "computer-use-2024-10-22"],
            ]),
            ws in prop::sample::select(vec!["", " ", "\n  "]),
        ) {
            let raw: Vec<&str> = members.iter().map(|(_, raw)| raw.as_str()).collect();
            let body = format!("{ws}{{{ws}{}{ws}}}{ws}", raw.join(&format!("{ws},{ws}")));
            let r = translate_betas(body.as_bytes(), &betas).unwrap();

            let header_betas: Vec<&str> =
                betas.iter().flat_map(|b| b.split(',')).map(str::trim).filter(|b| BEDROCK_BETAS.contains(b)).collect();
            let removed = |k: &str| {
                REMOVED_MEMBERS.iter().any(|f| f.name() == k) || (!header_betas.is_empty() && k == "anthropic_beta")
            };
            let mut want = format!(r#"{{"anthropic_version":"{BEDROCK_ANTHROPIC_VERSION}""#);
            if !header_betas.is_empty() {
                want.push_str(&format!(r#","anthropic_beta":{}"#, serde_json::to_string(&header_betas).unwrap()));
            }
            for (k, raw) in &members {
                if !removed(k) {
                    want.push(',');
                    want.push_str(raw);
                }
            }
            want.push('}');
            prop_assert_eq!(std::str::from_utf8(&r.body).unwrap(), want.as_str());

            let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
            let mut expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body).unwrap();
            let stream = expected.get("stream") == Some(&serde_json::Value::Bool(true));
            let haiku = expected.get("model").and_then(|m| m.as_str()).is_some_and(|m| m.contains("haiku"));
            expected.retain(|k, _| !removed(k));
            expected.insert("anthropic_version".into(), BEDROCK_ANTHROPIC_VERSION.into());
            if !header_betas.is_empty() {
                expected.insert("anthropic_beta".into(), serde_json::json!(header_betas));
            }
            prop_assert_eq!(got, expected);
            prop_assert_eq!(r.stream, stream);
            prop_assert_eq!(r.path.ends_with("/invoke-with-response-stream"), stream);
            prop_assert_eq!(&r.model_id, if haiku { &cfg().small_fast_model } else { &cfg().model });
            // The rewrite is itself a body the inspector reads without error, no longer streaming.
            prop_assert!(!inspect(Api::Messages, &r.body).unwrap().info.stream);
        }

        #[test]
        fn arbitrary_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(inspection) = inspect(Api::Messages, &data) {
                if let Ok(r) = translate_request(&cfg(), &inspection, &data) {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());
                }
            }
        }
    }
}
