//! PostgreSQL end to end: the test cluster harness itself, and several gateways on one database — tokens
//! made with the CLI work on every gateway, a revoke on one stops the token everywhere within a second,
//! traffic through all of them lands in one set of tables, and killing the database's connections or
//! restarting it under load loses nothing and duplicates nothing.

#[path = "../support/pg_cluster.rs"]
mod pg_cluster;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;

pub(crate) use pg_cluster::PgCluster;

use crate::support::*;

const CHAT_PATH: &str = "/api/v2/aibridge/openai/v1/chat/completions";

/// Runs `aibridged tokens ARGS` against the database at `url`, returning stdout.
fn tokens_cli(url: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("tokens")
        .args(args)
        .env_clear()
        .env("CODER_AIBRIDGE_DATABASE_URL", url)
        .output()
        .expect("run aibridged tokens");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tokens {args:?} failed: {stderr}");
    assert!(!stderr.contains("-secret"), "the database password is never printed: {stderr}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A gateway on the shared database `url`, relaying to `mock`, with its own gateway id.
fn gateway(mock: &MockUpstream, url: &str, id: &str) -> Gateway {
    Gateway::start_on(
        &mock.base_url(),
        ("sk-central-openai-0123456789", "sk-ant-central-0123456789"),
        &[("CODER_AIBRIDGE_DATABASE_URL", url), ("CODER_AIBRIDGE_GATEWAY_ID", id)],
    )
}

fn chat(prompt: &str) -> String {
    serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}).to_string()
}

/// Sends one chat request with a unique prompt; true when the client got a complete 200 answer.
fn ask(addr: std::net::SocketAddr, token: &str, prompt: &str) -> bool {
    let r = request(addr, "POST", CHAT_PATH, &[("Authorization", &format!("Bearer {token}"))], chat(prompt).as_bytes());
    r.status == 200 && r.complete
}

