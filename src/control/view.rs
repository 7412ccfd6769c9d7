//! What the sessions API, the CLI and the page show, built from what a [`Store`](crate::db::Store) read:
//! a session's interceptions grouped into threads (a thread is the interceptions sharing a root: the
//! typed prompt and the agentic loop it started), and every shape rendered as JSON. Pure: no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::db::{InterceptionDetail, SessionPage, SessionSummary, StoredInterception, TokenTotals};

/// One thread of a session: its interceptions in start order, the root first.
#[derive(Debug)]
pub(crate) struct Thread<'a> {
    pub(crate) root: &'a StoredInterception,
    pub(crate) interceptions: Vec<&'a InterceptionDetail>,
}

impl Thread<'_> {
    /// The prompt that started it (the root's, else the first prompt recorded in it).
    pub(crate) fn prompt(&self) -> Option<&str> {
        self.interceptions.iter().flat_map(|i| i.prompts.first()).map(|p| p.prompt.as_str()).next()
    }

    /// The thread's tokens.
    pub(crate) fn tokens(&self) -> TokenTotals {
        let mut t = TokenTotals::default();
        for i in &self.interceptions {
            t.add(&tokens_of(i));
        }
        t
    }
}

/// Groups a session's interceptions (oldest first) into threads, ordered by their root's start. An
/// interception whose root is not among them (not visible to the caller, or purged) heads its own thread.
pub(crate) fn threads(interceptions: &[InterceptionDetail]) -> Vec<Thread<'_>> {
    let mut out: Vec<Thread<'_>> = Vec::new();
    for detail in interceptions {
        let root = detail.interception.thread_root();
        match out.iter_mut().find(|t| t.root.id == root) {
            Some(thread) => thread.interceptions.push(detail),
            None => out.push(Thread { root: &detail.interception, interceptions: vec![detail] }),
        }
    }
    out
}

/// The tokens of one interception (the sum of its usage rows).
pub(crate) fn tokens_of(detail: &InterceptionDetail) -> TokenTotals {
    let mut t = TokenTotals::default();
    for u in &detail.token_usages {
        t.add(&TokenTotals {
            input: u.input_tokens,
            output: u.output_tokens,
            cache_read: u.cache_read_input_tokens,
            cache_write: u.cache_write_input_tokens,
            reasoning: u.reasoning_tokens,
        });
    }
    t
}

/// RFC 3339 UTC with milliseconds, as every time in the API is written.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let nanos = (d.as_millis() as i128) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|dt| dt.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn opt_time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// Token counts in the records' names.
pub(crate) fn tokens_json(t: &TokenTotals) -> Value {
    json!({
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cache_read_input_tokens": t.cache_read,
        "cache_write_input_tokens": t.cache_write,
        "reasoning_tokens": t.reasoning,
    })
}

/// One entry of the sessions list.
pub(crate) fn summary_json(s: &SessionSummary) -> Value {
    json!({
        "id": s.id,
        "initiator_id": s.initiator_id,
        "providers": s.providers,
        "models": s.models,
        "client": s.client,
        "started_at": rfc3339(s.started_at),
        "ended_at": opt_time(s.ended_at),
        "last_active_at": rfc3339(s.last_active_at),
        "last_prompt": s.last_prompt,
        "threads": s.threads,
        "interceptions": s.interceptions,
        "token_usage_summary": tokens_json(&s.tokens),
    })
}

/// `GET …/sessions`.
pub(crate) fn page_json(page: &SessionPage, started_after: SystemTime) -> Value {
    json!({
        "started_after": rfc3339_micros(started_after),
        "count": page.count,
        "sessions": page.sessions.iter().map(summary_json).collect::<Vec<_>>(),
        "next_after_session_id": page.next,
    })
}

/// How long an interception took, when it ended.
fn duration_ms(i: &StoredInterception) -> Value {
    match (i.started_at, i.ended_at) {
        (Some(s), Some(e)) => json!(e.duration_since(s).unwrap_or_default().as_millis() as u64),
        _ => Value::Null,
    }
}

