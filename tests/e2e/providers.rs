//! The provider matrix: Bedrock (SigV4, event-stream → Anthropic SSE, model mapping), key failover pools,
//! Copilot and ChatGPT/Codex with the user's own bearer token, and the README's multi-instance example.

use aibridged::mock::MockUpstream;

use crate::support::*;

const HAIKU_STREAM: &str = r#"{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"metadata":{"user_id":"u1"},"messages":[{"role":"user","content":"hi there"}]}"#;
const SONNET_JSON: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi there"}]}"#;
const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

/// Event names of an SSE body, in order.
fn event_names(sse: &str) -> Vec<String> {
    sse.lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_string).collect()
}

/// The `data:` JSON of each event, with message ids blanked (they differ per request).
fn event_types(sse: &str) -> Vec<String> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).expect("event data is JSON");
            v["type"].as_str().unwrap_or("?").to_string()
        })
        .collect()
}

fn bedrock_gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "anthropic-bedrock"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_BASE_URL", &mock.base_url()),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-west-2"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRET", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ])
}

#[test]
fn bedrock_streams_reach_the_client_as_standard_anthropic_sse() {
    let mock = MockUpstream::with_aws("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-west-2")
        .unwrap();
    let gw = bedrock_gateway(&mock);
    let token = gw.token("alice");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic-bedrock/v1/messages",
        &[("X-Api-Key", &token), ("anthropic-version", "2023-06-01")],
        HAIKU_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let up = &seen[0];
    assert_eq!(up.path, "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream");
    assert_eq!(up.sigv4_valid, Some(true), "the mock verified the SigV4 signature");
    assert_eq!(up.header("x-api-key"), None);
    let body = up.json().unwrap();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none() && body.get("metadata").is_none());
    assert_eq!(body["max_tokens"], 64);

    // The same event sequence the Anthropic API itself sends for this answer.
    let direct =
        request(mock.addr(), "POST", "/v1/messages", &[("anthropic-version", "2023-06-01")], HAIKU_STREAM.as_bytes());
    let direct_text = direct.text();
    assert_eq!(event_names(&text), event_names(&direct_text), "event names");
    assert_eq!(event_types(&text), event_types(&direct_text), "data types");
    assert_eq!(event_names(&text).first().map(String::as_str), Some("message_start"));
    assert_eq!(event_names(&text).last().map(String::as_str), Some("message_stop"));
    for line in text.lines().filter(|l| l.starts_with("event: ")) {
        let name = &line[7..];
        let i = text.find(line).unwrap();
        let data_line = text[i..].lines().nth(1).unwrap();
        assert!(
            data_line.starts_with("data: ") && data_line.contains(&format!("\"type\":\"{name}\"")),
            "{line} / {data_line}"
        );
    }

    // Recorded under the Bedrock model id, with the access key's hint.
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", 1), 1);
    let (model, hint, status): (String, String, String) = db(&gw.db)
        .query_row("SELECT model, credential_hint, status FROM aibridge_interceptions", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(model, "global.anthropic.claude-haiku-4-5-20251001-v1:0");
    assert_eq!(hint, "AKIA…MPLE");
    assert_eq!(status, "completed");
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_token_usages WHERE input_tokens = 12", 1), 1);
}