/// The number of interceptions whose prompt is `prompt` and whose end is recorded, by prompt, for every
/// prompt that starts with `prefix`.
fn recorded(cluster: &PgCluster, db: &str, prefix: &str) -> Vec<(String, i64)> {
    cluster
        .psql_in(
            db,
            &format!(
                "SELECT p.prompt, count(*) FROM aibridge_user_prompts p JOIN aibridge_interceptions i \
                 ON i.id = p.interception_id WHERE p.prompt LIKE '{prefix}%' AND i.ended_at IS NOT NULL \
                 AND i.status = 'completed' GROUP BY p.prompt ORDER BY p.prompt"
            ),
        )
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (prompt, n) = l.rsplit_once('|').unwrap();
            (prompt.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// Waits (bounded) until every prompt in `answered` is recorded, then checks each is recorded exactly once
/// and nothing else with `prefix` is.
fn assert_recorded_once(cluster: &PgCluster, db: &str, prefix: &str, answered: &[String]) {
    let mut want: Vec<(String, i64)> = answered.iter().map(|p| (p.clone(), 1)).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = recorded(cluster, db, prefix);
        let present = got.iter().filter(|(p, _)| answered.contains(p)).count();
        if present == answered.len() {
            assert_eq!(got, want, "every answered interception exactly once");
            return;
        }
        assert!(Instant::now() < deadline, "only {present} of {} answered interceptions recorded", answered.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn harness_starts_restarts_and_removes_a_cluster() {
    let root;
    {
        let cluster = PgCluster::start();
        root = cluster.root().to_owned();
        assert_eq!(cluster.psql("SHOW server_encoding"), "UTF8");
        cluster.psql("CREATE TABLE t (id int PRIMARY KEY)");
        cluster.psql("INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING");
        cluster.pg_ctl(&["restart", "-m", "fast", "-w"]);
        cluster.wait_ready();
        assert_eq!(cluster.psql("SELECT count(*) FROM t"), "1");
        assert!(cluster.log_file().exists());
        assert!(cluster.port() > 0);
    }
    assert!(!root.exists(), "cluster dir {} left behind", root.display());
}

#[test]
fn two_gateways_share_tokens_and_records_and_a_revoke_reaches_both_within_a_second() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("shared");
    let mock = MockUpstream::start().unwrap();
    let (a, b) = (gateway(&mock, &url, "gw-a"), gateway(&mock, &url, "gw-b"));

    let token = tokens_cli(&url, &["create", "--user", "alice"]);
    a.wait_until_accepted(&token);
    b.wait_until_accepted(&token);
    assert!(tokens_cli(&url, &["list"]).contains("alice"));

    let mut answered = Vec::new();
    for i in 0..20 {
        let prompt = format!("shared-{i:02}");
        assert!(ask(if i % 2 == 0 { a.addr } else { b.addr }, &token, &prompt), "request {i}");
        answered.push(prompt);
    }
    assert_recorded_once(&cluster, "shared", "shared-", &answered);
    let by_gateway = cluster.psql_in(
        "shared",
        "SELECT gateway_id || '=' || count(*) FROM aibridge_interceptions GROUP BY gateway_id ORDER BY 1",
    );
    assert_eq!(by_gateway.lines().collect::<Vec<_>>(), ["gw-a=10", "gw-b=10"], "one set of tables for both");
    let usages = cluster.psql_in("shared", "SELECT count(DISTINCT interception_id) FROM aibridge_token_usages");
    assert_eq!(usages, "20");

    // Revoke through the CLI: neither gateway accepts the token a second later.
    let id = token.strip_prefix("aibr_").and_then(|t| t.split('_').next()).expect("token id");
    tokens_cli(&url, &["revoke", id]);
    let revoked = Instant::now();
    let (mut a_done, mut b_done) = (None, None);
    while a_done.is_none() || b_done.is_none() {
        if a_done.is_none() && !a.accepts(&token) {
            a_done = Some(revoked.elapsed());
        }
        if b_done.is_none() && !b.accepts(&token) {
            b_done = Some(revoked.elapsed());
        }
        assert!(revoked.elapsed() < Duration::from_secs(10), "the revoke never reached both gateways");
        std::thread::sleep(Duration::from_millis(5));
    }
    let slowest = a_done.unwrap().max(b_done.unwrap());
    assert!(slowest <= Duration::from_secs(1), "the revoke took {slowest:?} to reach both gateways");
}

/// Clients keep sending through both gateways while the database's connections are killed and then the
/// server is restarted: every interception whose client got an answer is in the database afterwards,
/// exactly once.
#[test]
fn killing_connections_and_restarting_postgres_under_load_loses_and_duplicates_nothing() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("churn");
    let mock = MockUpstream::start().unwrap();
    let gws = [gateway(&mock, &url, "gw-a"), gateway(&mock, &url, "gw-b")];
    let addrs = [gws[0].addr, gws[1].addr];
    let token = tokens_cli(&url, &["create", "--user", "bob"]);
    for gw in gws.iter() {
        gw.wait_until_accepted(&token);
    }

    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 60;
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (token, sent) = (token.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                for i in 0..PER_CLIENT {
                    let prompt = format!("churn-{c}-{i:03}");
                    if ask(addrs[(c + i) % 2], &token, &prompt) {
                        answered.push(prompt);
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                answered
            })
        })
        .collect();
    let wait_sent = |n: usize| {
        wait_until("clients to make progress", Duration::from_secs(60), || sent.load(Ordering::Relaxed) >= n)
    };
    let total = CLIENTS * PER_CLIENT;
    wait_sent(total / 4);
    let killed = cluster.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'churn' \
         AND pid <> pg_backend_pid()",
    );
    assert!(killed.parse::<i64>().unwrap() >= 2, "the gateways' connections were killed: {killed}");
    wait_sent(total / 2);
    cluster.pg_ctl(&["restart", "-m", "fast", "-w"]);
    cluster.wait_ready();

    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.join().unwrap());
    }
    assert!(answered.len() >= total * 9 / 10, "the relay does not depend on the database: {}", answered.len());
    assert_recorded_once(&cluster, "churn", "churn-", &answered);
    let rows = cluster.psql_in("churn", "SELECT count(*) FROM aibridge_interceptions");
    assert_eq!(rows, answered.len().to_string(), "no interception row twice, none without an answer");
}

