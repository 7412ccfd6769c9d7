//! The sessions queries over SQLite: a page of sessions grouped from the interceptions (session key =
//! client session id, else thread root, else the interception itself), one session's interceptions, and
//! usage per user, model and day. Read-only.

use std::time::SystemTime;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};

use super::queries::{raw_interception, with_children, INTERCEPTION_COLUMNS};
use super::{classify, parse_time};
use crate::db::{
    timefmt, FilterArg, InterceptionDetail, SessionFilter, SessionPage, SessionQuery, SessionSummary, StoreError,
    TokenTotals, UsageRow, MAX_PAGE,
};

/// The session an interception belongs to, as an SQL expression over `aibridge_interceptions`.
const SESSION_KEY: &str = "COALESCE(client_session_id, thread_root_id, id)";

/// Membership of one session (`?1`), written so that SQLite answers it from the indexes on
/// `client_session_id`, `thread_root_id` and the primary key.
const IN_SESSION: &str = "(client_session_id = ?1 OR (client_session_id IS NULL AND (thread_root_id = ?1 OR id = ?1)))";

fn time(t: SystemTime) -> Value {
    Value::Text(timefmt::format(t).as_str().to_owned())
}

/// The `WHERE` conditions of `filter` over `aibridge_interceptions`, appending their arguments to `args`.
fn filter_sql(filter: &SessionFilter, args: &mut Vec<Value>) -> String {
    let mut sql = String::from("started_at IS NOT NULL");
    for (cond, arg) in filter.conditions() {
        args.push(match arg {
            FilterArg::Text(v) => Value::Text(v.to_owned()),
            FilterArg::Time(t) => time(t),
        });
        // Each condition names its argument `?N`.
        sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
    }
    sql
}

/// The grouped sessions of `filter` as a CTE named `s`.
fn sessions_cte(filter: &SessionFilter, args: &mut Vec<Value>) -> String {
    let conditions = filter_sql(filter, args);
    format!(
        "WITH i AS (SELECT id, initiator_id, provider_name, model, client, started_at, ended_at, \
            {SESSION_KEY} AS session_id, (thread_root_id IS NULL OR thread_root_id = id) AS is_root \
            FROM aibridge_interceptions WHERE {conditions}), \
         s AS (SELECT i.session_id, MIN(i.initiator_id) AS initiator_id, MIN(i.started_at) AS started_at, \
            MAX(i.ended_at) AS ended_at, MAX(COALESCE(i.ended_at, i.started_at)) AS last_active_at, \
            MIN(i.client) AS client, GROUP_CONCAT(DISTINCT i.provider_name) AS providers, \
            GROUP_CONCAT(DISTINCT i.model) AS models, \
            COUNT(DISTINCT CASE WHEN i.is_root THEN i.id END) AS threads, COUNT(DISTINCT i.id) AS interceptions, \
            COALESCE(SUM(t.input_tokens), 0) AS input, COALESCE(SUM(t.output_tokens), 0) AS output, \
            COALESCE(SUM(t.cache_read_input_tokens), 0) AS cache_read, \
            COALESCE(SUM(t.cache_write_input_tokens), 0) AS cache_write, \
            COALESCE(SUM(t.reasoning_tokens), 0) AS reasoning \
            FROM i LEFT JOIN aibridge_token_usages t ON t.interception_id = i.id GROUP BY i.session_id) "
    )
}

fn count(row: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt { row: row.to_owned(), column: "count" })
}

fn list(text: Option<String>) -> Vec<String> {
    let mut v: Vec<String> = text.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    v.sort();
    v
}

type RawSession =
    (String, Option<String>, String, Option<String>, String, Option<String>, Option<String>, Option<String>, [i64; 7]);

fn raw_session(r: &Row<'_>) -> Result<RawSession, rusqlite::Error> {
    let mut n = [0i64; 7];
    for (i, slot) in n.iter_mut().enumerate() {
        *slot = r.get(8 + i)?;
    }
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, n))
}

