//! The SQLite schema (DESIGN §3) and its versioned migrations, applied with `PRAGMA user_version` on every
//! open. Owns connection set-up (WAL, busy timeout); must not write records.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::SinkError;

/// How long a connection waits on another writer before SQLite reports `SQLITE_BUSY`. Long enough to ride
/// over a checkpoint or a `tokens create` from the CLI; the sink thread shortens it for itself.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per connection, in KiB (SQLite's negative `cache_size`): keeps the hot ends of the
/// interception indexes in memory so batched inserts do not re-read pages.
const CACHE_SIZE_KIB: i64 = 16 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1000). A checkpoint copies every page once
/// whatever the number of commits that touched it, so a longer WAL writes the hot tail pages of the record
/// tables fewer times; 8192 pages bounds the WAL near 32 MiB.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;

/// Prepared statements kept per connection. The sink's batch writes use up to 17 (three row counts for
/// each multi-row insert), retention 6 more; rusqlite's default of 16 would re-prepare them every batch.
const STATEMENT_CACHE: usize = 64;

/// Migrations, in order. Entry `i` moves the schema from version `i` to `i + 1`. Never edit a shipped
/// entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the record tables and user tokens. Interceptions are keyed by their id alone (WITHOUT ROWID): one
    // B-tree instead of a table plus a unique index, and with time-ordered ids every insert appends.
    "
    CREATE TABLE aibridge_interceptions (
        id                TEXT PRIMARY KEY NOT NULL,
        initiator_id      TEXT,
        provider          TEXT,
        provider_name     TEXT,
        model             TEXT,
        client            TEXT,
        client_session_id TEXT,
        user_agent        TEXT,
        credential_kind   TEXT,
        credential_hint   TEXT,
        started_at        TEXT,
        ended_at          TEXT,
        status            TEXT,
        upstream_status   INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX aibridge_interceptions_started_at ON aibridge_interceptions (started_at);

    CREATE TABLE aibridge_token_usages (
        id                       INTEGER PRIMARY KEY,
        interception_id          TEXT NOT NULL,
        msg_id                   TEXT NOT NULL,
        input_tokens             INTEGER NOT NULL,
        output_tokens            INTEGER NOT NULL,
        cache_read_input_tokens  INTEGER NOT NULL,
        cache_write_input_tokens INTEGER NOT NULL,
        reasoning_tokens         INTEGER NOT NULL,
        extra                    TEXT NOT NULL,
        created_at               TEXT NOT NULL
    );
    CREATE INDEX aibridge_token_usages_interception_id ON aibridge_token_usages (interception_id);

    CREATE TABLE aibridge_user_prompts (
        id              INTEGER PRIMARY KEY,
        interception_id TEXT NOT NULL,
        msg_id          TEXT NOT NULL,
        prompt          TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX aibridge_user_prompts_interception_id ON aibridge_user_prompts (interception_id);

    CREATE TABLE aibridge_tool_usages (
        id              INTEGER PRIMARY KEY,
        interception_id TEXT NOT NULL,
        msg_id          TEXT NOT NULL,
        tool            TEXT NOT NULL,
        tool_call_id    TEXT NOT NULL,
        input           TEXT NOT NULL,
        server_url      TEXT,
        injected        INTEGER NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX aibridge_tool_usages_interception_id ON aibridge_tool_usages (interception_id);

    CREATE TABLE aibridge_model_thoughts (
        id              INTEGER PRIMARY KEY,
        interception_id TEXT NOT NULL,
        msg_id          TEXT NOT NULL,
        content         TEXT NOT NULL,
        source          TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX aibridge_model_thoughts_interception_id ON aibridge_model_thoughts (interception_id);

    CREATE TABLE aibridge_api_tokens (
        id          TEXT PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT,
        revoked_at  TEXT
    );
    ",
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Opens (creating if needed) the database at `path` in WAL mode with a busy timeout, and applies every
/// migration it has not seen yet. Safe to call from several processes at once: migrations run under an
/// immediate transaction and re-check the version inside it.
pub fn open_database(path: &Path) -> Result<Connection, SinkError> {
    let mut conn = Connection::open(path).map_err(SinkError::Open)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(SinkError::Open)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(SinkError::Open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SinkError::NotWal(mode));
    }
    // WAL + NORMAL: a commit is durable against a process crash; only an OS crash can lose the last
    // transactions, which is the trade DESIGN §4 accepts for never making a worker wait.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{CACHE_SIZE_KIB}; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(SinkError::Open)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn)?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn migrate(conn: &mut Connection) -> Result<(), SinkError> {
    let target = current_version();
    if user_version(conn).map_err(SinkError::Migrate)? == target {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(SinkError::Migrate)?;
    let found = user_version(&tx).map_err(SinkError::Migrate)?;
    if found > target {
        return Err(SinkError::SchemaTooNew { found, known: target });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(SinkError::Migrate)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(SinkError::Migrate)?;
    }
    tx.commit().map_err(SinkError::Migrate)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_and_migrates_once() {
        let dir = crate::sink::test_dir("schema");
        let path = dir.join("a.db");
        let conn = open_database(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), current_version());
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // A second open finds the schema in place and does not fail re-creating it.
        let conn = open_database(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'aibridge_%'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 6);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = crate::sink::test_dir("schema-new");
        let path = dir.join("a.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        match open_database(&path) {
            Err(SinkError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
    }
}
