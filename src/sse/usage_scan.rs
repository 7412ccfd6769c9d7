//! OpenAI-family usage read straight from the bytes of a validated `usage` object, for the usual shape:
//! plain token counts, booleans, escape-free strings and one level of detail objects holding those. For
//! that shape it gives exactly what [`super::json::openai_usage`] gives from a parsed value (same columns,
//! same `extra` text: keys sorted, nulls and emptied detail objects left out) without building a DOM or a
//! serde map; anything else (floats, negative numbers, arrays, deeper nesting, escaped text, a repeated
//! key) answers None and the caller parses the object. Pure over bytes: no I/O.

use std::ops::Range;

use super::json::OpenAiNames;
use super::json_scan;
use crate::records::Usage;

/// Most members an object may have on the fast path (usage objects have about five; larger ones go to
/// the parser, which also owns the rules for large objects repeating a key).
const MAX_MEMBERS: usize = 16;

/// Longest digit run read as a token count: always within `i64`, so a parser would read the same value.
const MAX_DIGITS: usize = 18;

/// A scalar as its JSON text is kept: the text the serde map of `extra` would print for it.
#[derive(Clone, Copy)]
enum Scalar {
    Count(u64),
    Null,
    /// `true`, `false` or an escape-free string: printed as it stands.
    Verbatim,
}

/// A member value on the fast path: a scalar with its text, or a detail object of scalars.
enum Value<'b> {
    Scalar(Scalar, &'b [u8]),
    Object(Vec<Detail<'b>>),
}

/// One member of a detail object: key bytes, the scalar and its text.
type Detail<'b> = (&'b [u8], (Scalar, &'b [u8]));

/// The scanner's verdict on bytes that are not JSON (cannot happen on a validated body, but kept exact).
type Scan<T> = Result<T, json_scan::Invalid>;

/// What reading one value gives: the value (None when it leaves the fast path) and where it ends.
type Read<V> = Scan<(Option<V>, usize)>;

/// Reads the members of the (validated) object at `open` in one pass, `value` deciding each one from
/// where it starts and returning where it ends; the members are None when the object leaves the fast path.
fn walk<'b, V>(b: &'b [u8], open: usize, mut value: impl FnMut(usize) -> Read<V>) -> Read<Vec<(&'b [u8], V)>> {
    let mut out: Vec<(&'b [u8], V)> = Vec::with_capacity(8);
    let mut off_path = false;
    let end = json_scan::members(b, open, |key, start| {
        let k = &b[key.start + 1..key.end - 1];
        if off_path
            || out.len() == MAX_MEMBERS
            || memchr::memchr(b'\\', k).is_some()
            || out.iter().any(|(seen, _)| *seen == k)
        {
            off_path = true;
            return json_scan::skip_value(b, start);
        }
        let (v, end) = value(start)?;
        match v {
            Some(v) => out.push((k, v)),
            None => off_path = true,
        }
        Ok(end)
    })?;
    Ok(((!off_path).then_some(out), end))
}

/// The scalar value starting at `start`, when it is on the fast path, with its text; and where it ends.
fn scalar_at(b: &[u8], start: usize) -> Read<(Scalar, &[u8])> {
    let end = json_scan::skip_value(b, start)?;
    let text = &b[start..end];
    let s = match text[0] {
        b'0'..=b'9' if text.len() <= MAX_DIGITS && text.iter().all(u8::is_ascii_digit) => {
            Some(Scalar::Count(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))))
        }
        b'n' => Some(Scalar::Null),
        b't' | b'f' => Some(Scalar::Verbatim),
        b'"' if memchr::memchr(b'\\', text).is_none() => Some(Scalar::Verbatim),
        _ => None,
    };
    Ok((s.map(|s| (s, text)), end))
}

