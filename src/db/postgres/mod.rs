//! PostgreSQL, the [`Store`] for several gateways on one database. The synchronous `postgres` client runs
//! on the calling thread (the sink, the token refresher, the CLI), never on a worker. A lost connection
//! is re-opened on the next call; a batch whose COMMIT outcome was lost with it is looked up in the
//! `aibridge_sink_batches` ledger before anything is written again, so a retry never duplicates rows.
//! Owns every SQL statement and the mapping of PostgreSQL's errors onto [`StoreError`].

mod batch_sql;
mod queries;
mod schema;
mod sessions;
mod threads;
mod tls;
mod tokens;
mod url;
mod write;

use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::{
    DbError, InterceptionDetail, InterceptionPage, InterceptionQuery, SessionPage, SessionQuery, Store, StoreError,
    StoredToken, TokenInfo, UsageRow, Workload,
};
use crate::records::{EndStatus, Record};

pub use url::PgUrl;

/// The schema version this build writes, for tests.
#[cfg(test)]
pub(crate) use schema::current_version;

/// Longest one statement of the record writer may run: a server that stops answering (without closing the
/// connection) turns into a retryable error instead of a stuck sink.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an unacknowledged write may sit in the kernel before the connection is declared dead.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

/// A [`Store`] over one PostgreSQL connection, re-opened after it is lost.
pub(crate) struct PgStore {
    url: PgUrl,
    tls: Option<MakeRustlsConnect>,
    workload: Workload,
    conn: Option<Conn>,
    /// What is known of the front of the caller's records after a failed write.
    uncertain: Option<Uncertain>,
    /// Batches committed on this store, for pruning the ledger now and then.
    batches: u64,
}

struct Conn {
    client: Client,
    /// The record writer's prepared statements.
    stmts: Option<write::Statements>,
}

/// After a batch failed: the identities of the records it began with, how many of them are known to be
/// committed, and the ledger id of a batch whose COMMIT outcome is unknown.
struct Uncertain {
    identities: Vec<u64>,
    known: usize,
    batch: Option<Uuid>,
}

/// Enough of a record to tell that a retry starts with the same records.
fn identity(record: &Record) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    record.record_type().hash(&mut h);
    match record {
        Record::InterceptionStart(r) => (r.interception_id, r.started_at).hash(&mut h),
        Record::InterceptionEnd(r) => (r.interception_id, r.ended_at).hash(&mut h),
        Record::TokenUsage(r) => (r.interception_id, &r.msg_id, r.created_at).hash(&mut h),
        Record::PromptUsage(r) => (r.interception_id, &r.msg_id, r.created_at).hash(&mut h),
        Record::ToolUsage(r) => (r.interception_id, &r.tool_call_id, r.created_at).hash(&mut h),
        Record::ModelThought(r) => (r.interception_id, &r.content, r.created_at).hash(&mut h),
    }
    h.finish()
}

impl PgStore {
    /// Connects to `url` and migrates its schema (under the migration lock) for `workload`.
    pub(crate) fn open(url: &PgUrl, workload: Workload) -> Result<Self, DbError> {
        let mut url = url.clone();
        if url.config.get_tcp_user_timeout().is_none() {
            url.config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let tls = tls::connector(&url).map_err(DbError::Open)?;
        let mut store = PgStore { url, tls, workload, conn: None, uncertain: None, batches: 0 };
        let mut client = store.connect().map_err(|e| DbError::Open(boxed(e)))?;
        schema::migrate(&mut client)?;
        store.conn = Some(store.prepare(client).map_err(|e| DbError::Open(boxed(e)))?);
        Ok(store)
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        let mut client = match &self.tls {
            None => self.url.config.connect(NoTls)?,
            Some(tls) => self.url.config.connect(tls.clone())?,
        };
        if self.workload == Workload::RecordWriter {
            client.batch_execute(&format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis()))?;
        }
        Ok(client)
    }

