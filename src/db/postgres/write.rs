//! PostgreSQL record writes: a batch is one statement (one round trip, one implicit transaction): every
//! table's rows go in through an `INSERT … SELECT FROM unnest($n::type[])` data-modifying CTE (bound in
//! binary) and the batch's id is entered in the `aibridge_sink_batches` ledger by the same statement;
//! retention purges in bounded chunks under a try-lock; the start-up settle. Knows nothing of channels,
//! retries or logs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use postgres::types::ToSql;
use postgres::{Client, Statement};
use uuid::Uuid;

use crate::records::{InterceptionEnd, InterceptionStart, ModelThought, PromptUsage, Record, TokenUsage, ToolUsage};

/// The advisory lock a purge must win: with several gateways on one database only one purges at a time,
/// the others skip that round.
pub(super) const PURGE_LOCK: i64 = 0x6169_6272_6964_6702;

/// How long a batch id stays in the ledger: far longer than any retry of that batch can be pending.
const LEDGER_KEEP: Duration = Duration::from_secs(3600);

/// Batches between two prunings of the ledger.
const LEDGER_PRUNE_EVERY: u64 = 256;

// Interception rows of a batch are merged per id first (a start and its end become one row), so one upsert
// touches each row once. A start fills the start columns, an end the end columns; a half that is absent
// (NULL `started_at` / `ended_at` in the incoming row) keeps what the table has. A real end also clears a
// settle's `end_reason`.
// Interception rows of a batch are merged per id first (a start and its end become one row), so one upsert
// touches each row once. A start fills the start columns, an end the end columns; a half that is absent
// (NULL `started_at` / `ended_at` in the incoming row) keeps what the table has. A real end also clears a
// settle's `end_reason`. `thread_root_id` follows the row's `threads::RootSpec` ($17–$21): the root
// resolved from the batch, else the stored root of the issuing interception, else the root of the newest
// stored interception of the same user that recorded the call, else the row (or its in-batch ancestor).
const UPSERT_INTERCEPTIONS: &str = "INSERT INTO aibridge_interceptions AS t (id, initiator_id, provider, \
    provider_name, model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, \
    gateway_id, ended_at, status, upstream_status, correlating_tool_call_id, thread_root_id) \
    SELECT r.id, r.initiator_id, r.provider, r.provider_name, r.model, r.client, r.client_session_id, \
    r.user_agent, r.credential_kind, r.credential_hint, r.started_at, r.gateway_id, r.ended_at, r.status, \
    r.upstream_status, r.call, COALESCE(r.root_known, \
      (SELECT COALESCE(p.thread_root_id, p.id) FROM aibridge_interceptions p \
       WHERE p.id = r.root_parent AND p.initiator_id = r.root_user), \
      (SELECT COALESCE(p.thread_root_id, p.id) FROM aibridge_tool_usages tu \
       JOIN aibridge_interceptions p ON p.id = tu.interception_id \
       WHERE tu.tool_call_id = r.root_call AND p.initiator_id = r.root_user AND p.id <> r.root_own \
       ORDER BY tu.id DESC LIMIT 1), \
      r.root_own) \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[], $14::text[], \
    $15::integer[], $16::text[], $17::uuid[], $18::uuid[], $19::text[], $20::text[], $21::uuid[]) \
    AS r(id, initiator_id, provider, provider_name, model, client, client_session_id, user_agent, \
    credential_kind, credential_hint, started_at, gateway_id, ended_at, status, upstream_status, call, \
    root_known, root_parent, root_call, root_user, root_own) \
    ON CONFLICT (id) DO UPDATE SET \
    initiator_id = CASE WHEN excluded.started_at IS NULL THEN t.initiator_id ELSE excluded.initiator_id END, \
    provider = CASE WHEN excluded.started_at IS NULL THEN t.provider ELSE excluded.provider END, \
    provider_name = CASE WHEN excluded.started_at IS NULL THEN t.provider_name ELSE excluded.provider_name END, \
    model = CASE WHEN excluded.started_at IS NULL THEN t.model ELSE excluded.model END, \
    client = CASE WHEN excluded.started_at IS NULL THEN t.client ELSE excluded.client END, \
    client_session_id = CASE WHEN excluded.started_at IS NULL THEN t.client_session_id \
        ELSE excluded.client_session_id END, \
    user_agent = CASE WHEN excluded.started_at IS NULL THEN t.user_agent ELSE excluded.user_agent END, \
    credential_kind = CASE WHEN excluded.started_at IS NULL THEN t.credential_kind \
        ELSE excluded.credential_kind END, \
    credential_hint = CASE WHEN excluded.started_at IS NULL THEN t.credential_hint \
        ELSE excluded.credential_hint END, \
    gateway_id = CASE WHEN excluded.started_at IS NULL THEN t.gateway_id ELSE excluded.gateway_id END, \
    correlating_tool_call_id = CASE WHEN excluded.started_at IS NULL THEN t.correlating_tool_call_id \
        ELSE excluded.correlating_tool_call_id END, \
    thread_root_id = CASE WHEN excluded.started_at IS NULL THEN t.thread_root_id ELSE excluded.thread_root_id END, \
    started_at = COALESCE(excluded.started_at, t.started_at), \
    status = CASE WHEN excluded.ended_at IS NULL THEN t.status ELSE excluded.status END, \
    upstream_status = CASE WHEN excluded.ended_at IS NULL THEN t.upstream_status ELSE excluded.upstream_status END, \
    end_reason = CASE WHEN excluded.ended_at IS NULL THEN t.end_reason ELSE NULL END, \
    ended_at = COALESCE(excluded.ended_at, t.ended_at)";

