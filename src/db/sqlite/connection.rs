//! Opening a SQLite connection the way every part of aibridged needs it: WAL, synchronous=NORMAL, a busy
//! timeout, a page cache sized for the sink, and the schema migrated. Owns connection set-up only.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use crate::db::DbError;

/// How long a connection waits on another writer before SQLite reports `SQLITE_BUSY`. Long enough to ride
/// over a checkpoint or a `tokens create` from the CLI; the sink's connection shortens it for itself.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

pub(super) fn open_error(e: rusqlite::Error) -> DbError {
    DbError::Open(e.into())
}

/// Opens (creating if needed) the database at `path` in WAL mode with a busy timeout, and applies every
/// migration it has not seen yet. Safe to call from several processes at once.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let mut conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::NotWal(mode));
    }
    // WAL + NORMAL: a commit is durable against a process crash; only an OS crash can lose the last
    // transactions, the trade accepted for never making a worker wait on a disk sync.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{CACHE_SIZE_KIB}; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(open_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    schema::migrate(&mut conn)?;
    Ok(conn)
}