    /// Readies a connection (after any migration): the writer's statements, the reader's read-only mode.
    fn prepare(&self, mut client: Client) -> Result<Conn, postgres::Error> {
        if self.workload == Workload::Reader {
            // The sessions API and CLI: the connection refuses writes, so a bug there can never touch the records.
            client.batch_execute("SET default_transaction_read_only = on")?;
        }
        let stmts = match self.workload {
            Workload::RecordWriter => Some(write::Statements::prepare(&mut client)?),
            Workload::General | Workload::Reader => None,
        };
        Ok(Conn { client, stmts })
    }

    /// The open connection, re-opened (loudly) when the last one was lost.
    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            let conn = self.connect().and_then(|c| self.prepare(c)).map_err(|e| {
                let e = PgError(e);
                tracing::error!(database = %self.url, error = %e, "cannot reach PostgreSQL");
                StoreError::Transient(Box::new(e))
            })?;
            tracing::warn!(database = %self.url, "reconnected to PostgreSQL");
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| StoreError::Transient("no PostgreSQL connection".into()))
    }

    /// Drops the connection after `e` when it is gone (or in an unknown state), so the next call reconnects.
    fn after_error(&mut self, e: &postgres::Error) {
        let closed = self.conn.as_ref().is_some_and(|c| c.client.is_closed());
        if (closed || e.as_db_error().is_none()) && self.conn.take().is_some() {
            let e = PgError::describe(e);
            tracing::error!(database = %self.url, error = %e, "lost the PostgreSQL connection; will reconnect");
        }
    }

    /// Runs `f` on the connection, mapping its error and dropping a lost connection.
    fn with<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let conn = self.conn()?;
        match f(&mut conn.client) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.after_error(&e);
                Err(classify(e))
            }
        }
    }

    /// Like [`PgStore::with`] for calls that map their own errors.
    fn with_mapped<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn()?;
        let result = f(&mut conn.client);
        if result.is_err() && conn.client.is_closed() {
            self.conn = None;
        }
        result
    }

    /// How many of `records`, from the front, an earlier failed call already committed.
    fn committed_prefix(&mut self, records: &[&Record]) -> Result<usize, StoreError> {
        let Some(mut u) = self.uncertain.take() else {
            return Ok(0);
        };
        let same = u.identities.iter().zip(records).all(|(&id, r)| id == identity(r));
        if !same {
            tracing::error!("a retried batch starts with other records than the failed one; writing all of them");
            return Ok(0);
        }
        if let Some(batch) = u.batch {
            match self.with(|c| write::batch_committed(c, batch)) {
                Ok(true) => u.known = u.identities.len(),
                Ok(false) => {}
                Err(e) => {
                    self.uncertain = Some(u);
                    return Err(e);
                }
            }
            u.batch = None;
        }
        let known = u.known.min(records.len());
        self.uncertain = Some(u);
        Ok(known)
    }

    /// Forgets the first `n` records of the uncertainty: the caller has them as committed.
    fn consumed(&mut self, n: usize) {
        if let Some(u) = self.uncertain.as_mut() {
            let n = n.min(u.identities.len());
            u.identities.drain(..n);
            u.known = u.known.saturating_sub(n);
            if u.known == 0 && u.batch.is_none() {
                self.uncertain = None;
            }
        }
    }
}

/// A PostgreSQL error with the server's message (or the I/O cause) in its text: the client's own
/// `Display` says only "db error".
#[derive(Debug)]
pub(crate) struct PgError(postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&PgError::describe(&self.0))
    }
}

