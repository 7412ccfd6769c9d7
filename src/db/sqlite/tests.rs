//! `SqliteStore` through the `Store` interface: tokens, the sessions queries, purge, and the error classes
//! the sink's retry logic depends on.

use uuid::Uuid;

use super::open_connection;
use crate::db::conformance::{self, at, start, token};
use crate::db::{self, test_dir, Store, StoreError, Workload};
use crate::records::*;

fn store(name: &str) -> (Box<dyn Store>, std::path::PathBuf) {
    let path = test_dir(name).join("a.db");
    (db::open(&path, Workload::General).unwrap(), path)
}

#[test]
fn tokens_insert_list_revoke_and_load() {
    conformance::tokens_insert_list_revoke_and_load(&mut *store("db-tokens").0);
}

#[test]
fn interceptions_page_by_user_and_time_with_a_cursor() {
    conformance::interceptions_page_by_user_and_time_with_a_cursor(&mut *store("db-pages").0);
}

#[test]
fn one_interception_comes_back_with_its_child_rows_in_order() {
    conformance::one_interception_comes_back_with_its_child_rows_in_order(&mut *store("db-detail").0);
}

#[test]
fn halves_in_any_order_make_one_row() {
    conformance::halves_in_any_order_make_one_row(&mut *store("db-halves").0);
}

#[test]
fn purge_removes_old_interceptions_with_their_children_in_chunks() {
    conformance::purge_removes_old_interceptions_with_their_children_in_chunks(&mut *store("db-purge").0);
}

#[test]
fn settle_open_ends_only_this_gateways_open_interceptions() {
    let (mut s, path) = store("db-settle");
    let conn = open_connection(&path).unwrap();
    let end_reason = |id: Uuid| -> Option<String> {
        conn.query_row("SELECT end_reason FROM aibridge_interceptions WHERE id = ?1", [id.to_string()], |r| r.get(0))
            .unwrap()
    };
    conformance::settle_open_ends_only_this_gateways_open_interceptions(&mut *s, &end_reason);
}

#[test]
fn a_malformed_token_row_is_skipped_by_load_and_reported_by_list() {
    let (mut s, path) = store("db-tokens-bad");
    s.insert_token(&token("good", "alice", at(0))).unwrap();
    let raw = open_connection(&path).unwrap();
    raw.execute_batch(
        "INSERT INTO aibridge_api_tokens (id, user, secret_hash, created_at) VALUES ('short', 'eve', x'00', \
         '2026-01-01T00:00:00Z'); \
         INSERT INTO aibridge_api_tokens (id, user, secret_hash, created_at, expires_at) VALUES ('late', 'eve', \
         zeroblob(32), '2026-01-01T00:00:00Z', 'next tuesday')",
    )
    .unwrap();
    let loaded: Vec<String> = s.load_tokens().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(loaded, ["good"]);
    match s.list_tokens() {
        Err(StoreError::Corrupt { row, column: "expires_at" }) => assert_eq!(row, "late"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn sqlite_errors_map_to_the_classes_the_sink_retries_on() {
    let (mut s, path) = store("db-classes");
    let id = db::new_interception_id();
    let raw = open_connection(&path).unwrap();

    // Another writer holds the lock: a passing fault.
    raw.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut writer = db::open(&path, Workload::RecordWriter).unwrap();
    assert!(matches!(writer.write_batch(&[&start(id, "alice", at(0))]), Err(StoreError::Transient(_))));
    raw.execute_batch("COMMIT").unwrap();
    writer.write_batch(&[&start(id, "alice", at(0))]).unwrap();
    writer.close();

    // A record's content the database refuses: rejected.
    raw.execute_batch("CREATE UNIQUE INDEX one_prompt ON aibridge_user_prompts (prompt)").unwrap();
    let prompt = Record::PromptUsage(PromptUsage {
        interception_id: id,
        msg_id: "m".into(),
        prompt: "p".into(),
        created_at: at(0),
    });
    s.write_batch(&[&prompt]).unwrap();
    assert!(matches!(s.write_batch(&[&prompt]), Err(StoreError::Rejected(_))));

    // Anything else (here a missing table): a fault, retried but not given up on.
    raw.execute_batch("DROP TABLE aibridge_model_thoughts").unwrap();
    let thought = Record::ModelThought(ModelThought {
        interception_id: id,
        msg_id: "m".into(),
        content: "c".into(),
        source: "s".into(),
        created_at: at(0),
    });
    assert!(matches!(s.write_batch(&[&thought]), Err(StoreError::Fault(_))));
}
