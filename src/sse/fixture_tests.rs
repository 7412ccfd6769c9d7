//! Fixture tests: every stream under `tests/fixtures/<api>/<case>/stream.sse` is observed whole, split at
//! every byte into two chunks, and fed one byte at a time; each `body.json` goes through `observe_json`.
//! All must give exactly `expected.json`. Test-only; reads fixture files, nothing else.
//!
//! `BLESS=1 cargo test --lib sse::fixture_tests` rewrites `expected.json` from the current output (review
//! the diff before committing).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{observe_json, StreamObserver};
use crate::records::{Api, Observation};

fn to_json(o: &Observation) -> Value {
    json!({
        "msg_id": o.msg_id,
        "model": o.model,
        "usage": o.usage.as_ref().map(|u| json!({
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_write_input_tokens": u.cache_write_input_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "extra": u.extra,
        })),
        "tools": o.tools.iter().map(|t| json!({"id": t.id, "name": t.name, "input": t.input})).collect::<Vec<_>>(),
        "thoughts": o.thoughts.iter().map(|t| json!({"content": t.content, "source": t.source})).collect::<Vec<_>>(),
        "error": o.error,
        "complete": o.complete,
    })
}

fn observe_chunks<'a>(api: Api, chunks: impl IntoIterator<Item = &'a [u8]>) -> Observation {
    let mut o = StreamObserver::new(api);
    for c in chunks {
        o.on_chunk(c);
    }
    o.finish()
}

fn cases(api_dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(api_dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn check(case: &Path, got: &Observation) {
    let got = to_json(got);
    let path = case.join("expected.json");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap();
    assert_eq!(got, want, "{}", case.display());
}

fn run_api(api: Api, dir: &str) -> usize {
    let mut n = 0;
    for case in cases(dir) {
        if let Ok(stream) = std::fs::read(case.join("stream.sse")) {
            let whole = observe_chunks(api, [stream.as_slice()]);
            check(&case, &whole);
            for i in 0..=stream.len() {
                let split = observe_chunks(api, [&stream[..i], &stream[i..]]);
                assert_eq!(split, whole, "{} split at {i}", case.display());
            }
            assert_eq!(observe_chunks(api, stream.chunks(1)), whole, "{} byte by byte", case.display());
            // As CRLF the stream means the same: line ends are the scanner's business alone.
            let crlf: Vec<u8> =
                stream.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
            assert_eq!(observe_chunks(api, crlf.chunks(7)), whole, "{} as CRLF", case.display());
            n += 1;
        }
        if let Ok(body) = std::fs::read(case.join("body.json")) {
            check(&case, &observe_json(api, &body));
            n += 1;
        }
    }
    n
}

#[test]
fn chat_fixtures() {
    assert!(run_api(Api::ChatCompletions, "chat") >= 8);
}

#[test]
fn responses_fixtures() {
    assert!(run_api(Api::Responses, "responses") >= 9);
}

#[test]
fn messages_fixtures() {
    assert!(run_api(Api::Messages, "messages") >= 8);
}
