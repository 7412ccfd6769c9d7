//! An LLM request reaches the upstream at most once: a pooled connection the upstream closed while idle
//! is replaced before anything is written, and a connection that dies after the request was written is
//! a 502 and a failed interception, never a second (billed) request. Counted at the mock.

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi"}]}"#;
const MSG_JSON: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Say hi"}]}"#;

/// One worker, so every request shares one upstream pool.
fn gateway(mock: &MockUpstream) -> Gateway {
    Gateway::start_on(
        &mock.base_url(),
        ("sk-test-openai-key-0123456789", "sk-ant-test-key-0123456789"),
        &[("CODER_AIBRIDGE_WORKERS", "1")],
    )
}

fn headers<'a>(auth: &'a str, path: &str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = if path == MESSAGES { vec![("X-Api-Key", auth)] } else { vec![("Authorization", auth)] };
    h.extend_from_slice(extra);
    h
}

fn body(path: &str) -> &'static [u8] {
    if path == MESSAGES {
        MSG_JSON.as_bytes()
    } else {
        CHAT_JSON.as_bytes()
    }
}

#[test]
fn a_pooled_connection_closed_while_idle_is_replaced_before_the_request_is_sent() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let token = gw.token("ada");
    let auth = format!("Bearer {token}");
    let r = request(gw.addr, "POST", CHAT, &headers(&auth, CHAT, &[("x-mock-hang-up", "after-answer")]), body(CHAT));
    assert_eq!(r.status, 200, "{}", r.text());
    // The answer was framed keep-alive, so the gateway pooled the connection the mock then closed.
    wait_until("the mock closed the idle connection", std::time::Duration::from_secs(10), || {
        mock.closed_connections() == 1
    });
    mock.clear();
    let r = request(gw.addr, "POST", CHAT, &headers(&auth, CHAT, &[]), body(CHAT));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "the request reached the upstream exactly once");
    assert_eq!(seen[0].connection, 2, "on a fresh connection, not the closed pooled one");
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'completed'", 2), 2);
}

/// Warms the pool with one answered request, then sends one the mock hangs up on after reading it.
fn hang_up_after_the_request(path: &str, hang_up: &str) {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock);
    let token = gw.token("bob");
    let auth = if path == MESSAGES { token.clone() } else { format!("Bearer {token}") };
    let r = request(gw.addr, "POST", path, &headers(&auth, path, &[]), body(path));
    assert_eq!(r.status, 200, "{}", r.text());
    let pooled = mock.requests()[0].connection;
    mock.clear();

    let r = request(gw.addr, "POST", path, &headers(&auth, path, &[("x-mock-hang-up", hang_up)]), body(path));
    assert_eq!(r.status, 502, "{hang_up}: {}", r.text());
    let error = r.json();
    if path == MESSAGES {
        assert_eq!(error["type"], "error", "{error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    } else {
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "{hang_up}: the request reached the upstream once and was not sent again");
    assert_eq!(seen[0].connection, pooled, "{hang_up}: the request went on the reused pooled connection");
    let failed = wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'failed'", 1);
    assert_eq!(failed, 1, "{hang_up}: the interception is recorded failed");

    // The gateway keeps serving on a new connection.
    let r = request(gw.addr, "POST", path, &headers(&auth, path, &[]), body(path));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn an_upstream_closing_after_reading_the_request_is_a_502_and_never_a_second_request() {
    hang_up_after_the_request(CHAT, "close");
}

#[test]
fn an_upstream_resetting_after_reading_the_request_is_a_502_and_never_a_second_request() {
    hang_up_after_the_request(CHAT, "reset");
}

#[test]
fn an_upstream_resetting_mid_response_head_is_a_502_and_never_a_second_request() {
    hang_up_after_the_request(MESSAGES, "mid-head");
}
