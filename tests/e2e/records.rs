//! What gets recorded, read back from SQLite and from the JSON log: one interception per intercepted
//! request with its user, model, client, prompt, token usage (with each provider's arithmetic), tool calls
//! and thoughts; the end status of cut and failed streams; nothing for pass-through routes.

use aibridged::mock::MockUpstream;

use crate::support::*;

fn gateway(mock: &MockUpstream, extra: &[(&str, &str)]) -> Gateway {
    let openai = format!("{}/v1", mock.base_url());
    let anthropic = mock.base_url();
    let mut env = vec![
        ("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"),
        ("CODER_AIBRIDGE_OPENAI_BASE_URL", openai.as_str()),
        ("CODER_AIBRIDGE_ANTHROPIC_KEY", "sk-ant-central-0123456789"),
        ("CODER_AIBRIDGE_ANTHROPIC_BASE_URL", anthropic.as_str()),
    ];
    env.extend_from_slice(extra);
    Gateway::start(&env)
}

#[derive(Debug, PartialEq)]
struct Usage {
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
    reasoning: i64,
}

/// Sends one request and returns its interception id once its end row is committed.
fn intercept(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let before: i64 = db(&gw.db)
        .query_row("SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", [], |r| r.get(0))
        .unwrap_or(0);
    let r = request(gw.addr, "POST", path, headers, body.as_bytes());
    assert!(r.status != 502 && r.status != 401 && r.status != 404, "{}", r.text());
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", before + 1),
        before + 1
    );
    db(&gw.db)
        .query_row("SELECT id FROM aibridge_interceptions ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0))
        .unwrap()
}

fn usage(gw: &Gateway, id: &str) -> Usage {
    db(&gw.db)
        .query_row(
            "SELECT input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens FROM aibridge_token_usages WHERE interception_id = ?1",
            [id],
            |r| Ok(Usage { input: r.get(0)?, output: r.get(1)?, cache_read: r.get(2)?, cache_write: r.get(3)?, reasoning: r.get(4)? }),
        )
        .unwrap_or_else(|e| panic!("no token usage for {id}: {e}"))
}

fn tools(gw: &Gateway, id: &str) -> Vec<(String, serde_json::Value)> {
    let c = db(&gw.db);
    let mut st =
        c.prepare("SELECT tool, input FROM aibridge_tool_usages WHERE interception_id = ?1 ORDER BY rowid").unwrap();
    st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (tool, input) = r.unwrap();
            (
                tool,
                serde_json::from_str(&input)
                    .unwrap_or_else(|e| panic!("tool input is not complete JSON ({e}): {input}")),
            )
        })
        .collect()
}

