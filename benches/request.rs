//! Criterion benches for the request path's parsing: HTTP/1.1 head parsing, chunked body decoding,
//! request inspection (model, stream flag, prompt) and the surgical edits (include_usage, the Bedrock
//! rewrite), with simd-json's DOM parse as the yardstick for the inspector.
//! Bench-only code: inputs are built in memory, no I/O.

use std::hint::black_box;

use aibridged::providers::bedrock::translate_request;
use aibridged::providers::bedrock::BedrockConfig;
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
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name.as_str(), |b| {
            b.iter(|| black_box(inspect(Api::ChatCompletions, black_box(body)).unwrap()))
        });
        // What the inspector cost before the scanner: building simd-json's DOM of the body (its lookups
        // after that are negligible), the yardstick the scanner's speedup is read against.
        g.bench_function(format!("simd-json-dom/{name}"), |b| {
            b.iter(|| {
                let mut copy = black_box(body).clone();
                let parsed = simd_json::to_borrowed_value(&mut copy).is_ok();
                black_box(parsed)
            })
        });
    }
    for turns in [1usize, 50] {
        let body = chat_body(turns, true);
        let inspection = inspect(Api::ChatCompletions, &body).unwrap();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("include_usage/{turns}_turns"), |b| {
            b.iter(|| black_box(with_include_usage(&inspection, black_box(&body))))
        });
        g.bench_function(format!("inspect+include_usage/{turns}_turns"), |b| {
            b.iter(|| {
                let inspection = inspect(Api::ChatCompletions, black_box(&body)).unwrap();
                black_box(with_include_usage(&inspection, &body))
            })
        });
        g.bench_function(format!("inspect+bedrock_rewrite/{turns}_turns"), |b| {
            b.iter(|| {
                let inspection = inspect(Api::Messages, black_box(&body)).unwrap();
                black_box(translate_request(&bedrock_config(), &inspection, &body).unwrap())
            })
        });
    }
    g.finish();
}

/// A Bedrock instance's settings, for the rewrite bench.
fn bedrock_config() -> BedrockConfig {
    BedrockConfig {
        region: None,
        base_url: None,
        credentials: Vec::new(),
        model: "global.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        small_fast_model: "global.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
    }
}

criterion_group!(benches, bench_heads, bench_chunked, bench_inspect);
criterion_main!(benches);
