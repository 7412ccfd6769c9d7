//! Read queries over the record tables, for the sessions API: a page of interceptions by user and start
//! time with cursor paging, and one interception with its child rows. Read-only.

use std::time::SystemTime;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{classify, parse_time};
use crate::db::{
    timefmt, Cursor, InterceptionDetail, InterceptionPage, InterceptionQuery, StoreError, StoredInterception, MAX_PAGE,
};
use crate::records::{ModelThought, PromptUsage, TokenUsage, ToolUsage};

pub(super) const INTERCEPTION_COLUMNS: &str =
    "id, initiator_id, provider, provider_name, model, client, client_session_id, \
    user_agent, credential_kind, credential_hint, started_at, ended_at, status, upstream_status, \
    correlating_tool_call_id, thread_root_id";

/// An interception row as SQLite returns it, before its id, times and status are checked.
pub(super) struct RawInterception {
    text: [Option<String>; 13],
    upstream_status: Option<i64>,
    correlating_tool_call_id: Option<String>,
    thread_root_id: Option<String>,
}

pub(super) fn raw_interception(r: &Row<'_>) -> Result<RawInterception, rusqlite::Error> {
    let mut text: [Option<String>; 13] = Default::default();
    for (i, slot) in text.iter_mut().enumerate() {
        *slot = r.get(i)?;
    }
    Ok(RawInterception {
        text,
        upstream_status: r.get(13)?,
        correlating_tool_call_id: r.get(14)?,
        thread_root_id: r.get(15)?,
    })
}

pub(super) fn parse_id(row: &str, column: &'static str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt { row: row.to_owned(), column })
}

impl RawInterception {
    pub(super) fn parse(self) -> Result<StoredInterception, StoreError> {
        let [id, initiator_id, provider, provider_name, model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, ended_at, status] =
            self.text;
        let id_text = id.unwrap_or_default();
        let upstream_status = match self.upstream_status {
            None => None,
            Some(n) => Some(
                u16::try_from(n)
                    .map_err(|_| StoreError::Corrupt { row: id_text.clone(), column: "upstream_status" })?,
            ),
        };
        Ok(StoredInterception {
            id: parse_id(&id_text, "id", &id_text)?,
            initiator_id,
            provider,
            provider_name,
            model,
            client,
            client_session_id,
            user_agent,
            credential_kind,
            credential_hint,
            started_at: parse_time(&id_text, "started_at", started_at)?,
            ended_at: parse_time(&id_text, "ended_at", ended_at)?,
            status,
            upstream_status,
            correlating_tool_call_id: self.correlating_tool_call_id,
            thread_root_id: match self.thread_root_id {
                None => None,
                Some(root) => Some(parse_id(&id_text, "thread_root_id", &root)?),
            },
        })
    }
}

