//! Relay behaviour: byte-exact bodies and streams, credential injection and auth stripping, pass-through
//! routes, upstream errors, several instances of one type, disconnects and resets.

use std::io::{Read, Write};
use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

fn openai_gateway(mock: &MockUpstream, key: &str) -> Gateway {
    openai_gateway_with(mock, key, &[])
}

fn openai_gateway_with(mock: &MockUpstream, key: &str, extra: &[(&str, &str)]) -> Gateway {
    let openai = format!("{}/v1", mock.base_url());
    let anthropic = mock.base_url();
    let mut env = vec![
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", key),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", openai.as_str()),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_1_KEY", "sk-ant-test-key-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", anthropic.as_str()),
    ];
    env.extend_from_slice(extra);
    Gateway::start(&env)
}

const CHAT_STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi"}]}"#;
const MSG_STREAM: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;

#[test]
fn fixture_streams_and_bodies_are_relayed_byte_for_byte() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("alice");
    let auth = format!("Bearer {token}");
    let fixture_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (file, route, body) in [
        ("chat/parallel_tools/stream.sse", "/api/v2/aibridge/openai/v1/chat/completions", CHAT_STREAM),
        ("chat/json_tools/body.json", "/api/v2/aibridge/openai/v1/chat/completions", CHAT_JSON),
        ("messages/thinking_tools_cached/stream.sse", "/api/v2/aibridge/anthropic/v1/messages", MSG_STREAM),
        ("messages/json_thinking_tools/body.json", "/api/v2/aibridge/anthropic/v1/messages", MSG_STREAM),
        ("responses/reasoning_tools_cached/stream.sse", "/api/v2/aibridge/openai/v1/responses", CHAT_STREAM),
    ] {
        let path = fixture_dir.join(file);
        let expected = std::fs::read(&path).unwrap();
        let path_s = path.display().to_string();
        let via_gw = request(
            gw.addr,
            "POST",
            route,
            &[("Authorization", &auth), ("x-mock-body-file", &path_s)],
            body.as_bytes(),
        );
        assert_eq!(via_gw.status, 200, "{file}: {}", via_gw.text());
        assert_eq!(via_gw.body, expected, "{file}: payload differs from what the upstream sent");
        // The wire bytes (framing included) equal what the upstream put on the wire.
        let direct_path = route.replace("/api/v2/aibridge/openai", "").replace("/api/v2/aibridge/anthropic", "");
        // The responses route takes a Responses body.
        let body = if route.ends_with("/responses") { r#"{"model":"gpt-5","stream":true,"input":"hi"}"# } else { body };
        let direct = request(mock.addr(), "POST", &direct_path, &[("x-mock-body-file", &path_s)], body.as_bytes());
        assert_eq!(via_gw.raw_body, direct.raw_body, "{file}: wire bytes differ");
        assert_eq!(via_gw.header("content-type"), direct.header("content-type"));
    }
}

#[test]
fn generated_streams_match_direct_bytes_and_keys_are_swapped() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("alice");
    let auth = format!("Bearer {token}");

    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[
            ("Authorization", &auth),
            ("User-Agent", "codex_cli_rs/0.50.0"),
            ("Accept-Encoding", "gzip"),
            ("OpenAI-Beta", "x"),
        ],
        CHAT_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(text.contains("\"usage\""), "the gateway asks for usage on streams: {text}");

    let seen = mock.requests();
    let last = seen.last().expect("mock saw the request");
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.header("authorization"), Some("Bearer sk-test-openai-key-0123456789"), "instance key injected");
    assert_eq!(last.header("accept-encoding"), None, "Accept-Encoding is not forwarded");
    assert_eq!(last.header("openai-beta"), Some("x"), "other client headers are forwarded");
    assert_eq!(last.header("user-agent"), Some("codex_cli_rs/0.50.0"));
    let sent: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(!String::from_utf8_lossy(&last.body).contains(&token));

    // Anthropic: the gateway token in X-Api-Key is replaced by the instance key.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages",
        &[
            ("X-Api-Key", &token),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
        MSG_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("event: message_stop"));
    let seen = mock.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/v1/messages");
    assert_eq!(last.header("x-api-key"), Some("sk-ant-test-key-0123456789"));
    assert_eq!(last.header("authorization"), None);
    assert_eq!(last.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
    assert_eq!(last.body, MSG_STREAM.as_bytes(), "messages bodies go upstream unchanged");
    for req in mock.requests() {
        for (name, value) in &req.headers {
            assert!(!value.contains(&token), "gateway token leaked upstream in {name}");
        }
    }
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("bob");
    let auth = format!("Bearer {token}");
    let mut c = Client::connect(gw.addr);
    for i in 0..20 {
        let body = if i % 2 == 0 { CHAT_JSON } else { CHAT_STREAM };
        let r = c.request(
            "POST",
            "/api/v2/aibridge/openai/v1/chat/completions",
            &[("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert!(r.complete);
    }
    let r = c.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn passthrough_routes_and_upstream_errors() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("carol");
    let auth = format!("Bearer {token}");
    let r = request(gw.addr, "GET", "/api/v2/aibridge/openai/v1/models", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["data"].is_array());
    assert_eq!(mock.requests().last().unwrap().path, "/v1/models");

    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages/count_tokens",
        &[("X-Api-Key", &token)],
        MSG_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The upstream's status and body reach the client unchanged.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth), ("x-mock-status", "429"), ("x-mock-retry-after", "7")],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.json()["error"]["message"].is_string());
    let direct = request(
        mock.addr(),
        "POST",
        "/v1/chat/completions",
        &[("x-mock-status", "429"), ("x-mock-retry-after", "7")],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.body, direct.body);
}

#[test]
fn instances_of_one_type_route_by_name_to_their_upstreams() {
    let a = MockUpstream::start().unwrap();
    let b = MockUpstream::start().unwrap();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_NAME", "anthropic-corp"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", "sk-ant-corp-xxx-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("{}/anthropic", a.base_url())),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_1_NAME", "anthropic-direct"),
        ("CODER_AIBRIDGE_PROVIDER_1_KEY", "sk-ant-direct-yyy-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", &b.base_url()),
    ]);
    let token = gw.token("dave");
    for (name, mock, key, path) in [
        ("anthropic-corp", &a, "sk-ant-corp-xxx-0123456789", "/anthropic/v1/messages"),
        ("anthropic-direct", &b, "sk-ant-direct-yyy-0123456789", "/v1/messages"),
    ] {
        let r = request(
            gw.addr,
            "POST",
            &format!("/api/v2/aibridge/{name}/v1/messages"),
            &[("X-Api-Key", &token)],
            MSG_STREAM.as_bytes(),
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let seen = mock.requests();
        assert_eq!(seen.len(), 1, "{name} went to its own upstream only");
        assert_eq!(seen[0].path, path);
        assert_eq!(seen[0].header("x-api-key"), Some(key));
    }
    // The default legacy names do not exist when only indexed providers are configured.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &format!("Bearer {token}"))],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn client_disconnect_mid_stream_closes_only_that_upstream() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("erin");
    let auth = format!("Bearer {token}");
    {
        let mut c = Client::connect(gw.addr);
        c.send(
            "POST",
            "/api/v2/aibridge/openai/v1/chat/completions",
            &[("Authorization", &auth), ("x-mock-delay-ms", "50"), ("x-mock-events", "200")],
            CHAT_STREAM.as_bytes(),
        );
        let mut first = [0u8; 64];
        let n = c.stream.read(&mut first).unwrap();
        assert!(n > 0);
        // Drop the connection mid-stream.
    }
    // The gateway noticed: the interception ended as a disconnect.
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1),
        1
    );
    // The gateway is still serving, on new connections and on the same worker pool.
    for _ in 0..4 {
        let r = request(
            gw.addr,
            "POST",
            "/api/v2/aibridge/openai/v1/chat/completions",
            &[("Authorization", &auth)],
            CHAT_STREAM.as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert!(r.text().contains("[DONE]"));
    }
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1),
        1
    );
}

