//! Sessions and threads through a real gateway: a Claude-Code-shaped conversation (prompt → tool_use →
//! tool_result → answer, then a second prompt in the same session) read back through the sessions API
//! and the CLI, and who may read what.

use std::net::SocketAddr;

use aibridged::mock::MockUpstream;
use serde_json::{json, Value};

use crate::support::*;

const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
pub const SESSION: &str = "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f";
const FIRST_PROMPT: &str = "What is the weather in Paris?";
const SECOND_PROMPT: &str = "And what time is it there?";

/// Sends one Claude Code request as `token` in `session`, waits until its interception ended and
/// returns the response body.
fn turn(gw: &Gateway, token: &str, session: &str, scenario: &str, messages: Value) -> String {
    let ended = "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL";
    let before: i64 = db(&gw.db).query_row(ended, [], |r| r.get(0)).unwrap_or(0);
    let body = json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 1024, "stream": true, "messages": messages});
    let r = request(
        gw.addr,
        "POST",
        MESSAGES,
        &[
            ("X-Api-Key", token),
            ("User-Agent", "claude-cli/2.0.14 (external, cli)"),
            ("X-Claude-Code-Session-Id", session),
            ("anthropic-version", "2023-06-01"),
            ("Content-Type", "application/json"),
            ("x-mock-scenario", scenario),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_count(&gw.db, ended, before + 1);
    r.text()
}

/// The tool call ids the model made in the newest interception.
fn newest_tool_call(gw: &Gateway) -> String {
    db(&gw.db)
        .query_row(
            "SELECT t.tool_call_id FROM aibridge_tool_usages t JOIN aibridge_interceptions i \
             ON i.id = t.interception_id ORDER BY i.started_at DESC, t.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("the first turn recorded a tool call")
}

/// Plays the whole conversation as `token`: returns the tool call id the first turn made.
pub fn claude_code_conversation(gw: &Gateway, token: &str, session: &str) -> String {
    let first = json!([{"role": "user", "content": FIRST_PROMPT}]);
    turn(gw, token, session, "thinking", first);
    let call = newest_tool_call(gw);
    let answer = json!([
        {"role": "user", "content": FIRST_PROMPT},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me check the weather in Paris.", "signature": "sig"},
            {"type": "tool_use", "id": call, "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call, "content": "18°C, sunny"}]}
    ]);
    turn(gw, token, session, "text", answer.clone());
    let mut second = answer.as_array().unwrap().clone();
    second.push(json!({"role": "assistant", "content": [{"type": "text", "text": "It is 18°C and sunny."}]}));
    second.push(json!({"role": "user", "content": SECOND_PROMPT}));
    turn(gw, token, session, "text", Value::Array(second));
    call
}

/// GET on the sessions API with `token` (as a Bearer token when given).
pub fn api(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(addr, "GET", path, &headers, b"")
}

fn ok_json(addr: SocketAddr, path: &str, token: &str) -> Value {
    let r = api(addr, path, Some(token));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// The conversation is one session with two threads; the first thread's two interceptions are linked
/// by the tool call, and each step carries its model, thinking, tool calls with inputs and tokens.
#[test]
fn a_claude_code_conversation_is_one_session_with_two_threads() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-openai-0123456789", "sk-ant-0123456789"), &[]);
    let admin_addr = gw.admin_addr.expect("the sessions API listens");
    let alice = gw.token("alice");
    let call = claude_code_conversation(&gw, &alice, SESSION);

    let list = ok_json(admin_addr, "/api/v2/aibridge/sessions", &alice);
    assert_eq!(list["count"], 1, "{list}");
    let s = &list["sessions"][0];
    assert_eq!(s["id"], SESSION);
    assert_eq!(s["initiator_id"], "alice");
    assert_eq!(s["client"], "claude-code");
    assert_eq!(s["threads"], 2);
    assert_eq!(s["interceptions"], 3);
    assert_eq!(s["last_prompt"], SECOND_PROMPT);
    assert_eq!(s["models"], json!(["claude-sonnet-4-5-20250929"]));
    assert!(s["token_usage_summary"]["output_tokens"].as_u64().unwrap() > 0, "{s}");

    let detail = ok_json(admin_addr, &format!("/api/v2/aibridge/sessions/{SESSION}"), &alice);
    let threads = detail["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "{detail}");
    assert_eq!(threads[0]["prompt"], FIRST_PROMPT);
    assert_eq!(threads[1]["prompt"], SECOND_PROMPT);
    let steps = threads[0]["agentic_actions"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{detail}");
    assert_eq!(steps[0]["tool_calls"][0]["id"], call);
    assert_eq!(steps[0]["tool_calls"][0]["name"], "get_weather");
    assert_eq!(steps[0]["tool_calls"][0]["input"], r#"{"city":"Paris","unit":"celsius"}"#);
    assert_eq!(steps[0]["thinking"][0]["content"], "Let me check the weather in Paris.");
    assert_eq!(steps[0]["correlating_tool_call_id"], Value::Null);
    assert_eq!(steps[1]["correlating_tool_call_id"], call);
    assert_eq!(threads[0]["id"], steps[0]["interception_id"]);
    assert_eq!(threads[0]["status"], "completed");
    assert!(steps[1]["duration_ms"].is_u64());
    assert_eq!(threads[1]["agentic_actions"].as_array().unwrap().len(), 1);
    // The same under the AI Gateway prefix.
    let again = ok_json(admin_addr, &format!("/api/v2/ai-gateway/sessions/{SESSION}"), &alice);
    assert_eq!(again, detail);

    // The thread link is in the table too.
    let linked: i64 = db(&gw.db)
        .query_row(
            "SELECT COUNT(*) FROM aibridge_interceptions WHERE correlating_tool_call_id = ?1 AND thread_root_id IS NOT NULL",
            [&call],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(linked, 1);

    // The flat list pages through all three, newest first, with a cursor.
    let mut seen = Vec::new();
    let mut path = "/api/v2/aibridge/interceptions?limit=2".to_string();
    loop {
        let page = ok_json(admin_addr, &path, &alice);
        for i in page["interceptions"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_string());
        }
        match page["next_after_id"].as_str() {
            Some(next) => path = format!("/api/v2/aibridge/interceptions?limit=2&after_id={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen.last().unwrap(), threads[0]["id"].as_str().unwrap());

    let usage = ok_json(admin_addr, "/api/v2/aibridge/usage?group_by=user,model&since=7d", &alice);
    assert_eq!(usage["groups"].as_array().unwrap().len(), 1, "{usage}");
    assert_eq!(usage["groups"][0]["user"], "alice");
    assert_eq!(usage["groups"][0]["requests"], 3);
    assert!(usage["total"]["approximate_cost_usd"].as_f64().unwrap() > 0.0, "{usage}");
    assert_eq!(usage["unpriced_models"], json!([]));

    // The CLI reads the same from the database file.
    let list: Value = serde_json::from_str(&run_cli(&gw.db, &["sessions", "list", "--json"])).unwrap();
    assert_eq!(list["sessions"][0]["id"], SESSION);
    assert_eq!(list["sessions"][0]["threads"], 2);
    let table = run_cli(&gw.db, &["sessions", "list"]);
    assert!(table.contains(SESSION) && table.contains(SECOND_PROMPT), "{table}");
    let shown: Value = serde_json::from_str(&run_cli(&gw.db, &["sessions", "show", SESSION, "--json"])).unwrap();
    assert_eq!(shown["threads"], detail["threads"]);
    let text = run_cli(&gw.db, &["sessions", "show", SESSION]);
    assert!(text.contains("thread 2") && text.contains(&format!("tool call get_weather {call}")), "{text}");
    assert!(text.contains("thinking: Let me check the weather in Paris."), "{text}");
    let by_model = run_cli(&gw.db, &["usage", "--by", "model", "--since", "7d"]);
    assert!(by_model.contains("claude-sonnet-4-5-20250929"), "{by_model}");
    let report: Value = serde_json::from_str(&run_cli(&gw.db, &["usage", "--by", "user,day", "--json"])).unwrap();
    assert_eq!(report["groups"][0]["user"], "alice");
    assert_eq!(report["total"]["requests"], 3);
}

/// A user token reads only its user's sessions; asking for another's is 403 with nothing in it; an
/// admin token reads everyone's; no token or a bad one is 401.
#[test]
fn users_see_only_their_own_sessions_and_admins_see_all() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-openai-0123456789", "sk-ant-0123456789"), &[]);
    let addr = gw.admin_addr.expect("the sessions API listens");
    let alice = gw.token("alice");
    let bob = gw.token("bob");
    let admin = create_token_with_role(&gw.db, "root", "admin");
    gw.wait_until_accepted(&admin);
    claude_code_conversation(&gw, &alice, SESSION);
    let bobs = "0c1d2e3f-4a5b-4c6d-8e9f-000000000bob";
    claude_code_conversation(&gw, &bob, bobs);

    let mine = ok_json(addr, "/api/v2/aibridge/sessions", &bob);
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["sessions"][0]["id"], bobs);

    for path in [
        format!("/api/v2/aibridge/sessions/{SESSION}"),
        format!("/api/v2/ai-gateway/sessions/{SESSION}"),
        "/api/v2/aibridge/sessions?q=initiator:alice".to_string(),
        "/api/v2/aibridge/interceptions?initiator=alice".to_string(),
        "/api/v2/aibridge/usage?initiator=alice".to_string(),
        // A session that does not exist looks exactly like another user's.
        "/api/v2/aibridge/sessions/no-such-session".to_string(),
    ] {
        let r = api(addr, &path, Some(&bob));
        assert_eq!(r.status, 403, "GET {path}: {}", r.text());
        assert_eq!(r.json(), json!({"message": "forbidden"}), "GET {path}");
        assert!(!r.text().contains("alice") && !r.text().contains(FIRST_PROMPT));
    }
    // Bob's usage and interceptions are his alone.
    let usage = ok_json(addr, "/api/v2/aibridge/usage?group_by=user", &bob);
    assert_eq!(usage["groups"].as_array().unwrap().len(), 1);
    assert_eq!(usage["groups"][0]["user"], "bob");
    let list = ok_json(addr, "/api/v2/aibridge/interceptions", &bob);
    assert!(list["interceptions"].as_array().unwrap().iter().all(|i| i["initiator_id"] == "bob"));

    let all = ok_json(addr, "/api/v2/aibridge/sessions", &admin);
    assert_eq!(all["count"], 2, "{all}");
    let only_alice = ok_json(addr, "/api/v2/aibridge/sessions?q=initiator:alice", &admin);
    assert_eq!(only_alice["count"], 1);
    assert_eq!(ok_json(addr, &format!("/api/v2/aibridge/sessions/{SESSION}"), &admin)["initiator_id"], "alice");
    assert_eq!(api(addr, "/api/v2/aibridge/sessions/no-such-session", Some(&admin)).status, 404);
    let usage = ok_json(addr, "/api/v2/aibridge/usage?group_by=user", &admin);
    assert_eq!(usage["groups"].as_array().unwrap().len(), 3 - 1, "{usage}");

    // Paging through the admin's list one session at a time visits both, newest first.
    let first = ok_json(addr, "/api/v2/aibridge/sessions?limit=1", &admin);
    assert_eq!(first["sessions"][0]["id"], bobs);
    let next = first["next_after_session_id"].as_str().unwrap().to_string();
    let second = ok_json(addr, &format!("/api/v2/aibridge/sessions?limit=1&after_session_id={next}"), &admin);
    assert_eq!(second["sessions"][0]["id"], SESSION);
    assert_eq!(second["next_after_session_id"], Value::Null);

    for token in [None, Some("aibr_000000000000_000000000000000000000000000000000000000000000000"), Some("nonsense")] {
        let r = api(addr, "/api/v2/aibridge/sessions", token);
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        assert!(!r.text().contains("alice"));
    }
    // X-Api-Key works as well as Bearer.
    let r = request(addr, "GET", "/api/v2/aibridge/sessions", &[("X-Api-Key", &alice)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(api(addr, "/api/v2/aibridge/sessions?q=colour:red", Some(&alice)).status, 400);
}

/// Without `started_after` the sessions list covers the last week (it groups only the interceptions in
/// its window, so a large database is never grouped whole) and says where its window starts; an older
/// session is listed once the search asks for it.
#[test]
fn the_sessions_list_defaults_to_the_last_week() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-openai-0123456789", "sk-ant-0123456789"), &[]);
    let addr = gw.admin_addr.expect("the sessions API listens");
    let alice = gw.token("alice");
    claude_code_conversation(&gw, &alice, SESSION);
    // A session from ten days ago, written beside the gateway's own rows (same text time format).
    let now = time::OffsetDateTime::now_utc();
    let old = (now - time::Duration::days(10)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let old = format!("{}.000000Z", &old[..19]);
    let writer = rusqlite::Connection::open(&gw.db).unwrap();
    writer.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    writer
        .execute(
            "INSERT INTO aibridge_interceptions (id, initiator_id, provider, provider_name, model, client, \
             client_session_id, started_at, ended_at, status) VALUES \
             ('0190aaaa-0000-7000-8000-000000000001', 'alice', 'anthropic', 'anthropic', 'claude-sonnet-4-5', \
             'claude-code', 'old-session', ?1, ?1, 'completed')",
            [&old],
        )
        .unwrap();

    let recent = ok_json(addr, "/api/v2/aibridge/sessions", &alice);
    assert_eq!(recent["count"], 1, "{recent}");
    assert_eq!(recent["sessions"][0]["id"], SESSION);
    let start = time::OffsetDateTime::parse(
        recent["started_after"].as_str().expect("the answer names its window"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let week_back = now - time::Duration::days(7);
    assert!((start - week_back).abs() < time::Duration::minutes(5), "window starts at {start}, not a week back");

    let all = ok_json(addr, "/api/v2/aibridge/sessions?q=started_after:30d", &alice);
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(all["sessions"][1]["id"], "old-session");
}

/// The sessions API's threads (listener and query threads) run 10 nicer than the workers, so a long
/// query yields the CPU to the data plane.
#[test]
fn the_control_plane_threads_are_nicer_than_the_workers() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), ("sk-openai-0123456789", "sk-ant-0123456789"), &[]);
    let addr = gw.admin_addr.expect("the sessions API listens");
    let alice = gw.token("alice");
    // A query starts a blocking query thread too.
    ok_json(addr, "/api/v2/aibridge/sessions", &alice);
    let mut nice_of: Vec<(String, i64)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", gw.child.id())).unwrap().flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map(|(_, c)| c.to_string()).unwrap_or_default();
        // After the command name: state(0) … nice is field 19 of stat, index 16 here.
        let nice: i64 = rest.split_whitespace().nth(16).and_then(|n| n.parse().ok()).unwrap();
        nice_of.push((comm, nice));
    }
    let of = |prefix: &str| nice_of.iter().filter(|(c, _)| c.starts_with(prefix)).map(|(_, n)| *n).collect::<Vec<_>>();
    let workers = of("aibridged-worke");
    let admin = of("aibridged-admin");
    assert!(!workers.is_empty() && admin.len() >= 2, "threads: {nice_of:?}");
    let expected = (workers[0] + 10).min(19);
    assert!(workers.iter().all(|&n| n == workers[0]), "{nice_of:?}");
    assert!(admin.iter().all(|&n| n == expected), "admin threads should run at nice {expected}: {nice_of:?}");
}
