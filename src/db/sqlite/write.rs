//! SQLite record writes: one transaction per batch of records with cached prepared statements, and
//! retention purges in bounded chunks. Knows nothing of channels, retries or logs.

use std::collections::HashMap;

use rusqlite::{params, Connection, Statement, TransactionBehavior};

use crate::db::timefmt;
use crate::records::{InterceptionEnd, InterceptionStart, ModelThought, PromptUsage, Record, TokenUsage, ToolUsage};

const INSERT_START: &str = "INSERT INTO aibridge_interceptions (id, initiator_id, provider, provider_name, \
    model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, gateway_id) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
    ON CONFLICT (id) DO UPDATE SET initiator_id = excluded.initiator_id, provider = excluded.provider, \
    provider_name = excluded.provider_name, model = excluded.model, client = excluded.client, \
    client_session_id = excluded.client_session_id, user_agent = excluded.user_agent, \
    credential_kind = excluded.credential_kind, credential_hint = excluded.credential_hint, \
    started_at = excluded.started_at, gateway_id = excluded.gateway_id";

// An end may arrive before (or without) its start, e.g. across batches after a fault: the upsert keeps it
// as a row with only the end columns, which the start fills in later. A real end also replaces a settle
// (`end_reason`): the gateway that settled the row was wrong to think its previous run was gone.
const UPSERT_END: &str = "INSERT INTO aibridge_interceptions (id, ended_at, status, upstream_status) \
    VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at, status = excluded.status, \
    upstream_status = excluded.upstream_status, end_reason = NULL";

// Interceptions this gateway started and never ended: its previous run died (SIGKILL, power cut) with them
// in flight. Rows of other gateways on the same store are theirs to settle.
const SETTLE_OPEN: &str = "UPDATE aibridge_interceptions SET ended_at = ?2, status = ?3, end_reason = ?4 \
    WHERE gateway_id = ?1 AND ended_at IS NULL AND started_at IS NOT NULL";

/// The multi-row statements say `OR ROLLBACK`: a row SQLite rejects ends the whole transaction at once,
/// which is what `write_batch` does with any error anyway. With the default `ABORT`, SQLite must be able to
/// undo one statement alone and keeps a statement journal (a copy of every page a multi-row statement
/// touches); that copying was about a tenth of the sink's CPU.
///
/// One table of rows written with multi-row `INSERT`s: the statement text up to `VALUES`, the number of
/// columns per row, and what follows the value list (an upsert clause, or nothing).
struct MultiInsert {
    head: &'static str,
    columns: usize,
    tail: &'static str,
    /// The statement text for each entry of `CHUNKS`, built once.
    sql: std::sync::OnceLock<[String; CHUNKS.len()]>,
}

/// Rows per multi-row statement, largest first: a batch's rows of one table go out in as many statements
/// of the largest size as fit, the rest in smaller ones. One statement per row costs a VDBE run and the
/// binding overhead per row; 32 rows of at most 15 columns stays far below SQLite's bound-parameter limit.
const CHUNKS: [usize; 3] = [32, 8, 1];

impl MultiInsert {
    const fn new(head: &'static str, columns: usize, tail: &'static str) -> Self {
        MultiInsert { head, columns, tail, sql: std::sync::OnceLock::new() }
    }

    /// The statement text inserting `CHUNKS[size]` rows.
    fn sql(&self, size: usize) -> &str {
        let all = self.sql.get_or_init(|| {
            CHUNKS.map(|rows| {
                let mut sql = String::from(self.head);
                sql.push_str(" VALUES ");
                for row in 0..rows {
                    sql.push_str(if row == 0 { "(" } else { ", (" });
                    for col in 0..self.columns {
                        if col > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('?');
                        sql.push_str(&(row * self.columns + col + 1).to_string());
                    }
                    sql.push(')');
                }
                sql.push(' ');
                sql.push_str(self.tail);
                sql
            })
        });
        &all[size]
    }

