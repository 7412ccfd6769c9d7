//! Test fixtures for the relay's phase tests: request heads from text, and a fixed set of instances
//! (a keyed OpenAI one, a keyless Anthropic one, a Bedrock one). Tests only.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Principal;
use crate::config::{AwsCredential, BedrockConfig, ProviderConfig, ProviderType, Secret, UpstreamUrl};
use crate::runtime::http::{parse_request_head, RequestHead};

use super::context::{Caller, ClientCredential, RequestCtx, Timings};
use super::instance::{index_of, Instance};
use super::route::route;

/// A request head from its request line (without the version) and headers.
pub(crate) fn head(line: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut raw = format!("{line} HTTP/1.1\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    parse_request_head(raw.as_bytes()).expect("valid head").expect("complete head")
}

fn provider(name: &str, kind: ProviderType, url: &str, keys: &[&str]) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind,
        base_url: UpstreamUrl::parse(url).unwrap(),
        keys: keys.iter().map(|k| Secret::new(*k)).collect(),
        bedrock: None,
    }
}

/// `openai` (one key, base path `/v1`), `claude` (no key), `bedrock` (one AWS credential).
pub(crate) fn instances() -> Vec<Instance> {
    let mut bedrock = provider("bedrock", ProviderType::Anthropic, "https://api.anthropic.com", &[]);
    bedrock.bedrock = Some(BedrockConfig {
        region: Some("us-west-2".into()),
        base_url: None,
        credentials: vec![AwsCredential {
            access_key_id: Secret::new("AKIAIOSFODNN7EXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }],
        model: "big-model".into(),
        small_fast_model: "small-model".into(),
    });
    let providers = [
        provider("openai", ProviderType::OpenAi, "http://127.0.0.1:9/v1", &["sk-test-key-0000001"]),
        provider("claude", ProviderType::Anthropic, "https://api.anthropic.example", &[]),
        bedrock,
    ];
    providers.iter().enumerate().map(|(i, p)| Instance::new(p, i, None)).collect()
}

/// A caller, BYOK when `byok` is set.
pub(crate) fn caller(byok: Option<ClientCredential>) -> Caller {
    Caller {
        principal: Principal { user: Arc::from("alice"), token_id: Arc::from("t1"), role: crate::db::Role::User },
        byok,
    }
}

/// The context of a request on `inst` (which must be one of [`instances`]), routed as the gateway would.
pub(crate) fn ctx<'a>(inst: &'a Instance, line: &str, headers: &[(&str, &str)]) -> RequestCtx<'a> {
    let h = head(line, headers);
    let all = instances();
    let r = route(&all, true, &h).expect("a routable request");
    assert_eq!(index_of(&all, &inst.name), Some(r.instance));
    RequestCtx::new(h, r, inst, caller(None), Timings::new(Instant::now()))
}
