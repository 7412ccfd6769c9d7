//! Tests that the scanning inspector gives the old DOM inspector's results (`reference`), on edge cases
//! and on random bodies. Test-only.

use proptest::prelude::*;

use super::{inspect, inspect_lenient, reference, InspectError};
use crate::records::Api;

const APIS: [Api; 3] = [Api::ChatCompletions, Api::Responses, Api::Messages];

/// Asserts the fast path equals the reference on every API, and that simd-json's own DOM parser (what
/// the inspector used before the scanner) accepts and rejects exactly the same bodies.
fn same(body: &[u8]) -> Result<(), TestCaseError> {
    for api in APIS {
        let fast = inspect_lenient(api, body);
        let slow = reference::inspect(api, body);
        if fast == Err(InspectError::InvalidJson)
            && slow != Err(InspectError::InvalidJson)
            && has_glued_long_number(body)
        {
            // The documented difference (see `glued_long_numbers_are_rejected_where_simd_json_accepts_them`).
            continue;
        }
        prop_assert_eq!(&fast, &slow, "api {:?} body {:?}", api, String::from_utf8_lossy(body));
        let refused = match &slow {
            Err(e @ (InspectError::InvalidJson | InspectError::NotAnObject)) => Some(e.clone()),
            _ => None,
        };
        prop_assert_eq!(dom_verdict(body), refused, "accept/reject, body {:?}", String::from_utf8_lossy(body));
    }
    Ok(())
}

/// How simd-json's DOM parser judges `body`: not JSON, not an object, or accepted (None).
fn dom_verdict(body: &[u8]) -> Option<InspectError> {
    match simd_json::to_borrowed_value(&mut body.to_vec()) {
        Err(_) => Some(InspectError::InvalidJson),
        Ok(simd_json::BorrowedValue::Object(_)) => None,
        Ok(_) => Some(InspectError::NotAnObject),
    }
}

/// Whether `body` has a number long enough for simd-json's slow paths (18+ digits) with a byte glued
/// after it that cannot follow a JSON value: the one case where simd-json accepts what is not JSON.
fn has_glued_long_number(body: &[u8]) -> bool {
    // A number is digits, at most one fraction and at most one exponent (which no fraction follows): a
    // second `.` or exponent marker is a glued byte like any other.
    let (mut digits, mut prev, mut fraction, mut exponent) = (0, 0u8, false, false);
    for &c in body {
        let continues = match c {
            b'0'..=b'9' => true,
            b'.' => digits > 0 && prev.is_ascii_digit() && !fraction && !exponent,
            b'e' | b'E' => digits > 0 && prev.is_ascii_digit() && !exponent,
            b'+' | b'-' => digits > 0 && matches!(prev, b'e' | b'E'),
            _ => false,
        };
        if continues {
            digits += usize::from(c.is_ascii_digit());
            fraction |= c == b'.';
            exponent |= matches!(c, b'e' | b'E');
        } else {
            if digits >= 18 && !b" \t\r\n,]}".contains(&c) {
                return true;
            }
            (digits, fraction, exponent) = (0, false, false);
        }
        prev = c;
    }
    false
}

