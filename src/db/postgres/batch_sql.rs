//! The SQL of a record batch. A batch is one statement (one round trip, one implicit transaction): every
//! table's rows go in through a data-modifying CTE, `INSERT … SELECT unnest($n::type[]), …` (arrays bound in
//! binary and unnested in the select list, which PostgreSQL runs as a ProjectSet without materialising the
//! rows), and the batch's id goes into the `aibridge_sink_batches` ledger as the final insert.
//!
//! Two forms of the statement exist. The usual one inserts every interception whose start is in the batch
//! with a plain `INSERT` (its row cannot exist yet: a start is written once, and a retried batch is known
//! by its ledger entry) and merges only the ends whose start came earlier; the merging form upserts every
//! interception row, for the rare batch whose starts meet stored rows (a spill imported out of order, an
//! import repeated).

/// The interception columns a start fills, then the end columns: `$1` is the id, `$2`–`$10` the start's
/// text columns, `$11` `started_at`, `$12` the gateway, `$13`–`$15` the end, `$16` the correlating tool
/// call. `thread_root_id` follows the row's `threads::RootSpec` ($17–$21): the root resolved from the
/// batch, else the stored root of the issuing interception, else the root of the newest stored
/// interception of the same user that recorded the call, else the row (or its in-batch ancestor). The
/// linking subqueries run only for rows that need them.
const INSERT_INTERCEPTIONS: &str = "INSERT INTO aibridge_interceptions AS t (id, initiator_id, provider, \
    provider_name, model, client, client_session_id, user_agent, credential_kind, credential_hint, started_at, \
    gateway_id, ended_at, status, upstream_status, correlating_tool_call_id, thread_root_id) \
    SELECT r.id, r.initiator_id, r.provider, r.provider_name, r.model, r.client, r.client_session_id, \
    r.user_agent, r.credential_kind, r.credential_hint, r.started_at, r.gateway_id, r.ended_at, r.status, \
    r.upstream_status, r.call, COALESCE(r.root_known, \
      CASE WHEN r.root_parent IS NOT NULL THEN (SELECT COALESCE(p.thread_root_id, p.id) \
       FROM aibridge_interceptions p WHERE p.id = r.root_parent AND p.initiator_id = r.root_user) END, \
      CASE WHEN r.root_call IS NOT NULL THEN (SELECT COALESCE(p.thread_root_id, p.id) FROM aibridge_tool_usages tu \
       JOIN aibridge_interceptions p ON p.id = tu.interception_id \
       WHERE tu.tool_call_id = r.root_call AND p.initiator_id = r.root_user AND p.id <> r.root_own \
       ORDER BY tu.id DESC LIMIT 1) END, \
      r.root_own) \
    FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS initiator_id, unnest($3::text[]) AS provider, \
    unnest($4::text[]) AS provider_name, unnest($5::text[]) AS model, unnest($6::text[]) AS client, \
    unnest($7::text[]) AS client_session_id, unnest($8::text[]) AS user_agent, \
    unnest($9::text[]) AS credential_kind, unnest($10::text[]) AS credential_hint, \
    unnest($11::timestamptz[]) AS started_at, unnest($12::text[]) AS gateway_id, \
    unnest($13::timestamptz[]) AS ended_at, unnest($14::text[]) AS status, \
    unnest($15::integer[]) AS upstream_status, unnest($16::text[]) AS call, unnest($17::uuid[]) AS root_known, \
    unnest($18::uuid[]) AS root_parent, unnest($19::text[]) AS root_call, unnest($20::text[]) AS root_user, \
    unnest($21::uuid[]) AS root_own) AS r";

/// Makes [`INSERT_INTERCEPTIONS`] an upsert. Interception rows of a batch are merged per id first (a start
/// and its end become one row), so one upsert touches each row once. A start fills the start columns, an
/// end the end columns; a half that is absent (NULL `started_at` / `ended_at` in the incoming row) keeps
/// what the table has. A real end also clears a settle's `end_reason`.
const MERGE_ON_CONFLICT: &str = "ON CONFLICT (id) DO UPDATE SET \
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

/// The ends whose start is not in the batch: the end columns of a stored row, or a row of its own when the
/// start never came (it is then aged by its end). Same end semantics as [`MERGE_ON_CONFLICT`].
const MERGE_ENDS: &str = "INSERT INTO aibridge_interceptions AS t (id, ended_at, status, upstream_status) \
    SELECT unnest($1::uuid[]), unnest($2::timestamptz[]), unnest($3::text[]), unnest($4::integer[]) \
    ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at, status = excluded.status, \
    upstream_status = excluded.upstream_status, end_reason = NULL";

