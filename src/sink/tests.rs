//! Sink thread tests: rows and log lines read back per record type, retention, fault recovery, shutdown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::db::sqlite::open_connection as open_database;
use crate::db::{test_dir, timefmt};
use crate::records::*;

const DAY: Duration = Duration::from_secs(86_400);

fn at(secs: u64, micros: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, micros * 1000)
}

fn start_rec(id: Uuid, started_at: SystemTime) -> Record {
    Record::InterceptionStart(InterceptionStart {
        interception_id: id,
        initiator_id: "alice".into(),
        provider: "anthropic",
        provider_name: "anthropic-eu".into(),
        model: "claude-sonnet-4-5".into(),
        client: "claude-code".into(),
        client_session_id: Some("sess-1".into()),
        user_agent: Some("claude-cli/2.0 (external, cli)".into()),
        correlating_tool_call_id: None,
        credential_kind: CredentialKind::Centralized,
        credential_hint: Some("sk-a…wxyz".into()),
        started_at,
        gateway_id: "test-gateway".into(),
        api: Api::ChatCompletions,
    })
}

fn end_rec(id: Uuid, ended_at: SystemTime) -> Record {
    Record::InterceptionEnd(InterceptionEnd {
        interception_id: id,
        ended_at,
        status: EndStatus::Completed,
        upstream_status: Some(200),
    })
}

fn usage_rec(id: Uuid, created_at: SystemTime) -> Record {
    Record::TokenUsage(TokenUsage {
        interception_id: id,
        msg_id: "msg_01".into(),
        input_tokens: 10,
        output_tokens: 20,
        cache_read_input_tokens: 30,
        cache_write_input_tokens: 40,
        reasoning_tokens: 5,
        extra: r#"{"service_tier":"standard"}"#.into(),
        created_at,
    })
}

fn prompt_rec(id: Uuid, created_at: SystemTime) -> Record {
    Record::PromptUsage(PromptUsage {
        interception_id: id,
        msg_id: "msg_01".into(),
        prompt: "say \"hi\"\n\tand \u{1} bye — ok".into(),
        created_at,
    })
}

fn tool_rec(id: Uuid, created_at: SystemTime) -> Record {
    Record::ToolUsage(ToolUsage {
        interception_id: id,
        msg_id: "msg_01".into(),
        tool: "Read".into(),
        tool_call_id: "toolu_1".into(),
        input: r#"{"path":"/etc/hosts"}"#.into(),
        server_url: None,
        injected: false,
        created_at,
    })
}

fn thought_rec(id: Uuid, created_at: SystemTime) -> Record {
    Record::ModelThought(ModelThought {
        interception_id: id,
        msg_id: "msg_01".into(),
        content: "Let me think.".into(),
        source: "thinking".into(),
        created_at,
    })
}