#[test]
fn edge_cases_agree_with_the_dom() {
    let cases: &[&str] = &[
        "",
        " ",
        "{}",
        " {} ",
        "{} x",
        "{}{}",
        "[]",
        "1",
        "-1.5e3",
        "\"s\"",
        "true",
        "null",
        "nul",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":[,1]}",
        "{\"a\":{\"b\":1]}",
        "{\"a\":[1}}",
        "{1:2}",
        "{\"a\":truex}",
        "{\"a\":tru}",
        "{\"a\":[true1]}",
        "{\"a\":nulll}",
        "{\"a\":01}",
        "{\"a\":-01}",
        "{\"a\":00}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":+1}",
        "{\"a\":1x}",
        "{\"a\":-0}",
        "{\"a\":-0.0e-0}",
        "{\"a\":1E+2}",
        "{\"a\":18446744073709551615}",
        "{\"a\":18446744073709551616}",
        "{\"a\":-9223372036854775808}",
        "{\"a\":-9223372036854775809}",
        "{\"a\":123456789012345678901234567890}",
        "{\"a\":1e308}",
        "{\"a\":1e309}",
        "{\"a\":-1e400}",
        "{\"a\":1e-400}",
        "{\"a\":1e4294967296}",
        "{\"a\":1e42949672960}",
        "{\"a\":0.12345678901234567890123}",
        "{\"a\":1234567890.1234567890123}",
        "{\"a\":1.7976931348623157e308}",
        "{\"a\":1.7976931348623159e308}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\'\"}",
        "{\"a\":\"\\u00e9\\u00E9\\/\\b\\f\\n\\r\\t\\\"\\\\\"}",
        "{\"a\":\"\\u00g0\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\ud83d\\ude00\"}",
        "{\"model\":\"\\ud83d\\ude00\\ud800\"}",
        "{\"model\":\"\\ud800x\"}",
        "{\"model\":\"\\ud800\\u0041\"}",
        "{\"model\":\"\\ud800\\ud800\"}",
        "{\"model\":\"\\ud800\\uffff\"}",
        "{\"model\":\"\\udc00\"}",
        "{\"model\":\"\\ud800\\uzzzz\"}",
        "{\"model\":\"\\u0000\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"\u{1}\"}",
        "{\"a\":\"\u{7f}\u{e9}\u{1F600}\"}",
        "\u{feff}{}",
        "{\"a\":1}\u{c}",
        "\t\r\n{\t\"model\"\r:\n\"m\"\n}\n",
        "{\"mod\\u0065l\":\"escaped key\"}",
        "{\"model\":null,\"stream\":null,\"background\":null}",
        "{\"model\":1}",
        "{\"model\":\"m\",\"stream\":\"yes\"}",
        "{\"model\":[],\"stream\":\"yes\"}",
        "{\"stream\":1,\"model\":{}}",
        "{\"background\":1}",
        "{\"background\":true,\"stream\":true}",
        "{\"stream_options\":{\"include_usage\":true}}",
        "{\"stream_options\":{\"include_usage\":1}}",
        "{\"stream_options\":[{\"include_usage\":true}]}",
        "{\"stream_options\":{\"x\":{\"include_usage\":true}}}",
        "{\"messages\":[]}",
        "{\"messages\":\"hi\"}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},1]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[1,\"x\",{\"type\":\"text\"},{\"type\":\"text\",\"text\":5},{\"type\":\"input_text\",\"text\":\"a\"},{\"text\":\"b\",\"type\":\"text\"}]}]}",
        "{\"messages\":[{\"role\":\"us\\u0065r\",\"content\":{\"text\":\"x\"}}]}",
        "{\"messages\":[{\"role\":\"user\",\"type\":\"message\",\"content\":\"q\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"type\":\"other\",\"content\":\"q\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"type\":3,\"content\":\"q\"}]}",
        "{\"input\":\"hello \\\"messages\\\" [{\"}",
        "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"q\"}]}]}",
        "{\"input\":5}",
        "{\"input\":[]}",
        "{\"x\":\"\\\"messages\\\":[{\",\"messages\":[{\"role\":\"user\",\"content\":\"]}\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"messages\"}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"a}]}",
    ];
    for case in cases {
        same(case.as_bytes()).unwrap();
    }
    // Duplicate keys: same acceptance as the old code, last occurrence read.
    same(br#"{"messages":[{"role":"user","content":"a"}],"messages":5}"#).unwrap();
    same(br#"{"model":"a","model":1}"#).unwrap();
    same(br#"{"model":1,"model":"a"}"#).unwrap();
    same(b"{\"a\":\"\xff\"}").unwrap();
    same(b"{\"a\":\"\xc3\"}").unwrap();
    same(b"{\"a\":\"\xed\xa0\x80\"}").unwrap();
    same(b"{\xff}").unwrap();
    same(b"{\"a\":1}\0").unwrap();
}

#[test]
fn duplicate_keys_take_the_last_like_the_provider_and_the_edit() {
    let body = br#"{"model":"a","stream":true,"stream_options":{"include_usage":true},"model":"b","stream":false,
        "stream_options":{"include_usage":true,"include_usage":false},
        "messages":[{"role":"user","content":"first"}],"messages":[{"role":"assistant","role":"user","content":"x","content":"second"}]}"#;
    let i = inspect_lenient(Api::ChatCompletions, body).unwrap();
    assert_eq!((i.model.as_str(), i.stream, i.include_usage, i.prompt.as_deref()), ("b", false, false, Some("second")));
    assert_eq!(Ok(i), reference::inspect(Api::ChatCompletions, body));
    // The edit agrees: it rewrites the last include_usage, which the inspector reported false.
    let lenient = super::scan_request(Api::ChatCompletions, body, false).unwrap();
    let edited = super::with_include_usage(&lenient, body).unwrap();
    assert!(inspect_lenient(Api::ChatCompletions, &edited).unwrap().include_usage);
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    const DEPTH: usize = 100_000;
    let mut body = br#"{"model":"m","x":"#.to_vec();
    body.extend(std::iter::repeat_n(b'[', DEPTH));
    body.extend(std::iter::repeat_n(b']', DEPTH));
    body.extend_from_slice(br#","messages":[{"role":"user","content":"deep"}]}"#);
    assert_eq!(inspect(Api::Messages, &body).map(|i| i.info), Err(InspectError::TooDeep));
    // Deep but within the limit is read normally.
    let mut ok = br#"{"model":"m","x":"#.to_vec();
    ok.extend(std::iter::repeat_n(&b"{\"a\":"[..], 100).flatten());
    ok.extend_from_slice(b"1");
    ok.extend(std::iter::repeat_n(b'}', 100));
    ok.extend_from_slice(br#","messages":[{"role":"user","content":"deep"}]}"#);
    let i = inspect(Api::Messages, &ok).unwrap().info;
    assert_eq!((i.model.as_str(), i.prompt.as_deref()), ("m", Some("deep")));
    // Unbalanced or mismatched at depth, or deep at the root: refused, not a crash.
    let mut open = br#"{"x":"#.to_vec();
    open.extend(std::iter::repeat_n(b'[', DEPTH));
    assert_eq!(inspect(Api::Messages, &open).map(|i| i.info), Err(InspectError::TooDeep));
    let mut mismatched = open.clone();
    mismatched.extend(std::iter::repeat_n(b']', DEPTH - 1));
    mismatched.extend_from_slice(b"}}");
    assert_eq!(inspect(Api::Messages, &mismatched).map(|i| i.info), Err(InspectError::TooDeep));
    let mut root = vec![b'['; DEPTH];
    root.extend(std::iter::repeat_n(b']', DEPTH));
    assert_eq!(inspect(Api::Messages, &root).map(|i| i.info), Err(InspectError::TooDeep));
    assert_eq!(inspect_lenient(Api::Messages, br#"[[1]]"#), Err(InspectError::NotAnObject));
}

/// A JSON value whose strings and numbers are kept as rendered text (escapes chosen by the strategy).
#[derive(Debug, Clone)]
enum J {
    Lit(&'static str),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// Renders with whitespace drawn in turn from `ws`.
    fn render(&self, out: &mut String, ws: &[&str], n: &mut usize) {
        let pad = |out: &mut String, n: &mut usize| {
            if !ws.is_empty() {
                out.push_str(ws[*n % ws.len()]);
                *n += 1;
            }
        };
        match self {
            J::Lit(l) => out.push_str(l),
            J::Num(s) => out.push_str(s),
            J::Str(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            J::Arr(items) => {
                out.push('[');
                for (k, v) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    pad(out, n);
                    v.render(out, ws, n);
                    pad(out, n);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (k, (key, v)) in members.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    pad(out, n);
                    out.push('"');
                    out.push_str(key);
                    out.push('"');
                    pad(out, n);
                    out.push(':');
                    pad(out, n);
                    v.render(out, ws, n);
                    pad(out, n);
                }
                out.push('}');
            }
        }
    }

    /// The same value with only the first member of each decoded key kept (no duplicate keys).
    fn dedup(self) -> J {
        match self {
            J::Arr(items) => J::Arr(items.into_iter().map(J::dedup).collect()),
            J::Obj(members) => {
                let mut seen = std::collections::HashSet::new();
                J::Obj(
                    members
                        .into_iter()
                        .filter(|(k, _)| seen.insert(serde_json::from_str::<String>(&format!("\"{k}\"")).ok()))
                        .map(|(k, v)| (k, v.dedup()))
                        .collect(),
                )
            }
            other => other,
        }
    }
}

/// String contents as rendered: plain text, unicode, every escape, and text that looks like JSON.
fn string_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z ]{0,8}",
        Just("\\\"messages\\\":[{".to_owned()),
        Just("]}{[,:".to_owned()),
        Just("\\\\".to_owned()),
        Just("\\\\\\\"".to_owned()),
        Just("\\/\\b\\f\\n\\r\\t".to_owned()),
        Just("\\u00e9\\u00E9\\u0000\\u001f".to_owned()),
        Just("\\ud83d\\ude00".to_owned()),
        Just("\\ud800".to_owned()),
        Just("\\ud800\\uffff".to_owned()),
        Just("é€😀\u{7f}".to_owned()),
        "\\PC{0,3}".prop_map(|s| s.replace(['"', '\\'], "")),
    ];
    proptest::collection::vec(piece, 0..4).prop_map(|v| v.concat())
}

/// Numbers in every JSON form, including ones simd-json rejects for their value.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        ("-?(0|[1-9][0-9]{0,24})", "(\\.[0-9]{1,22})?", "([eE][+-]?[0-9]{1,4})?").prop_map(|(a, b, c)| a + &b + &c),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "model", "stream", "background", "stream_options", "include_usage", "messages", "input", "role",
            "content", "type", "text", "mod\\u0065l", "str\\u0065am", "messages ", "",
        ])
        .prop_map(str::to_owned),
        1 => string_text(),
    ]
}

