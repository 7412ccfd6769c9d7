//! Anthropic Messages observer: picks the message id, model, usage (with cache read/write), tool_use
//! blocks with their assembled input and thinking blocks out of a message event stream or a message
//! body. Pure over bytes: no I/O, never fails.
//!
//! `text_delta` and `signature_delta` events (the bulk of a stream) and `ping` are skipped on raw bytes.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::json::{self, non_null, str_at, u64_at, UsageShape};
use super::scanner::{SseEvent, SseScanner};
use crate::records::{Observation, Thought, ToolCall, Usage};

/// The `source` of thoughts taken from thinking blocks.
pub(crate) const SOURCE_THINKING: &str = "thinking";

/// Compact-JSON prefixes of the deltas never recorded. Quotes inside a JSON string are always escaped,
/// so these multi-quote patterns cannot match inside a text or a partial tool input.
static TEXT_DELTA: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"delta\":{\"type\":\"text_delta\""));
static SIGNATURE_DELTA: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"delta\":{\"type\":\"signature_delta\""));

/// Usage fields that README "Reading the records" maps to columns.
const SHAPE: UsageShape = UsageShape {
    top: &["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"],
    nested: &[],
};

/// A content block being assembled.
#[derive(Debug)]
enum Block {
    Tool { index: u64, call: ToolCall },
    Thinking { index: u64, text: String },
}

/// Anthropic counts: `message_start` gives the first values, `message_delta` cumulative updates.
#[derive(Debug, Default)]
struct Counts {
    seen: bool,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Counts {
    fn update(&mut self, u: &BorrowedValue<'_>) {
        self.seen = true;
        if let Some(n) = u64_at(u, "input_tokens") {
            self.input = n;
        }
        if let Some(n) = u64_at(u, "output_tokens") {
            self.output = n;
        }
        if let Some(n) = u64_at(u, "cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = u64_at(u, "cache_creation_input_tokens") {
            self.cache_write = n;
        }
        json::merge_extra(&mut self.extra, u, &SHAPE);
    }

    fn usage(self) -> Option<Usage> {
        self.seen.then(|| Usage {
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_input_tokens: self.cache_read,
            cache_write_input_tokens: self.cache_write,
            reasoning_tokens: 0,
            extra: serde_json::Value::Object(self.extra).to_string(),
        })
    }
}

/// Streaming observer for `POST /v1/messages`.
#[derive(Debug, Default)]
pub struct MessagesObserver {
    scanner: SseScanner,
    state: MessagesState,
}

#[derive(Debug, Default)]
struct MessagesState {
    obs: Observation,
    blocks: Vec<Block>,
    counts: Counts,
    scratch: Vec<u8>,
}

impl MessagesObserver {
    /// An observer at the start of a response stream.
    pub(crate) fn new() -> MessagesObserver {
        MessagesObserver::default()
    }

    /// Scans one relayed chunk.
    pub(crate) fn on_chunk(&mut self, chunk: &[u8]) {
        let state = &mut self.state;
        self.scanner.feed(chunk, |ev| state.on_event(ev));
    }

