//! The SQLite schema (the record tables and user tokens) and its versioned migrations, applied with
//! `PRAGMA user_version` on every open. Owns only the table definitions; must not write rows.

use rusqlite::{Connection, TransactionBehavior};

use crate::db::DbError;

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
    // 2: which gateway instance started each interception, and why an interception ended when the
    // gateway (not the exchange) decided it: a gateway settles at start what its previous run left open.
    // No index: the settle scans once per start, and an index on open rows would cost every insert.
    "
    ALTER TABLE aibridge_interceptions ADD COLUMN gateway_id TEXT;
    ALTER TABLE aibridge_interceptions ADD COLUMN end_reason TEXT;
    ",
    // 3: sessions and threads. `correlating_tool_call_id` is the last tool-result id of the request;
    // `thread_root_id` the interception that started its thread (NULL: the row starts its own thread),
    // filled by the store from the recorded tool calls when the row is written. The indexes serve the
    // thread lookup (tool_call_id) and reading one session (client_session_id, thread_root_id). Tokens
    // get a role: `user` sees its own records through the sessions API, `admin` everyone's.
    "
    ALTER TABLE aibridge_interceptions ADD COLUMN correlating_tool_call_id TEXT;
    ALTER TABLE aibridge_interceptions ADD COLUMN thread_root_id TEXT;
    CREATE INDEX aibridge_tool_usages_tool_call_id ON aibridge_tool_usages (tool_call_id);
    CREATE INDEX aibridge_interceptions_client_session_id ON aibridge_interceptions (client_session_id);
    CREATE INDEX aibridge_interceptions_thread_root_id ON aibridge_interceptions (thread_root_id);
    ALTER TABLE aibridge_api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
    ",
];

/// The schema version this build writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn user_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Applies every migration `conn` has not seen yet. Safe from several processes at once: migrations run
/// under an immediate transaction and re-check the version inside it.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let target = current_version();
    if user_version(conn).map_err(|e| DbError::Migrate(e.into()))? == target {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| DbError::Migrate(e.into()))?;
    let found = user_version(&tx).map_err(|e| DbError::Migrate(e.into()))?;
    if found > target {
        return Err(DbError::SchemaTooNew { found, known: target });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(|e| DbError::Migrate(e.into()))?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| DbError::Migrate(e.into()))?;
    }
    tx.commit().map_err(|e| DbError::Migrate(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_and_migrates_once() {
        let dir = crate::db::test_dir("schema");
        let path = dir.join("a.db");
        let conn = super::super::open_connection(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), current_version());
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // A second open finds the schema in place and does not fail re-creating it.
        let conn = super::super::open_connection(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'aibridge_%'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 6);
    }

    /// A database of schema 2 moves to 3: its interceptions and tokens stay, old tokens are `user`s.
    #[test]
    fn migration_3_keeps_rows_and_makes_old_tokens_users() {
        let dir = crate::db::test_dir("schema-3");
        let path = dir.join("a.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO aibridge_api_tokens (id, user, secret_hash, created_at) VALUES ('t', 'u', x'00', 'x')",
                [],
            )
            .unwrap();
            conn.execute("INSERT INTO aibridge_interceptions (id, client_session_id) VALUES ('i', 's')", []).unwrap();
        }
        let conn = super::super::open_connection(&path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 3);
        let role: String = conn.query_row("SELECT role FROM aibridge_api_tokens", [], |r| r.get(0)).unwrap();
        assert_eq!(role, "user");
        let (session, root): (String, Option<String>) = conn
            .query_row("SELECT client_session_id, thread_root_id FROM aibridge_interceptions", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((session.as_str(), root), ("s", None));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = crate::db::test_dir("schema-new");
        let path = dir.join("a.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        match super::super::open_connection(&path) {
            Err(DbError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
        }
    }
}
