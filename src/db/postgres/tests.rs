//! `PgStore` against a real PostgreSQL server: the conformance suite the SQLite store runs, plus what only
//! PostgreSQL has (concurrent migration, native types, a batch retried after its COMMIT outcome was lost,
//! the purge lock, error classes). One throwaway cluster per test process (stopped at exit), one fresh
//! database per test.

#[path = "../../../tests/support/pg_cluster.rs"]
mod cluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::PgStore;
use crate::db::conformance::{self, at, end, start, token};
use crate::db::{self, DatabaseUrl, Store, StoreError, Workload};
use crate::records::*;
use cluster::PgCluster;

static CLUSTER: Mutex<Option<PgCluster>> = Mutex::new(None);

extern "C" fn stop_cluster() {
    let mut guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    guard.take();
}

/// A fresh database (owned by its own login role) on the process's cluster, started on first use.
pub(crate) fn database(name: &str) -> (String, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(PgCluster::start());
        // SAFETY: `stop_cluster` is a plain function that only drops the cluster (stopping its server).
        unsafe { libc::atexit(stop_cluster) };
    }
    let db = format!("{name}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let url = guard.as_ref().map(|c| c.create_database(&db)).expect("cluster started");
    (db, url)
}

fn psql(db: &str, sql: &str) -> String {
    let guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().expect("cluster started").psql_in(db, sql)
}

fn url(text: &str) -> DatabaseUrl {
    DatabaseUrl::parse(text).unwrap()
}

fn store(name: &str, workload: Workload) -> (Box<dyn Store>, String, String) {
    let (db, text) = database(name);
    (db::open(url(&text), workload).unwrap(), db, text)
}

#[test]
fn conformance_tokens() {
    conformance::tokens_insert_list_revoke_and_load(&mut *store("tokens", Workload::General).0);
}

#[test]
fn conformance_pages() {
    conformance::interceptions_page_by_user_and_time_with_a_cursor(&mut *store("pages", Workload::RecordWriter).0);
}

#[test]
fn conformance_detail() {
    conformance::one_interception_comes_back_with_its_child_rows_in_order(
        &mut *store("detail", Workload::RecordWriter).0,
    );
}

#[test]
fn conformance_halves() {
    conformance::halves_in_any_order_make_one_row(&mut *store("halves", Workload::RecordWriter).0);
}

#[test]
fn conformance_purge() {
    conformance::purge_removes_old_interceptions_with_their_children_in_chunks(
        &mut *store("purge", Workload::RecordWriter).0,
    );
}

#[test]
fn conformance_settle() {
    let (mut s, db, _) = store("settle", Workload::RecordWriter);
    let end_reason = |id: Uuid| -> Option<String> {
        let v =
            psql(&db, &format!("SELECT coalesce(end_reason, '<null>') FROM aibridge_interceptions WHERE id = '{id}'"));
        (v != "<null>").then_some(v)
    };
    conformance::settle_open_ends_only_this_gateways_open_interceptions(&mut *s, &end_reason);
}

#[test]
fn the_schema_has_the_sqlite_tables_with_native_types() {
    let (_s, db, _) = store("types", Workload::General);
    let types = psql(
        &db,
        "SELECT table_name || '.' || column_name || ':' || data_type FROM information_schema.columns \
         WHERE (table_name, column_name) IN (('aibridge_interceptions', 'id'), ('aibridge_interceptions', 'started_at'), \
         ('aibridge_token_usages', 'extra'), ('aibridge_api_tokens', 'secret_hash'), ('aibridge_interceptions', 'gateway_id')) \
         ORDER BY 1",
    );
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "aibridge_api_tokens.secret_hash:bytea",
            "aibridge_interceptions.gateway_id:text",
            "aibridge_interceptions.id:uuid",
            "aibridge_interceptions.started_at:timestamp with time zone",
            "aibridge_token_usages.extra:jsonb",
        ]
    );
    let tables = psql(&db, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'aibridge\\_%' AND tablename <> 'aibridge_sink_batches' AND tablename <> 'aibridge_schema_version'");
    assert_eq!(tables, "6", "the same six tables as SQLite");
    assert_eq!(psql(&db, "SELECT version FROM aibridge_schema_version"), super::current_version().to_string());
}

/// Gateways starting together against an empty database: every open succeeds, the schema is made once.
#[test]
fn concurrent_opens_migrate_once() {
    let (db, text) = database("migrate");
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let u = url(&text);
            std::thread::spawn(move || db::open(&u, Workload::General).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("open while others migrate");
    }
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_schema_version"), "1");
    // A newer schema than this build knows is refused, as with SQLite.
    psql(&db, "UPDATE aibridge_schema_version SET version = 99");
    match db::open(url(&text), Workload::General) {
        Err(db::DbError::SchemaTooNew { found: 99, .. }) => {}
        other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
    }
}

