//! What the mock model "says", independent of the API that carries it: the text words, the tool calls, the
//! thinking, and the token usage of each scenario. Pure data and JSON-writing helpers: no I/O.

use super::scenario::{Kind, Scenario};
use std::io::Write;

/// Text deltas cycle through these words; none needs JSON escaping (a test checks it).
pub(crate) const WORDS: [&str; 6] = ["Hello", " from", " the", " mock", " upstream", "."];
/// Thinking / reasoning summary deltas.
pub(crate) const THOUGHTS: [&str; 3] = ["Let me", " check the", " weather in Paris."];
/// The opaque signature closing a thinking block.
pub(crate) const SIGNATURE: &str = "EqQBCkgIARABGAIiQMockSignatureForTestsOnly0123456789abcdef";
/// Tool calls: name and complete argument JSON. `tools` uses both (parallel), `thinking` the first.
pub(crate) const TOOLS: [(&str, &str); 2] =
    [("get_weather", r#"{"city":"Paris","unit":"celsius"}"#), ("get_time", r#"{"timezone":"Europe/Paris"}"#)];
/// Argument JSON is streamed in this many pieces.
pub(crate) const ARG_PIECES: usize = 3;

/// Token usage of one response, in provider-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Input tokens not read from cache (Anthropic `input_tokens`).
    pub(crate) input: u32,
    pub(crate) cache_read: u32,
    pub(crate) cache_write: u32,
    /// Visible output tokens (text, tool arguments, thinking text).
    pub(crate) output: u32,
    pub(crate) reasoning: u32,
}

impl Usage {
    /// OpenAI `prompt_tokens`/`input_tokens`: includes the cached part.
    pub(crate) fn openai_input(&self) -> u32 {
        self.input + self.cache_read
    }
    /// OpenAI `completion_tokens`/`output_tokens`: includes reasoning.
    pub(crate) fn openai_output(&self) -> u32 {
        self.output + self.reasoning
    }
}

/// The content plan of a scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Text delta events.
    pub(crate) text_deltas: u32,
    /// Thinking/reasoning deltas (0 or THOUGHTS.len()).
    pub(crate) thought_deltas: usize,
    /// Tool calls (prefix of TOOLS).
    pub(crate) tools: usize,
    /// Whether the stream stops half-way (error or truncation).
    pub(crate) cut: bool,
    pub(crate) usage: Usage,
}

impl Plan {
    /// Decides what a scenario's response contains.
    pub(crate) fn of(s: &Scenario) -> Plan {
        let events = s.events;
        let (text_deltas, thought_deltas, tools, cut) = match s.kind {
            Kind::Text | Kind::Cached => (events, 0, 0, false),
            Kind::Tools => (events, 0, 2, false),
            Kind::Thinking => (0, THOUGHTS.len(), 1, false),
            Kind::ErrorMidstream | Kind::Truncated => ((events / 2).max(1), 0, 0, true),
        };
        let mut usage = Usage {
            input: 12,
            cache_read: 0,
            cache_write: 0,
            output: text_deltas + thought_deltas as u32 + 12 * tools as u32,
            reasoning: 0,
        };
        match s.kind {
            Kind::Cached => {
                usage.input = 20;
                usage.cache_read = 100;
                usage.cache_write = 10;
                usage.reasoning = 16;
            }
            Kind::Thinking => usage.reasoning = 24,
            _ => {}
        }
        Plan { text_deltas, thought_deltas, tools, cut, usage }
    }
}

/// The `i`th text delta.
pub(crate) fn word(i: u32) -> &'static str {
    WORDS[i as usize % WORDS.len()]
}

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the concatenation of the first `n` words as a quoted JSON string (no escaping needed).
pub(crate) fn push_text(out: &mut Vec<u8>, n: u32) {
    out.push(b'"');
    for i in 0..n {
        out.extend_from_slice(word(i).as_bytes());
    }
    out.push(b'"');
}

/// Appends the whole thinking text as a quoted JSON string.
pub(crate) fn push_thoughts(out: &mut Vec<u8>) {
    push_str(out, &THOUGHTS.concat());
}

/// The `piece`th of ARG_PIECES pieces of a tool's argument JSON.
pub(crate) fn arg_piece(args: &str, piece: usize) -> &str {
    let step = args.len().div_ceil(ARG_PIECES);
    let start = (piece * step).min(args.len());
    let end = ((piece + 1) * step).min(args.len());
    args.get(start..end).unwrap_or("")
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Appends a decimal number.
pub(crate) fn push_num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_need_no_escaping() {
        for w in WORDS {
            assert_eq!(serde_json::to_string(w).unwrap(), format!("\"{w}\""));
        }
    }

    #[test]
    fn arg_pieces_reassemble() {
        for (_, args) in TOOLS {
            let joined: String = (0..ARG_PIECES).map(|p| arg_piece(args, p)).collect();
            assert_eq!(joined, args);
        }
    }

    #[test]
    fn plans_differ_by_scenario() {
        let mut s = Scenario::default();
        assert_eq!(Plan::of(&s).text_deltas, 5);
        s.kind = Kind::Cached;
        assert_eq!(Plan::of(&s).usage.cache_read, 100);
        s.kind = Kind::Truncated;
        assert!(Plan::of(&s).cut);
    }
}