fn all_records(id: Uuid, t: SystemTime) -> Vec<Record> {
    vec![
        start_rec(id, t),
        usage_rec(id, t),
        prompt_rec(id, t),
        tool_rec(id, t),
        thought_rec(id, t),
        end_rec(id, t + Duration::from_millis(1500)),
    ]
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn every_record_type_lands_in_its_table() {
    let dir = test_dir("sink-rows");
    let db = dir.join("a.db");
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    let id = Uuid::new_v4();
    let t0 = at(1_795_759_144, 123_456);
    for r in all_records(id, t0) {
        h.send(r);
    }
    drop(h);
    assert_eq!(t.join().records_written, 6);
    let conn = Connection::open(&db).unwrap();
    let ids = id.to_string();

    let (row, upstream_status): (Vec<String>, i64) = conn
        .query_row(
            "SELECT initiator_id, provider, provider_name, model, client, client_session_id, user_agent, \
             credential_kind, credential_hint, started_at, ended_at, status, upstream_status \
             FROM aibridge_interceptions WHERE id = ?1",
            [&ids],
            |r| Ok(((0..12).map(|i| r.get(i)).collect::<Result<_, _>>()?, r.get(12)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        [
            "alice",
            "anthropic",
            "anthropic-eu",
            "claude-sonnet-4-5",
            "claude-code",
            "sess-1",
            "claude-cli/2.0 (external, cli)",
            "centralized",
            "sk-a…wxyz",
            "2026-11-27T05:59:04.123456Z",
            "2026-11-27T05:59:05.623456Z",
            "completed",
        ]
    );
    assert_eq!(upstream_status, 200);

    let usage: (String, i64, i64, i64, i64, i64, String, String) = conn
        .query_row(
            "SELECT msg_id, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, \
             reasoning_tokens, extra, created_at FROM aibridge_token_usages WHERE interception_id = ?1",
            [&ids],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap();
    assert_eq!(
        usage,
        (
            "msg_01".into(),
            10,
            20,
            30,
            40,
            5,
            r#"{"service_tier":"standard"}"#.into(),
            "2026-11-27T05:59:04.123456Z".into()
        )
    );

    let prompt: (String, String) = conn
        .query_row("SELECT msg_id, prompt FROM aibridge_user_prompts WHERE interception_id = ?1", [&ids], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(prompt, ("msg_01".into(), "say \"hi\"\n\tand \u{1} bye — ok".into()));

    let tool: (String, String, String, Option<String>, bool) = conn
        .query_row(
            "SELECT tool, tool_call_id, input, server_url, injected FROM aibridge_tool_usages \
             WHERE interception_id = ?1",
            [&ids],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(tool, ("Read".into(), "toolu_1".into(), r#"{"path":"/etc/hosts"}"#.into(), None, false));

    let thought: (String, String) = conn
        .query_row("SELECT content, source FROM aibridge_model_thoughts WHERE interception_id = ?1", [&ids], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(thought, ("Let me think.".into(), "thinking".into()));
}

#[test]
fn end_before_start_is_kept_and_completed_later() {
    let dir = test_dir("sink-order");
    let db = dir.join("a.db");
    let id = Uuid::new_v4();
    let t0 = at(1_795_759_144, 0);
    // End alone in one sink run (its start is missing), the start in a later run.
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    h.send(end_rec(id, t0));
    drop(h);
    t.join();
    let conn = Connection::open(&db).unwrap();
    let status: String = conn
        .query_row("SELECT status FROM aibridge_interceptions WHERE id = ?1", [id.to_string()], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "completed");
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    h.send(start_rec(id, t0));
    drop(h);
    t.join();
    let row: (String, String, String) = conn
        .query_row(
            "SELECT initiator_id, started_at, status FROM aibridge_interceptions WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("alice".into(), "2026-11-27T05:59:04.000000Z".into(), "completed".into()));
    assert_eq!(count(&conn, "aibridge_interceptions"), 1);
}

#[test]
fn json_and_human_log_lines_match_the_records() {
    let dir = test_dir("sink-log");
    let db = dir.join("a.db");
    let json_path = dir.join("log.json");
    let human_path = dir.join("log.txt");
    // Pre-existing content must survive: files are opened for appending.
    std::fs::write(&json_path, "{\"msg\":\"earlier\"}\n").unwrap();
    let mut opts = SinkOptions::new(&db);
    opts.structured_logging = true;
    opts.log_json = Some(json_path.to_string_lossy().into_owned());
    opts.log_human = Some(human_path.to_string_lossy().into_owned());
    let (h, t) = start(opts).unwrap();
    let id = Uuid::new_v4();
    let t0 = at(1_795_759_144, 123_456);
    for r in all_records(id, t0) {
        h.send(r);
    }
    drop(h);
    t.join();

    let text = std::fs::read_to_string(&json_path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["msg"], "earlier");
    let by_type = |ty: &str| -> &Value {
        lines.iter().find(|l| l["record_type"] == ty).unwrap_or_else(|| panic!("no {ty} line"))
    };
    for l in &lines[1..] {
        assert_eq!(l["msg"], "interception log");
        assert_eq!(l["level"], "INFO");
        assert!(timefmt::parse(l["ts"].as_str().unwrap()).is_some());
        assert_eq!(l["interception_id"], id.to_string());
    }
    // Field order: ts, level, msg first.
    assert!(text.lines().nth(1).unwrap().starts_with("{\"ts\":\""));
    let s = by_type("interception_start");
    assert_eq!(s["initiator_id"], "alice");
    assert_eq!(s["provider"], "anthropic");
    assert_eq!(s["provider_name"], "anthropic-eu");
    assert_eq!(s["model"], "claude-sonnet-4-5");
    assert_eq!(s["client"], "claude-code");
    assert_eq!(s["client_session_id"], "sess-1");
    assert_eq!(s["user_agent"], "claude-cli/2.0 (external, cli)");
    assert_eq!(s["credential_kind"], "centralized");
    assert_eq!(s["credential_hint"], "sk-a…wxyz");
    assert_eq!(s["started_at"], "2026-11-27T05:59:04.123456Z");
    let e = by_type("interception_end");
    assert_eq!(e["ended_at"], "2026-11-27T05:59:05.623456Z");
    assert_eq!(e["status"], "completed");
    assert_eq!(e["upstream_status"], 200);
    let u = by_type("token_usage");
    assert_eq!(u["msg_id"], "msg_01");
    assert_eq!(u["input_tokens"], 10);
    assert_eq!(u["output_tokens"], 20);
    assert_eq!(u["cache_read_input_tokens"], 30);
    assert_eq!(u["cache_write_input_tokens"], 40);
    assert_eq!(u["reasoning_tokens"], 5);
    assert_eq!(u["extra"]["service_tier"], "standard");
    assert_eq!(u["created_at"], "2026-11-27T05:59:04.123456Z");
    let p = by_type("prompt_usage");
    assert_eq!(p["prompt"], "say \"hi\"\n\tand \u{1} bye — ok");
    let tl = by_type("tool_usage");
    assert_eq!(tl["tool"], "Read");
    assert_eq!(tl["tool_call_id"], "toolu_1");
    assert_eq!(tl["input"], r#"{"path":"/etc/hosts"}"#);
    assert_eq!(tl["server_url"], Value::Null);
    assert_eq!(tl["injected"], false);
    let th = by_type("model_thought");
    assert_eq!(th["content"], "Let me think.");
    assert_eq!(th["source"], "thinking");

    let human = std::fs::read_to_string(&human_path).unwrap();
    assert_eq!(human.lines().count(), 6);
    for line in human.lines() {
        assert!(line.contains(" [info] interception log: record_type="), "{line}");
        assert!(line.contains(&format!("interception_id={id}")), "{line}");
    }
}

#[test]
fn structured_logging_off_writes_no_lines() {
    let dir = test_dir("sink-nolog");
    let json_path = dir.join("log.json");
    let mut opts = SinkOptions::new(dir.join("a.db"));
    opts.log_json = Some(json_path.to_string_lossy().into_owned());
    let (h, t) = start(opts).unwrap();
    h.send(start_rec(Uuid::new_v4(), SystemTime::now()));
    drop(h);
    t.join();
    assert!(std::fs::read_to_string(&json_path).unwrap_or_default().is_empty());
}

fn fill_retention_db(db: &std::path::Path, old: usize, recent: usize) -> (Vec<Uuid>, Vec<Uuid>) {
    let (h, t) = start(SinkOptions::new(db)).unwrap();
    let now = SystemTime::now();
    let old_ids: Vec<Uuid> = (0..old).map(|_| Uuid::new_v4()).collect();
    let new_ids: Vec<Uuid> = (0..recent).map(|_| Uuid::new_v4()).collect();
    for id in &old_ids {
        for r in all_records(*id, now - 100 * DAY) {
            h.send(r);
        }
    }
    for id in &new_ids {
        for r in all_records(*id, now - DAY) {
            h.send(r);
        }
    }
    // An end whose start never arrived, long ago: aged by its end time.
    h.send(end_rec(Uuid::new_v4(), now - 100 * DAY));
    drop(h);
    t.join();
    (old_ids, new_ids)
}

#[test]
fn retention_purges_old_interceptions_in_chunks_and_keeps_recent() {
    let dir = test_dir("sink-retention");
    let db = dir.join("a.db");
    let (_, new_ids) = fill_retention_db(&db, RETENTION_CHUNK + 200, 50);
    let mut opts = SinkOptions::new(&db);
    opts.retention = Some(60 * DAY);
    let (h, t) = start(opts).unwrap();
    // Retention runs once at start; wait for it (two chunks) to finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.stats().purged_interceptions < (RETENTION_CHUNK + 201) as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.stats().purged_interceptions, (RETENTION_CHUNK + 201) as u64);
    drop(h);
    t.join();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "aibridge_interceptions"), 50);
    for table in ["aibridge_token_usages", "aibridge_user_prompts", "aibridge_tool_usages", "aibridge_model_thoughts"] {
        assert_eq!(count(&conn, table), 50, "{table}");
    }
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM aibridge_interceptions WHERE id = ?1", [new_ids[0].to_string()], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1);
}

#[test]
fn retention_runs_again_on_its_interval() {
    let dir = test_dir("sink-retention-interval");
    let db = dir.join("a.db");
    let mut opts = SinkOptions::new(&db);
    opts.retention = Some(60 * DAY);
    opts.retention_interval = Duration::from_millis(100);
    let (h, t) = start(opts).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for r in all_records(Uuid::new_v4(), SystemTime::now() - 100 * DAY) {
        h.send(r);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.stats().purged_interceptions < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(h.stats().purged_interceptions, 1);
    drop(h);
    t.join();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "aibridge_interceptions"), 0);
    assert_eq!(count(&conn, "aibridge_token_usages"), 0);
}

#[test]
fn no_retention_keeps_everything() {
    let dir = test_dir("sink-keep");
    let db = dir.join("a.db");
    fill_retention_db(&db, 20, 5);
    let mut opts = SinkOptions::new(&db);
    opts.retention = None;
    opts.retention_interval = Duration::from_millis(10);
    let (h, t) = start(opts).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(h);
    t.join();
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "aibridge_interceptions"), 26);
    assert_eq!(count(&conn, "aibridge_token_usages"), 25);
}

#[test]
fn locked_database_recovers_without_losing_records() {
    let dir = test_dir("sink-locked");
    let db = dir.join("a.db");
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    let blocker = open_database(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        for r in all_records(*id, SystemTime::now()) {
            h.send(r);
        }
    }
    // While the lock is held nothing commits; the records wait in memory.
    std::thread::sleep(Duration::from_millis(700));
    let during = h.stats();
    assert_eq!(during.records_written, 0);
    assert!(during.retries >= 1, "{during:?}");
    assert!(during.pending_in_memory > 0, "{during:?}");
    blocker.execute_batch("COMMIT").unwrap();
    drop(h);
    let after = t.join();
    assert_eq!(after.records_written, 6000);
    assert_eq!(after.pending_in_memory, 0);
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "aibridge_interceptions"), 1000);
    assert_eq!(count(&conn, "aibridge_token_usages"), 1000);
    assert_eq!(count(&conn, "aibridge_model_thoughts"), 1000);
    let ended: i64 = conn
        .query_row(
            "SELECT count(*) FROM aibridge_interceptions WHERE status = 'completed' AND started_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ended, 1000);
}

#[test]
fn shutdown_drains_everything_accepted_with_backpressure() {
    let dir = test_dir("sink-drain");
    let db = dir.join("a.db");
    let mut opts = SinkOptions::new(&db);
    opts.channel_capacity = 16;
    opts.structured_logging = true;
    opts.log_json = Some(dir.join("log.json").to_string_lossy().into_owned());
    let (h, t) = start(opts).unwrap();
    let producers: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let id = Uuid::new_v4();
                    h.send(start_rec(id, SystemTime::now()));
                    h.send(end_rec(id, SystemTime::now()));
                }
            })
        })
        .collect();
    drop(h);
    for p in producers {
        p.join().unwrap();
    }
    let s = t.join();
    assert_eq!(s.records_written, 4000);
    assert!(s.full_waits > 0, "a 16-slot channel must have filled: {s:?}");
    let conn = Connection::open(&db).unwrap();
    assert_eq!(count(&conn, "aibridge_interceptions"), 2000);
    let log = std::fs::read_to_string(dir.join("log.json")).unwrap();
    assert_eq!(log.lines().count(), 4000);
}

