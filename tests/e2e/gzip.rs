//! Gzip-coded upstream answers (some proxies compress although `Accept-Encoding` is not forwarded): the
//! client gets the upstream's bytes unchanged, and the gateway still records usage and tool calls from
//! the decoded body; a cut gzip stream stops observation, not the relay.

use std::io::Read;

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;
const MSG_STREAM: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;

fn gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start_on(&mock.base_url(), ("sk-central-openai-0123456789", "sk-ant-central-0123456789"), &[])
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).expect("the client got a valid gzip body");
    out
}

fn ended(gw: &Gateway) -> i64 {
    db(&gw.db)
        .query_row("SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Sends one request; returns the response and its interception id once its end row is committed.
fn intercept(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> (Response, String) {
    let before = ended(gw);
    let r = request(gw.addr, "POST", path, headers, body.as_bytes());
    let q = "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL";
    assert_eq!(wait_count(&gw.db, q, before + 1), before + 1, "the interception ends");
    let id = db(&gw.db)
        .query_row("SELECT id FROM aibridge_interceptions ORDER BY started_at DESC LIMIT 1", [], |r| r.get(0))
        .unwrap();
    (r, id)
}

/// What was recorded of one interception: status, token usage and tool calls.
#[derive(Debug, PartialEq)]
struct Recorded {
    status: String,
    usage: Option<(i64, i64, i64, i64)>,
    tools: Vec<(String, String)>,
}

fn recorded(gw: &Gateway, id: &str) -> Recorded {
    let c = db(&gw.db);
    let status = c.query_row("SELECT status FROM aibridge_interceptions WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    let usage = c
        .query_row(
            "SELECT input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens FROM aibridge_token_usages WHERE interception_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .ok();
    let mut st =
        c.prepare("SELECT tool, input FROM aibridge_tool_usages WHERE interception_id = ?1 ORDER BY rowid").unwrap();
    let tools = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    Recorded { status, usage, tools }
}

#[test]
fn gzip_streams_and_bodies_are_relayed_unchanged_and_recorded_as_if_plain() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let auth = format!("Bearer {}", gw.token("alice"));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (file, route, body) in [
        ("messages/thinking_tools_cached/stream.sse", MESSAGES, MSG_STREAM),
        ("chat/parallel_tools/stream.sse", CHAT, CHAT_STREAM),
        ("chat/json_tools/body.json", CHAT, CHAT_JSON),
        ("messages/json_thinking_tools/body.json", MESSAGES, MSG_STREAM),
    ] {
        let path = fixtures.join(file);
        let path_s = path.display().to_string();
        let plain_headers = [("Authorization", auth.as_str()), ("x-mock-body-file", path_s.as_str())];
        let (plain, plain_id) = intercept(&gw, route, &plain_headers, body);
        assert_eq!(plain.status, 200, "{file}");
        assert_eq!(plain.header("content-encoding"), None, "{file}");

        let gzip_headers = [plain_headers[0], plain_headers[1], ("x-mock-gzip", "1")];
        let (coded, coded_id) = intercept(&gw, route, &gzip_headers, body);
        assert_eq!(coded.status, 200, "{file}");
        assert_eq!(coded.header("content-encoding"), Some("gzip"), "{file}: Content-Encoding is kept");
        // The client gets exactly the upstream's bytes, framing included.
        let direct_path = route.replace("/api/v2/aibridge/openai", "").replace("/api/v2/aibridge/anthropic", "");
        let direct = request(mock.addr(), "POST", &direct_path, &gzip_headers[1..], body.as_bytes());
        assert_eq!(direct.header("content-encoding"), Some("gzip"));
        assert_eq!(coded.raw_body, direct.raw_body, "{file}: wire bytes differ from the upstream's");
        assert_eq!(gunzip(&coded.body), std::fs::read(&path).unwrap(), "{file}");

        let (plain_rec, coded_rec) = (recorded(&gw, &plain_id), recorded(&gw, &coded_id));
        assert_eq!(plain_rec.status, "completed", "{file}");
        assert!(plain_rec.usage.is_some() && !plain_rec.tools.is_empty(), "{file}: the fixture has usage and tools");
        assert_eq!(coded_rec, plain_rec, "{file}: the gzip answer is recorded as the plain one");
    }
}

#[test]
fn generated_gzip_streams_record_usage_and_tool_calls() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let auth = format!("Bearer {}", gw.token("alice"));
    let headers = [("Authorization", auth.as_str()), ("x-mock-scenario", "tools"), ("x-mock-gzip", "1")];
    for (route, body) in [(CHAT, CHAT_STREAM), (MESSAGES, MSG_STREAM), (CHAT, CHAT_JSON)] {
        let (r, id) = intercept(&gw, route, &headers, body);
        assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "{route}");
        let text = String::from_utf8(gunzip(&r.body)).unwrap();
        let rec = recorded(&gw, &id);
        assert_eq!(rec.status, "completed", "{route}: {text}");
        assert!(rec.usage.is_some_and(|u| u.1 > 0), "{route}: usage recorded: {rec:?}");
        assert!(!rec.tools.is_empty(), "{route}: tool calls recorded: {rec:?}");
        for (tool, input) in &rec.tools {
            assert!(text.contains(tool.as_str()), "{route}: {tool} is in the answer");
            serde_json::from_str::<serde_json::Value>(input).expect("tool input is complete JSON");
        }
    }
}

#[test]
fn a_cut_gzip_body_stops_observation_not_the_relay() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let auth = format!("Bearer {}", gw.token("alice"));
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat/json_tools/body.json");
    let fixture = fixture.display().to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("x-mock-body-file", fixture.as_str()),
        ("x-mock-scenario", "truncated"),
        ("x-mock-gzip", "1"),
    ];
    let (r, id) = intercept(&gw, CHAT, &headers, CHAT_JSON);
    assert_eq!((r.status, r.complete), (200, true), "the relay goes on");
    let direct = request(mock.addr(), "POST", "/v1/chat/completions", &headers[1..], CHAT_JSON.as_bytes());
    assert_eq!(r.raw_body, direct.raw_body, "the client gets the upstream's (cut) gzip bytes unchanged");
    assert!(flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut Vec::new()).is_err(), "the gzip is cut");
    let rec = recorded(&gw, &id);
    assert_eq!(rec.usage, None, "nothing is made up from a cut body: {rec:?}");
    wait_until("the log names the stop", std::time::Duration::from_secs(10), || {
        gw.drain_log().iter().any(|l| l.contains("observation stopped") && l.contains("truncated"))
    });
}