const INSERT_USAGES: &str = "INSERT INTO aibridge_token_usages (interception_id, msg_id, input_tokens, \
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, extra, created_at) \
    SELECT i, m, a, b, c, d, e, x::jsonb, t FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], \
    $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::timestamptz[]) AS u(i, m, a, b, c, d, e, x, t)";

const INSERT_PROMPTS: &str = "INSERT INTO aibridge_user_prompts (interception_id, msg_id, prompt, created_at) \
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])";

const INSERT_TOOLS: &str = "INSERT INTO aibridge_tool_usages (interception_id, msg_id, tool, tool_call_id, input, \
    server_url, injected, created_at) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
    $5::text[], $6::text[], $7::boolean[], $8::timestamptz[])";

const INSERT_THOUGHTS: &str = "INSERT INTO aibridge_model_thoughts (interception_id, msg_id, content, source, \
    created_at) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])";

/// Batch ids are UUIDv7, so "older than" is a key range.
const PRUNE_LEDGER: &str = "DELETE FROM aibridge_sink_batches WHERE id < $1";

const SETTLE_OPEN: &str = "UPDATE aibridge_interceptions SET ended_at = $2, status = $3, end_reason = $4 \
    WHERE gateway_id = $1 AND ended_at IS NULL AND started_at IS NOT NULL";

/// Tables keyed by `interception_id` that retention clears before the interception row itself.
const CHILD_TABLES: [&str; 4] =
    ["aibridge_token_usages", "aibridge_user_prompts", "aibridge_tool_usages", "aibridge_model_thoughts"];

/// `sql` with every `$n` parameter moved up by `by`.
fn shift_params(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut n = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            match n.parse::<usize>() {
                Ok(n) => out.push_str(&(n + by).to_string()),
                Err(_) => out.push_str(&n),
            }
        }
    }
    out
}

/// The whole batch as one statement: every table's insert is a data-modifying CTE and the ledger entry
/// the final insert, so a batch is one round trip and one implicit transaction (the per-statement
/// round trips of BEGIN, six inserts and COMMIT halved the sink's rate on loopback).
fn batch_sql() -> String {
    format!(
        "WITH i AS ({}), u AS ({}), p AS ({}), tl AS ({}), h AS ({}) INSERT INTO aibridge_sink_batches (id) VALUES ($48)",
        UPSERT_INTERCEPTIONS,
        shift_params(INSERT_USAGES, 21),
        shift_params(INSERT_PROMPTS, 30),
        shift_params(INSERT_TOOLS, 34),
        shift_params(INSERT_THOUGHTS, 42),
    )
}

/// The record writer's statements, prepared once per connection.
pub(super) struct Statements {
    batch: Statement,
    prune: Statement,
}

impl Statements {
    pub(super) fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Statements { batch: client.prepare(&batch_sql())?, prune: client.prepare(PRUNE_LEDGER)? })
    }
}

/// How a batch write failed: before COMMIT (nothing was written) or at it (the outcome is unknown).
pub(super) struct WriteFailure {
    pub(super) at_commit: bool,
    pub(super) error: postgres::Error,
}

/// `text` cannot hold U+0000: it is stored as U+FFFD, so one such prompt never fails a whole batch.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(text)
}

