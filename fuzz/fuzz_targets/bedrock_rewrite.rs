//! Fuzz target: the Bedrock rewrite of any Messages body the inspector accepts is a body it accepts
//! again, not streaming; when serde_json parsed the original it parses the rewrite too, which carries
//! Bedrock's `anthropic_version` and none of the members that moved into the path.
#![no_main]

use aibridged::providers::bedrock::BedrockConfig;
use aibridged::providers::bedrock::request::BEDROCK_ANTHROPIC_VERSION;
use aibridged::providers::bedrock::translate_request_with_betas;
use aibridged::providers::request::inspect;
use aibridged::records::Api;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(inspection) = inspect(Api::Messages, data) else {
        return;
    };
    let cfg = BedrockConfig {
        region: None,
        base_url: None,
        credentials: Vec::new(),
        model: "m".into(),
        small_fast_model: "h".into(),
    };
    let betas: &[&str] = if data.len() % 2 == 0 { &[] } else { &["b-1, context-1m-2025-08-07"] };
    let Ok(r) = translate_request_with_betas(&cfg, &inspection, data, betas) else {
        return;
    };
    // A Value, not IgnoredAny: serde_json skips an ignored string's escapes unchecked, so a lone `\uDADD`
    // would pass here and fail below (the false alarm the include_usage_edit target found).
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("rewrite keeps JSON valid");
        assert_eq!(v["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        assert!(v.get("model").is_none() && v.get("stream").is_none());
    }
    assert_eq!(r.stream, inspection.info.stream);
    let again = inspect(Api::Messages, &r.body).expect("the rewrite is inspected again");
    assert!(!again.info.stream && again.info.model.is_empty());
});
