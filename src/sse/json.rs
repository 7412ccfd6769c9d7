//! JSON helpers shared by the observers: parsing one event's data with simd-json on a reused copy, cheap
//! pre-filters over raw bytes, and the usage arithmetic of README "Reading the records". Pure over bytes: no I/O.

use std::ops::Range;

use simd_json::prelude::*;
use simd_json::{BorrowedValue, StaticNode};

use super::json_scan;
use crate::records::Usage;

/// Scratch capacity an observer keeps between events; typical events are well under it.
const RETAINED_SCRATCH_BYTES: usize = 64 * 1024;

/// Deepest array/object nesting any JSON the gateway parses may have. simd-json builds (and drops) its
/// DOM recursively, so a body of a few hundred thousand `[` overflows a worker's stack and aborts the
/// whole process; real requests and events nest a few dozen levels at most. serde_json's own default
/// limit is 128.
pub(crate) const MAX_JSON_DEPTH: usize = 128;

/// True when no array or object in `data` nests deeper than `max` levels. One pass over the bytes that
/// skips strings; it does not validate the JSON (the parser does that afterwards).
pub(crate) fn nesting_within(data: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => {
                // Skip the string, stepping over escapes; an unterminated one holds no more brackets.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &data[i.min(data.len())..]) {
                        Some(k) if data[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k + 1;
                            break;
                        }
                        None => return true,
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

/// Parses `data` into a DOM borrowing `scratch` (simd-json unescapes in place, so it works on a copy).
/// Returns None for anything that is not JSON, or nests deeper than MAX_JSON_DEPTH: an observer never
/// fails on odd bytes.
pub(crate) fn parse<'s>(scratch: &'s mut Vec<u8>, data: &[u8]) -> Option<BorrowedValue<'s>> {
    if !nesting_within(data, MAX_JSON_DEPTH) {
        return None;
    }
    if scratch.capacity() > RETAINED_SCRATCH_BYTES && data.len() <= RETAINED_SCRATCH_BYTES {
        // A big final event (a whole `response.completed`) passed; do not pin its copy for the stream.
        *scratch = Vec::new();
    }
    scratch.clear();
    scratch.extend_from_slice(data);
    simd_json::to_borrowed_value(scratch.as_mut_slice()).ok().filter(keys_are_unique)
}

/// Objects simd-json keeps as a list (up to this many members) look keys up first-to-last, so a repeated
/// key always reads the same way; larger ones are hash tables seeded at random per parse.
const LIST_OBJECT_MAX: usize = 32;

/// False when an object too large to be kept as a list repeats a key. simd-json inserts members without
/// checking for repeats, and in a hash table seeded at random which copy a lookup or an iteration meets
/// first changes from one parse to the next: the same bytes would give different usage and `extra`
/// (found by the `observer_messages` fuzz target). Such a document is treated as not JSON, as it is by
/// parsers that refuse repeated keys.
fn keys_are_unique(v: &BorrowedValue<'_>) -> bool {
    match v {
        BorrowedValue::Array(a) => a.iter().all(keys_are_unique),
        BorrowedValue::Object(o) => {
            if o.len() > LIST_OBJECT_MAX {
                let mut seen = std::collections::HashSet::with_capacity(o.len());
                if !o.keys().all(|k| seen.insert(k.as_ref())) {
                    return false;
                }
            }
            o.values().all(keys_are_unique)
        }
        _ => true,
    }
}

