//! Responses API observer: picks the response id, model, usage, function/custom tool calls and reasoning
//! summaries out of a `response.*` event stream or a response object body. Pure over bytes: no I/O.
//!
//! Only `response.created`, `response.output_item.done`, the terminal `response.completed` /
//! `response.incomplete` / `response.failed` and `error` events are parsed; every delta is skipped on its
//! event name alone.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::json::{self, non_null, str_at, RESPONSES_USAGE};
use super::scanner::{SseEvent, SseScanner};
use crate::records::{Observation, Thought, ToolCall};

/// The `source` of thoughts taken from reasoning summaries.
pub(crate) const SOURCE_REASONING_SUMMARY: &str = "reasoning_summary";

/// Recognises the bulk event when a stream carries no `event:` lines (OpenAI always sends them, but
/// compatible servers may not).
static TEXT_DELTA: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"type\":\"response.output_text.delta\""));

/// Streaming observer for `POST /responses`.
#[derive(Debug, Default)]
pub struct ResponsesObserver {
    scanner: SseScanner,
    state: ResponsesState,
}

#[derive(Debug, Default)]
struct ResponsesState {
    obs: Observation,
    /// Output items came as `response.output_item.done`: the final response's `output` repeats them.
    items_seen: bool,
    /// Tool calls by output item id, in stream order; filled from `output_item.added` and argument deltas
    /// so a stream cut short still records what was seen, then replaced by the finished item.
    tools: Tools,
    scratch: Vec<u8>,
}

/// Whether an event (by SSE name) can carry anything recorded.
fn wanted(name: &[u8]) -> bool {
    matches!(
        name,
        b"response.created"
            | b"response.output_item.done"
            | b"response.completed"
            | b"response.incomplete"
            | b"response.failed"
            | b"response.output_item.added"
            | b"response.function_call_arguments.delta"
            | b"response.custom_tool_call_input.delta"
            | b"error"
    )
}

impl ResponsesObserver {
    /// An observer at the start of a response stream.
    pub(crate) fn new() -> ResponsesObserver {
        ResponsesObserver::default()
    }

    /// Scans one relayed chunk.
    pub(crate) fn on_chunk(&mut self, chunk: &[u8]) {
        let state = &mut self.state;
        self.scanner.feed(chunk, |ev| state.on_event(ev));
    }

    /// What was seen, complete or not.
    pub(crate) fn finish(self) -> Observation {
        let mut obs = self.state.obs;
        obs.tools = self.state.tools.into_calls();
        obs
    }
}

