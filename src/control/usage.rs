//! Token use grouped the way `…/usage?group_by=` and `aibridged usage --by` ask (any of user, model,
//! day), with an approximate cost from a price table: USD per million tokens of each kind, per model.
//! The table ships in the binary (`prices.json`) and a file can replace it. Tokens of a model the table
//! does not price are reported as unpriced, never priced at 0. Pure: the rows come from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::db::{TokenTotals, UsageRow};

/// The built-in price table.
const BUILT_IN: &str = include_str!("prices.json");

/// What one model costs, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub(crate) struct Price {
    pub(crate) input: f64,
    pub(crate) output: f64,
    #[serde(default)]
    pub(crate) cache_read: f64,
    #[serde(default)]
    pub(crate) cache_write: f64,
}

impl Price {
    /// The cost of `t` (reasoning tokens are part of the output count, so they are not added again).
    fn cost(&self, t: &TokenTotals) -> f64 {
        (t.input as f64 * self.input
            + t.output as f64 * self.output
            + t.cache_read as f64 * self.cache_read
            + t.cache_write as f64 * self.cache_write)
            / 1_000_000.0
    }
}

/// Model name → price; a model matches its exact name, else the longest name it starts with.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PriceTable {
    models: BTreeMap<String, Price>,
}

/// Why a price file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PriceError {
    #[error("cannot read price file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "price file {path} is not a price table ({{\"models\": {{NAME: {{\"input\": …, \"output\": …}}}}}}): {source}"
    )]
    Parse { path: String, source: serde_json::Error },
    #[error("price file {path}: model {model:?} has a negative or non-finite price")]
    Invalid { path: String, model: String },
}

impl PriceTable {
    /// The table shipped with the binary.
    pub(crate) fn built_in() -> PriceTable {
        PriceTable::parse(BUILT_IN, "built-in").unwrap_or_default()
    }

    /// The table in `path` when given, else the built-in one.
    pub(crate) fn load(path: Option<&Path>) -> Result<PriceTable, PriceError> {
        let Some(path) = path else {
            return Ok(PriceTable::built_in());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read { path: shown.clone(), source })?;
        PriceTable::parse(&text, &shown)
    }

    fn parse(text: &str, origin: &str) -> Result<PriceTable, PriceError> {
        #[derive(serde::Deserialize)]
        struct File {
            models: BTreeMap<String, Price>,
        }
        let file: File =
            serde_json::from_str(text).map_err(|source| PriceError::Parse { path: origin.to_owned(), source })?;
        for (model, p) in &file.models {
            if [p.input, p.output, p.cache_read, p.cache_write].iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(PriceError::Invalid { path: origin.to_owned(), model: model.clone() });
            }
        }
        Ok(PriceTable { models: file.models })
    }

    /// The price of `model`, if the table has one.
    pub(crate) fn price(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }
}

/// A grouping dimension of the usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum GroupBy {
    User,
    Model,
    Day,
}

impl GroupBy {
    /// Parses `user,model,day` (any subset, any order); an unknown name is an error naming it.
    pub(crate) fn parse_list(text: &str) -> Result<Vec<GroupBy>, String> {
        let mut out = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.insert(match part {
                "user" => GroupBy::User,
                "model" => GroupBy::Model,
                "day" => GroupBy::Day,
                other => return Err(format!("cannot group by {other:?}: use user, model or day")),
            });
        }
        Ok(out.into_iter().collect())
    }

    fn name(self) -> &'static str {
        match self {
            GroupBy::User => "user",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
        }
    }
}

/// One group of the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UsageGroup {
    /// The group's value of each dimension asked for, in [`GroupBy`] order.
    pub(crate) key: Vec<(GroupBy, String)>,
    pub(crate) requests: u64,
    pub(crate) tokens: TokenTotals,
    /// The cost of the priced part.
    pub(crate) cost_usd: f64,
    /// Tokens (all kinds) of models the table has no price for.
    pub(crate) unpriced_tokens: u64,
}

fn all_tokens(t: &TokenTotals) -> u64 {
    t.input.saturating_add(t.output).saturating_add(t.cache_read).saturating_add(t.cache_write)
}

/// Sums `rows` into the groups of `by` (one group in all when `by` is empty), in key order.
pub(crate) fn group(rows: &[UsageRow], by: &[GroupBy], prices: &PriceTable) -> Vec<UsageGroup> {
    let mut groups: BTreeMap<Vec<String>, UsageGroup> = BTreeMap::new();
    for row in rows {
        let key: Vec<(GroupBy, String)> = by
            .iter()
            .map(|&g| {
                let v = match g {
                    GroupBy::User => &row.user,
                    GroupBy::Model => &row.model,
                    GroupBy::Day => &row.day,
                };
                (g, v.clone())
            })
            .collect();
        let entry = groups
            .entry(key.iter().map(|(_, v)| v.clone()).collect())
            .or_insert_with(|| UsageGroup { key: key.clone(), ..UsageGroup::default() });
        entry.requests += row.requests;
        entry.tokens.add(&row.tokens);
        match prices.price(&row.model) {
            Some(p) => entry.cost_usd += p.cost(&row.tokens),
            None => entry.unpriced_tokens = entry.unpriced_tokens.saturating_add(all_tokens(&row.tokens)),
        }
    }
    groups.into_values().collect()
}