/// The usage columns and `extra` of the validated `usage` object at `span` of `b`, or None when it is
/// not an object of the fast-path shape (the caller then parses it).
pub(crate) fn openai_usage(b: &[u8], span: Range<usize>, names: &OpenAiNames) -> Option<Usage> {
    if b.get(span.start) != Some(&b'{') {
        return None;
    }
    let (top, _) = walk(b, span.start, |start| {
        if b[start] == b'{' {
            let (inner, end) = walk(b, start, |i| scalar_at(b, i))?;
            Ok((inner.map(Value::Object), end))
        } else {
            let (s, end) = scalar_at(b, start)?;
            Ok((s.map(|(s, text)| Value::Scalar(s, text)), end))
        }
    })
    .ok()?;
    let top = top?;
    let count = |k: &str| {
        top.iter().find_map(|(key, v)| match v {
            Value::Scalar(Scalar::Count(n), _) if *key == k.as_bytes() => Some(*n),
            _ => None,
        })
    };
    let nested = |obj: &str, k: &str| {
        top.iter()
            .find_map(|(key, v)| match v {
                Value::Object(inner) if *key == obj.as_bytes() => inner.iter().find_map(|(ik, (s, _))| match s {
                    Scalar::Count(n) if *ik == k.as_bytes() => Some(*n),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap_or(0)
    };
    let prompt = count(names.input).unwrap_or(0);
    let cached = nested(names.input_details, "cached_tokens");
    Some(Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: count(names.output).unwrap_or(0),
        cache_read_input_tokens: cached,
        cache_write_input_tokens: 0,
        reasoning_tokens: nested(names.output_details, "reasoning_tokens"),
        extra: extra(&top, names),
    })
}

/// A member of `extra`: a scalar's text, or a detail object's kept members.
enum Kept<'b> {
    Text(&'b [u8]),
    Object(Vec<(&'b [u8], &'b [u8])>),
}

/// `extra` as the serde map would print it: compact, keys in byte order.
fn extra(top: &[(&[u8], Value<'_>)], names: &OpenAiNames) -> String {
    let mut kept: Vec<(&[u8], Kept<'_>)> = Vec::new();
    for (k, v) in top {
        let key = std::str::from_utf8(k).unwrap_or_default();
        match v {
            _ if names.top.contains(&key) => {}
            Value::Scalar(Scalar::Null, _) => {}
            Value::Scalar(_, text) => kept.push((k, Kept::Text(text))),
            Value::Object(inner) => {
                let mut members: Vec<(&[u8], &[u8])> = inner
                    .iter()
                    .filter(|(ik, (s, _))| {
                        !matches!(s, Scalar::Null)
                            && !names.nested.iter().any(|&(o, f)| o == key && f.as_bytes() == *ik)
                    })
                    .map(|(ik, (_, text))| (*ik, *text))
                    .collect();
                if !members.is_empty() {
                    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    kept.push((k, Kept::Object(members)));
                }
            }
        }
    }
    kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (i, (k, v)) in kept.iter().enumerate() {
        push_key(&mut out, i, k);
        match v {
            Kept::Text(text) => out.extend_from_slice(text),
            Kept::Object(members) => {
                out.push(b'{');
                for (j, (ik, text)) in members.iter().enumerate() {
                    push_key(&mut out, j, ik);
                    out.extend_from_slice(text);
                }
                out.push(b'}');
            }
        }
    }
    out.push(b'}');
    // Keys and values are slices of a validated (UTF-8) body.
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// Appends `"key":` (after a comma unless it is the first member).
fn push_key(out: &mut Vec<u8>, index: usize, key: &[u8]) {
    if index > 0 {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::openai_usage;
    use crate::sse::json::{self, CHAT_USAGE, RESPONSES_USAGE};

    fn parsed(text: &str, names: &json::OpenAiNames) -> crate::records::Usage {
        let mut scratch = Vec::new();
        let usage = json::openai_usage(&json::parse(&mut scratch, text.as_bytes()).unwrap(), names);
        usage
    }

    #[test]
    fn the_usual_usage_object_takes_the_fast_path_and_reads_as_the_parse_does() {
        let text = r#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":null},"service":"x","z":true,"a":null}"#;
        let fast = openai_usage(text.as_bytes(), 0..text.len(), &CHAT_USAGE).expect("fast path");
        assert_eq!(fast, parsed(text, &CHAT_USAGE));
        assert_eq!(
            (fast.input_tokens, fast.cache_read_input_tokens, fast.output_tokens, fast.reasoning_tokens),
            (9, 3, 5, 2)
        );
        assert_eq!(
            fast.extra,
            r#"{"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0},"prompt_tokens_details":{"audio_tokens":0},"service":"x","z":true}"#
        );
        let empty = "{}";
        assert_eq!(openai_usage(empty.as_bytes(), 0..2, &CHAT_USAGE).unwrap().extra, "{}");
    }

    #[test]
    fn shapes_off_the_fast_path_are_left_to_the_parser() {
        for text in [
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":1e2}"#,
            r#"{"x":[1]}"#,
            r#"{"x":{"y":{"z":1}}}"#,
            r#"{"x":"a\"b"}"#,
            r#"{"p\u0072ompt_tokens":1}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"d":{"a":1,"a":2}}"#,
            r#"{"prompt_tokens":1234567890123456789}"#,
            "[]",
            "5",
        ] {
            assert_eq!(openai_usage(text.as_bytes(), 0..text.len(), &CHAT_USAGE), None, "{text}");
        }
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0u64..1_000_000).prop_map(|n| n.to_string()),
            1 => Just("null".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just(r#""tier-é""#.to_owned()),
            1 => Just("2.5".to_owned()),
            1 => Just("-3".to_owned()),
            1 => Just(r#""a\nb""#.to_owned()),
            1 => Just("[1,{}]".to_owned()),
        ]
    }

    fn object(keys: Vec<&'static str>, value: BoxedStrategy<String>) -> impl Strategy<Value = String> {
        proptest::collection::vec((proptest::sample::select(keys), value), 0..7).prop_map(|members| {
            let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", members.join(","))
        })
    }

    fn usage() -> impl Strategy<Value = String> {
        let inner = ["cached_tokens", "reasoning_tokens", "audio_tokens", "b", "é"];
        let value = prop_oneof![
            3 => scalar(),
            2 => object(inner.to_vec(), scalar().boxed()),
        ]
        .boxed();
        object(
            vec![
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "input_tokens",
                "output_tokens",
                "prompt_tokens_details",
                "completion_tokens_details",
                "input_tokens_details",
                "output_tokens_details",
                "service_tier",
                "Z",
            ],
            value,
        )
    }

    proptest! {
        /// Whenever the fast path answers, it answers what parsing the object answers, for both name sets.
        #[test]
        fn the_fast_path_agrees_with_the_parse(text in usage()) {
            for names in [&CHAT_USAGE, &RESPONSES_USAGE] {
                if let Some(fast) = openai_usage(text.as_bytes(), 0..text.len(), names) {
                    prop_assert_eq!(fast, parsed(&text, names), "{}", text);
                }
            }
        }
    }
}