impl ResponsesState {
    fn on_event(&mut self, ev: &SseEvent<'_>) {
        if ev.event.is_empty() {
            if ev.is_done() || TEXT_DELTA.find(ev.data).is_some() {
                return;
            }
        } else if !wanted(ev.event) {
            return;
        }
        let Some(v) = json::parse(&mut self.scratch, ev.data) else {
            return;
        };
        let kind = str_at(&v, "type").unwrap_or("");
        match kind {
            "response.created" => {
                if let Some(r) = v.get("response") {
                    take_ids(&mut self.obs, r);
                }
            }
            "response.output_item.added" => {
                if let Some(item) = v.get("item") {
                    self.tools.upsert(item);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let (Some(id), Some(delta)) = (str_at(&v, "item_id"), str_at(&v, "delta")) {
                    self.tools.append(id, delta);
                }
            }
            "response.output_item.done" => {
                self.items_seen = true;
                if let Some(item) = v.get("item") {
                    take_item(&mut self.obs, &mut self.tools, item);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = v.get("response") {
                    take_response(&mut self.obs, &mut self.tools, r, !self.items_seen);
                }
                self.obs.complete = true;
            }
            "error" => self.obs.error = Some(String::from_utf8_lossy(ev.data).into_owned()),
            _ => {}
        }
    }
}

fn take_ids(obs: &mut Observation, r: &BorrowedValue<'_>) {
    if let Some(id) = str_at(r, "id") {
        obs.msg_id = Some(id.to_owned());
    }
    if let Some(m) = str_at(r, "model") {
        obs.model = Some(m.to_owned());
    }
}

/// A final response object: ids, usage, a failure's error, and (when no item events were seen) items.
fn take_response(obs: &mut Observation, tools: &mut Tools, r: &BorrowedValue<'_>, with_items: bool) {
    take_ids(obs, r);
    if let Some(u) = non_null(r, "usage") {
        obs.usage = Some(json::openai_usage(u, &RESPONSES_USAGE));
    }
    if let Some(e) = non_null(r, "error") {
        obs.error = Some(json::to_text(e));
    }
    if with_items {
        for item in r.get("output").and_then(|o| o.as_array()).into_iter().flat_map(|a| a.iter()) {
            take_item(obs, tools, item);
        }
    }
}

/// One output item: tool calls and reasoning summaries are recorded, messages are not.
fn take_item(obs: &mut Observation, tools: &mut Tools, item: &BorrowedValue<'_>) {
    match str_at(item, "type").unwrap_or("") {
        "function_call" | "custom_tool_call" => tools.upsert(item),
        "reasoning" => {
            let parts = item.get("summary").and_then(|s| s.as_array());
            for part in parts.into_iter().flat_map(|a| a.iter()) {
                if let Some(text) = str_at(part, "text").filter(|t| !t.is_empty()) {
                    obs.thoughts
                        .push(Thought { content: text.to_owned(), source: SOURCE_REASONING_SUMMARY.to_owned() });
                }
            }
        }
        _ => {}
    }
}

/// Tool calls keyed by output item id (`fc_…`, `ctc_…`), in the order they first appeared.
#[derive(Debug, Default)]
struct Tools(Vec<PendingTool>);

#[derive(Debug)]
struct PendingTool {
    item_id: String,
    /// A `custom_tool_call`, whose input is free text rather than JSON arguments.
    custom: bool,
    call: ToolCall,
}

impl Tools {
    /// Records a `function_call` / `custom_tool_call` item, replacing an earlier state of the same item.
    fn upsert(&mut self, item: &BorrowedValue<'_>) {
        let custom = match str_at(item, "type") {
            Some("function_call") => false,
            Some("custom_tool_call") => true,
            _ => return,
        };
        let call = ToolCall {
            id: str_at(item, "call_id").unwrap_or("").to_owned(),
            name: str_at(item, "name").unwrap_or("").to_owned(),
            input: str_at(item, if custom { "input" } else { "arguments" }).unwrap_or("").to_owned(),
        };
        let item_id = str_at(item, "id").unwrap_or("");
        match self.0.iter_mut().find(|p| !item_id.is_empty() && p.item_id == item_id) {
            Some(p) => p.call = call,
            None => self.0.push(PendingTool { item_id: item_id.to_owned(), custom, call }),
        }
    }

    /// Appends an argument (or custom input) delta to its item.
    fn append(&mut self, item_id: &str, delta: &str) {
        if let Some(p) = self.0.iter_mut().find(|p| p.item_id == item_id) {
            p.call.input.push_str(delta);
        }
    }

    fn into_calls(self) -> Vec<ToolCall> {
        self.0
            .into_iter()
            .map(|p| if p.custom { p.call } else { ToolCall { input: json::tool_input(p.call.input), ..p.call } })
            .collect()
    }
}

/// Observes a non-streaming response object body (or an error body).
pub(crate) fn observe_json(body: &[u8]) -> Observation {
    let mut scratch = Vec::new();
    let mut obs = Observation::default();
    let Some(v) = json::parse(&mut scratch, body) else {
        return obs;
    };
    if str_at(&v, "object") == Some("response") {
        let mut tools = Tools::default();
        take_response(&mut obs, &mut tools, &v, true);
        obs.tools = tools.into_calls();
        obs.complete = true;
    } else if non_null(&v, "error").is_some() {
        obs.error = Some(String::from_utf8_lossy(body).into_owned());
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameless_stream_still_observed() {
        let s = br#"data: {"type":"response.created","response":{"id":"resp_1","model":"m"}}

data: {"type":"response.output_text.delta","delta":"hi"}

data: {"type":"response.completed","response":{"id":"resp_1","model":"m","output":[{"type":"function_call","call_id":"c","name":"f","arguments":""}],"usage":{"input_tokens":5,"output_tokens":1,"input_tokens_details":{"cached_tokens":2}}}}

"#;
        let mut o = ResponsesObserver::new();
        o.on_chunk(s);
        let obs = o.finish();
        assert!(obs.complete);
        assert_eq!(obs.msg_id.as_deref(), Some("resp_1"));
        assert_eq!(obs.tools, vec![ToolCall { id: "c".into(), name: "f".into(), input: "{}".into() }]);
        assert_eq!(obs.usage.map(|u| (u.input_tokens, u.cache_read_input_tokens)), Some((3, 2)));
    }
}
