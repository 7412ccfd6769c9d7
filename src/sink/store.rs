//! SQLite writes of the sink thread: one transaction per batch of records with cached prepared statements,
//! and retention purges in bounded chunks. Runs only on the sink thread; knows nothing of channels or logs.

use std::collections::HashMap;

use rusqlite::{params, Connection, ErrorCode, TransactionBehavior};

use crate::records::Record;

use super::timefmt;

const INSERT_START: &str = "INSERT INTO aibridge_interceptions (id, initiator_id, provider, provider_name, \
    model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
    ON CONFLICT (id) DO UPDATE SET initiator_id = excluded.initiator_id, provider = excluded.provider, \
    provider_name = excluded.provider_name, model = excluded.model, client = excluded.client, \
    client_session_id = excluded.client_session_id, user_agent = excluded.user_agent, \
    credential_kind = excluded.credential_kind, credential_hint = excluded.credential_hint, \
    started_at = excluded.started_at";

// An end may arrive before (or without) its start, e.g. across batches after a fault: the upsert keeps it
// as a row with only the end columns, which the start fills in later.
const UPSERT_END: &str = "INSERT INTO aibridge_interceptions (id, ended_at, status, upstream_status) \
    VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at, status = excluded.status, \
    upstream_status = excluded.upstream_status";

// A start and its end in the same batch (the common case for short requests) become one row write.
const INSERT_WHOLE: &str = "INSERT INTO aibridge_interceptions (id, initiator_id, provider, provider_name, \
    model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, \
    ended_at, status, upstream_status) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
    ON CONFLICT (id) DO UPDATE SET initiator_id = excluded.initiator_id, provider = excluded.provider, \
    provider_name = excluded.provider_name, model = excluded.model, client = excluded.client, \
    client_session_id = excluded.client_session_id, user_agent = excluded.user_agent, \
    credential_kind = excluded.credential_kind, credential_hint = excluded.credential_hint, \
    started_at = excluded.started_at, ended_at = excluded.ended_at, status = excluded.status, \
    upstream_status = excluded.upstream_status";

const INSERT_TOKEN_USAGE: &str = "INSERT INTO aibridge_token_usages (interception_id, msg_id, \
    input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, \
    extra, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const INSERT_PROMPT: &str = "INSERT INTO aibridge_user_prompts (interception_id, msg_id, prompt, \
    created_at) VALUES (?1, ?2, ?3, ?4)";

const INSERT_TOOL: &str = "INSERT INTO aibridge_tool_usages (interception_id, msg_id, tool, tool_call_id, \
    input, server_url, injected, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const INSERT_THOUGHT: &str = "INSERT INTO aibridge_model_thoughts (interception_id, msg_id, content, \
    source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Tables keyed by `interception_id` that retention clears before the interception row itself.
const CHILD_TABLES: [&str; 4] =
    ["aibridge_token_usages", "aibridge_user_prompts", "aibridge_tool_usages", "aibridge_model_thoughts"];

/// True for the faults that pass (another writer holds the lock, the disk is full or failing): the batch is
/// kept and retried.
pub fn is_transient(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
        ),
        _ => false,
    }
}

/// True when the error is about one record's content (a constraint, a value too big for SQLite), so that
/// record alone can never be stored. Every other error is treated as a fault of the database and retried:
/// a record is only ever given up on when SQLite rejects that record itself.
pub fn is_record_fault(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => {
            matches!(e.code, ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
        }
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..) => true,
        _ => false,
    }
}