fn one(gw: &Gateway, sql: &str, id: &str) -> String {
    db(&gw.db).query_row(sql, [id], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const RESPONSES: &str = "/api/v2/aibridge/openai/v1/responses";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";

#[test]
fn chat_completions_records_usage_tools_and_the_user_prompt() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("alice");
    let auth = format!("Bearer {token}");
    let ua = ("User-Agent", "codex_cli_rs/0.50.0 (Linux; x86_64)");

    // Streaming text: usage is requested by the gateway and recorded.
    let id = intercept(
        &gw,
        CHAT,
        &[("Authorization", &auth), ua],
        r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Say hi"}]}"#,
    );
    assert_eq!(usage(&gw, &id), Usage { input: 12, output: 5, cache_read: 0, cache_write: 0, reasoning: 0 });
    assert_eq!(one(&gw, "SELECT prompt FROM aibridge_user_prompts WHERE interception_id = ?1", &id), "Say hi");
    assert_eq!(one(&gw, "SELECT initiator_id FROM aibridge_interceptions WHERE id = ?1", &id), "alice");
    assert_eq!(one(&gw, "SELECT model FROM aibridge_interceptions WHERE id = ?1", &id), "gpt-4o");
    assert_eq!(one(&gw, "SELECT client FROM aibridge_interceptions WHERE id = ?1", &id), "codex");
    assert_eq!(
        one(&gw, "SELECT provider || '/' || provider_name FROM aibridge_interceptions WHERE id = ?1", &id),
        "openai/openai"
    );
    assert_eq!(one(&gw, "SELECT status FROM aibridge_interceptions WHERE id = ?1", &id), "completed");
    assert_eq!(one(&gw, "SELECT credential_hint FROM aibridge_interceptions WHERE id = ?1", &id), "sk-c…6789");
    let msg_id = one(&gw, "SELECT msg_id FROM aibridge_token_usages WHERE interception_id = ?1", &id);
    assert!(msg_id.starts_with("chatcmpl-"), "{msg_id}");

    // Cached and reasoning tokens: input excludes the cached ones.
    let id = intercept(
        &gw,
        CHAT,
        &[("Authorization", &auth), ("x-mock-scenario", "cached")],
        r#"{"model":"o3","stream":true,"messages":[{"role":"user","content":"again"}]}"#,
    );
    assert_eq!(
        usage(&gw, &id),
        Usage { input: 20, output: usage(&gw, &id).output, cache_read: 100, cache_write: 0, reasoning: 16 }
    );

    // Parallel tool calls, streamed and as JSON.
    for stream in [true, false] {
        let body = format!(
            r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"weather and time in Paris?"}}]}}"#
        );
        let id = intercept(&gw, CHAT, &[("Authorization", &auth), ("x-mock-scenario", "tools")], &body);
        let t = tools(&gw, &id);
        assert_eq!(
            t.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["get_weather", "get_time"],
            "stream={stream}"
        );
        assert!(t[0].1.to_string().contains("Paris"), "{:?}", t[0].1);
        assert!(t[1].1.to_string().contains("Europe/Paris"), "{:?}", t[1].1);
        let ids: Vec<String> = {
            let c = db(&gw.db);
            let mut st = c.prepare("SELECT tool_call_id FROM aibridge_tool_usages WHERE interception_id = ?1").unwrap();
            st.query_map([&id], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        assert!(ids.iter().all(|i| !i.is_empty()) && ids[0] != ids[1], "{ids:?}");
    }

    // The last message is the assistant's: no prompt is recorded.
    let id = intercept(
        &gw,
        CHAT,
        &[("Authorization", &auth)],
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"prefill"}]}"#,
    );
    let n: i64 = db(&gw.db)
        .query_row("SELECT COUNT(*) FROM aibridge_user_prompts WHERE interception_id = ?1", [&id], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn messages_record_cache_arithmetic_thinking_and_tool_use() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("bob");
    let cc = [
        ("X-Api-Key", token.as_str()),
        ("User-Agent", "claude-cli/2.0.14 (external, cli)"),
        ("X-Claude-Code-Session-Id", "3f1e-session-42"),
    ];

    let id = intercept(
        &gw,
        MESSAGES,
        &[cc[0], cc[1], cc[2], ("x-mock-scenario", "cached")],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"part one"},{"type":"text","text":"part two"}]}]}"#,
    );
    let u = usage(&gw, &id);
    assert_eq!((u.input, u.cache_read, u.cache_write), (20, 100, 10));
    assert_eq!(one(&gw, "SELECT client FROM aibridge_interceptions WHERE id = ?1", &id), "claude-code");
    assert_eq!(one(&gw, "SELECT client_session_id FROM aibridge_interceptions WHERE id = ?1", &id), "3f1e-session-42");
    let prompt = one(&gw, "SELECT prompt FROM aibridge_user_prompts WHERE interception_id = ?1", &id);
    // The last text block is the prompt (agents put their context in the blocks before it).
    assert_eq!(prompt, "part two");
    let msg_id = one(&gw, "SELECT msg_id FROM aibridge_token_usages WHERE interception_id = ?1", &id);
    assert!(msg_id.starts_with("msg_"), "{msg_id}");

    for stream in [true, false] {
        let body = format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":2048,"stream":{stream},"thinking":{{"type":"enabled","budget_tokens":1024}},"messages":[{{"role":"user","content":"think then act"}}]}}"#
        );
        let id = intercept(&gw, MESSAGES, &[cc[0], ("x-mock-scenario", "thinking")], &body);
        assert_eq!(usage(&gw, &id).output, 15, "stream={stream}: final cumulative output_tokens");
        let thought = one(&gw, "SELECT content FROM aibridge_model_thoughts WHERE interception_id = ?1", &id);
        assert!(!thought.is_empty());
        assert_eq!(one(&gw, "SELECT source FROM aibridge_model_thoughts WHERE interception_id = ?1", &id), "thinking");
        assert_eq!(tools(&gw, &id).len(), 1, "stream={stream}");
    }
}