/// Token usages: `$1` interception, `$2` message, `$3`–`$7` counts, `$8` extra (text cast to jsonb), `$9` time.
const INSERT_USAGES: &str = "INSERT INTO aibridge_token_usages (interception_id, msg_id, input_tokens, \
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, extra, created_at) \
    SELECT i, m, a, b, c, d, e, x::jsonb, t FROM (SELECT unnest($1::uuid[]) AS i, unnest($2::text[]) AS m, \
    unnest($3::bigint[]) AS a, unnest($4::bigint[]) AS b, unnest($5::bigint[]) AS c, unnest($6::bigint[]) AS d, \
    unnest($7::bigint[]) AS e, unnest($8::text[]) AS x, unnest($9::timestamptz[]) AS t) AS u";

const INSERT_PROMPTS: &str = "INSERT INTO aibridge_user_prompts (interception_id, msg_id, prompt, created_at) \
    SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::timestamptz[])";

const INSERT_TOOLS: &str = "INSERT INTO aibridge_tool_usages (interception_id, msg_id, tool, tool_call_id, input, \
    server_url, injected, created_at) SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), \
    unnest($4::text[]), unnest($5::text[]), unnest($6::text[]), unnest($7::boolean[]), unnest($8::timestamptz[])";

const INSERT_THOUGHTS: &str = "INSERT INTO aibridge_model_thoughts (interception_id, msg_id, content, source, \
    created_at) SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), \
    unnest($5::timestamptz[])";

/// The number of parameters of the child-row inserts: usages 9, prompts 4, tools 8, thoughts 5.
pub(super) const CHILD_PARAMS: usize = 26;

/// Parameters of [`INSERT_INTERCEPTIONS`].
pub(super) const INTERCEPTION_PARAMS: usize = 21;

/// Parameters of [`MERGE_ENDS`].
pub(super) const END_PARAMS: usize = 4;

/// The usual batch statement: starts inserted, earlier starts' ends merged. Parameters: the started rows
/// ([`INTERCEPTION_PARAMS`]), the ends ([`END_PARAMS`]), the child rows ([`CHILD_PARAMS`]), the batch id.
pub(super) fn insert_batch() -> String {
    let ends = INTERCEPTION_PARAMS;
    let children = ends + END_PARAMS;
    format!(
        "WITH i AS ({INSERT_INTERCEPTIONS}), e AS ({}), {} INSERT INTO aibridge_sink_batches (id) VALUES (${})",
        shift_params(MERGE_ENDS, ends),
        child_ctes(children),
        children + CHILD_PARAMS + 1,
    )
}

/// The merging batch statement: every interception row upserted. Parameters: the rows
/// ([`INTERCEPTION_PARAMS`]), the child rows ([`CHILD_PARAMS`]), the batch id.
pub(super) fn merge_batch() -> String {
    let children = INTERCEPTION_PARAMS;
    format!(
        "WITH i AS ({INSERT_INTERCEPTIONS} {MERGE_ON_CONFLICT}), {} INSERT INTO aibridge_sink_batches (id) VALUES (${})",
        child_ctes(children),
        children + CHILD_PARAMS + 1,
    )
}

/// The child-row CTEs, their parameters numbered from `after + 1`.
fn child_ctes(after: usize) -> String {
    format!(
        "u AS ({}), p AS ({}), tl AS ({}), h AS ({})",
        shift_params(INSERT_USAGES, after),
        shift_params(INSERT_PROMPTS, after + 9),
        shift_params(INSERT_TOOLS, after + 13),
        shift_params(INSERT_THOUGHTS, after + 21),
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$n` of `sql` from 1 to `n` appears exactly once, and none above.
    fn numbers_each_parameter_once(sql: &str, n: usize) {
        for k in 1..=n {
            let uses = sql.matches(&format!("${k}::")).count() + sql.matches(&format!("(${k})")).count();
            assert_eq!(uses, 1, "${k} in {sql}");
        }
        assert!(!sql.contains(&format!("${}", n + 1)));
    }

    #[test]
    fn both_batch_statements_number_every_parameter_once() {
        assert_eq!(shift_params("unnest($1::uuid[], $12::text[]) x$", 15), "unnest($16::uuid[], $27::text[]) x$");
        numbers_each_parameter_once(&insert_batch(), INTERCEPTION_PARAMS + END_PARAMS + CHILD_PARAMS + 1);
        numbers_each_parameter_once(&merge_batch(), INTERCEPTION_PARAMS + CHILD_PARAMS + 1);
        assert!(!insert_batch().contains("ON CONFLICT (id) DO UPDATE SET initiator_id"));
        assert!(merge_batch().contains("ON CONFLICT (id) DO UPDATE SET initiator_id"));
    }
}