#[test]
fn batches_commit_within_the_delay_while_handles_live() {
    let dir = test_dir("sink-latency");
    let db = dir.join("a.db");
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    h.send(start_rec(Uuid::new_v4(), SystemTime::now()));
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.stats().records_written < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.stats().records_written, 1);
    assert_eq!(h.stats().batches, 1);
    drop(h);
    t.join();
}

#[test]
fn new_interception_ids_are_v7_and_time_ordered() {
    let a = new_interception_id();
    std::thread::sleep(Duration::from_millis(2));
    let b = new_interception_id();
    assert_eq!(a.get_version_num(), 7);
    assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    assert!(a.to_string() < b.to_string());
    assert_ne!(a, new_interception_id());
}

#[test]
fn end_before_start_in_one_batch_keeps_both_halves() {
    let dir = test_dir("sink-order-batch");
    let db = dir.join("a.db");
    let id = Uuid::new_v4();
    let t0 = at(1_795_759_144, 0);
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    h.send(end_rec(id, t0 + Duration::from_secs(1)));
    h.send(start_rec(id, t0));
    drop(h);
    t.join();
    let conn = Connection::open(&db).unwrap();
    let row: (String, String, String, i64) = conn
        .query_row(
            "SELECT initiator_id, started_at, ended_at, upstream_status FROM aibridge_interceptions WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, ("alice".into(), "2026-11-27T05:59:04.000000Z".into(), "2026-11-27T05:59:05.000000Z".into(), 200));
}

#[test]
fn a_database_error_that_is_not_a_lock_is_retried_not_dropped() {
    let dir = test_dir("sink-missing-table");
    let db = dir.join("a.db");
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    let other = open_database(&db).unwrap();
    other.execute_batch("DROP TABLE aibridge_user_prompts").unwrap();
    let id = Uuid::new_v4();
    for r in all_records(id, SystemTime::now()) {
        h.send(r);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.stats().retries < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.stats().retries >= 2, "{:?}", h.stats());
    assert_eq!(h.stats().records_written, 0);
    other
        .execute_batch(
            "CREATE TABLE aibridge_user_prompts (id INTEGER PRIMARY KEY, interception_id TEXT NOT NULL, \
             msg_id TEXT NOT NULL, prompt TEXT NOT NULL, created_at TEXT NOT NULL)",
        )
        .unwrap();
    drop(h);
    let s = t.join();
    assert_eq!(s.records_written, 6);
    assert_eq!(s.failed_records, 0);
    assert_eq!(count(&other, "aibridge_user_prompts"), 1);
}

#[test]
fn a_record_the_database_rejects_is_dropped_alone_and_the_rest_stored() {
    let dir = test_dir("sink-record-fault");
    let db = dir.join("a.db");
    let other = open_database(&db).unwrap();
    // A constraint the schema does not have: the second prompt with the same text is rejected.
    other.execute_batch("CREATE UNIQUE INDEX one_prompt_text ON aibridge_user_prompts (prompt)").unwrap();
    let (h, t) = start(SinkOptions::new(&db)).unwrap();
    let (a, b) = (new_interception_id(), new_interception_id());
    let t0 = at(1_795_759_144, 0);
    for r in all_records(a, t0).into_iter().chain(all_records(b, t0)) {
        h.send(r);
    }
    drop(h);
    let s = t.join();
    assert_eq!((s.records_written, s.failed_records), (11, 1));
    assert_eq!(count(&other, "aibridge_interceptions"), 2);
    assert_eq!(count(&other, "aibridge_user_prompts"), 1);
    assert_eq!(count(&other, "aibridge_token_usages"), 2);
    assert_eq!(count(&other, "aibridge_tool_usages"), 2);
}

#[test]
fn record_log_destinations_resolve_as_the_gateway_logs_do() {
    use crate::logging::Destination;
    let dir = test_dir("sink-log-dest");
    let file = dir.join("log.json").to_string_lossy().into_owned();
    for spec in ["-", "stderr", "/dev/stderr", "stdout", "/dev/stdout", file.as_str()] {
        let log = logline::RecordLog::open(Some(spec), Some(spec)).unwrap();
        let expected = Destination::resolve(spec);
        assert_eq!(log.targets(), (Some(&expected), Some(&expected)), "{spec}");
    }
    assert_eq!(Destination::resolve("-"), Destination::Stderr);
}

#[test]
fn log_json_dash_writes_to_stderr_not_to_a_file_named_dash() {
    // Unit tests run in the package directory: the old sink created `./-` there.
    let dash = std::path::Path::new("-");
    assert!(!dash.exists(), "a file named '-' is left over in {:?}", std::env::current_dir());
    let dir = test_dir("sink-log-dash");
    let mut opts = SinkOptions::new(dir.join("a.db"));
    opts.structured_logging = true;
    opts.log_json = Some("-".into());
    let (h, t) = start(opts).unwrap();
    h.send(start_rec(Uuid::new_v4(), SystemTime::now()));
    drop(h);
    let s = t.join();
    assert_eq!((s.records_written, s.log_write_errors), (1, 0));
    assert!(!dash.exists(), "the sink wrote its JSON lines to a file named '-'");
}

#[test]
fn batch_limits_come_from_the_options() {
    let dir = test_dir("sink-batch-limits");
    let mut opts = SinkOptions::new(dir.join("a.db"));
    opts.max_batch_records = 10;
    opts.max_batch_delay = Duration::from_secs(30);
    let (h, t) = start(opts).unwrap();
    for _ in 0..45 {
        h.send(start_rec(Uuid::new_v4(), SystemTime::now()));
    }
    // Four batches' worth queued wake the sink long before the delay; what it takes then commits in
    // transactions of at most ten; the few sent after that wait for the delay or the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.stats().records_written < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = h.stats();
    assert!((40..=45).contains(&during.records_written), "{during:?}");
    assert_eq!(during.batches, during.records_written.div_ceil(10), "{during:?}");
    drop(h);
    let s = t.join();
    assert_eq!(s.records_written, 45);
    assert_eq!(s.batches, during.batches + u64::from(during.records_written < 45), "{s:?}");
}