#[test]
fn bedrock_json_answers_and_errors_use_anthropic_shapes() {
    let mock = MockUpstream::with_aws("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-west-2")
        .unwrap();
    let gw = bedrock_gateway(&mock);
    let token = gw.token("bob");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic-bedrock/v1/messages",
        &[("X-Api-Key", &token)],
        SONNET_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    assert_eq!(mock.requests()[0].path, "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke");

    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic-bedrock/v1/messages",
        &[("X-Api-Key", &token), ("x-mock-status", "429")],
        SONNET_JSON.as_bytes(),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

/// Two AWS credential pairs (AWS's documentation examples), for failover between them.
const AWS_PAIRS: [(&str, &str); 2] = [
    ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
];

/// A Bedrock instance pooling both [`AWS_PAIRS`], on one worker: key state is per worker, so one
/// worker makes the sequence deterministic.
fn two_credential_bedrock_gateway(mock: &MockUpstream) -> Gateway {
    let ids = format!("{},{}", AWS_PAIRS[0].0, AWS_PAIRS[1].0);
    let secrets = format!("{},{}", AWS_PAIRS[0].1, AWS_PAIRS[1].1);
    Gateway::start(&[
        ("CODER_AIBRIDGE_WORKERS", "1"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "anthropic-bedrock"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_BASE_URL", &mock.base_url()),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-west-2"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEYS", &ids),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_ACCESS_KEY_SECRETS", &secrets),
    ])
}

/// The access key id a request the mock saw was signed with.
fn signed_by(q: &aibridged::mock::SeenRequest) -> String {
    let auth = q.header("authorization").unwrap_or_default();
    auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default().to_string()
}

/// Claude Code sends its betas on every request, most of them first-party only: Bedrock gets the ones it
/// accepts in the body's `anthropic_beta`, never the header, and the request succeeds.
#[test]
fn bedrock_gets_the_betas_it_accepts_in_the_body_and_the_rest_are_dropped() {
    let mock = MockUpstream::with_aws("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-west-2")
        .unwrap();
    let gw = bedrock_gateway(&mock);
    let token = gw.token("dora");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic-bedrock/v1/messages",
        &[
            ("X-Api-Key", &token),
            ("anthropic-version", "2023-06-01"),
            (
                "anthropic-beta",
                "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
            ),
            ("anthropic-beta", "context-1m-2025-08-07"),
        ],
        SONNET_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sigv4_valid, Some(true), "the body with the betas is what was signed");
    assert_eq!(seen[0].header("anthropic-beta"), None, "Bedrock takes betas in the body only");
    let body = seen[0].json().unwrap();
    assert_eq!(body["anthropic_beta"], serde_json::json!(["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]));
    assert_eq!(body["messages"][0]["content"], "hi there");
}

/// Bedrock refuses a model the account has no access to with a 403 `AccessDeniedException`: the client
/// gets that refusal, and the credential keeps serving the models it may use (no failover, no disabling).
#[test]
fn bedrock_access_denied_for_one_model_keeps_the_credential_for_the_others() {
    let first = AWS_PAIRS[0].0;
    let mock = MockUpstream::with_aws(first, AWS_PAIRS[0].1, "us-west-2").unwrap();
    let gw = two_credential_bedrock_gateway(&mock);
    let token = gw.token("erin");
    let path = "/api/v2/aibridge/anthropic-bedrock/v1/messages";

    // Model A (the small fast model): the mock refuses it as Bedrock does a model without access.
    let haiku_json = HAIKU_STREAM.replace(r#""stream":true,"#, "");
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token), ("x-mock-status", "403")], haiku_json.as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "a model refusal is not failed over to the next credential");
    assert_eq!(seen[0].path, "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke");
    assert_eq!(signed_by(&seen[0]), first);

    // Model B still goes out on the first credential, and succeeds.
    mock.clear();
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token)], SONNET_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke");
    assert_eq!(signed_by(&seen[0]), first);
    assert_eq!(seen[0].sigv4_valid, Some(true));
}

/// A 403 that refuses the credential itself (here a signature the upstream cannot verify) still
/// disables it: the request fails over, and the next one starts on the second credential.
#[test]
fn bedrock_credential_refusals_still_fail_over_to_the_next_pair() {
    let mock = MockUpstream::with_aws(AWS_PAIRS[1].0, AWS_PAIRS[1].1, "us-west-2").unwrap();
    let gw = two_credential_bedrock_gateway(&mock);
    let token = gw.token("frank");
    let path = "/api/v2/aibridge/anthropic-bedrock/v1/messages";
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token)], SONNET_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.requests();
    assert_eq!(seen.iter().map(|q| q.sigv4_valid).collect::<Vec<_>>(), [Some(false), Some(true)]);
    assert_eq!(seen.iter().map(signed_by).collect::<Vec<_>>(), [AWS_PAIRS[0].0, AWS_PAIRS[1].0]);
    mock.clear();
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token)], SONNET_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests().iter().map(signed_by).collect::<Vec<_>>(), [AWS_PAIRS[1].0]);
}

#[test]
fn bedrock_without_an_aws_credential_is_the_gateways_fault_and_never_goes_out_unsigned() {
    let mock = MockUpstream::start().unwrap();
    // The gateway runs with a cleared environment: no AWS_* variables stand in for the missing key.
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "anthropic-bedrock"),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_BASE_URL", &mock.base_url()),
        ("CODER_AIBRIDGE_PROVIDER_0_BEDROCK_REGION", "us-west-2"),
    ]);
    let token = gw.token("dave");
    let path = "/api/v2/aibridge/anthropic-bedrock/v1/messages";
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token)], SONNET_JSON.as_bytes());
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "api_error");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("AWS access key"), "{}", r.text());
    assert!(mock.requests().is_empty(), "nothing unsigned reached the upstream");
    // The client's body was fine and the attempt is part of the audit trail, as failed.
    assert_eq!(
        wait_count(
            &gw.db,
            "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL AND status = 'failed'",
            1
        ),
        1
    );

    // A body Bedrock cannot take is still the client's fault.
    let r = request(gw.addr, "POST", path, &[("X-Api-Key", &token)], br#"{"model":5,"messages":[]}"#);
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn key_pools_fail_over_on_429_and_401_before_the_client_sees_anything() {
    let mock = MockUpstream::start().unwrap();
    // One worker keeps the sequence on one connection simple; sharing across workers is tested in key_health.rs.
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_WORKERS", "1"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEYS", "sk-key-one-00000001,sk-key-two-00000002,sk-key-three-00003"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("{}/v1", mock.base_url())),
    ]);
    let token = gw.token("carol");
    let auth = format!("Bearer {token}");
    let rules = "sk-key-one-00000001=429,sk-key-two-00000002=401";
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth), ("x-mock-status-for-key", rules)],
        CHAT.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let keys: Vec<String> = mock.requests().iter().map(|q| q.header("authorization").unwrap().to_string()).collect();
    assert_eq!(keys, ["Bearer sk-key-one-00000001", "Bearer sk-key-two-00000002", "Bearer sk-key-three-00003"]);
    assert_eq!(
        wait_count(
            &gw.db,
            "SELECT COUNT(*) FROM aibridge_interceptions WHERE credential_hint = 'sk-k…0003' AND ended_at IS NOT NULL",
            1
        ),
        1
    );

    // Key one rests, key two is disabled: the next request goes straight to key three.
    mock.clear();
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        CHAT.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let keys: Vec<String> = mock.requests().iter().map(|q| q.header("authorization").unwrap().to_string()).collect();
    assert_eq!(keys, ["Bearer sk-key-three-00003"]);

    // When the last healthy key is rate limited too, the client gets the provider's own error.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth), ("x-mock-status-for-key", "sk-key-three-00003=429"), ("x-mock-retry-after", "30")],
        CHAT.as_bytes(),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("30"), "the provider's own answer");
    assert!(r.json()["error"]["message"].is_string());
    // And while every key rests, the gateway answers 429 itself without calling the provider.
    mock.clear();
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        CHAT.as_bytes(),
    );
    assert_eq!(r.status, 429);
    assert!(mock.requests().is_empty());
}

