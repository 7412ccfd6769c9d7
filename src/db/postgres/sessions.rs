//! The sessions queries over PostgreSQL, the twins of the SQLite store's: a page of sessions grouped from
//! the interceptions (session key = client session id, else thread root, else the interception itself),
//! one session's interceptions, and usage per user, model and UTC day. Read-only.

use std::time::SystemTime;

use postgres::types::ToSql;
use postgres::{Client, Row};
use uuid::Uuid;

use super::classify;
use super::queries::{get, interception_row, with_children, INTERCEPTION_COLUMNS};
use crate::db::{
    FilterArg, InterceptionDetail, SessionFilter, SessionPage, SessionQuery, SessionSummary, StoreError, TokenTotals,
    UsageRow, MAX_PAGE,
};

/// The session an interception belongs to, as text (uuids in their hyphenated lower-case form).
const SESSION_KEY: &str = "COALESCE(client_session_id, thread_root_id::text, id::text)";

/// Membership of one session: `$1` the session id, `$2` the same id as a uuid when it is one, written so
/// that PostgreSQL answers it from the indexes on `client_session_id`, `thread_root_id` and the key.
const IN_SESSION: &str = "(client_session_id = $1 OR (client_session_id IS NULL AND (thread_root_id = $2 OR id = $2)))";

type Args = Vec<Box<dyn ToSql + Sync>>;

fn params(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a.as_ref()).collect()
}

/// The `WHERE` conditions of `filter` over `aibridge_interceptions`, appending their arguments to `args`.
fn filter_sql(filter: &SessionFilter, args: &mut Args) -> String {
    let mut sql = String::from("started_at IS NOT NULL");
    for (cond, arg) in filter.conditions() {
        args.push(match arg {
            FilterArg::Text(v) => Box::new(v.to_owned()),
            FilterArg::Time(t) => Box::new(t),
        });
        // Each condition names its argument `$N`.
        sql.push_str(&cond.replace('?', &format!("${}", args.len())));
    }
    sql
}

/// The grouped sessions of `filter` as a CTE named `s`. Sums are cast back to `bigint` (`sum(bigint)` is
/// `numeric`).
fn sessions_cte(filter: &SessionFilter, args: &mut Args) -> String {
    let conditions = filter_sql(filter, args);
    format!(
        "WITH i AS (SELECT id, initiator_id, provider_name, model, client, started_at, ended_at, \
            {SESSION_KEY} AS session_id, (thread_root_id IS NULL OR thread_root_id = id) AS is_root \
            FROM aibridge_interceptions WHERE {conditions}), \
         s AS (SELECT i.session_id, MIN(i.initiator_id) AS initiator_id, MIN(i.started_at) AS started_at, \
            MAX(i.ended_at) AS ended_at, MAX(COALESCE(i.ended_at, i.started_at)) AS last_active_at, \
            MIN(i.client) AS client, array_remove(array_agg(DISTINCT i.provider_name), NULL) AS providers, \
            array_remove(array_agg(DISTINCT i.model), NULL) AS models, \
            COUNT(DISTINCT CASE WHEN i.is_root THEN i.id END) AS threads, COUNT(DISTINCT i.id) AS interceptions, \
            COALESCE(SUM(t.input_tokens), 0)::bigint AS input, COALESCE(SUM(t.output_tokens), 0)::bigint AS output, \
            COALESCE(SUM(t.cache_read_input_tokens), 0)::bigint AS cache_read, \
            COALESCE(SUM(t.cache_write_input_tokens), 0)::bigint AS cache_write, \
            COALESCE(SUM(t.reasoning_tokens), 0)::bigint AS reasoning \
            FROM i LEFT JOIN aibridge_token_usages t ON t.interception_id = i.id GROUP BY i.session_id) "
    )
}

fn count(row: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt { row: row.to_owned(), column: "count" })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn session_row(r: &Row) -> Result<SessionSummary, StoreError> {
    let id: String = get(r, 0, "?", "session_id")?;
    let n = |i: usize| get::<i64>(r, i, &id, "count").and_then(|v| count(&id, v));
    let started_at: SystemTime = get(r, 2, &id, "started_at")?;
    Ok(SessionSummary {
        initiator_id: get(r, 1, &id, "initiator_id")?,
        started_at,
        ended_at: get(r, 3, &id, "ended_at")?,
        last_active_at: get::<Option<SystemTime>>(r, 4, &id, "last_active_at")?.unwrap_or(started_at),
        client: get(r, 5, &id, "client")?,
        providers: sorted(get(r, 6, &id, "providers")?),
        models: sorted(get(r, 7, &id, "models")?),
        threads: n(8)?,
        interceptions: n(9)?,
        tokens: TokenTotals {
            input: n(10)?,
            output: n(11)?,
            cache_read: n(12)?,
            cache_write: n(13)?,
            reasoning: n(14)?,
        },
        last_prompt: None,
        id,
    })
}