/// Any JSON value, with request-shaped keys likely.
fn value() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["true", "false", "null"]).prop_map(J::Lit),
        number().prop_map(J::Num),
        string_text().prop_map(J::Str),
        prop::sample::select(vec!["user", "assistant", "us\\u0065r", "text", "input_text", "message"])
            .prop_map(|s| J::Str(s.to_owned())),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            proptest::collection::vec((key(), inner), 0..6).prop_map(J::Obj),
        ]
    })
}

/// A message or Responses item: role, content (string or parts), maybe a type, maybe extra fields.
fn message() -> impl Strategy<Value = J> {
    let part = (prop::sample::select(vec!["text", "input_text", "image_url"]), string_text(), value()).prop_map(
        |(t, text, extra)| {
            J::Obj(vec![("type".into(), J::Str(t.into())), ("text".into(), J::Str(text)), ("x".into(), extra)])
        },
    );
    let content =
        prop_oneof![string_text().prop_map(J::Str), proptest::collection::vec(part, 0..4).prop_map(J::Arr), value(),];
    let member = prop_oneof![
        prop::sample::select(vec!["user", "assistant", "us\\u0065r"])
            .prop_map(|r| ("role".to_owned(), J::Str(r.into()))),
        content.prop_map(|c| ("content".to_owned(), c)),
        prop::sample::select(vec!["message", "function_call_output"])
            .prop_map(|t| ("type".to_owned(), J::Str(t.into()))),
        (key(), value()),
    ];
    proptest::collection::vec(member, 0..5).prop_map(J::Obj)
}