/// Polls `sql` (one value) on `db` until it reads `want`, within a generous bound.
fn wait_psql(cluster: &PgCluster, db: &str, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = cluster.psql_in(db, sql);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} is {got}, want {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One Claude Code turn in `session`, as `token`; waits until `ended` interceptions have ended.
fn claude_turn(
    gw: &Gateway,
    cluster: &PgCluster,
    token: &str,
    session: &str,
    scenario: &str,
    messages: serde_json::Value,
    ended: usize,
) {
    let body = serde_json::json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 1024, "stream": true, "messages": messages});
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/anthropic/v1/messages",
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
    let sql = "SELECT count(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL";
    wait_psql(cluster, "sessions", sql, &ended.to_string());
}

/// A gateway recording into PostgreSQL links a tool result to the call it answers (thread linking in the
/// batch statement) and serves the session through the sessions API and the CLI.
#[test]
fn a_postgres_gateway_links_threads_and_serves_the_session_api() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("sessions");
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &url, "gw-s");
    let admin_addr = gw.admin_addr.expect("the sessions API listens");
    let token = tokens_cli(&url, &["create", "--user", "alice"]);
    gw.wait_until_accepted(&token);
    let session = crate::sessions::SESSION;

    let prompt = "What is the weather in Paris?";
    claude_turn(
        &gw,
        &cluster,
        &token,
        session,
        "thinking",
        serde_json::json!([{"role": "user", "content": prompt}]),
        1,
    );
    let call = cluster.psql_in("sessions", "SELECT tool_call_id FROM aibridge_tool_usages ORDER BY id DESC LIMIT 1");
    assert!(!call.is_empty(), "the first turn recorded a tool call");
    let answer = serde_json::json!([
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call, "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call, "content": "18°C, sunny"}]}
    ]);
    claude_turn(&gw, &cluster, &token, session, "text", answer, 2);

    // The link is in the table: the answer's root is the interception that made the call.
    let linked = cluster.psql_in(
        "sessions",
        &format!(
            "SELECT count(*) FROM aibridge_interceptions a JOIN aibridge_interceptions c ON a.thread_root_id = c.id \
             WHERE a.correlating_tool_call_id = '{call}' AND c.correlating_tool_call_id IS NULL"
        ),
    );
    assert_eq!(linked, "1");

    let r = crate::sessions::api(admin_addr, "/api/v2/aibridge/sessions", Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["sessions"][0]["id"], session);
    assert_eq!(list["sessions"][0]["threads"], 1);
    assert_eq!(list["sessions"][0]["interceptions"], 2);
    assert_eq!(list["sessions"][0]["last_prompt"], prompt);

    let r = crate::sessions::api(admin_addr, &format!("/api/v2/aibridge/sessions/{session}"), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let detail = r.json();
    let threads = detail["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{detail}");
    let steps = threads[0]["agentic_actions"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{detail}");
    assert_eq!(steps[0]["tool_calls"][0]["id"], call.as_str());
    assert_eq!(steps[1]["correlating_tool_call_id"], call.as_str());

    let usage = crate::sessions::api(admin_addr, "/api/v2/aibridge/usage?group_by=user&since=7d", Some(&token)).json();
    assert_eq!(usage["groups"][0]["requests"], 2, "{usage}");

    // The CLI reads the same session from PostgreSQL.
    let out = Command::new(BIN)
        .args(["sessions", "list", "--json"])
        .env_clear()
        .env("CODER_AIBRIDGE_DATABASE_URL", &url)
        .output()
        .expect("run aibridged sessions");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["sessions"][0]["id"], session);
}
