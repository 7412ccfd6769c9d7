//! Read queries over the record tables on PostgreSQL, for the sessions API: a page of interceptions by user
//! and start time with cursor paging, and one interception with its child rows. Read-only.

use postgres::types::{FromSql, ToSql};
use postgres::{Client, Row};
use uuid::Uuid;

use super::classify;
use crate::db::{
    Cursor, InterceptionDetail, InterceptionPage, InterceptionQuery, StoreError, StoredInterception, MAX_PAGE,
};
use crate::records::{ModelThought, PromptUsage, TokenUsage, ToolUsage};

pub(super) const INTERCEPTION_COLUMNS: &str =
    "id, initiator_id, provider, provider_name, model, client, client_session_id, \
    user_agent, credential_kind, credential_hint, started_at, ended_at, status, upstream_status, \
    correlating_tool_call_id, thread_root_id";

/// Reads column `idx` of `row`; a value this build cannot read is [`StoreError::Corrupt`], never a panic.
pub(super) fn get<'a, T: FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    id: &str,
    column: &'static str,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|_| StoreError::Corrupt { row: id.to_owned(), column })
}

pub(super) fn interception_row(r: &Row) -> Result<StoredInterception, StoreError> {
    let id: Uuid = get(r, 0, "?", "id")?;
    let id_text = id.to_string();
    let text = |i: usize, column| get::<Option<String>>(r, i, &id_text, column);
    let upstream_status = match get::<Option<i32>>(r, 13, &id_text, "upstream_status")? {
        None => None,
        Some(n) => Some(
            u16::try_from(n).map_err(|_| StoreError::Corrupt { row: id_text.clone(), column: "upstream_status" })?,
        ),
    };
    Ok(StoredInterception {
        id,
        initiator_id: text(1, "initiator_id")?,
        provider: text(2, "provider")?,
        provider_name: text(3, "provider_name")?,
        model: text(4, "model")?,
        client: text(5, "client")?,
        client_session_id: text(6, "client_session_id")?,
        user_agent: text(7, "user_agent")?,
        credential_kind: text(8, "credential_kind")?,
        credential_hint: text(9, "credential_hint")?,
        started_at: get(r, 10, &id_text, "started_at")?,
        ended_at: get(r, 11, &id_text, "ended_at")?,
        status: text(12, "status")?,
        upstream_status,
        correlating_tool_call_id: text(14, "correlating_tool_call_id")?,
        thread_root_id: get(r, 15, &id_text, "thread_root_id")?,
    })
}

