//! Criterion benches for the SSE scanner and the per-API observers (README "Performance": bytes/s per core). Each
//! runs over a realistic, text-heavy ~1 MB stream cut into 1–4 KB chunks, as a relay would read it.
//! Bench-only code: builds its inputs in memory, no I/O.

use std::hint::black_box;

use aibridged::records::Api;
use aibridged::sse::{SseScanner, StreamObserver};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Size each synthetic stream grows to.
const STREAM_BYTES: usize = 1 << 20;

/// Words of the synthetic answer; deltas are one to three words, like real token streams.
const WORDS: &[&str] = &[
    "The",
    " scanner",
    " finds",
    " event",
    " boundaries",
    " with",
    " memchr",
    ",",
    " and",
    " only",
    " events",
    " that",
    " carry",
    " usage",
    " or",
    " tools",
    " are",
    " parsed",
    ".",
    "\\n",
    " It's",
    " \\\"fast\\\"",
    " enough",
    " for",
    " io_uring",
    " relays",
    " at",
    " line",
    " rate",
    "!",
];

fn delta_text(i: usize) -> String {
    (0..1 + i % 3).map(|k| WORDS[(i * 7 + k) % WORDS.len()]).collect()
}

fn chat_stream() -> Vec<u8> {
    let mut s = String::new();
    let head = r#""id":"chatcmpl-CgTq1bHn2sOe6cXkJvV0yqK3mR9aB","object":"chat.completion.chunk","created":1764221000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_cbf1785567""#;
    s += &format!("data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n");
    let mut i = 0;
    while s.len() < STREAM_BYTES {
        s += &format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n",
            delta_text(i)
        );
        i += 1;
    }
    s += &format!("data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":24,\"completion_tokens\":{i},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0}}}}}}\n\ndata: [DONE]\n\n", 24 + i);
    s.into_bytes()
}

fn responses_stream() -> Vec<u8> {
    let mut s = String::new();
    let rid = "resp_68f1c2a9d4e08190b5c3a7e2f1d0c4b30e5a7f9d2c1b8e46";
    s += &format!("event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"id\":\"{rid}\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":null}},\"sequence_number\":0}}\n\n");
    let mut i = 1;
    while s.len() < STREAM_BYTES {
        s += &format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_68f1c2aa1b2c8190a7d4e3f2c1b0a9d8\",\"output_index\":0,\"content_index\":0,\"delta\":\"{}\",\"logprobs\":[],\"obfuscation\":\"xK2\",\"sequence_number\":{i}}}\n\n",
            delta_text(i)
        );
        i += 1;
    }
    s += &format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"id\":\"{rid}\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"usage\":{{\"input_tokens\":37,\"input_tokens_details\":{{\"cached_tokens\":0}},\"output_tokens\":{i},\"output_tokens_details\":{{\"reasoning_tokens\":0}},\"total_tokens\":{}}}}},\"sequence_number\":{i}}}\n\n", 37 + i);
    s.into_bytes()
}

fn messages_stream() -> Vec<u8> {
    let mut s = String::new();
    s += "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n";
    s += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    let mut i = 0;
    while s.len() < STREAM_BYTES {
        s += &format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            delta_text(i)
        );
        i += 1;
    }
    s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    s += &format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{i}}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n");
    s.into_bytes()
}

/// Cuts a stream into 1–4 KB chunks (deterministic sizes), ignoring event boundaries as TCP does.
fn chunks(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut at, mut x) = (0usize, 0x9E37_79B9u32);
    while at < stream.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (1024 + (x as usize % 3073)).min(stream.len() - at);
        out.push(&stream[at..at + n]);
        at += n;
    }
    out
}

fn bench(c: &mut Criterion) {
    let streams = [
        ("chat", Api::ChatCompletions, chat_stream()),
        ("responses", Api::Responses, responses_stream()),
        ("messages", Api::Messages, messages_stream()),
    ];
    let mut g = c.benchmark_group("sse");
    for (name, api, stream) in &streams {
        let parts = chunks(stream);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(format!("scanner/{name}"), |b| {
            b.iter(|| {
                let mut s = SseScanner::new();
                let mut n = 0usize;
                for p in &parts {
                    s.feed(black_box(p), |e| n += e.data.len());
                }
                black_box(n)
            })
        });
        g.bench_function(format!("observer/{name}"), |b| {
            b.iter(|| {
                let mut o = StreamObserver::new(*api);
                for p in &parts {
                    o.on_chunk(black_box(p));
                }
                let obs = o.finish();
                assert!(obs.complete && obs.usage.is_some());
                black_box(obs)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
