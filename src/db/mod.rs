//! The database behind the sink and `auth`: the [`Store`] interface both talk to, its typed errors, the
//! rows it reads back, interception ids and timestamp text. SQLite (`db::sqlite`) is the embedded default
//! for one gateway, PostgreSQL (`db::postgres`) the store several gateways share; [`open`] chooses by the
//! URL's scheme and nothing above this module changes. Never used on a worker: every method blocks on I/O.

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod conformance_sessions;
mod ids;
pub(crate) mod postgres;
pub(crate) mod sessions;
pub(crate) mod sqlite;
pub(crate) mod timefmt;
mod url;

use std::time::SystemTime;

use uuid::Uuid;

use crate::records::{ModelThought, PromptUsage, Record, TokenUsage, ToolUsage};

pub use ids::new_interception_id;
pub(crate) use sessions::{FilterArg, SessionFilter, SessionPage, SessionQuery, SessionSummary, TokenTotals, UsageRow};
pub use url::{DatabaseUrl, UrlError};

/// The error a backend reported, kept whole for the log line.
pub(crate) type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why a database could not be opened or prepared for use.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database: {0}")]
    Open(#[source] BackendError),
    #[error("the database refused WAL mode (journal mode is {0:?})")]
    NotWal(String),
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[source] BackendError),
    #[error("the database schema is version {found}, newer than this build knows ({known}); upgrade aibridged")]
    SchemaTooNew { found: i64, known: i64 },
}

/// Why a [`Store`] operation failed, classified so callers decide on retries without knowing the backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A fault that passes (another writer holds the lock, the disk is full or failing): nothing was
    /// written; the same call can succeed later.
    #[error("{0}")]
    Transient(#[source] BackendError),
    /// The content of one of the records can never be stored (a constraint, a value too big): retrying the
    /// same records fails the same way.
    #[error("{0}")]
    Rejected(#[source] BackendError),
    /// Any other database fault. Nothing was written; whether it passes is unknown, so writers retry.
    #[error("{0}")]
    Fault(#[source] BackendError),
    /// A stored value this build cannot read (a malformed time, id or hash).
    #[error("stored row {row} has a malformed {column}")]
    Corrupt { row: String, column: &'static str },
}

/// What a connection is for, so the backend can tune it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// The sink thread: the only record writer. It must never wait long for a lock (it goes back to
    /// draining the channel instead), and storage maintenance runs beside it.
    RecordWriter,
    /// Everything else: the CLI, the token refresher.
    General,
    /// The sessions API and CLI: reads only (the connection refuses writes), so a bug there can never
    /// touch the records.
    Reader,
}

/// Opens the configured database (migrating its schema) for `workload`. The one place a backend is
/// chosen.
pub(crate) fn open(url: impl Into<DatabaseUrl>, workload: Workload) -> Result<Box<dyn Store>, DbError> {
    Ok(match url.into() {
        DatabaseUrl::Sqlite(path) => Box::new(sqlite::SqliteStore::open(&path, workload)?),
        DatabaseUrl::Postgres(pg) => Box::new(postgres::PgStore::open(&pg, workload)?),
    })
}

/// Everything aibridged stores and reads back. Implementations own their connections; every method
/// blocks, so none may be called on a worker. A failed call leaves nothing half-written.
pub(crate) trait Store: Send {
    /// Writes `records` atomically, in order (an end may precede its start: the row is completed later).
    fn write_batch(&mut self, records: &[&Record]) -> Result<(), StoreError>;

    /// Deletes up to `limit` interceptions started before `cutoff` (an end without a start is aged by its
    /// end) with all their child rows, atomically. Returns how many were removed; fewer than `limit`
    /// means none are left.
    fn purge_before(&mut self, cutoff: SystemTime, limit: usize) -> Result<usize, StoreError>;

    /// Ends, as `failed` at `at` with `reason`, every interception `gateway_id` started and never ended:
    /// its previous run was killed with them in flight. Called once at start, before the gateway serves, so
    /// no interception of the new run can be among them. Returns how many were settled.
    fn settle_open(&mut self, gateway_id: &str, at: SystemTime, reason: &str) -> Result<usize, StoreError>;

    /// Adds a token. Its id is new; only the hash of its secret is given.
    fn insert_token(&mut self, token: &StoredToken) -> Result<(), StoreError>;

    /// Every token, newest first, without hashes. A row with a malformed time is an error.
    fn list_tokens(&mut self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Marks the token revoked at `at`. False when no unrevoked token has this id.
    fn revoke_token(&mut self, id: &str, at: SystemTime) -> Result<bool, StoreError>;

    /// Every token with its hash, for the workers' token cache. A malformed row is logged and skipped, so
    /// one bad row never locks every user out.
    fn load_tokens(&mut self) -> Result<Vec<StoredToken>, StoreError>;

    /// One page of interceptions, newest start first.
    fn list_interceptions(&mut self, query: &InterceptionQuery) -> Result<InterceptionPage, StoreError>;

    /// One interception with every child row, or `None` when no such id is stored. The spill import uses
    /// it to skip child records a previous import already wrote.
    fn interception(&mut self, id: Uuid) -> Result<Option<InterceptionDetail>, StoreError>;

    /// One page of sessions matching `query.filter`, newest first, with the number matching in all.
    fn list_sessions(&mut self, query: &SessionQuery) -> Result<SessionPage, StoreError>;

    /// Every interception of session `session_id` (only `initiator_id`'s when given), oldest start first,
    /// each with its child rows. Empty when there is no such session (for that user).
    fn session_interceptions(
        &mut self,
        session_id: &str,
        initiator_id: Option<&str>,
    ) -> Result<Vec<InterceptionDetail>, StoreError>;

    /// Token use and request counts per (user, model, UTC day) of the interceptions started at or after
    /// `since` (only `initiator_id`'s when given).
    fn usage(&mut self, since: SystemTime, initiator_id: Option<&str>) -> Result<Vec<UsageRow>, StoreError>;

    /// Storage upkeep between batches, on the writer's own thread (SQLite: a passive WAL checkpoint when
    /// one is due). The sink calls it after every loop turn that is not waiting out a fault, so it runs
    /// at least every idle poll; it must be cheap when nothing is due. The default has none.
    fn maintain(&mut self) {}

    /// Finishes background work before the process exits (the default has none). Called once, last.
    fn close(&mut self) {}
}

/// What a token may read through the sessions API: a `user` token its own user's records, an `admin`
/// token everyone's. The data plane treats both alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    User,
    Admin,
}

impl Role {
    /// The name stored in the tokens table and shown by `tokens list`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The role a stored name stands for; an unknown name is the least privileged role.
    pub(crate) fn from_stored(name: &str) -> Role {
        if name == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// A token row. `secret_hash` is the SHA-256 of the secret; the secret itself is never stored.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoredToken {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) secret_hash: [u8; 32],
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) revoked_at: Option<SystemTime>,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// What `tokens list` shows about a token (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) revoked_at: Option<SystemTime>,
}

/// Which interceptions [`Store::list_interceptions`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InterceptionQuery {
    /// Only this user's interceptions.
    pub(crate) initiator_id: Option<String>,
    /// Only interceptions started at or after this instant.
    pub(crate) started_after: Option<SystemTime>,
    /// Only interceptions started before this instant.
    pub(crate) started_before: Option<SystemTime>,
    /// Continue after the last row of a previous page.
    pub(crate) after: Option<Cursor>,
    /// Rows per page (at least 1; the backend may cap it at [`MAX_PAGE`]).
    pub(crate) limit: usize,
}

/// Most rows one page may hold, so one request cannot make the database build an unbounded answer.
pub(crate) const MAX_PAGE: usize = 1000;

/// Where a page ended: the sort key of its last row. Interceptions sort by start time, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) started_at: SystemTime,
    pub(crate) id: Uuid,
}