/// The models among `rows` that have no price.
pub(crate) fn unpriced_models(rows: &[UsageRow], prices: &PriceTable) -> Vec<String> {
    let set: BTreeSet<&str> = rows
        .iter()
        .filter(|r| !r.model.is_empty() && prices.price(&r.model).is_none())
        .map(|r| r.model.as_str())
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

fn group_json(g: &UsageGroup) -> Value {
    let mut v = json!({
        "requests": g.requests,
        "input_tokens": g.tokens.input,
        "output_tokens": g.tokens.output,
        "cache_read_input_tokens": g.tokens.cache_read,
        "cache_write_input_tokens": g.tokens.cache_write,
        "reasoning_tokens": g.tokens.reasoning,
        "approximate_cost_usd": (g.cost_usd * 1e6).round() / 1e6,
        "unpriced_tokens": g.unpriced_tokens,
    });
    for (dim, value) in &g.key {
        v[dim.name()] = json!(value);
    }
    v
}

/// `GET …/usage`: the groups, the totals and which models were not priced.
pub(crate) fn report_json(rows: &[UsageRow], by: &[GroupBy], prices: &PriceTable, since: &str) -> Value {
    let groups = group(rows, by, prices);
    let total = group(rows, &[], prices).pop().unwrap_or_default();
    json!({
        "since": since,
        "group_by": by.iter().map(|g| g.name()).collect::<Vec<_>>(),
        "groups": groups.iter().map(group_json).collect::<Vec<_>>(),
        "total": group_json(&total),
        "unpriced_models": unpriced_models(rows, prices),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, model: &str, day: &str, input: u64, output: u64) -> UsageRow {
        UsageRow {
            user: user.into(),
            model: model.into(),
            day: day.into(),
            requests: 1,
            tokens: TokenTotals { input, output, cache_read: 1000, cache_write: 0, reasoning: 0 },
        }
    }

    #[test]
    fn the_built_in_table_prices_dated_snapshots_by_the_longest_prefix() {
        let t = PriceTable::built_in();
        assert_eq!(t.price("claude-sonnet-4-5-20250929").unwrap().input, 3.0);
        assert_eq!(t.price("gpt-5-mini-2025-08-07").unwrap().input, 0.25);
        assert_eq!(t.price("gpt-5").unwrap().input, 1.25);
        assert!(t.price("llama-3-70b").is_none());
    }

    #[test]
    fn groups_sum_and_unpriced_tokens_are_never_priced_at_zero() {
        let t = PriceTable::built_in();
        let rows = [
            row("alice", "claude-sonnet-4-5", "2026-12-01", 1_000_000, 100_000),
            row("alice", "mystery-model", "2026-12-01", 500, 500),
            row("bob", "claude-sonnet-4-5", "2026-12-02", 2_000_000, 0),
        ];
        let by_user = group(&rows, &[GroupBy::User], &t);
        assert_eq!(by_user.len(), 2);
        let alice = &by_user[0];
        assert_eq!(alice.key, vec![(GroupBy::User, "alice".to_string())]);
        assert_eq!(alice.requests, 2);
        // 1M input at $3 + 0.1M output at $15 + 1000 cache reads at $0.30/M.
        assert!((alice.cost_usd - (3.0 + 1.5 + 0.0003)).abs() < 1e-9, "{}", alice.cost_usd);
        assert_eq!(alice.unpriced_tokens, 2000);
        let report = report_json(&rows, &[GroupBy::Model, GroupBy::Day], &t, "7d");
        assert_eq!(report["groups"].as_array().unwrap().len(), 3);
        assert_eq!(report["unpriced_models"], json!(["mystery-model"]));
        assert_eq!(report["total"]["requests"], 3);
        assert_eq!(report["total"]["unpriced_tokens"], 2000);
    }

    #[test]
    fn group_names_parse_and_unknown_ones_are_refused() {
        assert_eq!(GroupBy::parse_list("day,user").unwrap(), vec![GroupBy::User, GroupBy::Day]);
        assert_eq!(GroupBy::parse_list("").unwrap(), vec![]);
        assert!(GroupBy::parse_list("user,colour").unwrap_err().contains("colour"));
    }

    #[test]
    fn a_price_file_replaces_the_table_and_bad_ones_are_refused() {
        let dir = crate::db::test_dir("prices");
        let good = dir.join("p.json");
        std::fs::write(&good, r#"{"models":{"local-llm":{"input":0.5,"output":1}}}"#).unwrap();
        let t = PriceTable::load(Some(&good)).unwrap();
        assert_eq!(t.price("local-llm-7b").unwrap().output, 1.0);
        assert!(t.price("claude-sonnet-4-5").is_none());
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"models":{"x":{"input":-1,"output":1}}}"#).unwrap();
        assert!(matches!(PriceTable::load(Some(&bad)), Err(PriceError::Invalid { .. })));
        std::fs::write(&bad, "[]").unwrap();
        assert!(matches!(PriceTable::load(Some(&bad)), Err(PriceError::Parse { .. })));
        assert!(matches!(PriceTable::load(Some(&dir.join("none.json"))), Err(PriceError::Read { .. })));
    }
}
