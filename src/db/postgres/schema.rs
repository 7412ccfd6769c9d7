//! The PostgreSQL schema: the same `aibridge_*` tables and columns as the SQLite store, with native types
//! (`uuid`, `timestamptz`, `jsonb`, `bytea`), and its versioned migrations. Entry `i` mirrors SQLite
//! migration `i + 1`; they run in one transaction under an advisory lock, so gateways starting together
//! against an empty database migrate it once. Owns only the table definitions.

use postgres::Client;

use crate::db::DbError;

/// The advisory lock key taken around migrations (`aibridge` read as ASCII digits of a 64-bit number).
const MIGRATION_LOCK: i64 = 0x6169_6272_6964_6701;

/// Migrations, in order. Never edit a shipped entry: add a new one (and its SQLite twin).
const MIGRATIONS: &[&str] = &[
    // 1: the record tables and user tokens. Child rows get an identity key like SQLite's rowid.
    // `aibridge_sink_batches` is PostgreSQL's own: the ledger of committed record batches, so a batch whose
    // COMMIT acknowledgement was lost with the connection is not written twice on retry.
    r#"
    CREATE TABLE aibridge_interceptions (
        id                uuid PRIMARY KEY,
        initiator_id      text,
        provider          text,
        provider_name     text,
        model             text,
        client            text,
        client_session_id text,
        user_agent        text,
        credential_kind   text,
        credential_hint   text,
        started_at        timestamptz,
        ended_at          timestamptz,
        status            text,
        upstream_status   integer
    );
    CREATE INDEX aibridge_interceptions_started_at ON aibridge_interceptions (started_at);

    CREATE TABLE aibridge_token_usages (
        id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        interception_id          uuid NOT NULL,
        msg_id                   text NOT NULL,
        input_tokens             bigint NOT NULL,
        output_tokens            bigint NOT NULL,
        cache_read_input_tokens  bigint NOT NULL,
        cache_write_input_tokens bigint NOT NULL,
        reasoning_tokens         bigint NOT NULL,
        extra                    jsonb NOT NULL,
        created_at               timestamptz NOT NULL
    );
    CREATE INDEX aibridge_token_usages_interception_id ON aibridge_token_usages (interception_id);

    CREATE TABLE aibridge_user_prompts (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        interception_id uuid NOT NULL,
        msg_id          text NOT NULL,
        prompt          text NOT NULL,
        created_at      timestamptz NOT NULL
    );
    CREATE INDEX aibridge_user_prompts_interception_id ON aibridge_user_prompts (interception_id);

    CREATE TABLE aibridge_tool_usages (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        interception_id uuid NOT NULL,
        msg_id          text NOT NULL,
        tool            text NOT NULL,
        tool_call_id    text NOT NULL,
        input           text NOT NULL,
        server_url      text,
        injected        boolean NOT NULL,
        created_at      timestamptz NOT NULL
    );
    CREATE INDEX aibridge_tool_usages_interception_id ON aibridge_tool_usages (interception_id);

    CREATE TABLE aibridge_model_thoughts (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        interception_id uuid NOT NULL,
        msg_id          text NOT NULL,
        content         text NOT NULL,
        source          text NOT NULL,
        created_at      timestamptz NOT NULL
    );
    CREATE INDEX aibridge_model_thoughts_interception_id ON aibridge_model_thoughts (interception_id);

    CREATE TABLE aibridge_api_tokens (
        id          text PRIMARY KEY,
        "user"      text NOT NULL,
        secret_hash bytea NOT NULL,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz,
        revoked_at  timestamptz
    );

    CREATE TABLE aibridge_sink_batches (
        id uuid PRIMARY KEY
    );
    "#,
    // 2: which gateway started each interception, and why the gateway (not the exchange) ended one.
    "
    ALTER TABLE aibridge_interceptions ADD COLUMN gateway_id text;
    ALTER TABLE aibridge_interceptions ADD COLUMN end_reason text;
    ",
    // 3: sessions and threads (SQLite migration 3). `correlating_tool_call_id` is the last tool-result id of
    // the request; `thread_root_id` the interception that started its thread (NULL: the row starts its own),
    // filled by the batch statement from the recorded tool calls. The indexes serve the thread lookup and
    // reading one session. Tokens get a role: `user` sees its own records through the sessions API,
    // `admin` everyone's.
    "
    ALTER TABLE aibridge_interceptions ADD COLUMN correlating_tool_call_id text;
    ALTER TABLE aibridge_interceptions ADD COLUMN thread_root_id uuid;
    CREATE INDEX aibridge_tool_usages_tool_call_id ON aibridge_tool_usages (tool_call_id);
    CREATE INDEX aibridge_interceptions_client_session_id ON aibridge_interceptions (client_session_id);
    CREATE INDEX aibridge_interceptions_thread_root_id ON aibridge_interceptions (thread_root_id);
    ALTER TABLE aibridge_api_tokens ADD COLUMN role text NOT NULL DEFAULT 'user';
    ",
    // 4: the session and thread indexes cover only the rows that have a value. A thread's first request
    // (and every request of a client that sends no session id) leaves the column NULL, and no query looks
    // those up through the index (`= $n` implies NOT NULL, so the planner still uses the partial index);
    // the writer skips one or two B-tree inserts per such interception.
    "
    DROP INDEX aibridge_interceptions_client_session_id;
    DROP INDEX aibridge_interceptions_thread_root_id;
    CREATE INDEX aibridge_interceptions_client_session_id ON aibridge_interceptions (client_session_id)
        WHERE client_session_id IS NOT NULL;
    CREATE INDEX aibridge_interceptions_thread_root_id ON aibridge_interceptions (thread_root_id)
        WHERE thread_root_id IS NOT NULL;
    ",
    // 5: a child row's primary key is (interception_id, id): what every read and the purge look up by, in
    // the order they read, so one B-tree per child row replaces a key on `id` beside an index on
    // `interception_id`.
    "
    ALTER TABLE aibridge_token_usages DROP CONSTRAINT aibridge_token_usages_pkey,
        ADD PRIMARY KEY (interception_id, id);
    DROP INDEX aibridge_token_usages_interception_id;
    ALTER TABLE aibridge_user_prompts DROP CONSTRAINT aibridge_user_prompts_pkey,
        ADD PRIMARY KEY (interception_id, id);
    DROP INDEX aibridge_user_prompts_interception_id;
    ALTER TABLE aibridge_tool_usages DROP CONSTRAINT aibridge_tool_usages_pkey,
        ADD PRIMARY KEY (interception_id, id);
    DROP INDEX aibridge_tool_usages_interception_id;
    ALTER TABLE aibridge_model_thoughts DROP CONSTRAINT aibridge_model_thoughts_pkey,
        ADD PRIMARY KEY (interception_id, id);
    DROP INDEX aibridge_model_thoughts_interception_id;
    ",
];

/// The schema version this build writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn migrate_error(e: postgres::Error) -> DbError {
    DbError::Migrate(super::boxed(e))
}

/// Applies every migration the database has not seen yet, in one transaction holding the migration lock:
/// a second gateway waits for the first and then finds nothing to do.
pub(super) fn migrate(client: &mut Client) -> Result<(), DbError> {
    let target = current_version();
    let mut tx = client.transaction().map_err(migrate_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(migrate_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS aibridge_schema_version (version bigint NOT NULL)")
        .map_err(migrate_error)?;
    let found: i64 = match tx.query_opt("SELECT version FROM aibridge_schema_version", &[]).map_err(migrate_error)? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO aibridge_schema_version (version) VALUES (0)", &[]).map_err(migrate_error)?;
            0
        }
    };
    if found > target {
        return Err(DbError::SchemaTooNew { found, known: target });
    }
    for sql in MIGRATIONS.iter().skip(found.max(0) as usize) {
        tx.batch_execute(sql).map_err(migrate_error)?;
    }
    if found < target {
        tx.execute("UPDATE aibridge_schema_version SET version = $1", &[&target]).map_err(migrate_error)?;
    }
    tx.commit().map_err(migrate_error)
}