pub(super) fn list_sessions(conn: &Connection, query: &SessionQuery) -> Result<SessionPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut args = Vec::new();
    let cte = sessions_cte(&query.filter, &mut args);
    let total: i64 = conn
        .prepare_cached(&format!("{cte} SELECT COUNT(*) FROM s"))
        .and_then(|mut stmt| stmt.query_row(params_from_iter(args.iter()), |r| r.get(0)))
        .map_err(classify)?;

    let mut sql = format!(
        "{cte} SELECT session_id, initiator_id, started_at, ended_at, last_active_at, client, providers, models, \
         threads, interceptions, input, output, cache_read, cache_write, reasoning FROM s"
    );
    if let Some(after) = &query.after_session_id {
        args.push(Value::Text(after.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " WHERE (started_at, session_id) < (SELECT started_at, session_id FROM s WHERE session_id = ?{n})"
        ));
    }
    args.push(Value::Integer(limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY started_at DESC, session_id DESC LIMIT ?{}", args.len()));

    let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), raw_session).map_err(classify)?;
    let mut sessions = Vec::new();
    for row in rows {
        let (id, initiator_id, started, ended, last, client, providers, models, n) = row.map_err(classify)?;
        let started_at = parse_time(&id, "started_at", Some(started))?.unwrap_or(SystemTime::UNIX_EPOCH);
        let ended_at = parse_time(&id, "ended_at", ended)?;
        let last_active_at = parse_time(&id, "last_active_at", Some(last))?.unwrap_or(started_at);
        let tokens = TokenTotals {
            input: count(&id, n[2])?,
            output: count(&id, n[3])?,
            cache_read: count(&id, n[4])?,
            cache_write: count(&id, n[5])?,
            reasoning: count(&id, n[6])?,
        };
        sessions.push(SessionSummary {
            threads: count(&id, n[0])?,
            interceptions: count(&id, n[1])?,
            last_prompt: None,
            id,
            initiator_id,
            providers: list(providers),
            models: list(models),
            client,
            started_at,
            ended_at,
            last_active_at,
            tokens,
        });
    }
    drop(stmt);
    let next = if sessions.len() > limit {
        sessions.truncate(limit);
        sessions.last().map(|s| s.id.clone())
    } else {
        None
    };
    for s in &mut sessions {
        s.last_prompt = last_prompt(conn, &s.id, query.filter.initiator_id.as_deref())?;
    }
    Ok(SessionPage { count: count("sessions", total)?, sessions, next })
}

/// The newest prompt of a session.
fn last_prompt(conn: &Connection, session_id: &str, initiator_id: Option<&str>) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT p.prompt FROM aibridge_user_prompts p JOIN \
         (SELECT id, started_at FROM aibridge_interceptions WHERE {IN_SESSION} AND (?2 IS NULL OR initiator_id = ?2)) i \
         ON p.interception_id = i.id ORDER BY i.started_at DESC, p.id DESC LIMIT 1"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
    let mut rows = stmt.query(rusqlite::params![session_id, initiator_id]).map_err(classify)?;
    match rows.next().map_err(classify)? {
        Some(r) => Ok(Some(r.get(0).map_err(classify)?)),
        None => Ok(None),
    }
}

pub(super) fn session_interceptions(
    conn: &Connection,
    session_id: &str,
    initiator_id: Option<&str>,
) -> Result<Vec<InterceptionDetail>, StoreError> {
    let sql = format!(
        "SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE {IN_SESSION} \
         AND (?2 IS NULL OR initiator_id = ?2) AND started_at IS NOT NULL ORDER BY started_at, id"
    );
    let rows = {
        let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
        let rows = stmt.query_map(rusqlite::params![session_id, initiator_id], raw_interception).map_err(classify)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(classify)?.parse()?);
        }
        out
    };
    rows.into_iter().map(|row| with_children(conn, row)).collect()
}

pub(super) fn usage(
    conn: &Connection,
    since: SystemTime,
    initiator_id: Option<&str>,
) -> Result<Vec<UsageRow>, StoreError> {
    let sql = "SELECT COALESCE(i.initiator_id, ''), COALESCE(i.model, ''), substr(i.started_at, 1, 10) AS day, \
        COUNT(DISTINCT i.id), COALESCE(SUM(t.input_tokens), 0), COALESCE(SUM(t.output_tokens), 0), \
        COALESCE(SUM(t.cache_read_input_tokens), 0), COALESCE(SUM(t.cache_write_input_tokens), 0), \
        COALESCE(SUM(t.reasoning_tokens), 0) \
        FROM aibridge_interceptions i LEFT JOIN aibridge_token_usages t ON t.interception_id = i.id \
        WHERE i.started_at >= ?1 AND (?2 IS NULL OR i.initiator_id = ?2) \
        GROUP BY 1, 2, 3 ORDER BY 3, 1, 2";
    let mut stmt = conn.prepare_cached(sql).map_err(classify)?;
    let since = timefmt::format(since);
    let rows = stmt
        .query_map(rusqlite::params![since.as_str(), initiator_id], |r| {
            let mut n = [0i64; 6];
            for (i, slot) in n.iter_mut().enumerate() {
                *slot = r.get(3 + i)?;
            }
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, n))
        })
        .map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        let (user, model, day, n) = row.map_err(classify)?;
        out.push(UsageRow {
            requests: count(&user, n[0])?,
            tokens: TokenTotals {
                input: count(&user, n[1])?,
                output: count(&user, n[2])?,
                cache_read: count(&user, n[3])?,
                cache_write: count(&user, n[4])?,
                reasoning: count(&user, n[5])?,
            },
            user,
            model,
            day,
        });
    }
    Ok(out)
}