/// Interceptions that never got their start are left out: a page is ordered by start time.
pub(super) fn list_interceptions(
    client: &mut Client,
    query: &InterceptionQuery,
) -> Result<InterceptionPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    // Only the conditions in use are in the text, so each combination gets its own plan.
    let mut sql = format!("SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE started_at IS NOT NULL");
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    if let Some(user) = &query.initiator_id {
        args.push(Box::new(user.clone()));
        sql.push_str(&format!(" AND initiator_id = ${}", args.len()));
    }
    if let Some(t) = query.started_after {
        args.push(Box::new(t));
        sql.push_str(&format!(" AND started_at >= ${}", args.len()));
    }
    if let Some(t) = query.started_before {
        args.push(Box::new(t));
        sql.push_str(&format!(" AND started_at < ${}", args.len()));
    }
    if let Some(cursor) = &query.after {
        args.push(Box::new(cursor.started_at));
        args.push(Box::new(cursor.id));
        sql.push_str(&format!(" AND (started_at, id) < (${}, ${})", args.len() - 1, args.len()));
    }
    // One row more than the page tells whether another page follows.
    args.push(Box::new(limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY started_at DESC, id DESC LIMIT ${}", args.len()));
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    let rows = client.query(&sql, &params).map_err(classify)?;
    let mut interceptions = Vec::with_capacity(rows.len());
    for row in &rows {
        interceptions.push(interception_row(row)?);
    }
    let next = if interceptions.len() > limit {
        interceptions.truncate(limit);
        interceptions.last().and_then(|last| Some(Cursor { started_at: last.started_at?, id: last.id }))
    } else {
        None
    };
    Ok(InterceptionPage { interceptions, next })
}

pub(super) fn interception(client: &mut Client, id: Uuid) -> Result<Option<InterceptionDetail>, StoreError> {
    let row = client
        .query_opt(&format!("SELECT {INTERCEPTION_COLUMNS} FROM aibridge_interceptions WHERE id = $1"), &[&id])
        .map_err(classify)?;
    let Some(row) = row else {
        return Ok(None);
    };
    with_children(client, interception_row(&row)?).map(Some)
}

/// An interception row completed with its child rows, each list in the order it was written.
pub(super) fn with_children(client: &mut Client, row: StoredInterception) -> Result<InterceptionDetail, StoreError> {
    let id = row.id;
    let id_text = id.to_string();
    let children = |client: &mut Client, sql: &str| client.query(sql, &[&id]).map_err(classify);
    let token_count = |r: &Row, i: usize| -> Result<u64, StoreError> {
        u64::try_from(get::<i64>(r, i, &id_text, "token count")?)
            .map_err(|_| StoreError::Corrupt { row: id_text.clone(), column: "token count" })
    };
    let mut token_usages = Vec::new();
    for r in children(
        client,
        "SELECT msg_id, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, \
         reasoning_tokens, extra::text, created_at FROM aibridge_token_usages WHERE interception_id = $1 ORDER BY id",
    )? {
        token_usages.push(TokenUsage {
            interception_id: id,
            msg_id: get(&r, 0, &id_text, "msg_id")?,
            input_tokens: token_count(&r, 1)?,
            output_tokens: token_count(&r, 2)?,
            cache_read_input_tokens: token_count(&r, 3)?,
            cache_write_input_tokens: token_count(&r, 4)?,
            reasoning_tokens: token_count(&r, 5)?,
            extra: get(&r, 6, &id_text, "extra")?,
            created_at: get(&r, 7, &id_text, "created_at")?,
        });
    }
    let mut prompts = Vec::new();
    for r in children(
        client,
        "SELECT msg_id, prompt, created_at FROM aibridge_user_prompts WHERE interception_id = $1 ORDER BY id",
    )? {
        prompts.push(PromptUsage {
            interception_id: id,
            msg_id: get(&r, 0, &id_text, "msg_id")?,
            prompt: get(&r, 1, &id_text, "prompt")?,
            created_at: get(&r, 2, &id_text, "created_at")?,
        });
    }
    let mut tool_usages = Vec::new();
    for r in children(
        client,
        "SELECT msg_id, tool, tool_call_id, input, server_url, injected, created_at FROM aibridge_tool_usages \
         WHERE interception_id = $1 ORDER BY id",
    )? {
        tool_usages.push(ToolUsage {
            interception_id: id,
            msg_id: get(&r, 0, &id_text, "msg_id")?,
            tool: get(&r, 1, &id_text, "tool")?,
            tool_call_id: get(&r, 2, &id_text, "tool_call_id")?,
            input: get(&r, 3, &id_text, "input")?,
            server_url: get(&r, 4, &id_text, "server_url")?,
            injected: get(&r, 5, &id_text, "injected")?,
            created_at: get(&r, 6, &id_text, "created_at")?,
        });
    }
    let mut thoughts = Vec::new();
    for r in children(
        client,
        "SELECT msg_id, content, source, created_at FROM aibridge_model_thoughts WHERE interception_id = $1 \
         ORDER BY id",
    )? {
        thoughts.push(ModelThought {
            interception_id: id,
            msg_id: get(&r, 0, &id_text, "msg_id")?,
            content: get(&r, 1, &id_text, "content")?,
            source: get(&r, 2, &id_text, "source")?,
            created_at: get(&r, 3, &id_text, "created_at")?,
        });
    }
    Ok(InterceptionDetail { interception: row, token_usages, prompts, tool_usages, thoughts })
}