    /// Inserts `rows` in chunks; `bind` binds one row's columns starting at the given parameter index.
    fn write<T>(
        &self,
        tx: &rusqlite::Transaction<'_>,
        mut rows: &[T],
        bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> Result<(), rusqlite::Error>,
    ) -> Result<(), rusqlite::Error> {
        for (size, &chunk) in CHUNKS.iter().enumerate() {
            if rows.len() < chunk {
                continue;
            }
            let mut stmt = tx.prepare_cached(self.sql(size))?;
            while rows.len() >= chunk {
                let (now, rest) = rows.split_at(chunk);
                for (i, row) in now.iter().enumerate() {
                    bind(&mut stmt, i * self.columns + 1, row)?;
                }
                stmt.raw_execute()?;
                rows = rest;
            }
        }
        Ok(())
    }
}

static WHOLE: MultiInsert = MultiInsert::new(
    "INSERT OR ROLLBACK INTO aibridge_interceptions (id, initiator_id, provider, provider_name, \
    model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, \
    ended_at, status, upstream_status, gateway_id)",
    15,
    "ON CONFLICT (id) DO UPDATE SET initiator_id = excluded.initiator_id, provider = excluded.provider, \
    provider_name = excluded.provider_name, model = excluded.model, client = excluded.client, \
    client_session_id = excluded.client_session_id, user_agent = excluded.user_agent, \
    credential_kind = excluded.credential_kind, credential_hint = excluded.credential_hint, \
    started_at = excluded.started_at, ended_at = excluded.ended_at, status = excluded.status, \
    upstream_status = excluded.upstream_status, gateway_id = excluded.gateway_id, end_reason = NULL",
);

static TOKEN_USAGES: MultiInsert = MultiInsert::new(
    "INSERT OR ROLLBACK INTO aibridge_token_usages (interception_id, msg_id, input_tokens, output_tokens, \
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, extra, created_at)",
    9,
    "",
);

static PROMPTS: MultiInsert = MultiInsert::new(
    "INSERT OR ROLLBACK INTO aibridge_user_prompts (interception_id, msg_id, prompt, created_at)",
    4,
    "",
);

static TOOLS: MultiInsert = MultiInsert::new(
    "INSERT OR ROLLBACK INTO aibridge_tool_usages (interception_id, msg_id, tool, tool_call_id, input, server_url, \
    injected, created_at)",
    8,
    "",
);

static THOUGHTS: MultiInsert = MultiInsert::new(
    "INSERT OR ROLLBACK INTO aibridge_model_thoughts (interception_id, msg_id, content, source, created_at)",
    5,
    "",
);

/// Tables keyed by `interception_id` that retention clears before the interception row itself.
const CHILD_TABLES: [&str; 4] =
    ["aibridge_token_usages", "aibridge_user_prompts", "aibridge_tool_usages", "aibridge_model_thoughts"];