/// One page of interceptions and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterceptionPage {
    pub(crate) interceptions: Vec<StoredInterception>,
    pub(crate) next: Option<Cursor>,
}

/// An interception row as stored. Columns of a half that has not arrived yet (an end before its start)
/// are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredInterception {
    pub(crate) id: Uuid,
    pub(crate) initiator_id: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) provider_name: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) client_session_id: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) credential_kind: Option<String>,
    pub(crate) credential_hint: Option<String>,
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) ended_at: Option<SystemTime>,
    pub(crate) status: Option<String>,
    pub(crate) upstream_status: Option<u16>,
    /// The tool call this interception's request answers (see `InterceptionStart`).
    pub(crate) correlating_tool_call_id: Option<String>,
    /// The interception that started this one's thread; `None` when it started its own.
    pub(crate) thread_root_id: Option<Uuid>,
}

impl StoredInterception {
    /// The interception that started this one's thread (itself for a thread's first).
    pub(crate) fn thread_root(&self) -> Uuid {
        self.thread_root_id.unwrap_or(self.id)
    }
}

/// An interception with everything recorded about it, each list in the order it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InterceptionDetail {
    pub(crate) interception: StoredInterception,
    pub(crate) token_usages: Vec<TokenUsage>,
    pub(crate) prompts: Vec<PromptUsage>,
    pub(crate) tool_usages: Vec<ToolUsage>,
    pub(crate) thoughts: Vec<ModelThought>,
}

/// A fresh directory under the system temp dir for one test's database and logs.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "aibridged-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}