#[test]
fn responses_record_usage_tools_and_reasoning_summaries() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("carol");
    let auth = format!("Bearer {token}");
    let id = intercept(
        &gw,
        RESPONSES,
        &[("Authorization", &auth), ("x-mock-scenario", "cached")],
        r#"{"model":"gpt-5","stream":true,"input":"summarise"}"#,
    );
    let u = usage(&gw, &id);
    assert_eq!((u.input, u.cache_read, u.reasoning), (20, 100, 16));
    assert_eq!(one(&gw, "SELECT prompt FROM aibridge_user_prompts WHERE interception_id = ?1", &id), "summarise");
    assert!(one(&gw, "SELECT msg_id FROM aibridge_token_usages WHERE interception_id = ?1", &id).starts_with("resp_"));

    let id = intercept(
        &gw,
        RESPONSES,
        &[("Authorization", &auth), ("x-mock-scenario", "tools")],
        r#"{"model":"gpt-5","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"weather?"}]}]}"#,
    );
    assert_eq!(tools(&gw, &id).len(), 2);
    assert_eq!(one(&gw, "SELECT prompt FROM aibridge_user_prompts WHERE interception_id = ?1", &id), "weather?");

    let id = intercept(
        &gw,
        RESPONSES,
        &[("Authorization", &auth), ("x-mock-scenario", "thinking")],
        r#"{"model":"gpt-5","stream":true,"input":"plan"}"#,
    );
    assert_eq!(
        one(&gw, "SELECT source FROM aibridge_model_thoughts WHERE interception_id = ?1", &id),
        "reasoning_summary"
    );
}

#[test]
fn cut_and_failed_streams_keep_what_was_seen() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("dave");
    // A stream that stops before message_stop: the input tokens of message_start are kept.
    let id = intercept(
        &gw,
        MESSAGES,
        &[("X-Api-Key", &token), ("x-mock-scenario", "truncated")],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(usage(&gw, &id).input, 12);
    assert_eq!(one(&gw, "SELECT status FROM aibridge_interceptions WHERE id = ?1", &id), "failed");
    // A provider error event mid-stream.
    let id = intercept(
        &gw,
        MESSAGES,
        &[("X-Api-Key", &token), ("x-mock-scenario", "error-midstream")],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(one(&gw, "SELECT status FROM aibridge_interceptions WHERE id = ?1", &id), "failed");
    assert_eq!(one(&gw, "SELECT CAST(upstream_status AS TEXT) FROM aibridge_interceptions WHERE id = ?1", &id), "200");
    // An upstream error status is recorded with it.
    let id = intercept(
        &gw,
        MESSAGES,
        &[("X-Api-Key", &token), ("x-mock-status", "529")],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(one(&gw, "SELECT CAST(upstream_status AS TEXT) FROM aibridge_interceptions WHERE id = ?1", &id), "529");
    // Pass-through routes are not recorded.
    let before: i64 = db(&gw.db).query_row("SELECT COUNT(*) FROM aibridge_interceptions", [], |r| r.get(0)).unwrap();
    let r = request(gw.addr, "GET", "/api/v2/aibridge/anthropic/v1/models", &[("X-Api-Key", &token)], b"");
    assert_eq!(r.status, 200);
    // A record of the pass-through call would have been queued before its answer, so it would be in the
    // database by the time an interception sent afterwards is.
    intercept(
        &gw,
        MESSAGES,
        &[("X-Api-Key", &token)],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let after: i64 = db(&gw.db).query_row("SELECT COUNT(*) FROM aibridge_interceptions", [], |r| r.get(0)).unwrap();
    assert_eq!(after, before + 1, "only the later interception was recorded");
}

#[test]
fn structured_logging_writes_one_line_per_record_with_the_contract_names() {
    let mock = MockUpstream::start().unwrap();
    let dir = ScratchDir::new("log");
    let log = dir.0.join("aibridged.json");
    let log_s = log.display().to_string();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_STRUCTURED_LOGGING", "true"), ("CODER_LOGGING_JSON", &log_s)]);
    let token = gw.token("erin");
    let id = intercept(
        &gw,
        MESSAGES,
        &[("X-Api-Key", &token), ("x-mock-scenario", "thinking")],
        r#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"log me"}]}"#,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines: Vec<serde_json::Value>;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["msg"] == "interception log" && v["interception_id"] == id.as_str())
            .collect();
        if lines.iter().any(|v| v["record_type"] == "interception_end") || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let types: Vec<&str> = lines.iter().map(|v| v["record_type"].as_str().unwrap()).collect();
    for t in ["interception_start", "prompt_usage", "token_usage", "tool_usage", "model_thought", "interception_end"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    for v in &lines {
        assert!(v["ts"].is_string() && v["level"].is_string(), "{v}");
        match v["record_type"].as_str().unwrap() {
            "interception_start" => {
                assert_eq!(v["initiator_id"], "erin");
                assert_eq!(v["provider"], "anthropic");
                assert_eq!(v["model"], "claude-sonnet-4-5");
            }
            "token_usage" => assert_eq!(v["output_tokens"], 15),
            "prompt_usage" => assert_eq!(v["prompt"], "log me"),
            "interception_end" => assert_eq!(v["status"], "completed"),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token) && !text.contains("sk-ant-central-0123456789"), "no secret in the log");
}