impl PgError {
    /// The text [`PgError`] would show for a borrowed error.
    pub(super) fn describe(e: &postgres::Error) -> String {
        match e.as_db_error() {
            Some(db) => format!("PostgreSQL {} {}: {}", db.severity(), db.code().code(), db.message()),
            None => match std::error::Error::source(e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The error boxed for [`StoreError`] and [`DbError`].
pub(crate) fn boxed(e: postgres::Error) -> super::BackendError {
    Box::new(PgError(e))
}

/// Sorts a PostgreSQL error into the classes callers act on.
fn classify(err: postgres::Error) -> StoreError {
    let Some(db) = err.as_db_error() else {
        // No answer from the server (connection refused, reset, closed, timed out): it passes.
        return StoreError::Transient(boxed(err));
    };
    let class = match db.code().code().get(..2).unwrap_or("") {
        // Connection exceptions, resources, operator intervention (shutdown, restart, `pg_terminate_backend`),
        // serialization/deadlock, lock not available, read-only transaction, system errors.
        "08" | "53" | "57" | "40" | "55" | "25" | "58" => StoreError::Transient,
        // About one record's content: data exceptions, constraints, program limits.
        "22" | "23" | "54" => StoreError::Rejected,
        _ => StoreError::Fault,
    };
    class(boxed(err))
}

impl Store for PgStore {
    fn write_batch(&mut self, records: &[&Record]) -> Result<(), StoreError> {
        let skip = self.committed_prefix(records)?;
        if skip < records.len() {
            let batch = Uuid::now_v7();
            let prune = write::prune_due(self.batches + 1);
            let conn = self.conn()?;
            let stmts = conn.stmts.as_ref().ok_or_else(|| StoreError::Fault("not a record writer".into()))?;
            if let Err(failure) = write::write_batch(&mut conn.client, stmts, &records[skip..], batch, prune) {
                self.after_error(&failure.error);
                let identities = records.iter().map(|r| identity(r)).collect();
                if failure.at_commit {
                    self.uncertain = Some(Uncertain { identities, known: skip, batch: Some(batch) });
                    return Err(StoreError::Transient(boxed(failure.error)));
                }
                if skip > 0 {
                    self.uncertain = Some(Uncertain { identities, known: skip, batch: None });
                }
                return Err(classify(failure.error));
            }
            self.batches += 1;
        }
        self.consumed(records.len());
        Ok(())
    }

    fn purge_before(&mut self, cutoff: SystemTime, limit: usize) -> Result<usize, StoreError> {
        self.with(|c| write::purge_chunk(c, cutoff, limit))
    }

    fn settle_open(&mut self, gateway_id: &str, at: SystemTime, reason: &str) -> Result<usize, StoreError> {
        self.with(|c| write::settle_open(c, gateway_id, at, EndStatus::Failed.as_str(), reason))
    }

    fn insert_token(&mut self, token: &StoredToken) -> Result<(), StoreError> {
        self.with_mapped(|c| tokens::insert(c, token))
    }

    fn list_tokens(&mut self) -> Result<Vec<TokenInfo>, StoreError> {
        self.with_mapped(tokens::list)
    }

    fn revoke_token(&mut self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        self.with_mapped(|c| tokens::revoke(c, id, at))
    }

    fn load_tokens(&mut self) -> Result<Vec<StoredToken>, StoreError> {
        self.with_mapped(tokens::load)
    }

    fn list_interceptions(&mut self, query: &InterceptionQuery) -> Result<InterceptionPage, StoreError> {
        self.with_mapped(|c| queries::list_interceptions(c, query))
    }

    fn interception(&mut self, id: Uuid) -> Result<Option<InterceptionDetail>, StoreError> {
        self.with_mapped(|c| queries::interception(c, id))
    }

    fn list_sessions(&mut self, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        self.with_mapped(|c| sessions::list_sessions(c, query))
    }

    fn session_interceptions(
        &mut self,
        session_id: &str,
        initiator_id: Option<&str>,
    ) -> Result<Vec<InterceptionDetail>, StoreError> {
        self.with_mapped(|c| sessions::session_interceptions(c, session_id, initiator_id))
    }

    fn usage(&mut self, since: SystemTime, initiator_id: Option<&str>) -> Result<Vec<UsageRow>, StoreError> {
        self.with_mapped(|c| sessions::usage(c, since, initiator_id))
    }
}

#[cfg(test)]
pub(crate) mod tests;