/// The `extra` column is `jsonb`: empty text is `{}` (as in SQLite), text that is not JSON is stored as a
/// JSON string rather than failing the batch, and `\u0000` (which `jsonb` refuses) becomes `\ufffd`.
fn json(s: &str) -> Cow<'_, str> {
    if s.is_empty() {
        return Cow::Borrowed("{}");
    }
    let s = if s.contains("\\u0000") { Cow::Owned(s.replace("\\u0000", "\\ufffd")) } else { Cow::Borrowed(s) };
    if serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok() {
        s
    } else {
        Cow::Owned(serde_json::Value::String(text(&s).into_owned()).to_string())
    }
}

/// Counts are `bigint`: values beyond `i64::MAX` are clamped rather than wrapped negative.
fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One interception row of a batch: its start and/or its end.
#[derive(Default)]
struct Merged<'a> {
    start: Option<&'a InterceptionStart>,
    end: Option<&'a InterceptionEnd>,
}

/// Writes `records` and the ledger entry `batch` in one statement (so one transaction). `prune` also drops ledger entries
/// older than [`LEDGER_KEEP`].
pub(super) fn write_batch(
    client: &mut Client,
    stmts: &Statements,
    records: &[&Record],
    batch: Uuid,
    prune: bool,
) -> Result<(), WriteFailure> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut merged: HashMap<Uuid, Merged<'_>> = HashMap::new();
    let mut usages: Vec<&TokenUsage> = Vec::new();
    let mut prompts: Vec<&PromptUsage> = Vec::new();
    let mut tools: Vec<&ToolUsage> = Vec::new();
    let mut thoughts: Vec<&ModelThought> = Vec::new();
    for record in records {
        let id = match record {
            Record::InterceptionStart(r) => r.interception_id,
            Record::InterceptionEnd(r) => r.interception_id,
            _ => Uuid::nil(),
        };
        match record {
            Record::InterceptionStart(_) | Record::InterceptionEnd(_) => {
                let row = merged.entry(id).or_insert_with(|| {
                    order.push(id);
                    Merged::default()
                });
                match record {
                    Record::InterceptionStart(r) => row.start = Some(r),
                    Record::InterceptionEnd(r) => row.end = Some(r),
                    _ => {}
                }
            }
            Record::TokenUsage(r) => usages.push(r),
            Record::PromptUsage(r) => prompts.push(r),
            Record::ToolUsage(r) => tools.push(r),
            Record::ModelThought(r) => thoughts.push(r),
        }
    }
    let rows: Vec<&Merged<'_>> = order.iter().filter_map(|id| merged.get(id)).collect();
    let start = |f: fn(&InterceptionStart) -> Option<&str>| -> Vec<Option<Cow<'_, str>>> {
        rows.iter().map(|m| m.start.and_then(f).map(text)).collect()
    };
    let i_cols = [
        start(|s| Some(&s.initiator_id)),
        start(|s| Some(s.provider)),
        start(|s| Some(&s.provider_name)),
        start(|s| Some(&s.model)),
        start(|s| Some(&s.client)),
        start(|s| s.client_session_id.as_deref()),
        start(|s| s.user_agent.as_deref()),
        start(|s| Some(s.credential_kind.as_str())),
        start(|s| s.credential_hint.as_deref()),
    ];
    let i_started: Vec<Option<SystemTime>> = rows.iter().map(|m| m.start.map(|s| s.started_at)).collect();
    let i_gateway = start(|s| Some(&s.gateway_id));
    let i_ended: Vec<Option<SystemTime>> = rows.iter().map(|m| m.end.map(|e| e.ended_at)).collect();
    let i_status: Vec<Option<&str>> = rows.iter().map(|m| m.end.map(|e| e.status.as_str())).collect();
    let i_upstream: Vec<Option<i32>> =
        rows.iter().map(|m| m.end.and_then(|e| e.upstream_status).map(i32::from)).collect();
    let i_call = start(|s| s.correlating_tool_call_id.as_deref());
    let links = super::threads::resolve(records);
    let link = |m: &&Merged<'_>| m.start.and_then(|s| links.get(&s.interception_id));
    let r_known: Vec<Option<Uuid>> = rows.iter().map(|m| link(m).and_then(|l| l.known)).collect();
    let r_parent: Vec<Option<Uuid>> = rows.iter().map(|m| link(m).and_then(|l| l.parent)).collect();
    let r_call: Vec<Option<Cow<'_, str>>> =
        rows.iter().map(|m| link(m).and_then(|l| opt_text(l.call.as_deref()))).collect();
    let r_user: Vec<Option<Cow<'_, str>>> =
        rows.iter().map(|m| link(m).and_then(|l| opt_text(l.user.as_deref()))).collect();
    let r_own: Vec<Option<Uuid>> = rows.iter().map(|m| link(m).and_then(|l| l.own)).collect();

    let u_ids: Vec<Uuid> = usages.iter().map(|r| r.interception_id).collect();
    let u_msg: Vec<Cow<'_, str>> = usages.iter().map(|r| text(&r.msg_id)).collect();
    let u_counts: [Vec<i64>; 5] = [
        usages.iter().map(|r| count(r.input_tokens)).collect(),
        usages.iter().map(|r| count(r.output_tokens)).collect(),
        usages.iter().map(|r| count(r.cache_read_input_tokens)).collect(),
        usages.iter().map(|r| count(r.cache_write_input_tokens)).collect(),
        usages.iter().map(|r| count(r.reasoning_tokens)).collect(),
    ];
    let u_extra: Vec<Cow<'_, str>> = usages.iter().map(|r| json(&r.extra)).collect();
    let u_at: Vec<SystemTime> = usages.iter().map(|r| r.created_at).collect();

    let p_ids: Vec<Uuid> = prompts.iter().map(|r| r.interception_id).collect();
    let p_msg: Vec<Cow<'_, str>> = prompts.iter().map(|r| text(&r.msg_id)).collect();
    let p_text: Vec<Cow<'_, str>> = prompts.iter().map(|r| text(&r.prompt)).collect();
    let p_at: Vec<SystemTime> = prompts.iter().map(|r| r.created_at).collect();

    let t_ids: Vec<Uuid> = tools.iter().map(|r| r.interception_id).collect();
    let t_text: [Vec<Cow<'_, str>>; 4] = [
        tools.iter().map(|r| text(&r.msg_id)).collect(),
        tools.iter().map(|r| text(&r.tool)).collect(),
        tools.iter().map(|r| text(&r.tool_call_id)).collect(),
        tools.iter().map(|r| text(&r.input)).collect(),
    ];
    let t_url: Vec<Option<Cow<'_, str>>> = tools.iter().map(|r| opt_text(r.server_url.as_deref())).collect();
    let t_injected: Vec<bool> = tools.iter().map(|r| r.injected).collect();
    let t_at: Vec<SystemTime> = tools.iter().map(|r| r.created_at).collect();

    let h_ids: Vec<Uuid> = thoughts.iter().map(|r| r.interception_id).collect();
    let h_text: [Vec<Cow<'_, str>>; 3] = [
        thoughts.iter().map(|r| text(&r.msg_id)).collect(),
        thoughts.iter().map(|r| text(&r.content)).collect(),
        thoughts.iter().map(|r| text(&r.source)).collect(),
    ];
    let h_at: Vec<SystemTime> = thoughts.iter().map(|r| r.created_at).collect();

    let params: [&(dyn ToSql + Sync); 48] = [
        &order,
        &i_cols[0],
        &i_cols[1],
        &i_cols[2],
        &i_cols[3],
        &i_cols[4],
        &i_cols[5],
        &i_cols[6],
        &i_cols[7],
        &i_cols[8],
        &i_started,
        &i_gateway,
        &i_ended,
        &i_status,
        &i_upstream,
        &i_call,
        &r_known,
        &r_parent,
        &r_call,
        &r_user,
        &r_own,
        &u_ids,
        &u_msg,
        &u_counts[0],
        &u_counts[1],
        &u_counts[2],
        &u_counts[3],
        &u_counts[4],
        &u_extra,
        &u_at,
        &p_ids,
        &p_msg,
        &p_text,
        &p_at,
        &t_ids,
        &t_text[0],
        &t_text[1],
        &t_text[2],
        &t_text[3],
        &t_url,
        &t_injected,
        &t_at,
        &h_ids,
        &h_text[0],
        &h_text[1],
        &h_text[2],
        &h_at,
        &batch,
    ];
    // One statement, one implicit transaction. An ERROR the server reported on a connection that is still
    // open means it rolled back; anything else (a FATAL such as `pg_terminate_backend`, a lost connection)
    // may have come after the commit, so the outcome is unknown.
    if let Err(error) = client.execute(&stmts.batch, &params) {
        let rolled_back =
            !client.is_closed() && error.as_db_error().is_some_and(|db| db.severity().eq_ignore_ascii_case("ERROR"));
        return Err(WriteFailure { at_commit: !rolled_back, error });
    }
    if prune {
        let cutoff = SystemTime::now().checked_sub(LEDGER_KEEP).unwrap_or(SystemTime::UNIX_EPOCH);
        if let Err(e) = client.execute(&stmts.prune, &[&batch_id_at(cutoff)]) {
            tracing::warn!(error = %super::PgError::describe(&e), "cannot prune the batch ledger; trying again later");
        }
    }
    Ok(())
}

