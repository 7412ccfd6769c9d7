//! Reads the last turn of a (validated) request body from the elements the layout pass kept: the prompt
//! (the last text of the last message when it is the user's) and the ids of the tool results it carries. Pure over
//! bytes: no I/O; walks only the last elements, never the whole list.

use std::ops::Range;

use super::layout::PromptValue;
use super::scan::{self, Invalid, Tail};
use crate::records::Api;

/// The decoded string at `r`, or None when that value is not a string.
fn as_text(b: &[u8], r: Option<Range<usize>>) -> Result<Option<String>, Invalid> {
    match r {
        Some(r) if b[r.start] == b'"' => scan::decode_string(b, r).map(Some),
        _ => Ok(None),
    }
}

/// Whether the value at `r` is a string decoding to `name`.
fn text_is(b: &[u8], r: Option<Range<usize>>, name: &str) -> bool {
    r.is_some_and(|r| b[r.start] == b'"' && scan::string_is(b, &r, name))
}

/// What the last turn holds: the prompt (a Responses `input` string, or the last text of the last message
/// or Responses item when its role is `user`, see [`content_text`]) and the tool-result ids (see [`tool_result_ids`]). The last
/// element's members are listed once for both.
pub(super) fn last_turn(
    api: Api,
    b: &[u8],
    value: Option<&PromptValue>,
) -> Result<(Option<String>, Vec<String>), Invalid> {
    let tail = match (api, value) {
        (Api::Responses, Some(PromptValue::Text(r))) => {
            return Ok((Some(scan::decode_string(b, r.clone())?), Vec::new()))
        }
        (_, Some(PromptValue::List(tail))) => tail,
        _ => return Ok((None, Vec::new())),
    };
    let Some(last) = tail.back(0).filter(|r| b[r.start] == b'{') else {
        return Ok((None, Vec::new()));
    };
    let list = scan::member_list(b, last.start)?;
    Ok((user_message_text(b, &list)?, tool_result_ids(api, b, tail, &list)?))
}

/// The text of one message (or Responses item) given its members, only when its role is `user`.
/// Responses items without a `type` are messages; other item types (tool outputs…) are not prompts.
fn user_message_text(b: &[u8], list: &[scan::Member]) -> Result<Option<String>, Invalid> {
    if let Some(t) = as_text(b, scan::last_member(b, list, "type"))? {
        if t != "message" {
            return Ok(None);
        }
    }
    if as_text(b, scan::last_member(b, list, "role"))?.as_deref() != Some("user") {
        return Ok(None);
    }
    match scan::last_member(b, list, "content") {
        Some(c) => content_text(b, c),
        None => Ok(None),
    }
}

