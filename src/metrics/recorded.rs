//! The families whose labels are known only at run time (model, initiator, client, tool name), counted
//! from the records the sink commits: the sink thread already sees every record with those fields, so the
//! workers pay nothing for them. Touched only by the sink (once per committed batch) and the scrape thread,
//! under one mutex neither holds across I/O.
//!
//! Label values come from clients (the model, the tool names): each family holds at most
//! [`MAX_SERIES`] label sets, and what comes after is counted under the value `__overflow__`, so a client
//! cannot grow the gateway's memory or a scrape without bound.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::records::Record;

use super::exposition::{Encoder, Kind};
use super::histogram::{Histogram, REQUEST_BUCKETS};
use super::worker::api_route;

/// Most label sets per family before new ones fold into `__overflow__`.
pub(crate) const MAX_SERIES: usize = 10_000;

/// The label value new label sets get once a family is full.
pub(crate) const OVERFLOW: &str = "__overflow__";

/// Most interceptions remembered between their start and end records. Each one ends exactly once, so this
/// bounds only the pathological case (ends lost to a rejected record).
const MAX_OPEN: usize = 1 << 20;

/// The labels an interception's start record fixes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Start {
    provider: &'static str,
    provider_name: Arc<str>,
    model: Arc<str>,
    /// Empty when the initiator label is off.
    initiator: Arc<str>,
    client: Arc<str>,
    route: &'static str,
}

