//! Tests that the scanning inspector gives the old DOM inspector's results (`reference`), on edge cases
//! and on random bodies. Test-only.

use proptest::prelude::*;

use super::{inspect, reference, InspectError};
use crate::records::Api;

const APIS: [Api; 3] = [Api::ChatCompletions, Api::Responses, Api::Messages];

/// Asserts the fast path equals the reference on every API, and that the verbatim old code accepts and
/// rejects exactly the same bodies (its results differ only in which duplicate key it reads).
fn same(body: &[u8]) -> Result<(), TestCaseError> {
    for api in APIS {
        let fast = inspect(api, body);
        let slow = reference::inspect(api, body);
        prop_assert_eq!(&fast, &slow, "api {:?} body {:?}", api, String::from_utf8_lossy(body));
        let dom = reference::inspect_dom(api, body);
        prop_assert_eq!(
            matches!(dom, Err(InspectError::InvalidJson | InspectError::NotAnObject)).then_some(&dom),
            matches!(slow, Err(InspectError::InvalidJson | InspectError::NotAnObject)).then_some(&slow),
            "accept/reject, body {:?}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

/// Same as `same`, and also equal to the verbatim old code (for bodies without duplicate keys).
fn same_as_dom(body: &[u8]) -> Result<(), TestCaseError> {
    same(body)?;
    for api in APIS {
        prop_assert_eq!(
            inspect(api, body),
            reference::inspect_dom(api, body),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
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
        same_as_dom(case.as_bytes()).unwrap();
    }
    // Duplicate keys: same acceptance as the old code, last occurrence read.
    same(br#"{"messages":[{"role":"user","content":"a"}],"messages":5}"#).unwrap();
    same(br#"{"model":"a","model":1}"#).unwrap();
    same(br#"{"model":1,"model":"a"}"#).unwrap();
    same_as_dom(b"{\"a\":\"\xff\"}").unwrap();
    same_as_dom(b"{\"a\":\"\xc3\"}").unwrap();
    same_as_dom(b"{\"a\":\"\xed\xa0\x80\"}").unwrap();
    same_as_dom(b"{\xff}").unwrap();
    same_as_dom(b"{\"a\":1}\0").unwrap();
}

#[test]
fn duplicate_keys_take_the_last_like_the_provider_and_the_edit() {
    let body = br#"{"model":"a","stream":true,"stream_options":{"include_usage":true},"model":"b","stream":false,
        "stream_options":{"include_usage":true,"include_usage":false},
        "messages":[{"role":"user","content":"first"}],"messages":[{"role":"assistant","role":"user","content":"x","content":"second"}]}"#;
    let i = inspect(Api::ChatCompletions, body).unwrap();
    assert_eq!((i.model.as_str(), i.stream, i.include_usage, i.prompt.as_deref()), ("b", false, false, Some("second")));
    assert_eq!(Ok(i), reference::inspect(Api::ChatCompletions, body));
    // The edit agrees: it rewrites the last include_usage, which the inspector reported false.
    let edited = super::with_include_usage(body).unwrap();
    assert!(inspect(Api::ChatCompletions, &edited).unwrap().include_usage);
}

#[test]
fn deep_nesting_is_iterative() {
    const DEPTH: usize = 100_000;
    let mut body = br#"{"model":"m","x":"#.to_vec();
    body.extend(std::iter::repeat_n(b'[', DEPTH));
    body.extend(std::iter::repeat_n(b']', DEPTH));
    body.extend_from_slice(br#","y":"#);
    body.extend(std::iter::repeat_n(&b"{\"a\":"[..], DEPTH).flatten());
    body.extend_from_slice(b"1");
    body.extend(std::iter::repeat_n(b'}', DEPTH));
    body.extend_from_slice(br#","messages":[{"role":"user","content":"deep"}]}"#);
    let i = inspect(Api::Messages, &body).unwrap();
    assert_eq!((i.model.as_str(), i.prompt.as_deref()), ("m", Some("deep")));
    // Unbalanced or mismatched at depth: invalid, not a crash.
    let mut open = br#"{"x":"#.to_vec();
    open.extend(std::iter::repeat_n(b'[', DEPTH));
    assert_eq!(inspect(Api::Messages, &open), Err(InspectError::InvalidJson));
    let mut mismatched = open.clone();
    mismatched.extend(std::iter::repeat_n(b']', DEPTH - 1));
    mismatched.extend_from_slice(b"}}");
    assert_eq!(inspect(Api::Messages, &mismatched), Err(InspectError::InvalidJson));
    let mut root = vec![b'['; DEPTH];
    root.extend(std::iter::repeat_n(b']', DEPTH));
    assert_eq!(inspect(Api::Messages, &root), Err(InspectError::NotAnObject));
}
