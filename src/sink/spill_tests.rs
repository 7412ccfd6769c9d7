use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use rusqlite::Connection;
use uuid::Uuid;

use super::*;
use crate::db::sqlite::open_connection;
use crate::db::{test_dir, Workload};
use crate::records::*;
use crate::sink::{start, SinkOptions};

/// A record log with no destination: the import's log lines are tested on their own.
fn no_log() -> RecordLog {
    RecordLog::open(None, None).unwrap()
}

/// An instant the database keeps exactly (microseconds).
fn at(secs: u64, micros: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, micros * 1000)
}

fn every_kind(id: Uuid, t: SystemTime) -> Vec<Record> {
    vec![
        Record::InterceptionStart(InterceptionStart {
            interception_id: id,
            initiator_id: "alice".into(),
            provider: "anthropic",
            provider_name: "anthropic-eu".into(),
            model: "claude-sonnet-4-5".into(),
            client: "claude-code".into(),
            client_session_id: Some("sess-1".into()),
            user_agent: None,
            correlating_tool_call_id: Some("toolu_01".into()),
            credential_kind: CredentialKind::Byok,
            credential_hint: Some("sk-a…wxyz".into()),
            started_at: t,
            gateway_id: "gw-1".into(),
            api: Api::Messages,
        }),
        Record::TokenUsage(TokenUsage {
            interception_id: id,
            msg_id: "msg_01".into(),
            input_tokens: u64::MAX,
            output_tokens: 20,
            cache_read_input_tokens: 30,
            cache_write_input_tokens: 40,
            reasoning_tokens: 5,
            extra: r#"{"service_tier":"standard"}"#.into(),
            created_at: t,
        }),
        Record::PromptUsage(PromptUsage {
            interception_id: id,
            msg_id: "msg_01".into(),
            prompt: "line one\nline \"two\"\t\u{1}\u{2028} — é".into(),
            created_at: t,
        }),
        Record::ToolUsage(ToolUsage {
            interception_id: id,
            msg_id: "msg_01".into(),
            tool: "Read".into(),
            tool_call_id: "toolu_1".into(),
            input: r#"{"path":"/etc/hosts"}"#.into(),
            server_url: Some("https://mcp.example/".into()),
            injected: true,
            created_at: t,
        }),
        Record::ModelThought(ModelThought {
            interception_id: id,
            msg_id: "msg_01".into(),
            content: "Let me think.".into(),
            source: "thinking".into(),
            created_at: t,
        }),
        Record::InterceptionEnd(InterceptionEnd {
            interception_id: id,
            ended_at: t + Duration::from_millis(1500),
            status: EndStatus::ClientDisconnected,
            upstream_status: None,
        }),
    ]
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

const TABLES: [&str; 5] = [
    "aibridge_interceptions",
    "aibridge_token_usages",
    "aibridge_user_prompts",
    "aibridge_tool_usages",
    "aibridge_model_thoughts",
];

fn counts(db: &Path) -> Vec<i64> {
    let conn = Connection::open(db).unwrap();
    TABLES.iter().map(|t| count(&conn, t)).collect()
}

#[test]
fn every_record_kind_round_trips_through_one_line() {
    for record in every_kind(Uuid::new_v4(), at(1_764_000_000, 123_456)) {
        let line = encode(&record);
        assert!(!line.contains('\n'), "one record, one line: {line}");
        assert_eq!(decode(&line).unwrap(), record, "{line}");
    }
}

#[test]
fn a_line_names_its_record_type_as_the_logs_do() {
    for record in every_kind(Uuid::new_v4(), at(1_764_000_000, 0)) {
        let v: serde_json::Value = serde_json::from_str(&encode(&record)).unwrap();
        assert_eq!(v["record_type"], record.record_type());
    }
}

#[test]
fn lines_that_are_not_records_are_rejected() {
    let good = encode(&every_kind(Uuid::new_v4(), at(1, 0))[0]);
    for bad in [
        good.replace("\"anthropic\"", "\"gopher\""),
        good.replace("\"byok\"", "\"stolen\""),
        good.replace("\"record_type\":\"interception_start\"", "\"record_type\":\"nope\""),
        good.replace("1970-01-01T00:00:01.000000Z", "yesterday"),
        good[..good.len() / 2].to_string(),
        "{}".into(),
        "null".into(),
    ] {
        assert!(decode(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_truncated_last_line_is_reported_and_the_rest_kept() {
    let records = every_kind(Uuid::new_v4(), at(1_764_000_000, 7));
    let mut text = String::new();
    for r in &records {
        text.push_str(&encode(r));
        text.push('\n');
    }
    text.push_str("\n\n");
    let last = encode(&records[0]);
    text.push_str(&last[..last.len() - 3]);
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe\n");
    let parsed = parse(&bytes);
    assert_eq!(parsed.records, records);
    let bad: Vec<usize> = parsed.bad_lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(bad, vec![9, 10]);
}

#[test]
fn the_file_is_written_whole_beside_the_database_and_found_again() {
    let dir = test_dir("spill-write");
    let db = dir.join("records.db");
    let records = every_kind(Uuid::new_v4(), at(1_764_000_000, 1));
    let path = write(&db, &records).unwrap();
    assert_eq!(path.parent(), Some(dir.as_path()));
    assert!(path.file_name().unwrap().to_string_lossy().starts_with("records.db.spill-"));
    assert_eq!(files(&db), vec![path.clone()]);
    assert_eq!(parse(&std::fs::read(&path).unwrap()).records, records);
    // No temp file left behind, and another database's spill is not ours.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert!(files(&dir.join("other.db")).is_empty());
}

#[test]
fn import_is_idempotent_when_a_previous_import_died_before_removing_the_file() {
    let dir = test_dir("spill-import");
    let db = dir.join("a.db");
    let records: Vec<Record> = (0..3).flat_map(|i| every_kind(Uuid::new_v4(), at(1_764_000_000 + i, 5))).collect();
    let path = write(&db, &records).unwrap();
    let copy = std::fs::read(&path).unwrap();
    let mut store = crate::db::open(&db, Workload::RecordWriter).unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut no_log()), records.len());
    assert!(files(&db).is_empty(), "imported whole, so removed");
    assert_eq!(counts(&db), vec![3; 5]);
    // The process died after the commit, before the removal: the same file is there again.
    std::fs::write(&path, &copy).unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut no_log()), 6, "only the interception rows are upserted again");
    assert_eq!(counts(&db), vec![3; 5]);
    let conn = Connection::open(&db).unwrap();
    let ended: i64 = conn
        .query_row("SELECT count(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ended, 3);
}

#[test]
fn imported_records_get_their_record_log_lines_once() {
    let dir = test_dir("spill-import-log");
    let db = dir.join("a.db");
    let log_path = dir.join("records.jsonl");
    let records: Vec<Record> = (0..2).flat_map(|i| every_kind(Uuid::new_v4(), at(1_764_000_000 + i, 7))).collect();
    let path = write(&db, &records).unwrap();
    let copy = std::fs::read(&path).unwrap();
    let mut store = crate::db::open(&db, Workload::RecordWriter).unwrap();
    let log_lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each record-log line is JSON"))
            .collect()
    };
    let mut log = RecordLog::open(Some(log_path.to_str().unwrap()), None).unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut log), records.len());
    let lines = log_lines();
    assert_eq!(lines.len(), records.len(), "one line per imported record");
    for id in records.iter().filter_map(|r| match r {
        Record::InterceptionStart(s) => Some(s.interception_id.to_string()),
        _ => None,
    }) {
        let mentions = lines.iter().filter(|l| l.to_string().contains(&id)).count();
        assert_eq!(mentions, records.len() / 2, "every record of interception {id} is logged");
    }
    // Imported again (the process died before removing the file): the store already had every record,
    // so the log gets no second line for any of them.
    std::fs::write(&path, &copy).unwrap();
    let mut log = RecordLog::open(Some(log_path.to_str().unwrap()), None).unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut log), 4, "only the interception rows are upserted again");
    assert_eq!(log_lines().len(), records.len());
}