/// `interceptions_total` labels.
type InterceptionKey = (Start, &'static str);
/// `provider, provider_name, model` (duration histogram).
type ModelKey = (&'static str, Arc<str>, Arc<str>);
/// `provider, provider_name, model, initiator` (prompts) — with a token type (tokens).
type UserKey = (&'static str, Arc<str>, Arc<str>, Arc<str>);
/// `provider, provider_name, model, tool name`.
type ToolKey = (&'static str, Arc<str>, Arc<str>, Arc<str>);

/// The token types of `tokens_total{type}`, in the records' order.
pub(crate) const TOKEN_TYPES: [&str; 5] =
    ["input", "output", "cache_read_input_tokens", "cache_write_input_tokens", "reasoning"];

struct Open {
    labels: Start,
    started_at: std::time::SystemTime,
}

#[derive(Default)]
struct State {
    open: HashMap<Uuid, Open>,
    interceptions: BTreeMap<InterceptionKey, u64>,
    durations: BTreeMap<ModelKey, Histogram>,
    prompts: BTreeMap<UserKey, u64>,
    tokens: BTreeMap<(UserKey, &'static str), u64>,
    tools: BTreeMap<ToolKey, u64>,
    /// Interned label values, so the maps share one allocation per distinct value.
    strings: HashMap<Box<str>, Arc<str>>,
}

/// The sink-fed families.
pub(crate) struct Recorded {
    initiator_label: bool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded").field("initiator_label", &self.initiator_label).finish_non_exhaustive()
    }
}

impl Recorded {
    /// Counters for a gateway that does (`initiator_label`) or does not label by initiator.
    pub(crate) fn new(initiator_label: bool) -> Recorded {
        Recorded { initiator_label, state: Mutex::new(State::default()) }
    }

    /// Counts the records of one committed batch. Called by the sink thread only.
    pub(crate) fn committed<'r>(&self, records: impl Iterator<Item = &'r Record>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for r in records {
            s.observe(r, self.initiator_label);
        }
    }

    /// Writes the families into a scrape.
    pub(crate) fn encode(&self, e: &mut Encoder<'_>) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let initiator = self.initiator_label;
        e.family("interceptions_total", Kind::Counter, "Intercepted requests by how they ended (committed records).");
        for ((l, status), n) in &s.interceptions {
            let mut labels = vec![
                ("provider", l.provider),
                ("provider_name", &*l.provider_name),
                ("model", &*l.model),
                ("status", status),
                ("route", l.route),
                ("method", "POST"),
            ];
            if initiator {
                labels.push(("initiator_id", &*l.initiator));
            }
            labels.push(("client", &*l.client));
            e.sample("interceptions_total", &labels, *n as f64);
        }
        e.family(
            "interceptions_duration_seconds",
            Kind::Histogram,
            "Time from an interception's start to its end, mostly the upstream's processing.",
        );
        for ((provider, name, model), h) in &s.durations {
            e.histogram(
                "interceptions_duration_seconds",
                &[("provider", provider), ("provider_name", name), ("model", model)],
                h,
            );
        }
        e.family("prompts_total", Kind::Counter, "User prompts recorded.");
        for ((provider, name, model, init), n) in &s.prompts {
            let mut labels = vec![("provider", *provider), ("provider_name", &**name), ("model", &**model)];
            if initiator {
                labels.push(("initiator_id", init));
            }
            e.sample("prompts_total", &labels, *n as f64);
        }
        e.family("tokens_total", Kind::Counter, "Tokens the providers reported, by type.");
        for (((provider, name, model, init), ty), n) in &s.tokens {
            let mut labels = vec![("provider", *provider), ("provider_name", &**name), ("model", &**model)];
            labels.push(("type", ty));
            if initiator {
                labels.push(("initiator_id", init));
            }
            e.sample("tokens_total", &labels, *n as f64);
        }
        e.family(
            "non_injected_tool_selections_total",
            Kind::Counter,
            "Tool calls the model made to tools the client defined (not injected by the gateway).",
        );
        for ((provider, name, model, tool), n) in &s.tools {
            e.sample(
                "non_injected_tool_selections_total",
                &[("provider", provider), ("provider_name", name), ("model", model), ("name", tool)],
                *n as f64,
            );
        }
    }
}

impl State {
    fn intern(&mut self, v: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(v) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(v);
        // Past the bound (values that only ever reach `__overflow__` series) values are not kept.
        if self.strings.len() < 4 * MAX_SERIES {
            self.strings.insert(v.into(), a.clone());
        }
        a
    }

    fn observe(&mut self, r: &Record, initiator_label: bool) {
        match r {
            Record::InterceptionStart(st) => {
                if self.open.len() >= MAX_OPEN {
                    return;
                }
                let labels = Start {
                    provider: st.provider,
                    provider_name: self.intern(&st.provider_name),
                    model: self.intern(&st.model),
                    initiator: self.intern(if initiator_label { &st.initiator_id } else { "" }),
                    client: self.intern(&st.client),
                    route: api_route(st.api),
                };
                self.open.insert(st.interception_id, Open { labels, started_at: st.started_at });
            }
            Record::InterceptionEnd(end) => {
                let Some(open) = self.open.remove(&end.interception_id) else { return };
                let status = end.status.as_str();
                let key = fit(&self.interceptions, (open.labels.clone(), status), |(l, s)| {
                    (Start { model: OVERFLOW.into(), initiator: OVERFLOW.into(), client: OVERFLOW.into(), ..l }, s)
                });
                *self.interceptions.entry(key).or_default() += 1;
                let l = open.labels;
                let key =
                    fit(&self.durations, (l.provider, l.provider_name, l.model), |(p, n, _)| (p, n, OVERFLOW.into()));
                let took = end.ended_at.duration_since(open.started_at).unwrap_or(Duration::ZERO);
                self.durations.entry(key).or_insert_with(|| Histogram::new(REQUEST_BUCKETS)).observe(took);
            }
            Record::PromptUsage(p) => {
                let Some(key) = self.user_key(&p.interception_id) else { return };
                let key = fit(&self.prompts, key, overflow_user);
                *self.prompts.entry(key).or_default() += 1;
            }
            Record::TokenUsage(t) => {
                let Some(key) = self.user_key(&t.interception_id) else { return };
                let counts = [
                    t.input_tokens,
                    t.output_tokens,
                    t.cache_read_input_tokens,
                    t.cache_write_input_tokens,
                    t.reasoning_tokens,
                ];
                for (ty, n) in TOKEN_TYPES.into_iter().zip(counts) {
                    let key = fit(&self.tokens, (key.clone(), ty), |(k, ty)| (overflow_user(k), ty));
                    *self.tokens.entry(key).or_default() += n;
                }
            }
            Record::ToolUsage(t) if !t.injected => {
                let Some(open) = self.open.get(&t.interception_id) else { return };
                let l = &open.labels;
                let key = (l.provider, l.provider_name.clone(), l.model.clone(), Arc::<str>::from(t.tool.as_str()));
                let key = fit(&self.tools, key, |(p, n, _, _)| (p, n, OVERFLOW.into(), OVERFLOW.into()));
                *self.tools.entry(key).or_default() += 1;
            }
            Record::ToolUsage(_) | Record::ModelThought(_) => {}
        }
    }

    fn user_key(&self, id: &Uuid) -> Option<UserKey> {
        let l = &self.open.get(id)?.labels;
        Some((l.provider, l.provider_name.clone(), l.model.clone(), l.initiator.clone()))
    }
}

fn overflow_user((p, n, _, _): UserKey) -> UserKey {
    (p, n, OVERFLOW.into(), OVERFLOW.into())
}

/// `key` if its family has it or has room for it, else its overflow form.
fn fit<K: Ord, V>(family: &BTreeMap<K, V>, key: K, overflow: impl FnOnce(K) -> K) -> K {
    if family.len() < MAX_SERIES || family.contains_key(&key) {
        key
    } else {
        overflow(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse::parse;
    use crate::records::{
        Api, CredentialKind, EndStatus, InterceptionEnd, InterceptionStart, PromptUsage, TokenUsage, ToolUsage,
    };
    use std::time::SystemTime;

    fn start(id: Uuid, model: &str, user: &str) -> Record {
        Record::InterceptionStart(InterceptionStart {
            interception_id: id,
            initiator_id: user.into(),
            provider: "openai",
            provider_name: "oa".into(),
            model: model.into(),
            client: "codex".into(),
            client_session_id: None,
            user_agent: None,
            correlating_tool_call_id: None,
            credential_kind: CredentialKind::Centralized,
            credential_hint: None,
            started_at: SystemTime::UNIX_EPOCH,
            gateway_id: "g".into(),
            api: Api::Responses,
        })
    }

    fn end(id: Uuid, status: EndStatus) -> Record {
        Record::InterceptionEnd(InterceptionEnd {
            interception_id: id,
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_millis(120),
            status,
            upstream_status: Some(200),
        })
    }

    fn tokens(id: Uuid, input: u64, output: u64) -> Record {
        Record::TokenUsage(TokenUsage {
            interception_id: id,
            msg_id: "m".into(),
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: 3,
            cache_write_input_tokens: 0,
            reasoning_tokens: 1,
            extra: "{}".into(),
            created_at: SystemTime::UNIX_EPOCH,
        })
    }

    fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        parse(text)
            .unwrap()
            .into_iter()
            .find_map(|s| (s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(v))).then_some(s.value))
    }

    fn scrape(r: &Recorded) -> String {
        let mut e = Encoder::new("");
        r.encode(&mut e);
        e.finish()
    }

    #[test]
    fn records_become_labelled_counts() {
        let r = Recorded::new(true);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let prompt = Record::PromptUsage(PromptUsage {
            interception_id: a,
            msg_id: String::new(),
            prompt: "hi".into(),
            created_at: SystemTime::UNIX_EPOCH,
        });
        let tool = Record::ToolUsage(ToolUsage {
            interception_id: a,
            msg_id: String::new(),
            tool: "read_file".into(),
            tool_call_id: "c".into(),
            input: "{}".into(),
            server_url: None,
            injected: false,
            created_at: SystemTime::UNIX_EPOCH,
        });
        let batch1 = [start(a, "gpt-5", "alice"), prompt, tokens(a, 10, 20), tool, start(b, "gpt-5", "bob")];
        r.committed(batch1.iter());
        r.committed([end(a, EndStatus::Completed), tokens(b, 1, 2), end(b, EndStatus::Failed)].iter());
        let text = scrape(&r);
        let labels = [("model", "gpt-5"), ("provider_name", "oa"), ("route", "/v1/responses"), ("client", "codex")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut l = labels.to_vec();
            l.extend_from_slice(extra);
            l
        };
        assert_eq!(
            value(&text, "interceptions_total", &with(&[("status", "completed"), ("initiator_id", "alice")])),
            Some(1.0)
        );
        assert_eq!(
            value(&text, "interceptions_total", &with(&[("status", "failed"), ("initiator_id", "bob")])),
            Some(1.0)
        );
        assert_eq!(value(&text, "tokens_total", &[("type", "input"), ("initiator_id", "alice")]), Some(10.0));
        assert_eq!(value(&text, "tokens_total", &[("type", "output"), ("initiator_id", "bob")]), Some(2.0));
        assert_eq!(
            value(&text, "tokens_total", &[("type", "cache_read_input_tokens"), ("initiator_id", "bob")]),
            Some(3.0)
        );
        assert_eq!(value(&text, "prompts_total", &[("initiator_id", "alice")]), Some(1.0));
        assert_eq!(value(&text, "non_injected_tool_selections_total", &[("name", "read_file")]), Some(1.0));
        assert_eq!(value(&text, "interceptions_duration_seconds_count", &[("model", "gpt-5")]), Some(2.0));
        assert_eq!(value(&text, "interceptions_duration_seconds_bucket", &[("le", "0.1")]), Some(0.0));
        assert_eq!(value(&text, "interceptions_duration_seconds_bucket", &[("le", "0.25")]), Some(2.0));
    }

    #[test]
    fn without_the_initiator_label_users_aggregate() {
        let r = Recorded::new(false);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        r.committed(
            [
                start(a, "m", "alice"),
                start(b, "m", "bob"),
                tokens(a, 5, 0),
                tokens(b, 7, 0),
                end(a, EndStatus::Completed),
                end(b, EndStatus::Completed),
            ]
            .iter(),
        );
        let text = scrape(&r);
        assert!(!text.contains("initiator_id"), "{text}");
        assert_eq!(value(&text, "interceptions_total", &[("status", "completed")]), Some(2.0));
        assert_eq!(value(&text, "tokens_total", &[("type", "input")]), Some(12.0));
    }

    #[test]
    fn client_chosen_models_cannot_grow_a_family_without_bound() {
        let r = Recorded::new(true);
        for i in 0..MAX_SERIES + 50 {
            let id = Uuid::now_v7();
            r.committed([start(id, &format!("model-{i}"), "u"), end(id, EndStatus::Completed)].iter());
        }
        let s = r.state.lock().unwrap();
        assert_eq!(s.interceptions.len(), MAX_SERIES + 1);
        let overflow = s.interceptions.iter().find(|((l, _), _)| &*l.model == OVERFLOW).map(|(_, n)| *n);
        assert_eq!(overflow, Some(50));
        assert!(s.open.is_empty());
    }
}
