//! Chat completions observer: picks the response id, model, usage and tool calls out of a
//! `chat.completion.chunk` stream or a `chat.completion` body. Pure over bytes: no I/O, never fails.
//!
//! Text-only chunks (the bulk of a stream) are recognised on their raw bytes and never JSON-parsed.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::json::{self, non_null, str_at, u64_at, CHAT_USAGE};
use super::scanner::{SseEvent, SseScanner};
use crate::records::{Observation, ToolCall};

static TOOL_CALLS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"tool_calls\""));
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));

/// A tool call being assembled from deltas, keyed by its choice and its `index`.
#[derive(Debug)]
struct PendingCall {
    choice: u64,
    index: u64,
    call: ToolCall,
}

/// Streaming observer for `POST /chat/completions`.
#[derive(Debug, Default)]
pub struct ChatObserver {
    scanner: SseScanner,
    state: ChatState,
}

#[derive(Debug, Default)]
struct ChatState {
    obs: Observation,
    calls: Vec<PendingCall>,
    scratch: Vec<u8>,
}

impl ChatObserver {
    /// An observer at the start of a response stream.
    pub(crate) fn new() -> ChatObserver {
        ChatObserver::default()
    }

    /// Scans one relayed chunk.
    pub(crate) fn on_chunk(&mut self, chunk: &[u8]) {
        let state = &mut self.state;
        self.scanner.feed(chunk, |ev| state.on_event(ev));
    }

    /// What was seen, complete or not.
    pub(crate) fn finish(self) -> Observation {
        let mut obs = self.state.obs;
        obs.tools = self
            .state
            .calls
            .into_iter()
            .map(|p| ToolCall { input: json::tool_input(p.call.input), ..p.call })
            .collect();
        obs
    }
}

impl ChatState {
    fn on_event(&mut self, ev: &SseEvent<'_>) {
        if ev.is_done() {
            self.obs.complete = true;
            return;
        }
        let data = ev.data;
        let interesting = self.obs.msg_id.is_none()
            || TOOL_CALLS.find(data).is_some()
            || ERROR.find(data).is_some()
            || json::key_has_non_null(data, &USAGE);
        if !interesting {
            return;
        }
        let Some(v) = json::parse(&mut self.scratch, data) else {
            return;
        };
        if self.obs.msg_id.is_none() {
            self.obs.msg_id = str_at(&v, "id").filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if self.obs.model.is_none() {
            self.obs.model = str_at(&v, "model").filter(|s| !s.is_empty()).map(str::to_owned);
        }
        if non_null(&v, "error").is_some() {
            self.obs.error = Some(String::from_utf8_lossy(data).into_owned());
        }
        if let Some(usage) = non_null(&v, "usage") {
            self.obs.usage = Some(json::openai_usage(usage, &CHAT_USAGE));
        }
        let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
            return;
        };
        for (pos, choice) in choices.iter().enumerate() {
            let ci = u64_at(choice, "index").unwrap_or(pos as u64);
            let Some(deltas) = choice.get("delta").and_then(|d| d.get("tool_calls")).and_then(|t| t.as_array()) else {
                continue;
            };
            for (tpos, d) in deltas.iter().enumerate() {
                on_tool_delta(&mut self.calls, ci, u64_at(d, "index").unwrap_or(tpos as u64), d);
            }
        }
    }
}

/// Folds one `tool_calls` delta into the call it continues, or starts a new call.
fn on_tool_delta(calls: &mut Vec<PendingCall>, choice: u64, index: u64, d: &BorrowedValue<'_>) {
    let id = str_at(d, "id").filter(|s| !s.is_empty());
    let f = d.get("function");
    let name = f.and_then(|f| str_at(f, "name")).filter(|s| !s.is_empty());
    let args = f.and_then(|f| str_at(f, "arguments")).unwrap_or("");
    let existing = <[PendingCall]>::iter(calls).rposition(|p| p.choice == choice && p.index == index);
    // A delta with a new id at a used index is a new call (some compatible servers reuse index 0).
    let slot = match existing {
        Some(i) if id.is_none() || id == Some(calls[i].call.id.as_str()) || calls[i].call.id.is_empty() => i,
        _ => {
            calls.push(PendingCall { choice, index, call: ToolCall::default() });
            calls.len() - 1
        }
    };
    let call = &mut calls[slot].call;
    if let Some(id) = id {
        if call.id.is_empty() {
            call.id = id.to_owned();
        }
    }
    if let Some(name) = name {
        if call.name.is_empty() {
            call.name = name.to_owned();
        }
    }
    call.input.push_str(args);
}

/// Observes a non-streaming `chat.completion` body (or an error body).
pub(crate) fn observe_json(body: &[u8]) -> Observation {
    let mut scratch = Vec::new();
    let mut obs = Observation::default();
    let Some(v) = json::parse(&mut scratch, body) else {
        return obs;
    };
    obs.msg_id = str_at(&v, "id").map(str::to_owned);
    obs.model = str_at(&v, "model").map(str::to_owned);
    if non_null(&v, "error").is_some() {
        obs.error = Some(String::from_utf8_lossy(body).into_owned());
    }
    if let Some(usage) = non_null(&v, "usage") {
        obs.usage = Some(json::openai_usage(usage, &CHAT_USAGE));
    }
    if let Some(choices) = v.get("choices").and_then(|c| c.as_array()) {
        obs.complete = true;
        for choice in choices.iter() {
            let calls = choice.get("message").and_then(|m| m.get("tool_calls")).and_then(|t| t.as_array());
            for call in calls.into_iter().flat_map(|c| c.iter()) {
                let id = str_at(call, "id").unwrap_or("").to_owned();
                if let Some(f) = call.get("function") {
                    obs.tools.push(ToolCall {
                        id,
                        name: str_at(f, "name").unwrap_or("").to_owned(),
                        input: json::tool_input(str_at(f, "arguments").unwrap_or("").to_owned()),
                    });
                } else if let Some(c) = call.get("custom") {
                    obs.tools.push(ToolCall {
                        id,
                        name: str_at(c, "name").unwrap_or("").to_owned(),
                        input: str_at(c, "input").unwrap_or("").to_owned(),
                    });
                }
            }
        }
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &[u8]) -> Observation {
        let mut o = ChatObserver::new();
        o.on_chunk(stream);
        o.finish()
    }

    #[test]
    fn text_chunks_are_not_parsed_but_first_is() {
        let s = b"data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}],\"usage\":null}\n\n\
data: [DONE]\n\n";
        let obs = run(s);
        assert_eq!(obs.msg_id.as_deref(), Some("c1"));
        assert!(obs.complete);
        assert!(obs.usage.is_none());
    }

    #[test]
    fn reused_index_with_new_id_is_a_new_call() {
        let s = br#"data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}

data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":""}}]}}]}

"#;
        let obs = run(s);
        assert_eq!(obs.tools.len(), 2);
        assert_eq!(obs.tools[1].input, "{}");
        assert!(!obs.complete);
    }
}