/// SQLite integers are signed: counts beyond `i64::MAX` are clamped rather than wrapped negative.
pub(super) fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes `records` in one immediate transaction. On error nothing of the batch is committed.
///
/// Rows are grouped by table and written with multi-row statements. Interception rows keep their record
/// order (a start and an end of one id may both be upserts); child-table rows only append, so each table's
/// rows keep their order among themselves and the tables are written one after the other.
pub(super) fn write_batch(conn: &mut Connection, records: &[&Record]) -> Result<(), rusqlite::Error> {
    // Ends that follow their start within this batch are folded into the start's row.
    let mut ends: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Record::InterceptionEnd(e) = r {
            ends.insert(e.interception_id, i);
        }
    }
    let mut folded = vec![false; records.len()];
    let mut wholes: Vec<(&InterceptionStart, &InterceptionEnd)> = Vec::new();
    let mut usages: Vec<&TokenUsage> = Vec::new();
    let mut prompts: Vec<&PromptUsage> = Vec::new();
    let mut tools: Vec<&ToolUsage> = Vec::new();
    let mut thoughts: Vec<&ModelThought> = Vec::new();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut id_buf = uuid::Uuid::encode_buffer();
        for (i, record) in records.iter().enumerate() {
            match record {
                Record::InterceptionStart(r) => {
                    let later_end = ends.get(&r.interception_id).copied().filter(|&j| j > i);
                    match later_end.map(|j| (j, records[j])) {
                        Some((j, Record::InterceptionEnd(e))) => {
                            folded[j] = true;
                            wholes.push((r, e));
                        }
                        _ => {
                            // Rows of one id must reach the table in record order: write the folded rows
                            // gathered so far first.
                            WHOLE.write(&tx, &wholes, bind_whole)?;
                            wholes.clear();
                            let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                            tx.prepare_cached(INSERT_START)?.execute(params![
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
                                &*r.gateway_id,
                            ])?;
                        }
                    }
                }
                Record::InterceptionEnd(_) if folded[i] => {}
                Record::InterceptionEnd(r) => {
                    WHOLE.write(&tx, &wholes, bind_whole)?;
                    wholes.clear();
                    let id = r.interception_id.hyphenated().encode_lower(&mut id_buf);
                    tx.prepare_cached(UPSERT_END)?.execute(params![
                        &*id,
                        timefmt::format(r.ended_at).as_str(),
                        r.status.as_str(),
                        r.upstream_status,
                    ])?;
                }
                Record::TokenUsage(r) => usages.push(r),
                Record::PromptUsage(r) => prompts.push(r),
                Record::ToolUsage(r) => tools.push(r),
                Record::ModelThought(r) => thoughts.push(r),
            }
        }
        WHOLE.write(&tx, &wholes, bind_whole)?;
        TOKEN_USAGES.write(&tx, &usages, bind_usage)?;
        PROMPTS.write(&tx, &prompts, bind_prompt)?;
        TOOLS.write(&tx, &tools, bind_tool)?;
        THOUGHTS.write(&tx, &thoughts, bind_thought)?;
    }
    super::threads::link(&tx, records)?;
    tx.commit()
}

/// Binds the interception id as text at parameter `at` (SQLite copies bound text, so a stack buffer does).
fn bind_id(stmt: &mut Statement<'_>, at: usize, id: &uuid::Uuid) -> Result<(), rusqlite::Error> {
    let mut buf = uuid::Uuid::encode_buffer();
    stmt.raw_bind_parameter(at, &*id.hyphenated().encode_lower(&mut buf))
}

fn bind_time(stmt: &mut Statement<'_>, at: usize, t: std::time::SystemTime) -> Result<(), rusqlite::Error> {
    stmt.raw_bind_parameter(at, timefmt::format(t).as_str())
}

fn bind_whole(
    stmt: &mut Statement<'_>,
    at: usize,
    &(r, e): &(&InterceptionStart, &InterceptionEnd),
) -> Result<(), rusqlite::Error> {
    bind_id(stmt, at, &r.interception_id)?;
    stmt.raw_bind_parameter(at + 1, r.initiator_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, r.provider)?;
    stmt.raw_bind_parameter(at + 3, r.provider_name.as_str())?;
    stmt.raw_bind_parameter(at + 4, r.model.as_str())?;
    stmt.raw_bind_parameter(at + 5, r.client.as_str())?;
    stmt.raw_bind_parameter(at + 6, r.client_session_id.as_deref())?;
    stmt.raw_bind_parameter(at + 7, r.user_agent.as_deref())?;
    stmt.raw_bind_parameter(at + 8, r.credential_kind.as_str())?;
    stmt.raw_bind_parameter(at + 9, r.credential_hint.as_deref())?;
    bind_time(stmt, at + 10, r.started_at)?;
    bind_time(stmt, at + 11, e.ended_at)?;
    stmt.raw_bind_parameter(at + 12, e.status.as_str())?;
    stmt.raw_bind_parameter(at + 13, e.upstream_status)?;
    stmt.raw_bind_parameter(at + 14, &*r.gateway_id)
}