/// SQLite integers are signed: counts beyond `i64::MAX` are clamped rather than wrapped negative.
fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes `records` in one immediate transaction. On error nothing of the batch is committed.
pub fn write_batch<'a>(
    conn: &mut Connection,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<(), rusqlite::Error> {
    let records: Vec<&Record> = records.into_iter().collect();
    // Ends that follow their start within this batch are folded into the start's row.
    let mut ends: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Record::InterceptionEnd(e) = r {
            ends.insert(e.interception_id, i);
        }
    }
    let mut folded = vec![false; records.len()];
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut start = tx.prepare_cached(INSERT_START)?;
        let mut whole = tx.prepare_cached(INSERT_WHOLE)?;
        let mut end = tx.prepare_cached(UPSERT_END)?;
        let mut usage = tx.prepare_cached(INSERT_TOKEN_USAGE)?;
        let mut prompt = tx.prepare_cached(INSERT_PROMPT)?;
        let mut tool = tx.prepare_cached(INSERT_TOOL)?;
        let mut thought = tx.prepare_cached(INSERT_THOUGHT)?;
        let mut id_buf = uuid::Uuid::encode_buffer();
        for (i, record) in records.iter().enumerate() {
            match record {
                Record::InterceptionStart(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    let later_end = ends.get(&r.interception_id).copied().filter(|&j| j > i);
                    match later_end.map(|j| (j, records[j])) {
                        Some((j, Record::InterceptionEnd(e))) => {
                            folded[j] = true;
                            whole.execute(params![
                                &*id,
                                r.initiator_id,
                                r.provider,
                                r.provider_name,
                                r.model,
                                r.client,
                                r.client_session_id,
                                r.user_agent,
                                r.credential_kind.as_str(),
                                r.credential_hint,
                                timefmt::format(r.started_at).as_str(),
                                timefmt::format(e.ended_at).as_str(),
                                e.status.as_str(),
                                e.upstream_status,
                            ])?;
                        }
                        _ => {
                            start.execute(params![
                                &*id,
                                r.initiator_id,
                                r.provider,
                                r.provider_name,
                                r.model,
                                r.client,
                                r.client_session_id,
                                r.user_agent,
                                r.credential_kind.as_str(),
                                r.credential_hint,
                                timefmt::format(r.started_at).as_str(),
                            ])?;
                        }
                    }
                }
                Record::InterceptionEnd(_) if folded[i] => {}
                Record::InterceptionEnd(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    end.execute(params![
                        &*id,
                        timefmt::format(r.ended_at).as_str(),
                        r.status.as_str(),
                        r.upstream_status,
                    ])?;
                }
                Record::TokenUsage(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    usage.execute(params![
                        &*id,
                        r.msg_id,
                        count(r.input_tokens),
                        count(r.output_tokens),
                        count(r.cache_read_input_tokens),
                        count(r.cache_write_input_tokens),
                        count(r.reasoning_tokens),
                        if r.extra.is_empty() { "{}" } else { r.extra.as_str() },
                        timefmt::format(r.created_at).as_str(),
                    ])?;
                }
                Record::PromptUsage(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    prompt.execute(params![&*id, r.msg_id, r.prompt, timefmt::format(r.created_at).as_str(),])?;
                }
                Record::ToolUsage(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    tool.execute(params![
                        &*id,
                        r.msg_id,
                        r.tool,
                        r.tool_call_id,
                        r.input,
                        r.server_url,
                        r.injected,
                        timefmt::format(r.created_at).as_str(),
                    ])?;
                }
                Record::ModelThought(r) => {
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    thought.execute(params![
                        &*id,
                        r.msg_id,
                        r.content,
                        r.source,
                        timefmt::format(r.created_at).as_str(),
                    ])?;
                }
            }
        }
    }
    tx.commit()
}

/// Deletes up to `limit` interceptions started before `cutoff` (RFC 3339 text, same format as stored),
/// with every record that belongs to them, in one transaction. Ends whose start never arrived are aged by
/// their end time. Returns how many interceptions were removed; fewer than `limit` means none are left.
pub fn purge_chunk(conn: &mut Connection, cutoff: &str, limit: usize) -> Result<usize, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids: Vec<String> = {
        let mut select = tx.prepare_cached(
            "SELECT id FROM aibridge_interceptions WHERE started_at < ?1 \
             UNION ALL SELECT id FROM aibridge_interceptions \
             WHERE started_at IS NULL AND ended_at < ?1 LIMIT ?2",
        )?;
        let rows = select.query_map(params![cutoff, count(limit as u64)], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for table in CHILD_TABLES {
        let mut del = tx.prepare_cached(&format!("DELETE FROM {table} WHERE interception_id = ?1"))?;
        for id in &ids {
            del.execute([id])?;
        }
    }
    {
        let mut del = tx.prepare_cached("DELETE FROM aibridge_interceptions WHERE id = ?1")?;
        for id in &ids {
            del.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(ids.len())
}
