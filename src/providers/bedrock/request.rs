//! Turns an Anthropic Messages request into a Bedrock `InvokeModel` request: picks the Bedrock model,
//! builds the percent-encoded path, and edits the body surgically (every kept member's bytes are copied
//! as received). Pure over bytes: no I/O, no signing (see `sign.rs`).

use crate::config::{BedrockConfig, UpstreamUrl};

use super::BedrockError;

/// The Messages API version Bedrock requires in the body (it has no `anthropic-version` header).
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Region used when an instance sets none: us-east-1 offers every Anthropic model Bedrock hosts.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Body members removed: the model and stream flag move into the path, and Bedrock answers 400 to
/// members of the first-party API it does not know (`metadata`, `service_tier`, `container`).
/// `anthropic_version` is removed because this module writes Bedrock's (a body `anthropic_beta` is
/// removed too, but only when header betas replace it).
pub const REMOVED_MEMBERS: &[&str] = &["model", "stream", "metadata", "service_tier", "container", "anthropic_version"];
/// Deepest nesting the member scanner follows; the body was already validated by serde_json (which
/// stops at 128), so this only guards the scanner's own recursion-free loop against odd input.
const MAX_DEPTH: usize = 1024;

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
pub fn translate_request(cfg: &BedrockConfig, body: &[u8]) -> Result<BedrockRequest, BedrockError> {
    translate_request_with_betas(cfg, body, &[])
}

/// Rewrites an Anthropic Messages body for Bedrock: model = `small_fast_model` when the requested model
/// contains `haiku`, else `model`; the body gains `"anthropic_version":"bedrock-2023-05-31"` and loses
/// [`REMOVED_MEMBERS`]. `anthropic_beta` holds the client's `anthropic-beta` header values (each may be
/// a comma-separated list): Bedrock reads beta flags from the body member `anthropic_beta`, not from a
/// header, so when any are given they replace a body `anthropic_beta`.
pub fn translate_request_with_betas(
    cfg: &BedrockConfig,
    body: &[u8],
    anthropic_beta: &[&str],
) -> Result<BedrockRequest, BedrockError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| BedrockError::InvalidBody(e.to_string()))?;
    let members = top_level_members(body).ok_or_else(|| BedrockError::InvalidBody("expected an object".into()))?;

    let mut requested_model = None;
    let mut stream = false;
    for m in &members {
        match m.key {
            "model" => {
                let raw = &body[m.value.clone()];
                let s: String = serde_json::from_slice(raw).map_err(|_| BedrockError::ModelNotString)?;
                requested_model = Some(s);
            }
            "stream" => stream = &body[m.value.clone()] == b"true",
            _ => {}
        }
    }
    let model_id = match &requested_model {
        Some(m) if m.contains("haiku") => cfg.small_fast_model.clone(),
        _ => cfg.model.clone(),
    };

    let betas: Vec<&str> =
        anthropic_beta.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|b| !b.is_empty()).collect();

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
    for m in &members {
        if REMOVED_MEMBERS.contains(&m.key) || (!betas.is_empty() && m.key == "anthropic_beta") {
            continue;
        }
        out.push(b',');
        out.extend_from_slice(&body[m.span.clone()]);
    }
    out.push(b'}');

    let action = if stream { "invoke-with-response-stream" } else { "invoke" };
    Ok(BedrockRequest {
        path: format!("/model/{}/{action}", encode_path_segment(&model_id)),
        model_id,
        body: out,
        stream,
    })
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

/// One `"key": value` member of the top-level object, as byte ranges into the body.
struct Member<'a> {
    /// The key, unescaped only when it has no escapes (a key with escapes never matches our names).
    key: &'a str,
    /// From the key's opening quote to the value's last byte.
    span: std::ops::Range<usize>,
    /// The value's bytes.
    value: std::ops::Range<usize>,
}