#[test]
fn upstream_reset_mid_stream_ends_the_client_stream_and_the_gateway_keeps_serving() {
    let mock = MockUpstream::start().unwrap();
    let gw = openai_gateway(&mock, "sk-test-openai-key-0123456789");
    let token = gw.token("frank");
    let auth = format!("Bearer {token}");
    let mut c = Client::connect(gw.addr);
    let r = c.request(
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth), ("x-mock-reset-after", "2")],
        CHAT_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a cut stream must not look complete to the client");
    assert!(c.is_closed(), "the client connection is closed after a cut stream");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        CHAT_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'failed'", 1), 1);

    // Garbage instead of HTTP: a 502 in the provider's shape.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth), ("x-mock-garbage", "1")],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 502);
    assert!(r.json()["error"]["message"].is_string());
}

#[test]
fn unreachable_upstream_is_a_502_in_the_provider_shape() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("http://127.0.0.1:{port}")),
    ]);
    let token = gw.token("gina");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages",
        &[("X-Api-Key", &token)],
        MSG_STREAM.as_bytes(),
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "api_error");
    let _ = std::io::stdout().flush();
}

#[test]
fn a_dead_pooled_connection_is_replaced_and_the_request_sent_once() {
    let mock = MockUpstream::start().unwrap();
    let addr = mock.addr();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_WORKERS", "1"),
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", "sk-test-openai-key-0123456789"),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("{}/v1", mock.base_url())),
    ]);
    let token = gw.token("hana");
    let auth = format!("Bearer {token}");
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200);
    // The upstream restarts: the gateway's pooled keep-alive connection is now dead.
    drop(mock);
    let mock = MockUpstream::start_on(&addr.to_string()).unwrap();
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        CHAT_JSON.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests().len(), 1, "the request reached the new upstream exactly once");
}

#[test]
fn a_client_leaving_a_quiet_stream_is_noticed_without_waiting_for_the_next_event() {
    let mock = MockUpstream::start().unwrap();
    // The watch starts after 200 ms of upstream silence instead of the default 2 s.
    let gw = openai_gateway_with(
        &mock,
        "sk-test-openai-key-0123456789",
        &[("CODER_AIBRIDGE_CLIENT_WATCH_AFTER_IDLE", "200ms")],
    );
    let token = gw.token("ivan");
    let auth = format!("Bearer {token}");
    {
        let mut c = Client::connect(gw.addr);
        // Events 30 s apart: after the first one the stream is quiet.
        c.send(
            "POST",
            "/api/v2/aibridge/openai/v1/chat/completions",
            &[("Authorization", &auth), ("x-mock-delay-ms", "30000"), ("x-mock-events", "5")],
            CHAT_STREAM.as_bytes(),
        );
        let mut first = [0u8; 64];
        assert!(c.stream.read(&mut first).unwrap() > 0);
    }
    let t0 = std::time::Instant::now();
    let n = wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1);
    assert_eq!(n, 1, "the abandoned stream is recorded as client_disconnected");
    assert!(t0.elapsed() < Duration::from_secs(8), "noticed after {:?}, long before the next event", t0.elapsed());
}
