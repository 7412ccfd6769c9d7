//! Test-only proptest strategies for request bodies as raw JSON text: values, object members whose keys
//! are written with `\uXXXX` escapes for some characters, and a byte-for-byte check for edits. Shared by
//! the include_usage and Bedrock rewrite property tests; never compiled outside tests.

use std::collections::HashSet;
use std::ops::Range;

use proptest::prelude::*;

use super::Field;

/// `s` as a JSON string literal, each character whose flag in `escape` is set written as a `\uXXXX`
/// escape (a surrogate pair beyond the BMP; quotes, backslashes and control characters always).
pub fn quote(s: &str, escape: &[bool]) -> String {
    let mut out = String::from("\"");
    for (k, c) in s.chars().enumerate() {
        if escape.get(k).copied().unwrap_or(false) || c == '"' || c == '\\' || c < ' ' {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                // Both hex cases are JSON; the scanner must decode either.
                out.push_str(&if k % 2 == 0 { format!("\\u{u:04x}") } else { format!("\\u{u:04X}") });
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The key `name` as a string literal, some of its characters (maybe none, maybe all) escaped.
pub fn escaped_key(name: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |mask| quote(name, &mask))
}

/// Text with the characters that trip scanners: quotes, backslashes, brackets, controls, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\{}\\[\\]:,\n\t\u{1}é€😀]{0,12}"
}

/// Any JSON value as raw text: strings and keys written with random escapes, numbers as serde_json
/// prints them.
pub fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::Value::from(f).to_string()),
        (text(), proptest::collection::vec(any::<bool>(), 0..12)).prop_map(|(s, mask)| quote(&s, &mask)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((text(), proptest::collection::vec(any::<bool>(), 0..12), inner), 0..4).prop_map(
                |m| {
                    let members: Vec<String> = m.iter().map(|(k, mask, v)| format!("{}:{v}", quote(k, mask))).collect();
                    format!("{{{}}}", members.join(","))
                }
            ),
        ]
    })
}

/// The members of an object as (decoded key, raw `"key" : value` text), keys unique once decoded and
/// none of them in `exclude`. Keys are random text or the names the gateway reads, escaped at random.
pub fn raw_object(exclude: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, String)>> {
    let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    names.push("include_usage");
    let key = prop_oneof![2 => text(), 1 => prop::sample::select(names).prop_map(str::to_owned)];
    let ws = prop::sample::select(vec!["", " ", "\n\t"]);
    let member = (key, proptest::collection::vec(any::<bool>(), 0..20), ws, json_value());
    proptest::collection::vec(member, 0..7).prop_map(move |members| {
        let mut seen = HashSet::new();
        members
            .into_iter()
            .filter(|(k, ..)| !exclude.contains(&k.as_str()) && seen.insert(k.clone()))
            .map(|(k, mask, ws, v)| {
                let raw = format!("{}{ws}:{ws}{v}", quote(&k, &mask));
                (k, raw)
            })
            .collect()
    })
}

/// Whether `out` is `orig` with at most the bytes of `edited` replaced: everything before and after
/// that range copied byte for byte.
pub fn same_except(orig: &[u8], out: &[u8], edited: Range<usize>) -> bool {
    let tail = &orig[edited.end..];
    out.len() >= edited.start + tail.len() && out.starts_with(&orig[..edited.start]) && out.ends_with(tail)
}

#[test]
fn quote_writes_json_that_decodes_to_the_text() {
    for (s, mask) in [("stream", vec![false, false, false, false, true]), ("é😀\"\\\n", vec![true, true])] {
        let q = quote(s, &mask);
        assert_eq!(serde_json::from_str::<String>(&q).unwrap(), s, "{q}");
    }
    assert_eq!(quote("stream", &[false, false, false, false, true]), r#""stre\u0061m""#);
}