#[test]
fn a_locked_database_keeps_the_file_for_the_next_start() {
    let dir = test_dir("spill-import-locked");
    let db = dir.join("a.db");
    drop(crate::db::open(&db, Workload::RecordWriter).unwrap());
    let records = every_kind(Uuid::new_v4(), at(1_764_000_000, 0));
    write(&db, &records).unwrap();
    let blocker = open_connection(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut store = crate::db::open(&db, Workload::RecordWriter).unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut no_log()), 0);
    assert_eq!(files(&db).len(), 1);
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(import_all(&db, store.as_mut(), &mut no_log()), records.len());
    assert!(files(&db).is_empty());
}

#[test]
fn a_drain_that_ends_with_the_database_locked_spills_and_the_next_start_imports() {
    let dir = test_dir("spill-sink");
    let db = dir.join("a.db");
    let mut opts = SinkOptions::new(&db);
    opts.shutdown_drain = Duration::from_millis(300);
    let (h, t) = start(opts.clone()).unwrap();
    let blocker = open_connection(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let records: Vec<Record> = (0..50).flat_map(|i| every_kind(Uuid::new_v4(), at(1_764_000_000 + i, 9))).collect();
    for r in &records {
        h.send(r.clone());
    }
    let begun = std::time::Instant::now();
    // A handle still held (as an abandoned task would) must not keep the sink open past the drain.
    let stats = t.close();
    assert!(begun.elapsed() < Duration::from_secs(20), "bounded: {:?}", begun.elapsed());
    assert_eq!(stats.spilled_records, records.len() as u64, "{stats:?}");
    assert_eq!(stats.records_written, 0);
    let spilled = files(&db);
    assert_eq!(spilled.len(), 1);
    assert_eq!(parse(&std::fs::read(&spilled[0]).unwrap()).records, records);
    drop(h);
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    let (h, t) = start(opts).unwrap();
    drop(h);
    t.join();
    assert!(files(&db).is_empty());
    assert_eq!(counts(&db), vec![50; 5]);
}

#[test]
fn a_full_backlog_at_shutdown_is_spilled_so_waiting_senders_can_finish() {
    let dir = test_dir("spill-backlog");
    let db = dir.join("a.db");
    let flag = crate::runtime::shutdown::ShutdownFlag::new();
    let mut opts = SinkOptions::new(&db);
    opts.channel_capacity = 4;
    // Small batches too: the first batch (gathered before any write fails) must not take more than the
    // backlog's cap, however fast the sender is on a loaded machine.
    opts.max_batch_records = 4;
    opts.max_pending_records = 12;
    opts.shutdown = Some(flag.clone());
    opts.shutdown_drain = Duration::from_millis(300);
    let (h, t) = start(opts.clone()).unwrap();
    let blocker = open_connection(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let records: Vec<Record> = (0..20).flat_map(|i| every_kind(Uuid::new_v4(), at(1_764_000_000 + i, 3))).collect();
    let sender = {
        let (h, records) = (h.clone(), records.clone());
        std::thread::spawn(move || records.into_iter().for_each(|r| h.send(r)))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.stats().pending_in_memory < 12 || h.stats().queued < 4 {
        assert!(std::time::Instant::now() < deadline, "the backlog never filled: {:?}", h.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!sender.is_finished(), "120 records cannot fit in 4 + 12: the sender waits");
    // SIGTERM: the sender (a worker) must be able to finish its requests within the grace period.
    flag.trigger();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !sender.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the sender still waits: {:?}", h.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    sender.join().unwrap();
    let stats = t.close();
    assert_eq!(stats.spilled_records, records.len() as u64, "{stats:?}");
    assert_eq!(stats.records_written + stats.lost_at_shutdown, 0, "{stats:?}");
    let spilled: Vec<Record> = files(&db).iter().flat_map(|p| parse(&std::fs::read(p).unwrap()).records).collect();
    assert!(files(&db).len() >= 2, "spilled while shutting down, and again at the end of the drain");
    assert_eq!(spilled, records, "every record once, in order");
    drop(h);
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    let (h, t) = start(opts).unwrap();
    drop(h);
    t.join();
    assert!(files(&db).is_empty());
    assert_eq!(counts(&db), vec![20; 5]);
}

proptest! {
    #[test]
    fn decoding_any_text_never_panics(text in ".{0,300}") {
        let _ = decode(&text);
    }

    #[test]
    fn prompts_of_any_text_round_trip(prompt in any::<String>(), micros in 0u32..1_000_000) {
        let r = Record::PromptUsage(PromptUsage {
            interception_id: Uuid::new_v4(),
            msg_id: "m".into(),
            prompt,
            created_at: at(1_700_000_000, micros),
        });
        prop_assert_eq!(decode(&encode(&r)).unwrap(), r);
    }
}
