//! What the sessions API reads from a [`Store`](super::Store): the filters of a sessions page, one
//! session's summary, and the per-(user, model, day) usage rows. A session is the interceptions sharing a
//! client session id, or without one, the interceptions of one thread (keyed by its root interception id).
//! Backend-neutral: each store answers these with its own SQL.

use std::time::SystemTime;

/// Which interceptions count towards a sessions page. Every condition present must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionFilter {
    /// Only this user's interceptions (always set for a non-admin caller).
    pub(crate) initiator_id: Option<String>,
    pub(crate) model: Option<String>,
    /// The provider instance name (`provider_name`) or type (`provider`).
    pub(crate) provider: Option<String>,
    pub(crate) client: Option<String>,
    /// Interceptions started at or after this instant.
    pub(crate) started_after: Option<SystemTime>,
    /// Interceptions started before this instant.
    pub(crate) started_before: Option<SystemTime>,
}

/// The argument of one [`SessionFilter`] condition, for each store to bind in its own parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterArg<'a> {
    Text(&'a str),
    Time(SystemTime),
}

impl SessionFilter {
    /// The conditions that are set, in a fixed order, as ` AND …` SQL over `aibridge_interceptions` with
    /// `?` for the condition's one argument (every `?` of a condition is that same argument). Both stores
    /// number the `?` in their own placeholder style, so the filter's meaning is written once.
    pub(crate) fn conditions(&self) -> Vec<(&'static str, FilterArg<'_>)> {
        fn text<'a>(cond: &'static str, v: &'a Option<String>) -> Option<(&'static str, FilterArg<'a>)> {
            v.as_deref().map(|v| (cond, FilterArg::Text(v)))
        }
        fn time<'a>(cond: &'static str, t: Option<SystemTime>) -> Option<(&'static str, FilterArg<'a>)> {
            t.map(|t| (cond, FilterArg::Time(t)))
        }
        [
            text(" AND initiator_id = ?", &self.initiator_id),
            text(" AND model = ?", &self.model),
            text(" AND (provider_name = ? OR provider = ?)", &self.provider),
            text(" AND client = ?", &self.client),
            time(" AND started_at >= ?", self.started_after),
            time(" AND started_at < ?", self.started_before),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// One page of sessions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionQuery {
    pub(crate) filter: SessionFilter,
    /// Continue after this session (the last one of the previous page). Sessions sort by their first
    /// interception's start, which later interceptions never change: pages stay put while records arrive.
    pub(crate) after_session_id: Option<String>,
    /// Sessions per page (at least 1, at most [`super::MAX_PAGE`]).
    pub(crate) limit: usize,
}

/// Token counts summed over interceptions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenTotals {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    pub(crate) reasoning: u64,
}

impl TokenTotals {
    /// Adds another sum (saturating: a corrupt count must not wrap).
    pub(crate) fn add(&mut self, o: &TokenTotals) {
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.cache_write = self.cache_write.saturating_add(o.cache_write);
        self.reasoning = self.reasoning.saturating_add(o.reasoning);
    }
}

/// A session as the sessions list shows it, over the interceptions that matched the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionSummary {
    pub(crate) id: String,
    pub(crate) initiator_id: Option<String>,
    /// Provider instance names, sorted.
    pub(crate) providers: Vec<String>,
    /// Models, sorted.
    pub(crate) models: Vec<String>,
    pub(crate) client: Option<String>,
    pub(crate) started_at: SystemTime,
    /// The last end, `None` while no interception has ended.
    pub(crate) ended_at: Option<SystemTime>,
    /// The latest start or end of any of its interceptions.
    pub(crate) last_active_at: SystemTime,
    /// The newest prompt a person typed in it.
    pub(crate) last_prompt: Option<String>,
    pub(crate) threads: u64,
    pub(crate) interceptions: u64,
    pub(crate) tokens: TokenTotals,
}

/// One page of sessions: how many match in all, and this page's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionPage {
    pub(crate) count: u64,
    pub(crate) sessions: Vec<SessionSummary>,
    /// Pass as `after_session_id` for the next page; `None` on the last page.
    pub(crate) next: Option<String>,
}

/// Token use of one user with one model on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageRow {
    pub(crate) user: String,
    pub(crate) model: String,
    /// `YYYY-MM-DD` (UTC).
    pub(crate) day: String,
    pub(crate) requests: u64,
    pub(crate) tokens: TokenTotals,
}