/// Validates `body` as one JSON object and returns, for each of `names`, the span of its top-level
/// member's value (the first one when a key repeats, as the whole-body parse it replaces read them). None
/// when the body is not a JSON object. Builds nothing: the observers of non-streaming bodies parse only
/// the small members they need, not a DOM of the whole body (which cost more than the rest of the
/// recording on a worker).
pub(crate) fn top_level_members<const N: usize>(body: &[u8], names: [&str; N]) -> Option<[Option<Range<usize>>; N]> {
    let open = json_scan::skip_ws(body, 0);
    if body.get(open) != Some(&b'{') {
        return None;
    }
    let mut found = std::array::from_fn(|_| None);
    let end = json_scan::members(body, open, |key, value| {
        let end = json_scan::skip_value(body, value)?;
        let inner = &body[key.start + 1..key.end - 1];
        let matches = |n: &str| {
            // Keys are escape-free nearly always: compare the bytes, decode only when they are not.
            if memchr::memchr(b'\\', inner).is_none() {
                inner == n.as_bytes()
            } else {
                json_scan::string_is(body, &key, n)
            }
        };
        if let Some(k) = names.iter().position(|n| matches(n)) {
            found[k].get_or_insert(value..end);
        }
        Ok(end)
    })
    .ok()?;
    (json_scan::skip_ws(body, end) == body.len()).then_some(found)
}

/// The decoded text of a member value found by [`top_level_members`], when it is a string.
pub(crate) fn string_value(body: &[u8], value: Option<Range<usize>>) -> Option<String> {
    value.filter(|r| body[r.start] == b'"').and_then(|r| json_scan::decode_string(body, r).ok())
}

/// Whether a member value found by [`top_level_members`] is present and not `null` (validated JSON: a
/// value starting with `n` is `null`).
pub(crate) fn present(body: &[u8], value: &Option<Range<usize>>) -> bool {
    value.as_ref().is_some_and(|r| body[r.start] != b'n')
}

/// A string field of an object.
pub(crate) fn str_at<'v>(v: &'v BorrowedValue<'_>, key: &str) -> Option<&'v str> {
    v.get(key).and_then(|x| x.as_str())
}

/// A token count field (absent, null, negative or fractional → None).
pub(crate) fn u64_at(v: &BorrowedValue<'_>, key: &str) -> Option<u64> {
    v.get(key).and_then(|x| x.as_u64())
}

/// A nested token count (`usage.<obj>.<key>`), 0 when absent.
pub(crate) fn nested_u64(v: &BorrowedValue<'_>, obj: &str, key: &str) -> u64 {
    v.get(obj).and_then(|o| u64_at(o, key)).unwrap_or(0)
}

/// A value present and not `null`.
pub(crate) fn non_null<'v>(v: &'v BorrowedValue<'_>, key: &str) -> Option<&'v BorrowedValue<'v>> {
    v.get(key).filter(|x| !x.is_null())
}

/// Serialises a value back to compact JSON text (used for tool inputs given as objects and for errors).
pub(crate) fn to_text(v: &BorrowedValue<'_>) -> String {
    v.encode()
}

/// Converts a simd-json value to a serde_json one (for `extra`, whose key order must be deterministic).
pub(crate) fn to_serde(v: &BorrowedValue<'_>) -> serde_json::Value {
    match v {
        BorrowedValue::Static(StaticNode::Null) => serde_json::Value::Null,
        BorrowedValue::Static(StaticNode::Bool(b)) => serde_json::Value::Bool(*b),
        BorrowedValue::Static(StaticNode::I64(i)) => serde_json::Value::from(*i),
        BorrowedValue::Static(StaticNode::U64(u)) => serde_json::Value::from(*u),
        BorrowedValue::Static(StaticNode::F64(f)) => serde_json::Value::from(*f),
        BorrowedValue::String(s) => serde_json::Value::String(s.to_string()),
        BorrowedValue::Array(a) => serde_json::Value::Array(a.iter().map(to_serde).collect()),
        BorrowedValue::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.to_string(), to_serde(v))).collect())
        }
    }
}

/// Which usage fields a provider reports that README "Reading the records" maps to columns; the rest goes to `extra`.
pub(crate) struct UsageShape {
    /// Top-level fields mapped (or derivable, like totals) and so left out of `extra`.
    pub(crate) top: &'static [&'static str],
    /// `(details object, field)` pairs mapped to columns.
    pub(crate) nested: &'static [(&'static str, &'static str)],
}