fn bind_usage(stmt: &mut Statement<'_>, at: usize, r: &&TokenUsage) -> Result<(), rusqlite::Error> {
    bind_id(stmt, at, &r.interception_id)?;
    stmt.raw_bind_parameter(at + 1, r.msg_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, count(r.input_tokens))?;
    stmt.raw_bind_parameter(at + 3, count(r.output_tokens))?;
    stmt.raw_bind_parameter(at + 4, count(r.cache_read_input_tokens))?;
    stmt.raw_bind_parameter(at + 5, count(r.cache_write_input_tokens))?;
    stmt.raw_bind_parameter(at + 6, count(r.reasoning_tokens))?;
    stmt.raw_bind_parameter(at + 7, if r.extra.is_empty() { "{}" } else { r.extra.as_str() })?;
    bind_time(stmt, at + 8, r.created_at)
}

fn bind_prompt(stmt: &mut Statement<'_>, at: usize, r: &&PromptUsage) -> Result<(), rusqlite::Error> {
    bind_id(stmt, at, &r.interception_id)?;
    stmt.raw_bind_parameter(at + 1, r.msg_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, r.prompt.as_str())?;
    bind_time(stmt, at + 3, r.created_at)
}

fn bind_tool(stmt: &mut Statement<'_>, at: usize, r: &&ToolUsage) -> Result<(), rusqlite::Error> {
    bind_id(stmt, at, &r.interception_id)?;
    stmt.raw_bind_parameter(at + 1, r.msg_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, r.tool.as_str())?;
    stmt.raw_bind_parameter(at + 3, r.tool_call_id.as_str())?;
    stmt.raw_bind_parameter(at + 4, r.input.as_str())?;
    stmt.raw_bind_parameter(at + 5, r.server_url.as_deref())?;
    stmt.raw_bind_parameter(at + 6, r.injected)?;
    bind_time(stmt, at + 7, r.created_at)
}

fn bind_thought(stmt: &mut Statement<'_>, at: usize, r: &&ModelThought) -> Result<(), rusqlite::Error> {
    bind_id(stmt, at, &r.interception_id)?;
    stmt.raw_bind_parameter(at + 1, r.msg_id.as_str())?;
    stmt.raw_bind_parameter(at + 2, r.content.as_str())?;
    stmt.raw_bind_parameter(at + 3, r.source.as_str())?;
    bind_time(stmt, at + 4, r.created_at)
}

/// Ends every interception `gateway_id` started and left open as `status` at `ended_at` (RFC 3339 text)
/// with `reason`, in one statement. Returns how many were settled.
pub(super) fn settle_open(
    conn: &Connection,
    gateway_id: &str,
    ended_at: &str,
    status: &str,
    reason: &str,
) -> Result<usize, rusqlite::Error> {
    conn.prepare_cached(SETTLE_OPEN)?.execute(params![gateway_id, ended_at, status, reason])
}

