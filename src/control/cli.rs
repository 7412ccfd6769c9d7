//! `aibridged sessions list|show` and `aibridged usage`: the API's views read straight from the
//! configured database through a read-only store, printed as a table (or text) or, with `--json`, in the
//! API's JSON shapes. Admin view: the CLI has the database file, so it sees every user's records.

use std::time::SystemTime;

use serde_json::Value;

use super::query::{parse_instant, parse_limit};
use super::usage::{group, report_json, GroupBy, PriceTable};
use super::view;
use crate::db::{self, DatabaseUrl, SessionFilter, SessionQuery, Workload};

/// What went wrong, as one line for stderr.
pub(crate) type CliResult = Result<String, String>;

fn open(database: &DatabaseUrl) -> Result<Box<dyn db::Store>, String> {
    db::open(database, Workload::Reader).map_err(|e| format!("cannot open database {database}: {e}"))
}

fn short(text: &str, width: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= width {
        one_line
    } else {
        one_line.chars().take(width.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// The filters of `sessions list`.
pub(crate) struct ListArgs {
    pub(crate) user: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) since: String,
    pub(crate) limit: usize,
    pub(crate) json: bool,
}

pub(crate) fn sessions_list(path: &DatabaseUrl, a: ListArgs) -> CliResult {
    let limit = parse_limit(Some(&a.limit.to_string()), 50)?;
    let since = parse_instant(&a.since, SystemTime::now())?;
    let filter = SessionFilter {
        initiator_id: a.user,
        model: a.model,
        client: a.client,
        started_after: Some(since),
        ..SessionFilter::default()
    };
    let page = open(path)?
        .list_sessions(&SessionQuery { filter, after_session_id: None, limit })
        .map_err(|e| format!("cannot read sessions: {e}"))?;
    if a.json {
        return Ok(format!("{:#}\n", view::page_json(&page, since)));
    }
    if page.sessions.is_empty() {
        return Ok(format!("no sessions since {}\n", a.since));
    }
    let mut out = format!(
        "{:<38} {:<12} {:<12} {:<20} {:>7} {:>10}  {}\n",
        "SESSION", "USER", "CLIENT", "STARTED", "THREADS", "TOKENS", "LAST PROMPT"
    );
    for s in &page.sessions {
        let t = &s.tokens;
        let tokens = t.input + t.output + t.cache_read + t.cache_write;
        out.push_str(&format!(
            "{:<38} {:<12} {:<12} {:<20} {:>7} {:>10}  {}\n",
            short(&s.id, 38),
            short(s.initiator_id.as_deref().unwrap_or("-"), 12),
            short(s.client.as_deref().unwrap_or("-"), 12),
            view::rfc3339(s.started_at).chars().take(19).collect::<String>(),
            s.threads,
            tokens,
            short(s.last_prompt.as_deref().unwrap_or(""), 60)
        ));
    }
    out.push_str(&format!("{} of {} sessions\n", page.sessions.len(), page.count));
    Ok(out)
}

pub(crate) fn sessions_show(path: &DatabaseUrl, id: &str, json: bool) -> CliResult {
    let rows = open(path)?.session_interceptions(id, None).map_err(|e| format!("cannot read session: {e}"))?;
    if rows.is_empty() {
        return Err(format!("no session {id}"));
    }
    let v = view::session_json(id, &rows);
    if json {
        return Ok(format!("{v:#}\n"));
    }
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "session {}  user {}  client {}  started {}\n",
        s(&v["id"]),
        s(&v["initiator_id"]),
        s(&v["client"]),
        s(&v["started_at"])
    );
    for (n, t) in v["threads"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!("\nthread {} ({}): {}\n", n + 1, s(&t["status"]), s(&t["prompt"])));
        for (k, a) in t["agentic_actions"].as_array().into_iter().flatten().enumerate() {
            let u = &a["token_usage"];
            out.push_str(&format!(
                "  step {}  {}  {}  {} ms  in {} out {} cached {}\n",
                k + 1,
                s(&a["model"]),
                s(&a["status"]),
                a["duration_ms"],
                u["input_tokens"],
                u["output_tokens"],
                u["cache_read_input_tokens"]
            ));
            for th in a["thinking"].as_array().into_iter().flatten() {
                out.push_str(&format!("    thinking: {}\n", short(&s(&th["content"]), 200)));
            }
            for tc in a["tool_calls"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "    tool call {} {}: {}\n",
                    s(&tc["name"]),
                    s(&tc["id"]),
                    short(&s(&tc["input"]), 200)
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) fn usage(
    path: &DatabaseUrl,
    by: &str,
    since: &str,
    price_file: Option<&std::path::Path>,
    json: bool,
) -> CliResult {
    let by = GroupBy::parse_list(by)?;
    let prices = PriceTable::load(price_file).map_err(|e| e.to_string())?;
    let at = parse_instant(since, SystemTime::now())?;
    let rows = open(path)?.usage(at, None).map_err(|e| format!("cannot read usage: {e}"))?;
    if json {
        return Ok(format!("{:#}\n", report_json(&rows, &by, &prices, since)));
    }
    let groups = group(&rows, &by, &prices);
    if groups.is_empty() {
        return Ok(format!("no requests since {since}\n"));
    }
    let key_title = by.iter().map(|g| format!("{g:?}").to_uppercase()).collect::<Vec<_>>().join("/");
    let mut out = format!(
        "{:<40} {:>9} {:>12} {:>12} {:>12} {:>12} {:>10}  {}\n",
        if key_title.is_empty() { "ALL".into() } else { key_title },
        "REQUESTS",
        "INPUT",
        "OUTPUT",
        "CACHE_READ",
        "CACHE_WRITE",
        "COST_USD",
        "UNPRICED_TOKENS"
    );
    for g in groups {
        let key = g.key.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(" / ");
        out.push_str(&format!(
            "{:<40} {:>9} {:>12} {:>12} {:>12} {:>12} {:>10.4}  {}\n",
            short(if key.is_empty() { "all" } else { &key }, 40),
            g.requests,
            g.tokens.input,
            g.tokens.output,
            g.tokens.cache_read,
            g.tokens.cache_write,
            g.cost_usd,
            g.unpriced_tokens
        ));
    }
    Ok(out)
}
