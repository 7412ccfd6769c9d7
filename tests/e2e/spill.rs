//! Shutdown with a database that refuses writes: after the grace period and the bounded drain the gateway
//! writes what it could not commit to a spill file beside the database and exits non-zero; the next start
//! imports the file before serving, exactly once even if the import is repeated, and removes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;
const MSG_STREAM: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#;
const MSG_JSON: &str =
    r#"{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Say hi"}]}"#;

const GRACE: Duration = Duration::from_secs(1);
const DRAIN: Duration = Duration::from_secs(2);
/// What the machine may add to grace + drain (it is loaded; the point is that the exit is bounded).
const SLACK: Duration = Duration::from_secs(20);

fn spill_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("aibridge.db.spill-") && name.ends_with(".jsonl")
        })
        .collect();
    found.sort();
    found
}

/// Waits (bounded) for the child to exit; returns its status and how long it took.
fn wait_exit(gw: &mut Gateway, bound: Duration) -> (std::process::ExitStatus, Duration) {
    let begun = Instant::now();
    loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            return (status, begun.elapsed());
        }
        assert!(begun.elapsed() < bound, "the gateway did not exit within {bound:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn table_count(c: &rusqlite::Connection, query: &str, id: &str) -> i64 {
    c.query_row(query, [id], |r| r.get(0)).unwrap()
}

/// For every spilled line, how many rows in the database are that record.
fn stored_copies(db_path: &Path, line: &serde_json::Value) -> i64 {
    let c = db(db_path);
    let id = line["interception_id"].as_str().unwrap();
    let text = |k: &str| line[k].as_str().unwrap().to_string();
    match line["record_type"].as_str().unwrap() {
        "interception_start" => {
            table_count(&c, "SELECT COUNT(*) FROM aibridge_interceptions WHERE id = ?1 AND started_at IS NOT NULL", id)
        }
        "interception_end" => c
            .query_row(
                "SELECT COUNT(*) FROM aibridge_interceptions WHERE id = ?1 AND ended_at = ?2 AND status = ?3",
                [id.to_string(), text("ended_at"), text("status")],
                |r| r.get(0),
            )
            .unwrap(),
        "token_usage" => c
            .query_row(
                "SELECT COUNT(*) FROM aibridge_token_usages WHERE interception_id = ?1 AND msg_id = ?2 \
                 AND input_tokens = ?3 AND output_tokens = ?4",
                rusqlite::params![id, text("msg_id"), line["input_tokens"].as_i64(), line["output_tokens"].as_i64()],
                |r| r.get(0),
            )
            .unwrap(),
        "prompt_usage" => c
            .query_row(
                "SELECT COUNT(*) FROM aibridge_user_prompts WHERE interception_id = ?1 AND prompt = ?2",
                [id.to_string(), text("prompt")],
                |r| r.get(0),
            )
            .unwrap(),
        "tool_usage" => c
            .query_row(
                "SELECT COUNT(*) FROM aibridge_tool_usages WHERE interception_id = ?1 AND tool_call_id = ?2",
                [id.to_string(), text("tool_call_id")],
                |r| r.get(0),
            )
            .unwrap(),
        "model_thought" => c
            .query_row(
                "SELECT COUNT(*) FROM aibridge_model_thoughts WHERE interception_id = ?1 AND content = ?2",
                [id.to_string(), text("content")],
                |r| r.get(0),
            )
            .unwrap(),
        other => panic!("unexpected record type {other}"),
    }
}

