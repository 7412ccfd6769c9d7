//! Criterion benches for the request path's parsing (DESIGN §6): HTTP/1.1 head parsing, chunked body
//! decoding, request inspection (model, stream flag, prompt) and the surgical include_usage edit.
//! Bench-only code: inputs are built in memory, no I/O.

use std::hint::black_box;

use aibridged::providers::request::{inspect, with_include_usage};
use aibridged::records::Api;
use aibridged::runtime::http::{parse_request_head, write_chunk, ChunkedDecoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A head as Claude Code sends it (about 700 bytes, 16 headers).
const HEAD: &[u8] = b"POST /api/v2/aibridge/anthropic/v1/messages?beta=true HTTP/1.1\r\n\
host: gateway.internal.example.com:3000\r\n\
connection: keep-alive\r\n\
accept: application/json\r\n\
x-stainless-retry-count: 0\r\n\
x-stainless-timeout: 600\r\n\
x-stainless-lang: js\r\n\
x-stainless-package-version: 0.60.0\r\n\
x-stainless-os: Linux\r\n\
x-stainless-arch: x64\r\n\
x-stainless-runtime: node\r\n\
x-stainless-runtime-version: v22.17.0\r\n\
anthropic-dangerous-direct-browser-access: true\r\n\
anthropic-version: 2023-06-01\r\n\
authorization: Bearer aibr_0123456789ab_abcdefghijklmnopqrstuvwxyz012345\r\n\
x-app: cli\r\n\
user-agent: claude-cli/2.0.14 (external, cli)\r\n\
content-type: application/json\r\n\
anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14\r\n\
x-claude-code-session-id: 6f1c9a52-4d3e-4a8e-9c1f-0b7e2d5a9e31\r\n\
accept-encoding: gzip, deflate, br, zstd\r\n\
content-length: 48213\r\n\r\n";

/// A conversation body of `turns` user/assistant pairs, like a coding agent's growing history.
fn chat_body(turns: usize, stream: bool) -> Vec<u8> {
    let mut messages = Vec::new();
    for i in 0..turns {
        messages.push(format!(r#"{{"role":"user","content":"Please look at file src/module_{i}.rs and explain what the function does, then suggest a fix for the bug in line {i}."}}"#));
        messages.push(format!(r#"{{"role":"assistant","content":"The function parses the configuration and returns a typed error when the value at index {i} is missing; the fix is to check the bounds first."}}"#));
    }
    messages.push(r#"{"role":"user","content":"Now write the test."}"#.to_string());
    format!(r#"{{"model":"gpt-4o","stream":{stream},"temperature":0.2,"messages":[{}]}}"#, messages.join(","))
        .into_bytes()
}

/// A coding agent's body of about `target` bytes: long turns of source code (escaped newlines and
/// quotes), tool calls and results as content parts, and a last user turn in parts.
fn agent_body(target: usize) -> Vec<u8> {
    let code =
        r#"fn main() {\n    let s = \"hello {world}\";\n    println!(\"{}\", s); // [x] é\u00e9\n}\n"#.repeat(20);
    let mut messages = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < target {
        let m = [
            format!(r#"{{"role":"user","content":[{{"type":"text","text":"Fix file {i}:\n{code}"}}]}}"#),
            format!(
                r#"{{"role":"assistant","content":"Done: {code}","tool_calls":[{{"id":"call_{i}","type":"function","function":{{"name":"edit","arguments":"{{\"path\":\"src/{i}.rs\",\"n\":{i}}}"}}}}]}}"#
            ),
            format!(r#"{{"role":"tool","tool_call_id":"call_{i}","content":"ok {i} 1.5e3 true null"}}"#),
        ];
        for m in m {
            len += m.len() + 1;
            messages.push(m);
        }
        i += 1;
    }
    messages.push(r#"{"role":"user","content":[{"type":"text","text":"Now run the tests."}]}"#.to_string());
    format!(
        r#"{{"model":"gpt-4o","stream":true,"temperature":0.2,"tools":[{{"type":"function","function":{{"name":"edit","parameters":{{"type":"object","properties":{{"path":{{"type":"string"}}}}}}}}}}],"messages":[{}]}}"#,
        messages.join(",")
    )
    .into_bytes()
}

/// The inspector before the scanner (a full simd-json DOM), benched beside the current one so the
/// speedup is a ratio measured in the same run.
mod dom {
    use aibridged::providers::request::InspectError;
    use aibridged::records::{Api, RequestInfo};
    use simd_json::prelude::*;
    use simd_json::BorrowedValue;

    pub fn inspect(api: Api, body: &[u8]) -> Result<RequestInfo, InspectError> {
        let mut copy = body.to_vec();
        let v = simd_json::to_borrowed_value(&mut copy).map_err(|_| InspectError::InvalidJson)?;
        if v.as_object().is_none() {
            return Err(InspectError::NotAnObject);
        }
        let model = match v.get("model") {
            None => String::new(),
            Some(m) if m.is_null() => String::new(),
            Some(m) => m.as_str().ok_or(InspectError::WrongType("model"))?.to_owned(),
        };
        let stream = bool_field(&v, "stream")?;
        let background = api == Api::Responses && bool_field(&v, "background")?;
        let include_usage = api == Api::ChatCompletions
            && v.get("stream_options").and_then(|o| o.get("include_usage")).and_then(|b| b.as_bool()).unwrap_or(false);
        let prompt = match api {
            Api::ChatCompletions | Api::Messages => v.get("messages").and_then(last_user_message),
            Api::Responses => match v.get("input") {
                Some(BorrowedValue::String(s)) => Some(s.to_string()),
                Some(items) => last_user_message(items),
                None => None,
            },
        };
        Ok(RequestInfo { model, stream, prompt, background, include_usage })
    }

    fn bool_field(v: &BorrowedValue<'_>, key: &'static str) -> Result<bool, InspectError> {
        match v.get(key) {
            None => Ok(false),
            Some(b) if b.is_null() => Ok(false),
            Some(b) => b.as_bool().ok_or(InspectError::WrongType(key)),
        }
    }

    fn last_user_message(list: &BorrowedValue<'_>) -> Option<String> {
        let last = list.as_array()?.last()?;
        if let Some(t) = last.get("type").and_then(|t| t.as_str()) {
            if t != "message" {
                return None;
            }
        }
        if last.get("role").and_then(|r| r.as_str()) != Some("user") {
            return None;
        }
        let content = last.get("content")?;
        if let Some(s) = content.as_str() {
            return Some(s.to_owned());
        }
        let parts: Vec<&str> = content
            .as_array()?
            .iter()
            .filter(|p| matches!(p.get("type").and_then(|t| t.as_str()), Some("text" | "input_text")))
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect();
        if parts.is_empty() {
            None
        } else {
            Some(parts.join("\n"))
        }
    }
}

fn bench_heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_head");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_request_head/claude_code", |b| {
        b.iter(|| black_box(parse_request_head(black_box(HEAD)).unwrap().unwrap()))
    });
    g.finish();
}

fn bench_chunked(c: &mut Criterion) {
    const EVENT: &[u8] = b"data: {\"x\":1}\n\n";
    let payload: Vec<u8> = (0..1 << 20).map(|i| EVENT[i % EVENT.len()]).collect();
    let mut framed = Vec::new();
    for piece in payload.chunks(300) {
        write_chunk(&mut framed, piece);
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    let mut g = c.benchmark_group("http_chunked");
    g.throughput(Throughput::Bytes(framed.len() as u64));
    g.bench_function("decode/300B_chunks", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            let mut n = 0usize;
            for part in framed.chunks(4096) {
                d.decode(part, &mut |data: &[u8]| n += data.len()).unwrap();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn bench_inspect(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_inspect");
    let bodies = [
        ("chat/1_turns".to_owned(), chat_body(1, true)),
        ("chat/50_turns".to_owned(), chat_body(50, true)),
        ("chat/1MB".to_owned(), chat_body(3500, true)),
        ("agent/1MB".to_owned(), agent_body(1 << 20)),
    ];
    for (name, body) in &bodies {
        assert_eq!(inspect(Api::ChatCompletions, body), dom::inspect(Api::ChatCompletions, body));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name.as_str(), |b| {
            b.iter(|| black_box(inspect(Api::ChatCompletions, black_box(body)).unwrap()))
        });
        g.bench_function(format!("bench-reference/{name}"), |b| {
            b.iter(|| black_box(dom::inspect(Api::ChatCompletions, black_box(body)).unwrap()))
        });
    }
    for turns in [1usize, 50] {
        let body = chat_body(turns, true);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("include_usage/{turns}_turns"), |b| {
            b.iter(|| black_box(with_include_usage(black_box(&body))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_heads, bench_chunked, bench_inspect);
criterion_main!(benches);
