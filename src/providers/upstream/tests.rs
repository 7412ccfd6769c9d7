use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{BedrockConfig, ProviderType, Secret};
use crate::providers::request::inspect;

fn direct(kind: ProviderType, url: &str, keys: &[&str]) -> Upstream {
    Upstream::new(
        &ProviderConfig {
            name: "p".into(),
            kind,
            base_url: UpstreamUrl::parse(url).unwrap(),
            keys: keys.iter().map(|k| Secret::new(*k)).collect(),
            bedrock: None,
        },
        None,
    )
}

fn aws(id: &str) -> AwsCredential {
    AwsCredential {
        access_key_id: Secret::new(id),
        secret_access_key: Secret::new("secret-key-value"),
        session_token: None,
    }
}

fn bedrock(credentials: Vec<AwsCredential>, aws_env: Option<&AwsCredential>) -> Upstream {
    let cfg = BedrockConfig {
        region: Some("eu-west-1".into()),
        base_url: None,
        credentials,
        model: "big".into(),
        small_fast_model: "small".into(),
    };
    Upstream::new(
        &ProviderConfig {
            name: "b".into(),
            kind: ProviderType::Anthropic,
            base_url: UpstreamUrl::parse("https://api.anthropic.com").unwrap(),
            keys: vec![],
            bedrock: Some(cfg),
        },
        aws_env,
    )
}

/// The inspection of a Messages body, as the relay makes it before preparing the upstream request.
fn messages(body: &[u8]) -> Inspection {
    inspect(Api::Messages, body).expect("a valid Messages body")
}

/// The inspection of a streaming chat completions body.
fn streaming_chat() -> Inspection {
    inspect(Api::ChatCompletions, br#"{"stream":true}"#).expect("a valid chat body")
}

fn when() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[test]
fn direct_keys_go_in_the_header_each_provider_type_expects() {
    let openai = direct(ProviderType::OpenAi, "https://api.openai.com/v1", &["sk-openai-000000001"]);
    let out = openai
        .prepare(Some(Api::ChatCompletions), "/v1/chat/completions?x=1", b"{}".to_vec(), Some(&streaming_chat()), &[])
        .unwrap();
    assert_eq!(
        out,
        Outbound { path: "/v1/chat/completions?x=1".into(), body: b"{}".to_vec(), model: None, stream: true }
    );
    let h = openai.added_headers(&out, Credential::Key(0), when()).unwrap();
    assert_eq!(h, [("authorization".to_string(), "Bearer sk-openai-000000001".to_string())]);
    assert!(openai.added_headers(&out, Credential::Byok, when()).unwrap().is_empty());
    assert!(openai.added_headers(&out, Credential::None, when()).unwrap().is_empty());
    assert!(matches!(openai.added_headers(&out, Credential::Key(3), when()), Err(UpstreamError::NoCredential)));

    let anthropic = direct(ProviderType::Anthropic, "https://api.anthropic.com", &["sk-ant-0000000001"]);
    let h = anthropic.added_headers(&out, Credential::Key(0), when()).unwrap();
    assert_eq!(h, [("x-api-key".to_string(), "sk-ant-0000000001".to_string())]);
    assert_eq!(anthropic.method("GET"), "GET");
    assert!(anthropic.translator(&out).is_none() && !anthropic.rewrites_errors());
    assert_eq!(anthropic.rewrite_error(429, &|_| None, b"raw"), (429, b"raw".to_vec()));
}

#[test]
fn direct_upstreams_forward_client_credentials_only_for_byok() {
    let u = direct(ProviderType::Anthropic, "https://api.anthropic.com", &[]);
    for name in ["Authorization", "x-api-key"] {
        assert!(u.drops_header(name, false), "{name}");
        assert!(!u.drops_header(name, true), "{name}");
    }
    assert!(!u.drops_header("anthropic-version", false));
    assert!(!u.drops_header("x-amz-date", false));
}

#[test]
fn bedrock_uses_its_configured_credentials_else_the_environments() {
    let env = aws("AKIAENVIRONMENT0001");
    let configured = bedrock(vec![aws("AKIACONFIGURED00001"), aws("AKIACONFIGURED00002")], Some(&env));
    assert_eq!(configured.pool_size(), 2);
    assert_eq!(configured.key_hint(1).as_deref(), Some("AKIA…0002"));
    let from_env = bedrock(vec![], Some(&env));
    assert_eq!(from_env.pool_size(), 1);
    assert_eq!(from_env.key_hint(0).as_deref(), Some("AKIA…0001"));
    assert_eq!(bedrock(vec![], None).pool_size(), 0);
    assert_eq!(from_env.url().host, "bedrock-runtime.eu-west-1.amazonaws.com");
    assert_eq!(from_env.label(), "bedrock");
}

#[test]
fn bedrock_signs_its_own_content_headers_and_refuses_to_send_unsigned_without_a_credential() {
    let u = bedrock(vec![aws("AKIACONFIGURED00001")], None);
    let body = br#"{"model":"m","stream":false}"#;
    let out = u.prepare(Some(Api::Messages), "/v1/messages", body.to_vec(), Some(&messages(body)), &[]).unwrap();
    assert!(!out.stream);
    assert_eq!(out.path, "/model/big/invoke");
    assert_eq!(u.method("GET"), "POST");
    let h = u.added_headers(&out, Credential::Key(0), when()).unwrap();
    let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["content-type", "accept"]);
    assert_eq!(h[1].1, "application/json");
    assert!(names.contains(&"x-amz-date") && names.contains(&"authorization"), "{names:?}");
    assert!(!h.iter().any(|(_, v)| v.contains("secret-key-value")));

    assert!(matches!(u.added_headers(&out, Credential::None, when()), Err(UpstreamError::NoCredential)));
    assert!(!UpstreamError::NoCredential.is_client_fault());
    let byok = u.added_headers(&out, Credential::Byok, when()).unwrap();
    assert_eq!(byok.len(), 2, "a BYOK request is not signed with the gateway's credential");
}