/// Whether the `n`th batch of a connection also prunes the ledger.
pub(super) fn prune_due(n: u64) -> bool {
    n.is_multiple_of(LEDGER_PRUNE_EVERY)
}

/// The smallest UUIDv7 of the instant `t`: every batch id made before `t` sorts below it.
pub(super) fn batch_id_at(t: SystemTime) -> Uuid {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let ms = (since.as_millis() as u64) & ((1 << 48) - 1);
    // UUIDv7: the 48-bit Unix millisecond timestamp, then the version nibble; everything else zero.
    Uuid::from_u128((u128::from(ms) << 80) | (0x7u128 << 76))
}

/// Whether the batch `id` committed (its ledger entry exists).
pub(super) fn batch_committed(client: &mut Client, id: Uuid) -> Result<bool, postgres::Error> {
    Ok(client.query_opt("SELECT 1 FROM aibridge_sink_batches WHERE id = $1", &[&id])?.is_some())
}

pub(super) fn settle_open(
    client: &mut Client,
    gateway_id: &str,
    ended_at: SystemTime,
    status: &str,
    reason: &str,
) -> Result<usize, postgres::Error> {
    let n = client.execute(SETTLE_OPEN, &[&gateway_id, &ended_at, &status, &reason])?;
    Ok(n as usize)
}