/// Adds to `extra` every usage field not mapped by `shape`: nulls and emptied detail objects are left
/// out; a later report of a field replaces an earlier one (Anthropic's cumulative `message_delta`).
pub(crate) fn merge_extra(
    extra: &mut serde_json::Map<String, serde_json::Value>,
    usage: &BorrowedValue<'_>,
    shape: &UsageShape,
) {
    let Some(obj) = usage.as_object() else {
        return;
    };
    for (k, v) in obj.iter() {
        let k: &str = k;
        if shape.top.contains(&k) || v.is_null() {
            continue;
        }
        match v.as_object() {
            Some(inner) => {
                let kept: serde_json::Map<String, serde_json::Value> = inner
                    .iter()
                    .filter(|(ik, iv)| !iv.is_null() && !shape.nested.contains(&(k, &***ik)))
                    .map(|(ik, iv)| (ik.to_string(), to_serde(iv)))
                    .collect();
                if !kept.is_empty() {
                    extra.insert(k.to_string(), serde_json::Value::Object(kept));
                }
            }
            None => {
                extra.insert(k.to_string(), to_serde(v));
            }
        }
    }
}

/// The OpenAI-family arithmetic: `input = prompt − cached`, `cache_read = cached`.
pub(crate) fn openai_usage(usage: &BorrowedValue<'_>, names: &OpenAiNames) -> Usage {
    let prompt = u64_at(usage, names.input).unwrap_or(0);
    let cached = nested_u64(usage, names.input_details, "cached_tokens");
    let mut extra = serde_json::Map::new();
    merge_extra(&mut extra, usage, &UsageShape { top: names.top, nested: names.nested });
    Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: u64_at(usage, names.output).unwrap_or(0),
        cache_read_input_tokens: cached,
        cache_write_input_tokens: 0,
        reasoning_tokens: nested_u64(usage, names.output_details, "reasoning_tokens"),
        // Same text as the map's `Value` display, without the formatter machinery.
        extra: serde_json::to_string(&extra).unwrap_or_else(|_| "{}".to_owned()),
    }
}

/// Field names of an OpenAI-family usage object (chat completions and Responses differ).
pub(crate) struct OpenAiNames {
    pub(crate) input: &'static str,
    pub(crate) output: &'static str,
    pub(crate) input_details: &'static str,
    pub(crate) output_details: &'static str,
    pub(crate) top: &'static [&'static str],
    pub(crate) nested: &'static [(&'static str, &'static str)],
}

/// Chat completions usage names.
pub(crate) const CHAT_USAGE: OpenAiNames = OpenAiNames {
    input: "prompt_tokens",
    output: "completion_tokens",
    input_details: "prompt_tokens_details",
    output_details: "completion_tokens_details",
    top: &["prompt_tokens", "completion_tokens", "total_tokens"],
    nested: &[("prompt_tokens_details", "cached_tokens"), ("completion_tokens_details", "reasoning_tokens")],
};

/// Responses usage names.
pub(crate) const RESPONSES_USAGE: OpenAiNames = OpenAiNames {
    input: "input_tokens",
    output: "output_tokens",
    input_details: "input_tokens_details",
    output_details: "output_tokens_details",
    top: &["input_tokens", "output_tokens", "total_tokens"],
    nested: &[("input_tokens_details", "cached_tokens"), ("output_tokens_details", "reasoning_tokens")],
};

/// Tool argument text as recorded: an empty argument string (a tool without parameters) becomes `{}` so
/// the column always holds JSON.
pub(crate) fn tool_input(args: String) -> String {
    if args.trim().is_empty() {
        "{}".to_owned()
    } else {
        args
    }
}