    /// What was seen, complete or not.
    pub(crate) fn finish(self) -> Observation {
        let MessagesState { mut obs, blocks, counts, .. } = self.state;
        obs.usage = counts.usage();
        for b in blocks {
            match b {
                Block::Tool { call, .. } => obs.tools.push(ToolCall { input: json::tool_input(call.input), ..call }),
                Block::Thinking { text, .. } if !text.is_empty() => {
                    obs.thoughts.push(Thought { content: text, source: SOURCE_THINKING.to_owned() })
                }
                Block::Thinking { .. } => {}
            }
        }
        obs
    }
}

impl MessagesState {
    fn on_event(&mut self, ev: &SseEvent<'_>) {
        match ev.event {
            b"ping" => return,
            b"message_stop" => {
                self.obs.complete = true;
                return;
            }
            b"content_block_delta" | b""
                if TEXT_DELTA.find(ev.data).is_some() || SIGNATURE_DELTA.find(ev.data).is_some() =>
            {
                return;
            }
            _ => {}
        }
        let Some(v) = json::parse(&mut self.scratch, ev.data) else {
            return;
        };
        match str_at(&v, "type").unwrap_or("") {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    self.obs.msg_id = str_at(m, "id").map(str::to_owned);
                    self.obs.model = str_at(m, "model").map(str::to_owned);
                    if let Some(u) = non_null(m, "usage") {
                        self.counts.update(u);
                    }
                }
            }
            "content_block_start" => {
                let index = u64_at(&v, "index").unwrap_or(self.blocks.len() as u64);
                let Some(b) = v.get("content_block") else {
                    return;
                };
                match str_at(b, "type").unwrap_or("") {
                    "tool_use" | "server_tool_use" | "mcp_tool_use" => {
                        // The start carries `input: {}`; the real input arrives as input_json_delta.
                        let start_input = b
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                            .map(json::to_text)
                            .unwrap_or_default();
                        self.blocks.push(Block::Tool {
                            index,
                            call: ToolCall {
                                id: str_at(b, "id").unwrap_or("").to_owned(),
                                name: str_at(b, "name").unwrap_or("").to_owned(),
                                input: start_input,
                            },
                        });
                    }
                    "thinking" => self
                        .blocks
                        .push(Block::Thinking { index, text: str_at(b, "thinking").unwrap_or("").to_owned() }),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let (Some(index), Some(d)) = (u64_at(&v, "index"), v.get("delta")) else {
                    return;
                };
                let block = self.blocks.iter_mut().rev().find(|b| match b {
                    Block::Tool { index: i, .. } | Block::Thinking { index: i, .. } => *i == index,
                });
                match (str_at(d, "type").unwrap_or(""), block) {
                    ("input_json_delta", Some(Block::Tool { call, .. })) => {
                        call.input.push_str(str_at(d, "partial_json").unwrap_or(""))
                    }
                    ("thinking_delta", Some(Block::Thinking { text, .. })) => {
                        text.push_str(str_at(d, "thinking").unwrap_or(""))
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = non_null(&v, "usage") {
                    self.counts.update(u);
                }
            }
            "message_stop" => self.obs.complete = true,
            "error" => self.obs.error = Some(String::from_utf8_lossy(ev.data).into_owned()),
            _ => {}
        }
    }
}

/// Observes a non-streaming message body (or an error body).
pub(crate) fn observe_json(body: &[u8]) -> Observation {
    let mut scratch = Vec::new();
    let mut obs = Observation::default();
    let Some(v) = json::parse(&mut scratch, body) else {
        return obs;
    };
    match str_at(&v, "type") {
        Some("message") => {}
        Some("error") => {
            obs.error = Some(String::from_utf8_lossy(body).into_owned());
            return obs;
        }
        _ => return obs,
    }
    obs.complete = true;
    obs.msg_id = str_at(&v, "id").map(str::to_owned);
    obs.model = str_at(&v, "model").map(str::to_owned);
    if let Some(u) = non_null(&v, "usage") {
        let mut c = Counts::default();
        c.update(u);
        obs.usage = c.usage();
    }
    for b in v.get("content").and_then(|c| c.as_array()).into_iter().flat_map(|a| a.iter()) {
        match str_at(b, "type").unwrap_or("") {
            "tool_use" | "server_tool_use" | "mcp_tool_use" => obs.tools.push(ToolCall {
                id: str_at(b, "id").unwrap_or("").to_owned(),
                name: str_at(b, "name").unwrap_or("").to_owned(),
                input: b.get("input").map(json::to_text).unwrap_or_else(|| "{}".to_owned()),
            }),
            "thinking" => {
                if let Some(t) = str_at(b, "thinking").filter(|t| !t.is_empty()) {
                    obs.thoughts.push(Thought { content: t.to_owned(), source: SOURCE_THINKING.to_owned() });
                }
            }
            _ => {}
        }
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_deltas_skipped_and_tool_input_assembled() {
        let s = br#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":2,"output_tokens":1}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \"delta\":{\"type\":\"input_json_delta\""}}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":\"\\\"delta\\\":{\\\"type\\\":\\\"text_delta\\\"\"}"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}

"#;
        let mut o = MessagesObserver::new();
        o.on_chunk(s);
        let obs = o.finish();
        assert!(!obs.complete);
        assert_eq!(obs.tools[0].input, r#"{"a":"\"delta\":{\"type\":\"text_delta\""}"#);
        let u = obs.usage.unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_write_input_tokens),
            (10, 30, 5, 2)
        );
    }
}
