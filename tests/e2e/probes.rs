//! Probes and hostile-input bounds at the HTTP edge: HEAD answers carry no body (a pipelining client
//! stays in step), Claude Code's preconnect `HEAD` on a provider's base URL is answered quietly, an
//! HTTP/1.1 request without Host is refused, and a large request body is held in memory once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

const OPENAI_KEY: &str = "sk-probes-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-probes-0123456789";
const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";

/// A gateway with an openai and an anthropic instance on the mock.
fn gateway(mock: &MockUpstream, extra: &[(&str, &str)]) -> Gateway {
    let base = mock.base_url();
    let openai = format!("{base}/v1");
    let mut env = vec![
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", OPENAI_KEY),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", openai.as_str()),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_1_KEY", ANTHROPIC_KEY),
        ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", base.as_str()),
    ];
    env.extend_from_slice(extra);
    Gateway::start(&env)
}

/// Writes `bytes` on a fresh connection and reads until the gateway closes it.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The peak resident set of process `pid` so far, in bytes (`VmHWM` of /proc/PID/status).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A chat completions body of exactly `size` bytes whose bulk is a string field the gateway neither
/// records nor edits, and that string's length; `stream` makes the gateway add
/// `stream_options.include_usage` to it.
fn padded_chat_body(size: usize, stream: bool) -> (Vec<u8>, usize) {
    let start =
        format!(r#"{{"model":"gpt-4o","stream":{stream},"messages":[{{"role":"user","content":"hi"}}],"user":""#);
    let end = "\"}";
    let pad = size - start.len() - end.len();
    let mut body = start.into_bytes();
    body.resize(size - end.len(), b'x');
    body.extend_from_slice(end.as_bytes());
    (body, pad)
}

#[test]
fn a_32_mib_body_is_held_in_memory_about_once() {
    const BODY: usize = 32 << 20;
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_WORKERS", "1")]);
    let token = gw.token("mem");
    let auth = format!("Bearer {token}");
    let pid = gw.child.id();
    // A small request first, so that what every request allocates (pools, buffers, the sink's first
    // batch) is in the baseline and the growth below is the large body's.
    let mut c = Client::connect(gw.addr);
    assert_eq!(c.request("POST", CHAT, &[("Authorization", &auth)], &padded_chat_body(4096, true).0).status, 200);
    let before = peak_rss(pid);

    let mut pads = Vec::new();
    for stream in [true, false] {
        let (body, pad) = padded_chat_body(BODY, stream);
        pads.push(pad);
        let r = c.request("POST", CHAT, &[("Authorization", &auth)], &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    let edited: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(edited["stream_options"]["include_usage"], true, "the streamed body was edited");
    assert_eq!(edited["user"].as_str().map(str::len), Some(pads[0]), "and kept whole");
    assert_eq!(seen[2].body, padded_chat_body(BODY, false).0, "the other body went as sent");

    let growth = peak_rss(pid).saturating_sub(before);
    eprintln!("peak RSS growth for a {} MiB body: {:.1} MiB", BODY >> 20, growth as f64 / (1 << 20) as f64);
    assert!(
        growth < (BODY as u64) * 3 / 2,
        "a {} MiB body raised the gateway's peak RSS by {} MiB",
        BODY >> 20,
        growth >> 20
    );
}
