//! PostgreSQL record writes: a batch's records sorted by table and bound as arrays to one of the
//! `batch_sql` statements (one round trip, one implicit transaction, the batch's ledger entry included);
//! retention purges in bounded chunks under a try-lock; the start-up settle. Knows nothing of channels,
//! retries or logs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Statement};
use uuid::Uuid;

use super::batch_sql;
use super::threads::RootSpec;
use crate::records::{InterceptionEnd, InterceptionStart, ModelThought, PromptUsage, Record, TokenUsage, ToolUsage};

/// The advisory lock a purge must win: with several gateways on one database only one purges at a time,
/// the others skip that round.
pub(super) const PURGE_LOCK: i64 = 0x6169_6272_6964_6702;

/// How long a batch id stays in the ledger: far longer than any retry of that batch can be pending.
const LEDGER_KEEP: Duration = Duration::from_secs(3600);

/// Batches between two prunings of the ledger.
const LEDGER_PRUNE_EVERY: u64 = 256;

/// Batch ids are UUIDv7, so "older than" is a key range.
const PRUNE_LEDGER: &str = "DELETE FROM aibridge_sink_batches WHERE id < $1";

const SETTLE_OPEN: &str = "UPDATE aibridge_interceptions SET ended_at = $2, status = $3, end_reason = $4 \
    WHERE gateway_id = $1 AND ended_at IS NULL AND started_at IS NOT NULL";

/// Tables keyed by `interception_id` that retention clears before the interception row itself.
const CHILD_TABLES: [&str; 4] =
    ["aibridge_token_usages", "aibridge_user_prompts", "aibridge_tool_usages", "aibridge_model_thoughts"];

/// The record writer's statements, prepared once per connection.
pub(super) struct Statements {
    insert_batch: Statement,
    merge_batch: Statement,
    prune: Statement,
}

impl Statements {
    pub(super) fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Statements {
            insert_batch: client.prepare(&batch_sql::insert_batch())?,
            merge_batch: client.prepare(&batch_sql::merge_batch())?,
            prune: client.prepare(PRUNE_LEDGER)?,
        })
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
    id: Uuid,
    start: Option<&'a InterceptionStart>,
    end: Option<&'a InterceptionEnd>,
}

/// A batch's records sorted by table, interception halves merged per id in first-seen order.
#[derive(Default)]
struct Sorted<'a> {
    rows: Vec<Merged<'a>>,
    usages: Vec<&'a TokenUsage>,
    prompts: Vec<&'a PromptUsage>,
    tools: Vec<&'a ToolUsage>,
    thoughts: Vec<&'a ModelThought>,
}

impl<'a> Sorted<'a> {
    fn new(records: &[&'a Record]) -> Self {
        let mut sorted = Sorted::default();
        let mut row_of: HashMap<Uuid, usize> = HashMap::new();
        let mut row = |rows: &mut Vec<Merged<'a>>, id: Uuid| -> usize {
            *row_of.entry(id).or_insert_with(|| {
                rows.push(Merged { id, ..Merged::default() });
                rows.len() - 1
            })
        };
        for record in records {
            match record {
                Record::InterceptionStart(r) => {
                    let at = row(&mut sorted.rows, r.interception_id);
                    sorted.rows[at].start = Some(r);
                }
                Record::InterceptionEnd(r) => {
                    let at = row(&mut sorted.rows, r.interception_id);
                    sorted.rows[at].end = Some(r);
                }
                Record::TokenUsage(r) => sorted.usages.push(r),
                Record::PromptUsage(r) => sorted.prompts.push(r),
                Record::ToolUsage(r) => sorted.tools.push(r),
                Record::ModelThought(r) => sorted.thoughts.push(r),
            }
        }
        sorted
    }
}

/// The arrays bound to `batch_sql::INSERT_INTERCEPTIONS`, one element per row.
struct InterceptionColumns<'a> {
    ids: Vec<Uuid>,
    text: [Vec<Option<Cow<'a, str>>>; 9],
    started: Vec<Option<SystemTime>>,
    gateway: Vec<Option<Cow<'a, str>>>,
    ended: Vec<Option<SystemTime>>,
    status: Vec<Option<&'a str>>,
    upstream: Vec<Option<i32>>,
    call: Vec<Option<Cow<'a, str>>>,
    root_known: Vec<Option<Uuid>>,
    root_parent: Vec<Option<Uuid>>,
    root_call: Vec<Option<Cow<'a, str>>>,
    root_user: Vec<Option<Cow<'a, str>>>,
    root_own: Vec<Option<Uuid>>,
}