/// Splits a JSON object (already validated) into its members; `None` when it is not an object.
fn top_level_members(b: &[u8]) -> Option<Vec<Member<'_>>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        let key_start = i;
        let key_end = skip_string(b, i)?;
        let key = std::str::from_utf8(b.get(key_start + 1..key_end - 1)?).unwrap_or("");
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        members.push(Member { key, span: key_start..value_end, value: value_start..value_end });
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is `"`: returns the index just past the closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// Returns the index just past the value starting at `b[i]`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                    }
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            // number, true, false, null: runs to the next delimiter.
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn sonnet_stream_request_is_rewritten_byte_for_byte() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"temperature":0.70,"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"h\u00e9llo \"x\""}],"service_tier":"auto","big":12345678901234567890}"#;
        let r = translate_request(&cfg(), body).unwrap();
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
        let r = translate_request(&cfg(), body).unwrap();
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
        let r = translate_request_with_betas(&cfg(), body, &["a-1, b-2", "c\"3"]).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["a-1","b-2","c\"3"],"max_tokens":5}"#
        );
        // Without header betas the client's body member is kept.
        let r = translate_request(&cfg(), body).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["old"],"max_tokens":5}"#
        );
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
    }

    #[test]
    fn missing_model_uses_the_default_and_empty_object_works() {
        let r = translate_request(&cfg(), b"{}").unwrap();
        assert_eq!(r.body, br#"{"anthropic_version":"bedrock-2023-05-31"}"#);
        assert_eq!(r.model_id, cfg().model);
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(translate_request(&cfg(), b"[1]"), Err(BedrockError::InvalidBody(_))));
        assert!(matches!(translate_request(&cfg(), b"{\"a\":"), Err(BedrockError::InvalidBody(_))));
        assert_eq!(translate_request(&cfg(), br#"{"model":5}"#), Err(BedrockError::ModelNotString));
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

    /// Arbitrary JSON values, with strings full of quotes, braces and escapes to trip the scanner.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            "[\\\"{}\\[\\],:a-z\\\\\u{e9}\n]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z\\\"{}]{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn nested_members_survive_unchanged(
            members in proptest::collection::btree_map("[a-z_\\\"]{1,10}", json_value(), 0..6),
            pretty in any::<bool>(),
        ) {
            let v: serde_json::Map<String, serde_json::Value> = members.into_iter().collect();
            let body = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
            let r = translate_request(&cfg(), &body).unwrap();
            let mut out: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
            prop_assert_eq!(out.remove("anthropic_version"), Some(serde_json::Value::from(BEDROCK_ANTHROPIC_VERSION)));
            // Compare with the body parsed by the same parser (float parsing need not round-trip).
            let reparsed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body).unwrap();
            let want: serde_json::Map<String, serde_json::Value> = reparsed
                .into_iter()
                .filter(|(k, _)| !REMOVED_MEMBERS.contains(&k.as_str()))
                .collect();
            prop_assert_eq!(out, want);
        }

        #[test]
        fn arbitrary_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = translate_request(&cfg(), &data);
            let _ = top_level_members(&data);
        }

        #[test]
        fn output_is_valid_json_with_the_same_kept_members(
            members in proptest::collection::btree_map("[a-z_]{1,12}", any::<i32>(), 0..8),
        ) {
            let v: serde_json::Map<String, serde_json::Value> =
                members.iter().map(|(k, n)| (k.clone(), serde_json::Value::from(*n))).collect();
            let body = serde_json::to_vec(&v).unwrap();
            let r = translate_request(&cfg(), &body).unwrap();
            let out: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
            for (k, n) in &members {
                if REMOVED_MEMBERS.contains(&k.as_str()) {
                    prop_assert!(!out.contains_key(k) || k == "anthropic_version");
                } else {
                    prop_assert_eq!(out.get(k), Some(&serde_json::Value::from(*n)));
                }
            }
            prop_assert_eq!(out.get("anthropic_version"), Some(&serde_json::Value::from(BEDROCK_ANTHROPIC_VERSION)));
        }
    }
}
