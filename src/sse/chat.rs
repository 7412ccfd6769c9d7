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
use super::usage_scan;
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

/// Observes a non-streaming `chat.completion` body (or an error body). The body is validated and its
/// top-level members located without a DOM; only `usage` (small) and, when they hold tool calls, the
/// `choices` are parsed.
pub(crate) fn observe_json(body: &[u8]) -> Observation {
    let mut obs = Observation::default();
    let Some([id, model, error, usage, choices]) =
        json::top_level_members(body, ["id", "model", "error", "usage", "choices"])
    else {
        return obs;
    };
    obs.msg_id = json::string_value(body, id);
    obs.model = json::string_value(body, model);
    if json::present(body, &error) {
        obs.error = Some(String::from_utf8_lossy(body).into_owned());
    }
    let mut scratch = Vec::new();
    if let Some(usage) = usage.filter(|r| body[r.start] != b'n') {
        obs.usage = usage_scan::openai_usage(body, usage.clone(), &CHAT_USAGE)
            .or_else(|| json::parse(&mut scratch, &body[usage]).map(|v| json::openai_usage(&v, &CHAT_USAGE)));
    }
    let Some(choices) = choices.filter(|r| body[r.start] == b'[') else {
        return obs;
    };
    obs.complete = true;
    if TOOL_CALLS.find(&body[choices.clone()]).is_none() {
        return obs;
    }
    let Some(choices) = json::parse(&mut scratch, &body[choices]) else {
        return obs;
    };
    for choice in choices.as_array().into_iter().flat_map(|c| c.iter()) {
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

    /// The observer as it was before it skipped the DOM: one simd-json parse of the whole body.
    fn observe_json_dom(body: &[u8]) -> Observation {
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

    #[test]
    fn json_body_fields_usage_and_tool_calls() {
        let body = br#" {"id":"chatcmpl-\u0041","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,
            "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
            "function":{"name":"get","arguments":"{\"q\":1}"}},{"id":"call_2","type":"custom","custom":{"name":"c","input":"x"}}]}}],
            "usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,
            "prompt_tokens_details":{"cached_tokens":60,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":7}}} "#;
        let obs = observe_json(body);
        assert_eq!(obs, observe_json_dom(body));
        assert_eq!((obs.msg_id.as_deref(), obs.model.as_deref()), (Some("chatcmpl-A"), Some("gpt-4o")));
        let u = obs.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.reasoning_tokens), (40, 20, 60, 7));
        assert_eq!(u.extra, r#"{"prompt_tokens_details":{"audio_tokens":0}}"#);
        assert_eq!(obs.tools.len(), 2);
        assert_eq!((obs.tools[0].name.as_str(), obs.tools[0].input.as_str()), ("get", r#"{"q":1}"#));
        assert_eq!((obs.tools[1].id.as_str(), obs.tools[1].input.as_str()), ("call_2", "x"));
        assert!(obs.complete && obs.error.is_none());
    }

    #[test]
    fn json_bodies_that_are_not_one_object_observe_nothing() {
        for body in [&b""[..], b"{", b"{} {}", b"[1]", b"\"id\"", b"{\"id\":\"a\",}", b"{\"id\":\"a\"} x", b"nul"] {
            assert_eq!(observe_json(body), Observation::default(), "{:?}", String::from_utf8_lossy(body));
            assert_eq!(observe_json(body), observe_json_dom(body));
        }
        let error = br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#;
        assert_eq!(observe_json(error).error.as_deref(), Some(std::str::from_utf8(error).unwrap()));
        assert_eq!(observe_json(br#"{"error":null,"id":"x"}"#).error, None);
    }

    proptest::proptest! {
        /// Whatever the body, locating the members and parsing only some of them observes exactly what
        /// parsing the whole body did (keys unique: which duplicate a DOM keeps is its own business).
        #[test]
        fn json_observation_matches_a_whole_body_parse(
            members in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["id", "model", "error", "usage", "choices", "object", "x"]),
                    proptest::prop_oneof![
                        3 => crate::providers::request::strategies::json_value(),
                        1 => proptest::prelude::Just(r#"{"prompt_tokens":5,"completion_tokens":2,"x":{"y":null,"z":1.5}}"#.to_owned()),
                        1 => proptest::prelude::Just(r#"[{"message":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":""}}]}}]"#.to_owned()),
                    ],
                ),
                0..6,
            ),
            ws in proptest::sample::select(vec!["", " ", "\n\t "]),
        ) {
            let mut seen = std::collections::HashSet::new();
            let body: Vec<String> = members
                .into_iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                .collect();
            let body = format!("{ws}{{{}}}{ws}", body.join(","));
            proptest::prop_assert_eq!(observe_json(body.as_bytes()), observe_json_dom(body.as_bytes()), "{}", body);
        }
    }
}