fn total(db_path: &Path, table: &str) -> i64 {
    db(db_path).query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn sigterm_with_the_database_locked_spills_and_the_next_start_imports_everything_once() {
    let mock = MockUpstream::start().unwrap();
    let grace = format!("{}s", GRACE.as_secs());
    let drain = format!("{}s", DRAIN.as_secs());
    let log_dir = ScratchDir::new("spill-log");
    let record_log = log_dir.0.join("aibridged.json");
    let record_log_s = record_log.display().to_string();
    let extra = [
        ("CODER_AIBRIDGE_SHUTDOWN_GRACE", grace.as_str()),
        ("CODER_AIBRIDGE_SHUTDOWN_DRAIN", drain.as_str()),
        ("CODER_AIBRIDGE_STRUCTURED_LOGGING", "true"),
        ("CODER_LOGGING_JSON", record_log_s.as_str()),
    ];
    // The record-log lines ("interception log") per record type.
    let logged = || -> HashMap<String, i64> {
        let mut kinds = HashMap::new();
        for line in std::fs::read_to_string(&record_log).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if v["msg"] == "interception log" {
                *kinds.entry(v["record_type"].as_str().unwrap_or_default().to_string()).or_default() += 1;
            }
        }
        kinds
    };
    let keys = ("sk-central-openai-0123456789", "sk-ant-central-0123456789");
    let mut gw = Gateway::start_on(&mock.base_url(), keys, &extra);
    let auth = format!("Bearer {}", gw.token("alice"));
    let db_path = gw.db.clone();
    let dir = gw.dir.0.clone();

    // Another process holds the write lock from before the first request until after the gateway exited.
    let blocker = rusqlite::Connection::open(&db_path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let cases = [
        ("messages/thinking_tools_cached/stream.sse", MESSAGES, MSG_STREAM),
        ("chat/parallel_tools/stream.sse", CHAT, CHAT_STREAM),
        ("chat/json_tools/body.json", CHAT, CHAT_JSON),
        ("messages/json_thinking_tools/body.json", MESSAGES, MSG_JSON),
    ];
    let mut sent = 0;
    for round in 0..3 {
        for (file, route, body) in cases {
            let path = fixtures.join(file).display().to_string();
            let r = request(
                gw.addr,
                "POST",
                route,
                &[("Authorization", &auth), ("x-mock-body-file", &path)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{file} (round {round}): {}", r.text());
            sent += 1;
        }
        let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], CHAT_STREAM.as_bytes());
        assert_eq!(r.status, 200);
        sent += 1;
    }
    assert_eq!(total(&db_path, "aibridge_interceptions"), 0, "nothing could be committed while locked");

    unsafe {
        libc::kill(gw.child.id() as i32, libc::SIGTERM);
    }
    let (status, took) = wait_exit(&mut gw, GRACE + DRAIN + SLACK);
    assert!(!status.success(), "records were not committed, so the exit is non-zero: {status:?}");
    assert!(took >= DRAIN, "the drain kept trying for its full length first: {took:?}");

    let spilled = spill_files(&dir);
    assert_eq!(spilled.len(), 1, "one spill file beside the database: {spilled:?}");
    let log = gw.drain_log();
    let named = log.iter().find(|l| l.contains(&spilled[0].display().to_string()));
    assert!(named.is_some_and(|l| l.contains("ERROR")), "an error line names the spill file:\n{}", log.join("\n"));
    let text = std::fs::read_to_string(&spilled[0]).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("every spill line is a JSON object")).collect();
    let mut kinds: HashMap<String, i64> = HashMap::new();
    for l in &lines {
        *kinds.entry(l["record_type"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for kind in ["interception_start", "interception_end", "prompt_usage", "token_usage"] {
        assert_eq!(kinds.get(kind).copied(), Some(sent), "{kind}: one per request: {kinds:?}");
    }
    assert!(kinds["tool_usage"] >= 9 && kinds["model_thought"] >= 6, "the fixtures' tools and thoughts: {kinds:?}");
    // The ids are the interceptions' own.
    let ids: std::collections::HashSet<&str> = lines.iter().map(|l| l["interception_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as i64, sent);

    assert!(logged().is_empty(), "nothing committed, so no record-log line yet: {:?}", logged());
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    let copy = std::fs::read(&spilled[0]).unwrap();

    // The next start imports before it listens, then removes the file.
    let scratch = std::mem::replace(&mut gw.dir, ScratchDir::new("spare"));
    drop(gw);
    let mut gw = Gateway::start_in(scratch, db_path.clone(), &extra);
    assert!(spill_files(&dir).is_empty(), "the imported spill file is removed");
    let check_once = |when: &str| {
        assert_eq!(total(&db_path, "aibridge_interceptions"), sent, "{when}");
        assert_eq!(total(&db_path, "aibridge_user_prompts"), kinds["prompt_usage"], "{when}");
        assert_eq!(total(&db_path, "aibridge_token_usages"), kinds["token_usage"], "{when}");
        assert_eq!(total(&db_path, "aibridge_tool_usages"), kinds["tool_usage"], "{when}");
        assert_eq!(total(&db_path, "aibridge_model_thoughts"), kinds["model_thought"], "{when}");
        for l in &lines {
            assert_eq!(stored_copies(&db_path, l), 1, "{when}: stored exactly once: {l}");
        }
    };
    check_once("after the import");
    assert_eq!(logged(), kinds, "the import writes the record-log line of every spilled record");
    assert!(gw.terminate(), "with the database writable the exit is clean");

    // A process that died after committing the import but before removing the file imports it again:
    // nothing is doubled.
    std::fs::write(&spilled[0], &copy).unwrap();
    let scratch = std::mem::replace(&mut gw.dir, ScratchDir::new("spare"));
    drop(gw);
    let mut gw = Gateway::start_in(scratch, db_path.clone(), &extra);
    assert!(spill_files(&dir).is_empty());
    check_once("after importing the same file again");
    assert_eq!(logged(), kinds, "a repeated import logs nothing twice");
    assert!(gw.terminate());
}