/// An interception with what the model did in it: one agentic step.
pub(crate) fn action_json(d: &InterceptionDetail) -> Value {
    let i = &d.interception;
    json!({
        "interception_id": i.id.to_string(),
        "provider": i.provider_name,
        "model": i.model,
        "status": i.status.as_deref().unwrap_or("in_progress"),
        "upstream_status": i.upstream_status,
        "started_at": opt_time(i.started_at),
        "ended_at": opt_time(i.ended_at),
        "duration_ms": duration_ms(i),
        "correlating_tool_call_id": i.correlating_tool_call_id,
        "prompt": d.prompts.first().map(|p| p.prompt.as_str()),
        "thinking": d.thoughts.iter().map(|t| json!({"source": t.source, "content": t.content})).collect::<Vec<_>>(),
        "tool_calls": d.tool_usages.iter().map(|t| json!({
            "id": t.tool_call_id,
            "name": t.tool,
            "input": t.input,
            "injected": t.injected,
            "server_url": t.server_url,
        })).collect::<Vec<_>>(),
        "token_usage": tokens_json(&tokens_of(d)),
    })
}

/// Whether an interception went wrong (the upstream refused it, or it never completed).
fn is_error(i: &StoredInterception) -> bool {
    i.status.as_deref().is_some_and(|s| s != "completed") || i.upstream_status.is_some_and(|s| s >= 400)
}

/// `GET …/sessions/{id}`: the session with its threads in order.
pub(crate) fn session_json(id: &str, interceptions: &[InterceptionDetail]) -> Value {
    let threads = threads(interceptions);
    let mut total = TokenTotals::default();
    let threads_json: Vec<Value> = threads
        .iter()
        .map(|t| {
            let tokens = t.tokens();
            total.add(&tokens);
            let last = t.interceptions.last().map(|d| &d.interception);
            let errors: Vec<Value> = t
                .interceptions
                .iter()
                .filter(|d| is_error(&d.interception))
                .map(|d| {
                    json!({
                        "interception_id": d.interception.id.to_string(),
                        "status": d.interception.status,
                        "upstream_status": d.interception.upstream_status,
                    })
                })
                .collect();
            json!({
                "id": t.root.id.to_string(),
                "prompt": t.prompt(),
                "model": t.root.model,
                "status": last.and_then(|i| i.status.as_deref()).unwrap_or("in_progress"),
                "errors": errors,
                "started_at": opt_time(t.root.started_at),
                "ended_at": opt_time(last.and_then(|i| i.ended_at)),
                "token_usage": tokens_json(&tokens),
                "agentic_actions": t.interceptions.iter().map(|d| action_json(d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let first = interceptions.first().map(|d| &d.interception);
    let mut models: Vec<&str> = interceptions.iter().filter_map(|d| d.interception.model.as_deref()).collect();
    models.sort_unstable();
    models.dedup();
    json!({
        "id": id,
        "initiator_id": first.and_then(|i| i.initiator_id.as_deref()),
        "client": first.and_then(|i| i.client.as_deref()),
        "models": models,
        "started_at": opt_time(first.and_then(|i| i.started_at)),
        "ended_at": opt_time(interceptions.iter().filter_map(|d| d.interception.ended_at).max()),
        "token_usage_summary": tokens_json(&total),
        "threads": threads_json,
    })
}

/// One row of the flat interceptions list.
pub(crate) fn interception_json(i: &StoredInterception) -> Value {
    json!({
        "id": i.id.to_string(),
        "initiator_id": i.initiator_id,
        "provider": i.provider,
        "provider_name": i.provider_name,
        "model": i.model,
        "client": i.client,
        "client_session_id": i.client_session_id,
        "thread_root_id": i.thread_root().to_string(),
        "correlating_tool_call_id": i.correlating_tool_call_id,
        "started_at": opt_time(i.started_at),
        "ended_at": opt_time(i.ended_at),
        "status": i.status,
        "upstream_status": i.upstream_status,
    })
}

/// RFC 3339 UTC with microseconds: the interceptions cursor must name a start exactly.
pub(crate) fn rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let nanos = (d.as_micros() as i128) * 1_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|dt| dt.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