/// A content value's prompt: a string, or the last text part of a content-part array (`text` for chat
/// and Anthropic, `input_text` for Responses). Agents put context before what the person typed, as
/// earlier parts of the same message (Claude Code's `<system-reminder>` blocks, kilobytes of them): the
/// last text part is the typed prompt, the rule Coder's AI Bridge records by. The parts are read from
/// the end, so the text of the others is never decoded.
fn content_text(b: &[u8], content: Range<usize>) -> Result<Option<String>, Invalid> {
    match b[content.start] {
        b'"' => return scan::decode_string(b, content).map(Some),
        b'[' => {}
        _ => return Ok(None),
    }
    for part in scan::element_list(b, content.start)?.into_iter().rev() {
        if b[part.start] != b'{' {
            continue;
        }
        let list = scan::member_list(b, part.start)?;
        let kind = scan::last_member(b, &list, "type");
        if !(text_is(b, kind.clone(), "text") || text_is(b, kind, "input_text")) {
            continue;
        }
        if let Some(text) = as_text(b, scan::last_member(b, &list, "text"))? {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// The ids of the tool results the request's last turn answers, in body order: what links a request to
/// the interception whose tool calls it answers. `last` holds the members of the list's last element.
///
/// - Anthropic Messages: the last message, when the user's, holds every result as a content block
///   `{"type":"tool_result","tool_use_id":…}`.
/// - Chat completions: each result is its own message `{"role":"tool","tool_call_id":…}`; the trailing
///   run of them is the turn.
/// - Responses: each result is its own item (`function_call_output`, and the other `*_call_output`
///   types) with a `call_id`; the trailing run of them is the turn.
fn tool_result_ids(api: Api, b: &[u8], tail: &Tail, last: &[scan::Member]) -> Result<Vec<String>, Invalid> {
    match api {
        Api::Messages => anthropic_tool_results(b, last),
        Api::ChatCompletions => trailing_ids(b, tail, last, |b, list| {
            Ok(text_is(b, scan::last_member(b, list, "role"), "tool")
                .then(|| as_text(b, scan::last_member(b, list, "tool_call_id")))
                .transpose()?
                .map(Option::unwrap_or_default))
        }),
        Api::Responses => trailing_ids(b, tail, last, |b, list| {
            let kind = as_text(b, scan::last_member(b, list, "type"))?;
            if !kind.is_some_and(|k| k.ends_with("_call_output")) {
                return Ok(None);
            }
            Ok(Some(as_text(b, scan::last_member(b, list, "call_id"))?.unwrap_or_default()))
        }),
    }
}

/// The `tool_use_id`s of the `tool_result` blocks of one Anthropic message (given its members), when it
/// is the user's.
fn anthropic_tool_results(b: &[u8], list: &[scan::Member]) -> Result<Vec<String>, Invalid> {
    let mut ids = Vec::new();
    if !text_is(b, scan::last_member(b, list, "role"), "user") {
        return Ok(ids);
    }
    let Some(content) = scan::last_member(b, list, "content").filter(|c| b[c.start] == b'[') else {
        return Ok(ids);
    };
    for block in scan::element_list(b, content.start)? {
        if b[block.start] != b'{' {
            continue;
        }
        let block = scan::member_list(b, block.start)?;
        if text_is(b, scan::last_member(b, &block, "type"), "tool_result") {
            if let Some(id) = as_text(b, scan::last_member(b, &block, "tool_use_id"))? {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// How one list element is read as a tool result: None when it is not one, else its id ("" when the
/// result has no string id; dropped from the list).
type ResultId = fn(&[u8], &[scan::Member]) -> Result<Option<String>, Invalid>;

/// The ids of the run of tool-result elements at the end of a list, in body order. The kept tail covers
/// the usual turn; a longer run is read from a second walk over the list.
fn trailing_ids(b: &[u8], tail: &Tail, last: &[scan::Member], result_id: ResultId) -> Result<Vec<String>, Invalid> {
    let read = |r: Range<usize>| -> Result<Option<String>, Invalid> {
        if b[r.start] != b'{' {
            return Ok(None);
        }
        result_id(b, &scan::member_list(b, r.start)?)
    };
    let mut ids = Vec::new();
    match result_id(b, last)? {
        Some(id) => ids.push(id),
        None => return Ok(ids),
    }
    let mut k = 1;
    let whole_tail = loop {
        let Some(r) = tail.back(k) else {
            break k < tail.len;
        };
        match read(r)? {
            Some(id) => ids.push(id),
            None => break false,
        }
        k += 1;
    };
    if whole_tail {
        let all = scan::element_list(b, tail.open)?;
        for r in all[..all.len() - k].iter().rev() {
            match read(r.clone())? {
                Some(id) => ids.push(id),
                None => break,
            }
        }
    }
    ids.retain(|id| !id.is_empty());
    ids.reverse();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::super::inspect;
    use crate::records::Api;

    fn ids(api: Api, body: &str) -> Vec<String> {
        inspect(api, body.as_bytes()).unwrap().tool_result_ids
    }

    fn prompt(api: Api, body: &str) -> Option<String> {
        inspect(api, body.as_bytes()).unwrap().info.prompt
    }

    /// Request bodies as the agents and SDKs send them (`tests/fixtures/requests`, shared with the e2e tests).
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/requests/", $name, ".json"))
        };
    }

    /// Claude Code puts `<system-reminder>` blocks (todo list, CLAUDE.md, the date) before the typed text
    /// in the same user message; only the typed text is the prompt.
    #[test]
    fn claude_code_prompt_is_the_typed_block() {
        let first = prompt(Api::Messages, fixture!("claude_code_first_turn"));
        assert_eq!(first.as_deref(), Some("why does `cargo test` fail on main? \"fix\" it"));
        let follow_up = prompt(Api::Messages, fixture!("claude_code_follow_up"));
        assert_eq!(follow_up.as_deref(), Some("now sort them by size"));
        // A turn that only answers a tool call has nothing typed.
        let tool_turn = fixture!("claude_code_tool_result");
        assert_eq!(prompt(Api::Messages, tool_turn), None);
        assert_eq!(ids(Api::Messages, tool_turn), ["toolu_01A09q90qw90lq917835lq9"]);
    }

    /// Codex sends its AGENTS.md instructions and environment context as user messages of their own
    /// before the typed one.
    #[test]
    fn codex_prompt_is_the_last_input_text() {
        let p = prompt(Api::Responses, fixture!("codex_responses_turn"));
        assert_eq!(p.as_deref(), Some("add a --verbose flag to the CLI"));
        let two_parts = r#"{"input":[{"type":"message","role":"user","content":[
            {"type":"input_text","text":"<environment_context>x</environment_context>"},
            {"type":"input_image","image_url":"data:image/png;base64,AA=="},{"type":"input_text","text":"typed"}]}]}"#;
        assert_eq!(prompt(Api::Responses, two_parts).as_deref(), Some("typed"));
    }

    #[test]
    fn sdk_prompts() {
        let chat = prompt(Api::ChatCompletions, fixture!("openai_sdk_chat_image"));
        assert_eq!(chat.as_deref(), Some("What is in this image?"));
        let messages = prompt(Api::Messages, fixture!("anthropic_sdk_image"));
        assert_eq!(messages.as_deref(), Some("Describe this image."));
        let responses = prompt(Api::Responses, fixture!("openai_sdk_responses_messages"));
        assert_eq!(responses.as_deref(), Some("Are semicolons optional in JavaScript?"));
        let chat_parts = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"context"},{"type":"text","text":"asked"}]}]}"#;
        assert_eq!(prompt(Api::ChatCompletions, chat_parts).as_deref(), Some("asked"));
    }

    /// The last part that is text with a string `text` wins; other parts and malformed text parts are
    /// passed over, and a message with no text part has no prompt.
    #[test]
    fn the_last_text_part_is_found_past_other_parts() {
        let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"one"},{"type":"t\u0065xt","text":"tw\u006f"},
            {"type":"text","text":7},{"type":"image","source":{}},"stray",{"text":"untyped"}]}]}"#;
        assert_eq!(prompt(Api::Messages, body).as_deref(), Some("two"));
        let none = r#"{"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#;
        assert_eq!(prompt(Api::Messages, none), None);
        assert_eq!(prompt(Api::Messages, r#"{"messages":[{"role":"user","content":[]}]}"#), None);
    }

    #[test]
    fn anthropic_tool_results_of_the_last_user_message() {
        let body = r#"{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"old"}]},
            {"role":"assistant","content":"x"},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"},
                {"type":"text","text":"hi"},{"type":"tool_r\u0065sult","tool_use_id":"toolu_\u0032"},
                {"type":"tool_result","tool_use_id":5}]}]}"#;
        assert_eq!(ids(Api::Messages, body), ["toolu_1", "toolu_2"]);
        let assistant = r#"{"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]}"#;
        assert!(ids(Api::Messages, assistant).is_empty());
        assert!(ids(Api::Messages, r#"{"messages":[{"role":"user","content":"text"}]}"#).is_empty());
    }

    #[test]
    fn chat_tool_messages_at_the_end() {
        let body = r#"{"messages":[{"role":"tool","tool_call_id":"old"},{"role":"assistant","tool_calls":[]},
            {"role":"tool","tool_call_id":"call_1","content":"a"},{"role":"tool","tool_call_id":"call_2"}]}"#;
        assert_eq!(ids(Api::ChatCompletions, body), ["call_1", "call_2"]);
        let user_last = r#"{"messages":[{"role":"tool","tool_call_id":"call_1"},{"role":"user","content":"q"}]}"#;
        assert!(ids(Api::ChatCompletions, user_last).is_empty());
        // Anthropic-shaped blocks mean nothing to chat completions.
        let blocks = r#"{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}"#;
        assert!(ids(Api::ChatCompletions, blocks).is_empty());
    }

    #[test]
    fn responses_call_outputs_at_the_end() {
        let body = r#"{"input":[{"role":"user","content":"q"},{"type":"function_call","call_id":"c1"},
            {"type":"function_call_output","call_id":"c1","output":"r"},
            {"type":"custom_tool_call_output","call_id":"c2","output":"r"}]}"#;
        assert_eq!(ids(Api::Responses, body), ["c1", "c2"]);
        assert!(ids(Api::Responses, r#"{"input":"text"}"#).is_empty());
        assert!(ids(Api::Responses, r#"{"input":[{"type":"function_call","call_id":"c1"}]}"#).is_empty());
    }

    #[test]
    fn a_run_longer_than_the_kept_tail_is_read_whole() {
        for n in [1, super::scan::TAIL - 1, super::scan::TAIL, super::scan::TAIL + 1, 3 * super::scan::TAIL + 5] {
            let mut items = vec![r#"{"role":"user","content":"q"}"#.to_owned()];
            items.extend((0..n).map(|i| format!(r#"{{"role":"tool","tool_call_id":"c{i}"}}"#)));
            let body = format!(r#"{{"messages":[{}]}}"#, items.join(","));
            let want: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            assert_eq!(ids(Api::ChatCompletions, &body), want, "n {n}");
            // Without a leading non-result element the run is the whole list.
            let body = format!(r#"{{"messages":[{}]}}"#, items[1..].join(","));
            assert_eq!(ids(Api::ChatCompletions, &body), want, "n {n}");
        }
    }
}