/// U+0000 cannot be stored in `text` or `jsonb`: the record is kept (with U+FFFD), the batch is not lost.
#[test]
fn nul_characters_do_not_fail_a_batch() {
    let (mut s, _, _) = store("nul", Workload::RecordWriter);
    let id = db::new_interception_id();
    let prompt = PromptUsage { interception_id: id, msg_id: "m\0".into(), prompt: "a\0b".into(), created_at: at(1) };
    let usage = TokenUsage {
        interception_id: id,
        msg_id: "m".into(),
        input_tokens: u64::MAX,
        output_tokens: 1,
        cache_read_input_tokens: 0,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
        extra: r#"{"x":"\u0000"}"#.into(),
        created_at: at(1),
    };
    s.write_batch(&[&start(id, "al\0ice", at(0)), &Record::PromptUsage(prompt), &Record::TokenUsage(usage)]).unwrap();
    let detail = s.interception(id).unwrap().unwrap();
    assert_eq!(detail.interception.initiator_id.as_deref(), Some("al\u{FFFD}ice"));
    assert_eq!(detail.prompts[0].prompt, "a\u{FFFD}b");
    assert_eq!(detail.token_usages[0].input_tokens, i64::MAX as u64, "clamped, not wrapped");
    assert_eq!(detail.token_usages[0].extra, r#"{"x": "�"}"#);
}

/// The COMMIT of a batch goes through but its acknowledgement is lost with the connection: the retry of the
/// same records (with more appended, as the sink does) writes each row once.
#[test]
fn a_retried_batch_whose_commit_was_lost_is_not_written_twice() {
    let (_s, db, text) = store("retry", Workload::RecordWriter);
    let pg = match url(&text) {
        DatabaseUrl::Postgres(pg) => pg,
        DatabaseUrl::Sqlite(_) => unreachable!(),
    };
    let mut store = PgStore::open(&pg, Workload::RecordWriter).unwrap();
    let (a, b) = (db::new_interception_id(), db::new_interception_id());
    let prompt = |id| {
        Record::PromptUsage(PromptUsage {
            interception_id: id,
            msg_id: "m".into(),
            prompt: "p".into(),
            created_at: at(1),
        })
    };
    let first = [start(a, "alice", at(0)), prompt(a), end(a, at(2))];
    // Write the batch, then pretend the acknowledgement was lost: the store is told only that COMMIT failed.
    let batch = Uuid::now_v7();
    {
        let conn = store.conn().unwrap();
        let refs: Vec<&Record> = first.iter().collect();
        super::write::write_batch(&mut conn.client, conn.stmts.as_ref().unwrap(), &refs, batch, false)
            .unwrap_or_else(|_| panic!("write"));
    }
    store.uncertain = Some(super::Uncertain {
        identities: first.iter().map(super::identity).collect(),
        known: 0,
        batch: Some(batch),
    });
    store.conn = None;
    let mut retry: Vec<Record> = first.to_vec();
    retry.extend([start(b, "bob", at(3)), prompt(b)]);
    store.write_batch(&retry.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_user_prompts"), "2", "one prompt per interception");
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_interceptions"), "2");

    // A batch that failed before COMMIT (nothing written) is written whole on retry.
    let c = db::new_interception_id();
    store.uncertain =
        Some(super::Uncertain { identities: vec![super::identity(&prompt(c))], known: 0, batch: Some(Uuid::now_v7()) });
    store.write_batch(&[&prompt(c)]).unwrap();
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_user_prompts"), "3");
}

/// The server kills the sink's connection (as `pg_terminate_backend` or a restart does): the next call
/// fails as a passing fault, the one after reconnects and writes.
#[test]
fn a_terminated_connection_is_transient_and_reconnects() {
    let (mut s, db, _) = store("terminate", Workload::RecordWriter);
    let id = db::new_interception_id();
    s.write_batch(&[&start(id, "alice", at(0))]).unwrap();
    psql(
        &db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut saw_transient = false;
    loop {
        match s.write_batch(&[&end(id, at(1))]) {
            Ok(()) => break,
            Err(StoreError::Transient(_)) => saw_transient = true,
            Err(e) => panic!("expected a transient error, got {e:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never reconnected");
    }
    assert!(saw_transient, "the lost connection was reported");
    let detail = s.interception(id).unwrap().unwrap();
    assert_eq!(detail.interception.ended_at, Some(at(1)));
}

#[test]
fn errors_map_to_the_classes_the_sink_retries_on() {
    let (mut s, db, _) = store("classes", Workload::RecordWriter);
    let id = db::new_interception_id();
    psql(&db, "CREATE UNIQUE INDEX one_prompt ON aibridge_user_prompts (prompt)");
    let prompt = Record::PromptUsage(PromptUsage {
        interception_id: id,
        msg_id: "m".into(),
        prompt: "p".into(),
        created_at: at(0),
    });
    s.write_batch(&[&prompt]).unwrap();
    assert!(matches!(s.write_batch(&[&prompt]), Err(StoreError::Rejected(_))));
    // The store is still usable after a rejected batch.
    s.write_batch(&[&start(id, "alice", at(0))]).unwrap();
    psql(&db, "DROP TABLE aibridge_model_thoughts");
    let thought = Record::ModelThought(ModelThought {
        interception_id: id,
        msg_id: "m".into(),
        content: "c".into(),
        source: "s".into(),
        created_at: at(0),
    });
    assert!(matches!(s.write_batch(&[&thought]), Err(StoreError::Fault(_))));
    // An unreachable server: opening fails, and the error names no password.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("postgres://u:secretpw@127.0.0.1:{port}/x?sslmode=disable");
    let err = db::open(url(&dead), Workload::General).map(|_| ()).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("secretpw"), "{err}");
}

/// With several gateways on one database only one purges at a time: a gateway that loses the try-lock
/// skips the round.
#[test]
fn only_one_gateway_purges_at_a_time() {
    let (mut s, db, text) = store("purge_lock", Workload::RecordWriter);
    let id = db::new_interception_id();
    s.write_batch(&[&start(id, "alice", at(0))]).unwrap();
    let lock = super::write::PURGE_LOCK;
    let pg = match url(&text) {
        DatabaseUrl::Postgres(pg) => pg,
        DatabaseUrl::Sqlite(_) => unreachable!(),
    };
    // Another gateway holds the purge lock.
    let mut other = pg.config.connect(postgres::NoTls).unwrap();
    other.execute("SELECT pg_advisory_lock($1)", &[&lock]).unwrap();
    assert_eq!(s.purge_before(SystemTime::now(), 10).unwrap(), 0);
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_interceptions"), "1");
    other.execute("SELECT pg_advisory_unlock($1)", &[&lock]).unwrap();
    assert_eq!(s.purge_before(SystemTime::now(), 10).unwrap(), 1);
    assert_eq!(psql(&db, "SELECT count(*) FROM aibridge_interceptions"), "0");
}

#[test]
fn tokens_written_by_one_store_are_seen_by_another() {
    let (mut a, _, text) = store("shared_tokens", Workload::General);
    let mut b = db::open(url(&text), Workload::General).unwrap();
    a.insert_token(&token("tok1", "alice", at(0))).unwrap();
    assert_eq!(b.load_tokens().unwrap().len(), 1);
    assert!(b.revoke_token("tok1", at(5)).unwrap());
    assert_eq!(a.load_tokens().unwrap()[0].revoked_at, Some(at(5)));
}

// The sessions conformance cases (thread linking at write time, sessions, usage, token roles).

#[test]
fn conformance_threads() {
    crate::db::conformance_sessions::tool_results_link_to_the_thread_that_made_the_call_in_one_batch_or_across_batches(
        &mut *store("threads", Workload::RecordWriter).0,
    );
}

#[test]
fn conformance_sessions() {
    crate::db::conformance_sessions::sessions_group_by_client_session_else_thread_and_page_stably_while_records_arrive(
        &mut *store("sessions", Workload::RecordWriter).0,
    );
}

#[test]
fn conformance_usage() {
    crate::db::conformance_sessions::usage_rows_sum_per_user_model_and_day(
        &mut *store("usage", Workload::RecordWriter).0,
    );
}

#[test]
fn conformance_token_roles() {
    crate::db::conformance_sessions::tokens_keep_their_role_and_old_rows_are_users(
        &mut *store("roles", Workload::General).0,
    );
}

/// The read-only connection of the sessions API reads everything and refuses writes.
#[test]
fn a_reader_store_reads_but_cannot_write() {
    let (mut writer, _db, text) = store("reader", Workload::RecordWriter);
    let id = db::new_interception_id();
    writer.write_batch(&[&start(id, "alice", at(0))]).unwrap();
    let mut reader = db::open(url(&text), Workload::Reader).unwrap();
    assert!(reader.interception(id).unwrap().is_some());
    assert!(reader.insert_token(&token("t", "alice", at(0))).is_err());
}