impl<'a> InterceptionColumns<'a> {
    fn new(rows: &[&Merged<'a>], links: &'a HashMap<Uuid, RootSpec>) -> Self {
        let start = |f: fn(&'a InterceptionStart) -> Option<&'a str>| -> Vec<Option<Cow<'a, str>>> {
            rows.iter().map(|m| m.start.and_then(f).map(text)).collect()
        };
        let link = |m: &&Merged<'a>| m.start.and_then(|s| links.get(&s.interception_id));
        InterceptionColumns {
            ids: rows.iter().map(|m| m.id).collect(),
            text: [
                start(|s| Some(&s.initiator_id)),
                start(|s| Some(s.provider)),
                start(|s| Some(&s.provider_name)),
                start(|s| Some(&s.model)),
                start(|s| Some(&s.client)),
                start(|s| s.client_session_id.as_deref()),
                start(|s| s.user_agent.as_deref()),
                start(|s| Some(s.credential_kind.as_str())),
                start(|s| s.credential_hint.as_deref()),
            ],
            started: rows.iter().map(|m| m.start.map(|s| s.started_at)).collect(),
            gateway: start(|s| Some(&s.gateway_id)),
            ended: rows.iter().map(|m| m.end.map(|e| e.ended_at)).collect(),
            status: rows.iter().map(|m| m.end.map(|e| e.status.as_str())).collect(),
            upstream: rows.iter().map(|m| m.end.and_then(|e| e.upstream_status).map(i32::from)).collect(),
            call: start(|s| s.correlating_tool_call_id.as_deref()),
            root_known: rows.iter().map(|m| link(m).and_then(|l| l.known)).collect(),
            root_parent: rows.iter().map(|m| link(m).and_then(|l| l.parent)).collect(),
            root_call: rows.iter().map(|m| link(m).and_then(|l| opt_text(l.call.as_deref()))).collect(),
            root_user: rows.iter().map(|m| link(m).and_then(|l| opt_text(l.user.as_deref()))).collect(),
            root_own: rows.iter().map(|m| link(m).and_then(|l| l.own)).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); batch_sql::INTERCEPTION_PARAMS] {
        let t = &self.text;
        [
            &self.ids,
            &t[0],
            &t[1],
            &t[2],
            &t[3],
            &t[4],
            &t[5],
            &t[6],
            &t[7],
            &t[8],
            &self.started,
            &self.gateway,
            &self.ended,
            &self.status,
            &self.upstream,
            &self.call,
            &self.root_known,
            &self.root_parent,
            &self.root_call,
            &self.root_user,
            &self.root_own,
        ]
    }
}

/// The arrays bound to `batch_sql::MERGE_ENDS`: ends whose start is not in the batch.
struct EndColumns<'a> {
    ids: Vec<Uuid>,
    ended: Vec<SystemTime>,
    status: Vec<&'a str>,
    upstream: Vec<Option<i32>>,
}

