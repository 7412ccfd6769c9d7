//! Requests shaped as the coding agents send them (bodies from `tests/fixtures/requests`, their real
//! headers), through a real gateway: the record holds what the person typed as the prompt, not the
//! context blocks the agent put before it, and the session id from where each agent puts it.

use aibridged::mock::MockUpstream;

use crate::support::*;

const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const RESPONSES: &str = "/api/v2/aibridge/openai/v1/responses";
const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start_on(&mock.base_url(), ("sk-central-openai-0123456789", "sk-ant-central-0123456789"), &[])
}

/// What was recorded for one interception.
#[derive(Debug, PartialEq)]
struct Recorded {
    client: String,
    session: Option<String>,
    prompts: Vec<String>,
}

/// Sends one request, waits until its interception has ended, and reads back what was recorded.
fn intercept(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> Recorded {
    let ended = "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL";
    let before: i64 = db(&gw.db).query_row(ended, [], |r| r.get(0)).unwrap_or(0);
    let r = request(gw.addr, "POST", path, headers, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wait_count(&gw.db, ended, before + 1), before + 1);
    let c = db(&gw.db);
    let (id, client, session): (String, String, Option<String>) = c
        .query_row(
            "SELECT id, client, client_session_id FROM aibridge_interceptions ORDER BY started_at DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut st = c.prepare("SELECT prompt FROM aibridge_user_prompts WHERE interception_id = ?1").unwrap();
    let prompts = st.query_map([&id], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    Recorded { client, session, prompts }
}

/// Claude Code's first turn: two `<system-reminder>` blocks then the typed text, and no session header,
/// only `metadata.user_id` as JSON; an older build's tool-result turn with the legacy user id.
#[test]
fn claude_code_records_the_typed_prompt_and_the_session_from_metadata() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let token = gw.token("dev");
    let headers = [
        ("X-Api-Key", token.as_str()),
        ("User-Agent", "claude-cli/2.0.14 (external, cli)"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14"),
        ("x-app", "cli"),
        ("Content-Type", "application/json"),
    ];
    let body = fixture("claude_code_first_turn.json");
    let rec = intercept(&gw, MESSAGES, &headers, &body);
    assert_eq!(
        rec,
        Recorded {
            client: "claude-code".into(),
            session: Some("0199e3a4-7b2c-7d41-9f3e-5a6b7c8d9e0f".into()),
            prompts: vec!["why does `cargo test` fail on main? \"fix\" it".into()],
        }
    );
    // The provider still gets the whole message: only the record is narrowed.
    let seen = mock.requests().pop().expect("the mock saw the request");
    assert_eq!(seen.body, body.as_bytes());

    let rec = intercept(&gw, MESSAGES, &headers, &fixture("claude_code_tool_result.json"));
    assert_eq!(rec.session.as_deref(), Some("3a1f6c2e-8b4d-4e9a-b7c1-2d5e8f0a3b6c"));
    assert!(rec.prompts.is_empty(), "a tool-result turn has no typed prompt: {:?}", rec.prompts);

    // The session header wins over the body.
    let with_header: Vec<(&str, &str)> =
        headers.iter().copied().chain([("X-Claude-Code-Session-Id", "hdr-session-1")]).collect();
    let rec = intercept(&gw, MESSAGES, &with_header, &fixture("claude_code_follow_up.json"));
    assert_eq!(
        (rec.session.as_deref(), rec.prompts.as_slice()),
        (Some("hdr-session-1"), &["now sort them by size".to_owned()][..])
    );
}

/// Codex 0.17x: AGENTS.md and environment context as their own user messages before the typed one, and
/// the session in the hyphenated `session-id` header (with `thread-id`).
#[test]
fn codex_records_the_typed_prompt_and_the_hyphenated_session_header() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let auth = format!("Bearer {}", gw.token("dev"));
    let headers = [
        ("Authorization", auth.as_str()),
        ("User-Agent", "codex_cli_rs/0.47.0 (Ubuntu 24.04; x86_64) xterm-256color"),
        ("originator", "codex_cli_rs"),
        ("version", "0.47.0"),
        ("session-id", "0199e3b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b"),
        ("thread-id", "0199e3b0-1c2d-7e3f-8a4b-5c6d7e8f9a0c"),
        ("Accept", "text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    let rec = intercept(&gw, RESPONSES, &headers, &fixture("codex_responses_turn.json"));
    assert_eq!(
        rec,
        Recorded {
            client: "codex".into(),
            session: Some("0199e3b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b".into()),
            prompts: vec!["add a --verbose flag to the CLI".into()],
        }
    );
    // Without `session-id`, `thread-id` names the session.
    let rec = intercept(&gw, RESPONSES, &[headers[0], headers[1], headers[5]], &fixture("codex_responses_turn.json"));
    assert_eq!(rec.session.as_deref(), Some("0199e3b0-1c2d-7e3f-8a4b-5c6d7e8f9a0c"));
}

/// The SDKs: the last text part of a chat message with an image is the prompt.
#[test]
fn sdk_chat_with_an_image_records_the_text() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let auth = format!("Bearer {}", gw.token("dev"));
    let headers = [("Authorization", auth.as_str()), ("User-Agent", "OpenAI/Python 1.109.1")];
    let rec = intercept(&gw, CHAT, &headers, &fixture("openai_sdk_chat_image.json"));
    assert_eq!(
        rec,
        Recorded { client: "unknown".into(), session: None, prompts: vec!["What is in this image?".into()] }
    );
}