/// A request body: the fields the inspector reads, with right and wrong types, among extra fields.
fn request() -> impl Strategy<Value = J> {
    let flag = || prop_oneof![prop::sample::select(vec!["true", "false", "null"]).prop_map(J::Lit), value(),];
    let member = prop_oneof![
        prop_oneof![string_text().prop_map(J::Str), value()].prop_map(|v| ("model".to_owned(), v)),
        flag().prop_map(|v| ("stream".to_owned(), v)),
        flag().prop_map(|v| ("background".to_owned(), v)),
        flag().prop_map(|v| ("stream_options".to_owned(), J::Obj(vec![("include_usage".into(), v)]))),
        proptest::collection::vec(message(), 0..4).prop_map(|m| ("messages".to_owned(), J::Arr(m))),
        prop_oneof![
            proptest::collection::vec(message(), 0..4).prop_map(J::Arr),
            string_text().prop_map(J::Str),
            value()
        ]
        .prop_map(|v| ("input".to_owned(), v)),
        (key(), value()),
    ];
    proptest::collection::vec(member, 0..8).prop_map(J::Obj)
}

fn whitespace() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n  "]), 0..5)
}

fn render(j: &J, ws: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    let mut n = 0;
    out.push_str(ws.first().copied().unwrap_or(""));
    j.render(&mut out, ws, &mut n);
    out.push_str(ws.last().copied().unwrap_or(""));
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_requests_agree_with_the_reference(j in request(), ws in whitespace()) {
        same(&render(&j, &ws))?;
    }

    #[test]
    fn random_requests_without_duplicates_agree_with_the_reference(j in request(), ws in whitespace()) {
        same(&render(&j.dedup(), &ws))?;
    }

    #[test]
    fn random_values_agree_with_the_reference(j in value(), ws in whitespace()) {
        same(&render(&j, &ws))?;
    }

    #[test]
    fn mutated_requests_agree_on_accept_and_reject(
        j in request(),
        ws in whitespace(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..3),
    ) {
        let mut body = render(&j, &ws);
        for (at, op, byte) in edits {
            const SPECIAL: &[u8] = b"{}[]\",:\\ -.e0\x01";
            let byte = if byte % 2 == 0 { SPECIAL[usize::from(byte / 2) % SPECIAL.len()] } else { byte };
            match op {
                0 if !body.is_empty() => { let k = at.index(body.len()); body[k] = byte; }
                1 => { let k = at.index(body.len() + 1); body.insert(k, byte); }
                _ if !body.is_empty() => { let k = at.index(body.len()); body.remove(k); }
                _ => {}
            }
        }
        same(&body)?;
    }

    #[test]
    fn arbitrary_bytes_agree_with_the_reference(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        same(&body)?;
    }

    #[test]
    fn json_alphabet_soup_agrees_with_the_reference(
        body in proptest::collection::vec(prop::sample::select(b"{}[]\",:\\ -.eE+0123456789tfnrulsa\n".to_vec()), 0..40),
    ) {
        let mut b = b"{\"a\":".to_vec();
        b.extend(body);
        same(&b)?;
        same(&b[5..])?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Long string values (the scanner reads strings 64 bytes at a time): runs of backslashes, quotes,
    /// escapes and control bytes land on every block boundary, valid or not.
    #[test]
    fn long_strings_agree_with_the_reference(
        pieces in proptest::collection::vec(prop_oneof![
            4 => "[a-z]{0,40}",
            1 => prop::sample::select(vec![
                "\\", "\\\\", "\\\\\\", "\"", "\\\"", "\\n", "\\u00e9", "\\ud83d\\ude00", "\\ud800", "\\udc00",
                "\\u12", "\\x", "\t", "\u{1}", "é", "😀", "{\"a\":[", "]}",
            ]).prop_map(str::to_owned),
        ], 0..24),
        key in prop::sample::select(vec!["model", "x", "input"]),
    ) {
        let text = pieces.concat();
        same(format!("{{\"{key}\":\"{text}\",\"stream\":true}}").as_bytes())?;
        same(format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{text}\"}}]}}").as_bytes())?;
    }
}

/// The one known difference: simd-json's slow number paths (integers of 19+ digits, floats of 19+
/// significant digits) never look at the byte after the number, so a letter or sign glued to such a
/// number is ignored and the body accepted. Such a body is not JSON; the scanner rejects it.
#[test]
fn glued_long_numbers_are_rejected_where_simd_json_accepts_them() {
    for body in [
        &br#"{"a":1.0000000000000000000x}"#[..],
        br#"{"a":[12345678901234567890.5e1true]}"#,
        br#"{"a":[10000000000000.00000e00000000E-00]}"#,
        br#"{"a":0.000000000000000000.21569809}"#,
        br#"{"a":[1000000000000000000-]}"#,
    ] {
        assert!(has_glued_long_number(body));
        for api in APIS {
            assert_eq!(inspect_lenient(api, body), Err(InspectError::InvalidJson));
            assert_eq!(dom_verdict(body), None);
            assert!(reference::inspect(api, body).is_ok());
        }
    }
}