impl<'a> EndColumns<'a> {
    fn new(ends: &[&'a InterceptionEnd]) -> Self {
        EndColumns {
            ids: ends.iter().map(|e| e.interception_id).collect(),
            ended: ends.iter().map(|e| e.ended_at).collect(),
            status: ends.iter().map(|e| e.status.as_str()).collect(),
            upstream: ends.iter().map(|e| e.upstream_status.map(i32::from)).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); batch_sql::END_PARAMS] {
        [&self.ids, &self.ended, &self.status, &self.upstream]
    }
}

/// The arrays bound to the child-row inserts (usages, prompts, tool calls, thoughts).
struct ChildColumns<'a> {
    u_ids: Vec<Uuid>,
    u_msg: Vec<Cow<'a, str>>,
    u_counts: [Vec<i64>; 5],
    u_extra: Vec<Cow<'a, str>>,
    u_at: Vec<SystemTime>,
    p_ids: Vec<Uuid>,
    p_msg: Vec<Cow<'a, str>>,
    p_text: Vec<Cow<'a, str>>,
    p_at: Vec<SystemTime>,
    t_ids: Vec<Uuid>,
    t_text: [Vec<Cow<'a, str>>; 4],
    t_url: Vec<Option<Cow<'a, str>>>,
    t_injected: Vec<bool>,
    t_at: Vec<SystemTime>,
    h_ids: Vec<Uuid>,
    h_text: [Vec<Cow<'a, str>>; 3],
    h_at: Vec<SystemTime>,
}

impl<'a> ChildColumns<'a> {
    fn new(sorted: &Sorted<'a>) -> Self {
        let (usages, prompts, tools, thoughts) = (&sorted.usages, &sorted.prompts, &sorted.tools, &sorted.thoughts);
        ChildColumns {
            u_ids: usages.iter().map(|r| r.interception_id).collect(),
            u_msg: usages.iter().map(|r| text(&r.msg_id)).collect(),
            u_counts: [
                usages.iter().map(|r| count(r.input_tokens)).collect(),
                usages.iter().map(|r| count(r.output_tokens)).collect(),
                usages.iter().map(|r| count(r.cache_read_input_tokens)).collect(),
                usages.iter().map(|r| count(r.cache_write_input_tokens)).collect(),
                usages.iter().map(|r| count(r.reasoning_tokens)).collect(),
            ],
            u_extra: usages.iter().map(|r| json(&r.extra)).collect(),
            u_at: usages.iter().map(|r| r.created_at).collect(),
            p_ids: prompts.iter().map(|r| r.interception_id).collect(),
            p_msg: prompts.iter().map(|r| text(&r.msg_id)).collect(),
            p_text: prompts.iter().map(|r| text(&r.prompt)).collect(),
            p_at: prompts.iter().map(|r| r.created_at).collect(),
            t_ids: tools.iter().map(|r| r.interception_id).collect(),
            t_text: [
                tools.iter().map(|r| text(&r.msg_id)).collect(),
                tools.iter().map(|r| text(&r.tool)).collect(),
                tools.iter().map(|r| text(&r.tool_call_id)).collect(),
                tools.iter().map(|r| text(&r.input)).collect(),
            ],
            t_url: tools.iter().map(|r| opt_text(r.server_url.as_deref())).collect(),
            t_injected: tools.iter().map(|r| r.injected).collect(),
            t_at: tools.iter().map(|r| r.created_at).collect(),
            h_ids: thoughts.iter().map(|r| r.interception_id).collect(),
            h_text: [
                thoughts.iter().map(|r| text(&r.msg_id)).collect(),
                thoughts.iter().map(|r| text(&r.content)).collect(),
                thoughts.iter().map(|r| text(&r.source)).collect(),
            ],
            h_at: thoughts.iter().map(|r| r.created_at).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); batch_sql::CHILD_PARAMS] {
        let (u, t, h) = (&self.u_counts, &self.t_text, &self.h_text);
        [
            &self.u_ids,
            &self.u_msg,
            &u[0],
            &u[1],
            &u[2],
            &u[3],
            &u[4],
            &self.u_extra,
            &self.u_at,
            &self.p_ids,
            &self.p_msg,
            &self.p_text,
            &self.p_at,
            &self.t_ids,
            &t[0],
            &t[1],
            &t[2],
            &t[3],
            &self.t_url,
            &self.t_injected,
            &self.t_at,
            &self.h_ids,
            &h[0],
            &h[1],
            &h[2],
            &self.h_at,
        ]
    }
}

/// Whether `error` says that a start of the batch met a stored interception row: the batch is then
/// written by the merging statement.
fn start_met_stored_row(error: &postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some("aibridge_interceptions_pkey")
    })
}

/// Writes `records` and the ledger entry `batch` in one statement (so one transaction). `prune` also drops
/// ledger entries older than [`LEDGER_KEEP`].
pub(super) fn write_batch(
    client: &mut Client,
    stmts: &Statements,
    records: &[&Record],
    batch: Uuid,
    prune: bool,
) -> Result<(), WriteFailure> {
    let sorted = Sorted::new(records);
    let links = super::threads::resolve(records);
    let children = ChildColumns::new(&sorted);
    let started: Vec<&Merged<'_>> = sorted.rows.iter().filter(|m| m.start.is_some()).collect();
    let ends: Vec<&InterceptionEnd> = sorted.rows.iter().filter(|m| m.start.is_none()).filter_map(|m| m.end).collect();
    let (starts, ends) = (InterceptionColumns::new(&started, &links), EndColumns::new(&ends));
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(64);
    params.extend(starts.params());
    params.extend(ends.params());
    params.extend(children.params());
    params.push(&batch);
    let mut result = client.execute(&stmts.insert_batch, &params);
    if result.as_ref().is_err_and(start_met_stored_row) {
        tracing::debug!("a start of the batch meets a stored row; writing the batch with the merging statement");
        let all: Vec<&Merged<'_>> = sorted.rows.iter().collect();
        let rows = InterceptionColumns::new(&all, &links);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(64);
        params.extend(rows.params());
        params.extend(children.params());
        params.push(&batch);
        result = client.execute(&stmts.merge_batch, &params);
    }
    // One statement, one implicit transaction. An ERROR the server reported on a connection that is still
    // open means it rolled back; anything else (a FATAL such as `pg_terminate_backend`, a lost connection)
    // may have come after the commit, so the outcome is unknown.
    if let Err(error) = result {
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