/// True when some occurrence of the key pattern (e.g. `"usage"`) is followed by a value other than
/// `null`. Used to skip chat chunks whose `"usage":null` carries nothing, without parsing them.
pub(crate) fn key_has_non_null(data: &[u8], finder: &memchr::memmem::Finder<'_>) -> bool {
    for at in finder.find_iter(data) {
        let rest = &data[at + finder.needle().len()..];
        let rest = trim_start(rest);
        let Some(rest) = rest.strip_prefix(b":") else {
            // The pattern was inside a string or is not a key: be safe and parse.
            return true;
        };
        if !trim_start(rest).starts_with(b"null") {
            return true;
        }
    }
    false
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')).count();
    &b[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_null_key_detection() {
        let f = memchr::memmem::Finder::new(b"\"usage\"");
        assert!(!key_has_non_null(br#"{"a":1,"usage":null}"#, &f));
        assert!(!key_has_non_null(br#"{"a":1,"usage" : null}"#, &f));
        assert!(key_has_non_null(br#"{"usage": {"x":1}}"#, &f));
        assert!(!key_has_non_null(br#"{"a":1}"#, &f));
    }

    #[test]
    fn openai_arithmetic_and_extra() {
        let mut s = Vec::new();
        let v = parse(
            &mut s,
            br#"{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":60,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":7,"audio_tokens":null}}"#,
        )
        .unwrap();
        let u = openai_usage(&v, &CHAT_USAGE);
        assert_eq!((u.input_tokens, u.cache_read_input_tokens, u.output_tokens, u.reasoning_tokens), (40, 60, 20, 7));
        assert_eq!(u.extra, r#"{"prompt_tokens_details":{"audio_tokens":0}}"#);
    }

    #[test]
    fn garbage_is_none() {
        let mut s = Vec::new();
        assert!(parse(&mut s, b"{nope").is_none());
        assert_eq!(tool_input(String::new()), "{}");
    }

    #[test]
    fn nesting_is_bounded_and_strings_do_not_count() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(nesting_within(deep(MAX_JSON_DEPTH).as_bytes(), MAX_JSON_DEPTH));
        assert!(!nesting_within(deep(MAX_JSON_DEPTH + 1).as_bytes(), MAX_JSON_DEPTH));
        assert!(!nesting_within("{\"a\":".repeat(100_000).as_bytes(), MAX_JSON_DEPTH));
        let in_string = format!(r#"{{"s":"{}\"[[[","t":[1]}}"#, "[".repeat(1000));
        assert!(nesting_within(in_string.as_bytes(), 2));
        assert!(nesting_within(br#"{"a":"unterminated \"#, 1));
        let mut scratch = Vec::new();
        assert!(parse(&mut scratch, deep(200_000).as_bytes()).is_none(), "refused before simd-json recurses");
        assert!(parse(&mut scratch, deep(MAX_JSON_DEPTH).as_bytes()).is_some());
    }

    /// An object of `n` members `k0..k(n-1)` with `k0` given twice: first `first`, last `last`.
    fn repeated_key(n: usize, first: u32, last: u32) -> String {
        let mut members = vec![format!(r#""k0":{first}"#)];
        members.extend((1..n).map(|i| format!(r#""k{i}":{i}"#)));
        members.push(format!(r#""k0":{last}"#));
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn a_large_object_repeating_a_key_is_refused_and_a_small_one_reads_the_same_every_time() {
        let mut s = Vec::new();
        let big = repeated_key(LIST_OBJECT_MAX + 1, 1, 2);
        assert!(parse(&mut s, big.as_bytes()).is_none(), "which copy wins would depend on the hash seed");
        let nested = format!(r#"{{"usage":{{"input_tokens":3,"deep":[{big}]}}}}"#);
        assert!(parse(&mut s, nested.as_bytes()).is_none(), "nested ones too");
        let small = repeated_key(4, 1, 2);
        for _ in 0..50 {
            let v = parse(&mut s, small.as_bytes()).unwrap();
            assert_eq!(u64_at(&v, "k0"), Some(1), "a list object reads its first copy");
        }
        let unique = format!("{{{}}}", (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>().join(","));
        assert_eq!(u64_at(&parse(&mut s, unique.as_bytes()).unwrap(), "k99"), Some(99));
    }

    proptest::proptest! {
        #[test]
        fn nesting_scan_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = nesting_within(&data, 4);
        }
    }
}