/// Deletes up to `limit` interceptions started before `cutoff` (RFC 3339 text, same format as stored),
/// with every record that belongs to them, in one transaction. Ends whose start never arrived are aged by
/// their end time. Returns how many interceptions were removed; fewer than `limit` means none are left.
pub(super) fn purge_chunk(conn: &mut Connection, cutoff: &str, limit: usize) -> Result<usize, rusqlite::Error> {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::records::{CredentialKind, EndStatus};

    fn t(i: usize) -> SystemTime {
        UNIX_EPOCH + Duration::new(1_795_759_144 + i as u64, 1000 * i as u32)
    }

    /// Records of `n` interceptions whose every column depends on the index, so a row written with another
    /// row's values (a binding offset off by one) shows up. Interception `lone` gets no end, and the end of
    /// interception `early` comes before its start, so upserts interrupt the runs of folded rows.
    fn batch(n: usize, lone: usize, early: usize) -> (Vec<uuid::Uuid>, Vec<Record>) {
        let ids: Vec<uuid::Uuid> = (0..n).map(|_| crate::db::new_interception_id()).collect();
        let mut records = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let end = Record::InterceptionEnd(InterceptionEnd {
                interception_id: id,
                ended_at: t(i + 1000),
                status: if i % 2 == 0 { EndStatus::Completed } else { EndStatus::Failed },
                upstream_status: if i % 3 == 0 { None } else { Some(200 + i as u16) },
            });
            if i == early {
                records.push(end.clone());
            }
            records.push(Record::InterceptionStart(InterceptionStart {
                interception_id: id,
                initiator_id: format!("user{i}"),
                provider: "openai",
                provider_name: format!("prov{i}"),
                model: format!("model{i}"),
                client: format!("client{i}"),
                client_session_id: (i % 2 == 0).then(|| format!("sess{i}")),
                user_agent: (i % 3 == 0).then(|| format!("ua{i}")),
                correlating_tool_call_id: None,
                credential_kind: CredentialKind::Centralized,
                credential_hint: (i % 5 == 0).then(|| format!("hint{i}")),
                started_at: t(i),
                gateway_id: "test-gateway".into(),
                api: crate::records::Api::ChatCompletions,
            }));
            records.push(Record::TokenUsage(TokenUsage {
                interception_id: id,
                msg_id: format!("msg{i}"),
                input_tokens: i as u64,
                output_tokens: 2 * i as u64,
                cache_read_input_tokens: 3 * i as u64,
                cache_write_input_tokens: 4 * i as u64,
                reasoning_tokens: 5 * i as u64,
                extra: if i % 2 == 0 { String::new() } else { format!("{{\"n\":{i}}}") },
                created_at: t(i),
            }));
            records.push(Record::PromptUsage(PromptUsage {
                interception_id: id,
                msg_id: format!("msg{i}"),
                prompt: format!("prompt {i}"),
                created_at: t(i),
            }));
            records.push(Record::ToolUsage(ToolUsage {
                interception_id: id,
                msg_id: format!("msg{i}"),
                tool: format!("tool{i}"),
                tool_call_id: format!("call{i}"),
                input: format!("{{\"i\":{i}}}"),
                server_url: (i % 2 == 1).then(|| format!("https://mcp{i}")),
                injected: i % 2 == 0,
                created_at: t(i),
            }));
            records.push(Record::ModelThought(ModelThought {
                interception_id: id,
                msg_id: format!("msg{i}"),
                content: format!("thought {i}"),
                source: format!("src{i}"),
                created_at: t(i),
            }));
            if i != lone && i != early {
                records.push(end);
            }
        }
        (ids, records)
    }

    fn refs(records: &[Record]) -> Vec<&Record> {
        records.iter().collect()
    }

    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn multi_row_chunks_write_every_row_exactly() {
        // Row counts below, at and across each chunk size (32, 8, 1) and their sums.
        for n in [1usize, 2, 7, 8, 9, 31, 32, 33, 40, 41, 72, 100] {
            let dir = crate::db::test_dir("store-chunks");
            let mut conn = super::super::open_connection(&dir.join("a.db")).unwrap();
            let (lone, early) = (n / 2, n.saturating_sub(1) / 3);
            let (ids, records) = batch(n, lone, early);
            write_batch(&mut conn, &refs(&records)).unwrap();
            let id = |i: usize| ids[i].hyphenated().to_string();
            let ts = |i: usize| timefmt::format(t(i)).as_str().to_owned();
            let opt = |b: bool, s: String| if b { s } else { "NULL".to_owned() };

            let expected: Vec<String> = (0..n)
                .map(|i| {
                    let ended = i != lone || i == early;
                    format!(
                        "{}|user{i}|openai|prov{i}|model{i}|client{i}|{}|{}|centralized|{}|{}|{}|{}|{}",
                        id(i),
                        opt(i % 2 == 0, format!("sess{i}")),
                        opt(i % 3 == 0, format!("ua{i}")),
                        opt(i % 5 == 0, format!("hint{i}")),
                        ts(i),
                        opt(ended, ts(i + 1000)),
                        opt(ended, if i % 2 == 0 { "completed" } else { "failed" }.to_owned()),
                        opt(ended && i % 3 != 0, (200 + i).to_string()),
                    )
                })
                .collect();
            let got = strings(
                &conn,
                "SELECT concat_ws('|', id, initiator_id, provider, provider_name, model, client, \
                 coalesce(client_session_id, 'NULL'), coalesce(user_agent, 'NULL'), credential_kind, \
                 coalesce(credential_hint, 'NULL'), started_at, coalesce(ended_at, 'NULL'), \
                 coalesce(status, 'NULL'), coalesce(upstream_status, 'NULL')) \
                 FROM aibridge_interceptions ORDER BY started_at",
            );
            assert_eq!(got, expected, "interceptions, n = {n}");

            let expected: Vec<String> = (0..n)
                .map(|i| {
                    let extra = if i % 2 == 0 { "{}".to_owned() } else { format!("{{\"n\":{i}}}") };
                    format!("{}|msg{i}|{i}|{}|{}|{}|{}|{extra}|{}", id(i), 2 * i, 3 * i, 4 * i, 5 * i, ts(i))
                })
                .collect();
            let got = strings(
                &conn,
                "SELECT concat_ws('|', interception_id, msg_id, input_tokens, output_tokens, \
                 cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, extra, created_at) \
                 FROM aibridge_token_usages ORDER BY id",
            );
            assert_eq!(got, expected, "token usages, n = {n}");

            let expected: Vec<String> = (0..n).map(|i| format!("{}|msg{i}|prompt {i}|{}", id(i), ts(i))).collect();
            let got = strings(
                &conn,
                "SELECT concat_ws('|', interception_id, msg_id, prompt, created_at) \
                 FROM aibridge_user_prompts ORDER BY id",
            );
            assert_eq!(got, expected, "prompts, n = {n}");

            let expected: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{}|msg{i}|tool{i}|call{i}|{{\"i\":{i}}}|{}|{}|{}",
                        id(i),
                        opt(i % 2 == 1, format!("https://mcp{i}")),
                        u8::from(i % 2 == 0),
                        ts(i)
                    )
                })
                .collect();
            let got = strings(
                &conn,
                "SELECT concat_ws('|', interception_id, msg_id, tool, tool_call_id, input, \
                 coalesce(server_url, 'NULL'), injected, created_at) FROM aibridge_tool_usages ORDER BY id",
            );
            assert_eq!(got, expected, "tools, n = {n}");

            let expected: Vec<String> =
                (0..n).map(|i| format!("{}|msg{i}|thought {i}|src{i}|{}", id(i), ts(i))).collect();
            let got = strings(
                &conn,
                "SELECT concat_ws('|', interception_id, msg_id, content, source, created_at) \
                 FROM aibridge_model_thoughts ORDER BY id",
            );
            assert_eq!(got, expected, "thoughts, n = {n}");
            drop(conn);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn one_record_batches_take_the_single_row_statements() {
        let dir = crate::db::test_dir("store-single");
        let mut conn = super::super::open_connection(&dir.join("a.db")).unwrap();
        let (_, records) = batch(3, 1, 0);
        for r in &records {
            write_batch(&mut conn, &[r]).unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let n: i64 = conn.query_row("SELECT count(*) FROM aibridge_token_usages", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn a_rejected_row_rolls_back_the_whole_batch_and_leaves_the_connection_usable() {
        let dir = crate::db::test_dir("store-rollback");
        let mut conn = super::super::open_connection(&dir.join("a.db")).unwrap();
        // A constraint the schema does not have, so one prompt of the batch is rejected mid-statement.
        conn.execute_batch("CREATE UNIQUE INDEX one_prompt_text ON aibridge_user_prompts (prompt)").unwrap();
        let (_, mut records) = batch(40, 40, 40);
        records.push(Record::PromptUsage(PromptUsage {
            interception_id: uuid::Uuid::nil(),
            msg_id: "dup".into(),
            prompt: "prompt 7".into(),
            created_at: t(0),
        }));
        let err = write_batch(&mut conn, &refs(&records)).unwrap_err();
        assert!(matches!(super::super::classify(err), crate::db::StoreError::Rejected(_)));
        assert!(conn.is_autocommit());
        for table in ["aibridge_interceptions", "aibridge_token_usages", "aibridge_user_prompts"] {
            let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
            assert_eq!(n, 0, "{table}");
        }
        records.pop();
        write_batch(&mut conn, &refs(&records)).unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM aibridge_user_prompts", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 40);
    }
}