pub(super) fn list_sessions(client: &mut Client, query: &SessionQuery) -> Result<SessionPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut args = Args::new();
    let cte = sessions_cte(&query.filter, &mut args);
    let total: i64 = client
        .query_one(&format!("{cte} SELECT COUNT(*) FROM s"), &params(&args))
        .map_err(classify)
        .and_then(|r| get(&r, 0, "sessions", "count"))?;

    let mut sql = format!(
        "{cte} SELECT session_id, initiator_id, started_at, ended_at, last_active_at, client, providers, models, \
         threads, interceptions, input, output, cache_read, cache_write, reasoning FROM s"
    );
    if let Some(after) = &query.after_session_id {
        args.push(Box::new(after.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " WHERE (started_at, session_id) < (SELECT started_at, session_id FROM s WHERE session_id = ${n})"
        ));
    }
    args.push(Box::new(limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY started_at DESC, session_id DESC LIMIT ${}", args.len()));
    let rows = client.query(&sql, &params(&args)).map_err(classify)?;
    let mut sessions = Vec::with_capacity(rows.len());
    for row in &rows {
        sessions.push(session_row(row)?);
    }
    let next = if sessions.len() > limit {
        sessions.truncate(limit);
        sessions.last().map(|s| s.id.clone())
    } else {
        None
    };
    for s in &mut sessions {
        s.last_prompt = last_prompt(client, &s.id, query.filter.initiator_id.as_deref())?;
    }
    Ok(SessionPage { count: count("sessions", total)?, sessions, next })
}

/// `session_id` as a uuid, for the thread-root and id half of [`IN_SESSION`].
fn as_uuid(session_id: &str) -> Option<Uuid> {
    Uuid::parse_str(session_id).ok()
}

/// The newest prompt of a session.
fn last_prompt(
    client: &mut Client,
    session_id: &str,
    initiator_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT p.prompt FROM aibridge_user_prompts p JOIN \
         (SELECT id, started_at FROM aibridge_interceptions WHERE {IN_SESSION} \
          AND ($3::text IS NULL OR initiator_id = $3)) i \
         ON p.interception_id = i.id ORDER BY i.started_at DESC, p.id DESC LIMIT 1"
    );
    let row = client.query_opt(&sql, &[&session_id, &as_uuid(session_id), &initiator_id]).map_err(classify)?;
    match row {
        Some(r) => get(&r, 0, session_id, "prompt"),
        None => Ok(None),
    }
}

pub(super) fn session_interceptions(
    client: &mut Client,
    session_id: &str,
    initiator_id: Option<&str>,
) -> Result<Vec<InterceptionDetail>, StoreError> {
    let sql = format!(
        "SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE {IN_SESSION} \
         AND ($3::text IS NULL OR initiator_id = $3) AND started_at IS NOT NULL ORDER BY started_at, id"
    );
    let rows = client.query(&sql, &[&session_id, &as_uuid(session_id), &initiator_id]).map_err(classify)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(with_children(client, interception_row(row)?)?);
    }
    Ok(out)
}

pub(super) fn usage(
    client: &mut Client,
    since: SystemTime,
    initiator_id: Option<&str>,
) -> Result<Vec<UsageRow>, StoreError> {
    let sql = "SELECT COALESCE(i.initiator_id, ''), COALESCE(i.model, ''), \
        to_char(i.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COUNT(DISTINCT i.id), \
        COALESCE(SUM(t.input_tokens), 0)::bigint, COALESCE(SUM(t.output_tokens), 0)::bigint, \
        COALESCE(SUM(t.cache_read_input_tokens), 0)::bigint, COALESCE(SUM(t.cache_write_input_tokens), 0)::bigint, \
        COALESCE(SUM(t.reasoning_tokens), 0)::bigint \
        FROM aibridge_interceptions i LEFT JOIN aibridge_token_usages t ON t.interception_id = i.id \
        WHERE i.started_at >= $1 AND ($2::text IS NULL OR i.initiator_id = $2) \
        GROUP BY 1, 2, 3 ORDER BY 3, 1, 2";
    let rows = client.query(sql, &[&since, &initiator_id]).map_err(classify)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let user: String = get(r, 0, "usage", "initiator_id")?;
        let n = |i: usize| get::<i64>(r, i, &user, "count").and_then(|v| count(&user, v));
        out.push(UsageRow {
            requests: n(3)?,
            tokens: TokenTotals {
                input: n(4)?,
                output: n(5)?,
                cache_read: n(6)?,
                cache_write: n(7)?,
                reasoning: n(8)?,
            },
            model: get(r, 1, &user, "model")?,
            day: get(r, 2, &user, "day")?,
            user,
        });
    }
    Ok(out)
}
