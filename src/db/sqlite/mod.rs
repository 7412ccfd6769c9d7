//! SQLite, the first [`Store`]: one file in WAL mode. A record-writing store also checkpoints the WAL
//! between its batches ([`Store::maintain`]). Owns every SQL statement and the mapping of SQLite's errors onto
//! [`StoreError`]; nothing outside `db::sqlite` (tests aside) sees a `rusqlite` type.

mod checkpoint;
mod connection;
mod queries;
mod schema;
mod sessions;
mod threads;
mod tokens;
mod write;

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, ErrorCode};
use uuid::Uuid;

use super::{
    timefmt, DbError, InterceptionDetail, InterceptionPage, InterceptionQuery, SessionPage, SessionQuery, Store,
    StoreError, StoredToken, TokenInfo, UsageRow, Workload,
};
use crate::records::{EndStatus, Record};

/// A raw connection, for tests that must hold a lock or alter the schema under a running sink.
#[cfg(test)]
pub(crate) use connection::open_connection;

/// The record writer's busy timeout: short, so that while another writer holds the lock the sink goes
/// back to draining its channel into memory instead of sleeping inside SQLite.
const RECORD_WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// A [`Store`] over one SQLite connection.
pub(crate) struct SqliteStore {
    conn: Connection,
    /// Present for a record writer: when its next WAL checkpoint is due.
    checkpoints: Option<checkpoint::Checkpoints>,
}

impl SqliteStore {
    /// Opens the database at `path` (creating and migrating it) for `workload`. A record writer gets the
    /// short busy timeout, and its commits never checkpoint: [`Store::maintain`] does, between batches.
    pub(crate) fn open(path: &Path, workload: Workload) -> Result<Self, DbError> {
        let conn = connection::open_connection(path)?;
        let checkpoints = match workload {
            Workload::General => None,
            Workload::Reader => {
                conn.pragma_update(None, "query_only", true).map_err(connection::open_error)?;
                None
            }
            Workload::RecordWriter => {
                conn.busy_timeout(RECORD_WRITER_BUSY_TIMEOUT).map_err(connection::open_error)?;
                conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(connection::open_error)?;
                Some(checkpoint::Checkpoints::new())
            }
        };
        Ok(SqliteStore { conn, checkpoints })
    }
}

/// Sorts a SQLite error into the classes callers act on.
fn classify(err: rusqlite::Error) -> StoreError {
    let class = match &err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            // Another writer holds the lock, the disk is full or failing: the batch is kept and retried.
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly => StoreError::Transient,
            // About one record's content, so that record alone can never be stored.
            ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => StoreError::Rejected,
            _ => StoreError::Fault,
        },
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..) => StoreError::Rejected,
        // Every other error is treated as a fault of the database: a record is only ever given up on when
        // SQLite rejects that record itself.
        _ => StoreError::Fault,
    };
    class(err.into())
}

impl Store for SqliteStore {
    fn write_batch(&mut self, records: &[&Record]) -> Result<(), StoreError> {
        write::write_batch(&mut self.conn, records).map_err(classify)?;
        if let Some(c) = self.checkpoints.as_mut() {
            c.committed();
        }
        Ok(())
    }

    fn maintain(&mut self) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.run_if_due(&self.conn);
        }
    }

    fn purge_before(&mut self, cutoff: SystemTime, limit: usize) -> Result<usize, StoreError> {
        write::purge_chunk(&mut self.conn, timefmt::format(cutoff).as_str(), limit).map_err(classify)
    }

    fn settle_open(&mut self, gateway_id: &str, at: SystemTime, reason: &str) -> Result<usize, StoreError> {
        let at = timefmt::format(at);
        write::settle_open(&self.conn, gateway_id, at.as_str(), EndStatus::Failed.as_str(), reason).map_err(classify)
    }

    fn insert_token(&mut self, token: &StoredToken) -> Result<(), StoreError> {
        tokens::insert(&self.conn, token)
    }

    fn list_tokens(&mut self) -> Result<Vec<TokenInfo>, StoreError> {
        tokens::list(&self.conn)
    }

    fn revoke_token(&mut self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        tokens::revoke(&self.conn, id, at)
    }

    fn load_tokens(&mut self) -> Result<Vec<StoredToken>, StoreError> {
        tokens::load(&self.conn)
    }

    fn list_interceptions(&mut self, query: &InterceptionQuery) -> Result<InterceptionPage, StoreError> {
        queries::list_interceptions(&self.conn, query)
    }

    fn interception(&mut self, id: Uuid) -> Result<Option<InterceptionDetail>, StoreError> {
        queries::interception(&self.conn, id)
    }

    fn list_sessions(&mut self, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        sessions::list_sessions(&self.conn, query)
    }

    fn session_interceptions(
        &mut self,
        session_id: &str,
        initiator_id: Option<&str>,
    ) -> Result<Vec<InterceptionDetail>, StoreError> {
        sessions::session_interceptions(&self.conn, session_id, initiator_id)
    }

    fn usage(&mut self, since: SystemTime, initiator_id: Option<&str>) -> Result<Vec<UsageRow>, StoreError> {
        sessions::usage(&self.conn, since, initiator_id)
    }

    fn close(&mut self) {
        // Fold the WAL into the database before exit; closing the last connection also tries this.
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "final WAL checkpoint failed; the WAL is replayed on next open");
        }
    }
}

/// Parses a stored time column; `row` names the row in the error.
fn parse_time(row: &str, column: &'static str, text: Option<String>) -> Result<Option<SystemTime>, StoreError> {
    match text {
        None => Ok(None),
        Some(t) => timefmt::parse(&t).map(Some).ok_or_else(|| StoreError::Corrupt { row: row.to_owned(), column }),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sessions;