/// Interceptions that never got their start are left out: a page is ordered by start time.
pub(super) fn list_interceptions(conn: &Connection, query: &InterceptionQuery) -> Result<InterceptionPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    // Only the conditions in use are in the text, so SQLite plans each combination on its own (a
    // `?n IS NULL OR …` form would keep it from using the start-time index as a range).
    let mut sql = format!("SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE started_at IS NOT NULL");
    let mut args: Vec<Value> = Vec::new();
    let time = |t: SystemTime| Value::Text(timefmt::format(t).as_str().to_owned());
    if let Some(user) = &query.initiator_id {
        args.push(Value::Text(user.clone()));
        sql.push_str(&format!(" AND initiator_id = ?{}", args.len()));
    }
    if let Some(t) = query.started_after {
        args.push(time(t));
        sql.push_str(&format!(" AND started_at >= ?{}", args.len()));
    }
    if let Some(t) = query.started_before {
        args.push(time(t));
        sql.push_str(&format!(" AND started_at < ?{}", args.len()));
    }
    if let Some(cursor) = &query.after {
        args.push(time(cursor.started_at));
        args.push(Value::Text(cursor.id.hyphenated().to_string()));
        sql.push_str(&format!(" AND (started_at, id) < (?{}, ?{})", args.len() - 1, args.len()));
    }
    // One row more than the page tells whether another page follows.
    args.push(Value::Integer(limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY started_at DESC, id DESC LIMIT ?{}", args.len()));

    let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
    let rows = stmt.query_map(params_from_iter(args), raw_interception).map_err(classify)?;
    let mut interceptions = Vec::with_capacity(limit);
    for row in rows {
        interceptions.push(row.map_err(classify)?.parse()?);
    }
    let next = if interceptions.len() > limit {
        interceptions.truncate(limit);
        interceptions.last().and_then(|last| Some(Cursor { started_at: last.started_at?, id: last.id }))
    } else {
        None
    };
    Ok(InterceptionPage { interceptions, next })
}

pub(super) fn interception(conn: &Connection, id: Uuid) -> Result<Option<InterceptionDetail>, StoreError> {
    let id_text = id.hyphenated().to_string();
    let raw = conn
        .prepare_cached(&format!("SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([&id_text], raw_interception).optional())
        .map_err(classify)?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    with_children(conn, raw.parse()?).map(Some)
}

/// An interception row completed with its child rows.
pub(super) fn with_children(conn: &Connection, row: StoredInterception) -> Result<InterceptionDetail, StoreError> {
    let id = row.id;
    let id_text = id.hyphenated().to_string();
    Ok(InterceptionDetail {
        interception: row,
        token_usages: token_usages(conn, id, &id_text)?,
        prompts: prompts(conn, id, &id_text)?,
        tool_usages: tool_usages(conn, id, &id_text)?,
        thoughts: thoughts(conn, id, &id_text)?,
    })
}

/// Runs a child-table query for one interception and converts each row; rows come in insertion order.
fn children<R, T>(
    conn: &Connection,
    sql: &str,
    id_text: &str,
    read: impl FnMut(&Row<'_>) -> Result<R, rusqlite::Error>,
    mut convert: impl FnMut(R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(classify)?;
    let rows = stmt.query_map([id_text], read).map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(convert(row.map_err(classify)?)?);
    }
    Ok(out)
}

fn created(id_text: &str, text: String) -> Result<SystemTime, StoreError> {
    timefmt::parse(&text).ok_or_else(|| StoreError::Corrupt { row: id_text.to_owned(), column: "created_at" })
}

fn token_count(id_text: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt { row: id_text.to_owned(), column: "token count" })
}

fn token_usages(conn: &Connection, id: Uuid, id_text: &str) -> Result<Vec<TokenUsage>, StoreError> {
    type Raw = (String, [i64; 5], String, String);
    children(
        conn,
        "SELECT msg_id, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, \
         reasoning_tokens, extra, created_at FROM aibridge_token_usages WHERE interception_id = ?1 ORDER BY id",
        id_text,
        |r| -> Result<Raw, rusqlite::Error> {
            Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?], r.get(6)?, r.get(7)?))
        },
        |(msg_id, [input, output, cache_read, cache_write, reasoning], extra, at)| {
            Ok(TokenUsage {
                interception_id: id,
                msg_id,
                input_tokens: token_count(id_text, input)?,
                output_tokens: token_count(id_text, output)?,
                cache_read_input_tokens: token_count(id_text, cache_read)?,
                cache_write_input_tokens: token_count(id_text, cache_write)?,
                reasoning_tokens: token_count(id_text, reasoning)?,
                extra,
                created_at: created(id_text, at)?,
            })
        },
    )
}

fn prompts(conn: &Connection, id: Uuid, id_text: &str) -> Result<Vec<PromptUsage>, StoreError> {
    children(
        conn,
        "SELECT msg_id, prompt, created_at FROM aibridge_user_prompts WHERE interception_id = ?1 ORDER BY id",
        id_text,
        |r| -> Result<(String, String, String), rusqlite::Error> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) },
        |(msg_id, prompt, at)| {
            Ok(PromptUsage { interception_id: id, msg_id, prompt, created_at: created(id_text, at)? })
        },
    )
}

fn tool_usages(conn: &Connection, id: Uuid, id_text: &str) -> Result<Vec<ToolUsage>, StoreError> {
    type Raw = (String, String, String, String, Option<String>, bool, String);
    children(
        conn,
        "SELECT msg_id, tool, tool_call_id, input, server_url, injected, created_at FROM aibridge_tool_usages \
         WHERE interception_id = ?1 ORDER BY id",
        id_text,
        |r| -> Result<Raw, rusqlite::Error> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        },
        |(msg_id, tool, tool_call_id, input, server_url, injected, at)| {
            Ok(ToolUsage {
                interception_id: id,
                msg_id,
                tool,
                tool_call_id,
                input,
                server_url,
                injected,
                created_at: created(id_text, at)?,
            })
        },
    )
}

fn thoughts(conn: &Connection, id: Uuid, id_text: &str) -> Result<Vec<ModelThought>, StoreError> {
    children(
        conn,
        "SELECT msg_id, content, source, created_at FROM aibridge_model_thoughts WHERE interception_id = ?1 \
         ORDER BY id",
        id_text,
        |r| -> Result<(String, String, String, String), rusqlite::Error> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        },
        |(msg_id, content, source, at)| {
            Ok(ModelThought { interception_id: id, msg_id, content, source, created_at: created(id_text, at)? })
        },
    )
}