#[test]
fn bedrock_serves_messages_only_and_blames_the_client_for_a_bad_body() {
    let u = bedrock(vec![aws("AKIACONFIGURED00001")], None);
    assert!(matches!(u.prepare(None, "/v1/models", Vec::new(), None, &[]), Err(UpstreamError::RouteUnsupported)));
    let null_model = br#"{"model":null}"#;
    let e = u
        .prepare(Some(Api::Messages), "/v1/messages", null_model.to_vec(), Some(&messages(null_model)), &[])
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Translate(_)) && e.is_client_fault(), "{e}");
    // A body that is not the one inspected is the gateway's own bug, never blamed on the client.
    let e = u.prepare(Some(Api::Messages), "/v1/messages", b"{ }".to_vec(), Some(&messages(b"{}")), &[]).unwrap_err();
    assert!(matches!(e, UpstreamError::Translate(_)) && !e.is_client_fault(), "{e}");
}

#[test]
fn bedrock_drops_headers_it_sets_or_that_would_confuse_its_signature() {
    let u = bedrock(vec![], None);
    for name in ["authorization", "X-Api-Key", "anthropic-version", "Content-Type", "accept", "X-Amz-Security-Token"] {
        assert!(u.drops_header(name, false) && u.drops_header(name, true), "{name}");
    }
    // Bedrock takes the betas in the body (see `prepare`), never as a header.
    assert!(u.drops_header("anthropic-beta", false) && u.drops_header("Anthropic-Beta", true));
    assert!(!u.drops_header("x-am", false));
}

#[test]
fn bedrock_streams_are_translated_and_its_errors_rewritten_in_anthropics_shape() {
    let u = bedrock(vec![aws("AKIACONFIGURED00001")], None);
    let streamed = u
        .prepare(
            Some(Api::Messages),
            "/v1/messages",
            br#"{"stream":true}"#.to_vec(),
            Some(&messages(br#"{"stream":true}"#)),
            &[],
        )
        .unwrap();
    let mut t = u.translator(&streamed).expect("a stream is translated");
    let mut out = Vec::new();
    t.finish(&mut out);
    assert!(out.is_empty(), "an empty stream before any message owes the client nothing: {out:?}");
    let json = u.prepare(Some(Api::Messages), "/v1/messages", b"{}".to_vec(), Some(&messages(b"{}")), &[]).unwrap();
    assert!(u.translator(&json).is_none());

    assert!(u.rewrites_errors());
    let header = |n: &str| (n == "x-amzn-errortype").then_some("ThrottlingException");
    let (status, body) = u.rewrite_error(429, &header, br#"{"message":"slow down"}"#);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 429);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["message"], "slow down");
}

#[test]
fn bedrock_moves_accepted_betas_into_the_body() {
    let u = bedrock(vec![aws("AKIACONFIGURED00001")], None);
    let body = br#"{"max_tokens":1}"#;
    let betas = ["claude-code-20250219,context-1m-2025-08-07", "interleaved-thinking-2025-05-14"];
    let out = u.prepare(Some(Api::Messages), "/v1/messages", body.to_vec(), Some(&messages(body)), &betas).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["anthropic_beta"], serde_json::json!(["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]));
    // A direct upstream gets the client's header as sent and its body untouched.
    let d = direct(ProviderType::Anthropic, "https://api.anthropic.com", &[]);
    let out = d.prepare(Some(Api::Messages), "/v1/messages", body.to_vec(), Some(&messages(body)), &betas).unwrap();
    assert_eq!(out.body, body);
    assert!(!d.drops_header("anthropic-beta", false));
}

/// Only Bedrock's model-level 403 spares the key; an unknown key, a bad signature, a 401 or another
/// upstream's 403 still count against it.
#[test]
fn only_bedrock_access_denied_is_a_refusal_of_the_model_alone() {
    let u = bedrock(vec![aws("AKIACONFIGURED00001")], None);
    let typed = |t: &'static str| move |n: &str| (n == "x-amzn-errortype").then_some(t);
    assert!(u.refuses_model_only(403, &typed("AccessDeniedException")));
    assert!(u.refuses_model_only(
        403,
        &typed("AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/")
    ));
    assert!(!u.refuses_model_only(403, &typed("UnrecognizedClientException")));
    assert!(!u.refuses_model_only(403, &typed("InvalidSignatureException")));
    assert!(!u.refuses_model_only(401, &typed("AccessDeniedException")));
    assert!(!u.refuses_model_only(403, &|_: &str| None));
    assert!(!direct(ProviderType::Anthropic, "https://api.anthropic.com", &[])
        .refuses_model_only(403, &typed("AccessDeniedException")));
}