#[test]
fn copilot_and_chatgpt_use_the_users_own_bearer_token() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "copilot"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &mock.base_url()),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_1_NAME", "chatgpt"),
        ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", &format!("{}/backend-api/codex", mock.base_url())),
    ]);
    let token = gw.token("dana");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/copilot/chat/completions",
        &[
            ("X-Coder-AI-Governance-Token", &token),
            ("Authorization", "Bearer ghu_usercopilottoken0001"),
            ("Editor-Version", "vscode/1.99.0"),
            ("Copilot-Integration-Id", "vscode-chat"),
            ("User-Agent", "GitHubCopilotChat/0.26.0"),
        ],
        CHAT.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let up = mock.requests().pop().unwrap();
    assert_eq!(up.path, "/chat/completions");
    assert_eq!(up.header("authorization"), Some("Bearer ghu_usercopilottoken0001"));
    assert_eq!(up.header("editor-version"), Some("vscode/1.99.0"));
    assert_eq!(up.header("copilot-integration-id"), Some("vscode-chat"));

    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/chatgpt/responses",
        &[("X-Coder-AI-Governance-Token", &token), ("Authorization", "Bearer chatgpt-session-token-0001"), ("User-Agent", "codex_cli_rs/0.50.0")],
        br#"{"model":"gpt-5-codex","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"fix it"}]}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("event: response.completed"));
    let up = mock.requests().pop().unwrap();
    assert_eq!(up.path, "/backend-api/codex/responses");
    assert_eq!(up.header("authorization"), Some("Bearer chatgpt-session-token-0001"));

    assert_eq!(
        wait_count(
            &gw.db,
            "SELECT COUNT(*) FROM aibridge_interceptions WHERE credential_kind = 'byok' AND ended_at IS NOT NULL",
            2
        ),
        2
    );
    let providers: Vec<(String, String)> = {
        let c = db(&gw.db);
        let mut st =
            c.prepare("SELECT provider, provider_name FROM aibridge_interceptions ORDER BY started_at").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(
        providers,
        [("copilot".to_string(), "copilot".to_string()), ("openai".to_string(), "chatgpt".to_string())]
    );
}

#[test]
fn the_readme_multi_instance_example_starts_and_routes_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("CODER_AIBRIDGE_PROVIDER_0_NAME=anthropic-corp").expect("example in README");
    let block_start = readme[..start].rfind("```").unwrap();
    let block_end = block_start + 3 + readme[block_start + 3..].find("```").unwrap();
    let vars: Vec<(String, String)> = readme[block_start..block_end]
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("CODER_AIBRIDGE_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(vars.len(), 16, "{vars:?}");
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let gw = Gateway::start(&env);
    let token = gw.token("erin");
    // Those hosts are real and not ours: no request may leave this machine. A body that fails inspection
    // shows the route exists (400 from the gateway, in the provider's shape) without calling upstream.
    for name in ["anthropic-corp", "anthropic-direct", "anthropic-bedrock"] {
        let r = request(
            gw.addr,
            "POST",
            &format!("/api/v2/aibridge/{name}/v1/messages"),
            &[("X-Api-Key", &token)],
            b"{not json",
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.json()["type"], "error", "{name}");
    }
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/azure-openai/v1/chat/completions",
        &[("Authorization", &format!("Bearer {token}"))],
        b"{not json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string());
    for name in ["anthropic", "openai"] {
        let r = request(
            gw.addr,
            "POST",
            &format!("/api/v2/aibridge/{name}/v1/messages"),
            &[("X-Api-Key", &token)],
            b"{not json",
        );
        assert_eq!(r.status, 404, "no legacy {name} provider when only indexed ones are configured");
    }
}