/// Deletes up to `limit` interceptions started before `cutoff` (ends without a start aged by their end)
/// with their child rows, in one transaction, when this gateway wins the purge lock; returns 0 without
/// deleting anything when another gateway holds it (that gateway is purging).
pub(super) fn purge_chunk(client: &mut Client, cutoff: SystemTime, limit: usize) -> Result<usize, postgres::Error> {
    let mut tx = client.transaction()?;
    let won: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])?.get(0);
    if !won {
        return Ok(0);
    }
    let limit = count(limit as u64);
    let ids: Vec<Uuid> = tx
        .query(
            "(SELECT id FROM aibridge_interceptions WHERE started_at < $1 LIMIT $2) \
             UNION ALL (SELECT id FROM aibridge_interceptions WHERE started_at IS NULL AND ended_at < $1 LIMIT $2) \
             LIMIT $2",
            &[&cutoff, &limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    for table in CHILD_TABLES {
        tx.execute(&format!("DELETE FROM {table} WHERE interception_id = ANY($1)"), &[&ids])?;
    }
    tx.execute("DELETE FROM aibridge_interceptions WHERE id = ANY($1)", &[&ids])?;
    tx.commit()?;
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_never_carry_nul() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
        assert_eq!(json(""), "{}");
        assert_eq!(json(r#"{"a":"x\u0000"}"#), r#"{"a":"x\ufffd"}"#);
        assert_eq!(json("not json"), r#""not json""#);
        assert_eq!(json(r#"{"n":1}"#), r#"{"n":1}"#);
        assert_eq!(count(u64::MAX), i64::MAX);
    }

    #[test]
    fn the_batch_statement_numbers_every_parameter_once() {
        assert_eq!(shift_params("unnest($1::uuid[], $12::text[]) x$", 15), "unnest($16::uuid[], $27::text[]) x$");
        let sql = batch_sql();
        for n in 1..=48 {
            assert_eq!(sql.matches(&format!("${n}::")).count() + sql.matches(&format!("(${n})")).count(), 1, "${n}");
        }
        assert!(!sql.contains("$49"));
    }

    #[test]
    fn ledger_cutoff_sorts_below_later_ids() {
        let t = SystemTime::now() - Duration::from_secs(60);
        let cutoff = batch_id_at(t);
        assert_eq!(cutoff.get_version_num(), 7);
        let later = Uuid::now_v7();
        assert!(cutoff < later);
        let earlier = batch_id_at(t - Duration::from_secs(1));
        assert!(earlier < cutoff);
    }
}
