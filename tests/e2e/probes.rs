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
    Gateway::start_on(&mock.base_url(), (OPENAI_KEY, ANTHROPIC_KEY), extra)
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
    status_bytes(pid, "VmHWM:")
}

/// A `/proc/PID/status` size field, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Resets the process's peak RSS to its current RSS (Linux: `5` into `/proc/PID/clear_refs`) and returns
/// that RSS, so that the next peak is one request's own.
fn reset_peak_rss(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS through clear_refs");
    status_bytes(pid, "VmRSS:")
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

    // Each request's peak over what was resident just before it: a body the allocator keeps resident
    // after it was freed is in the next baseline, not counted as a second copy.
    let mut pads = Vec::new();
    for stream in [true, false] {
        let (body, pad) = padded_chat_body(BODY, stream);
        pads.push(pad);
        let before = reset_peak_rss(pid);
        let r = c.request("POST", CHAT, &[("Authorization", &auth)], &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let growth = peak_rss(pid).saturating_sub(before);
        eprintln!(
            "peak RSS growth for a {} MiB body (stream {stream}): {:.1} MiB",
            BODY >> 20,
            growth as f64 / (1 << 20) as f64
        );
        assert!(
            growth < (BODY as u64) * 3 / 2,
            "a {} MiB body (stream {stream}) raised the gateway's peak RSS by {} MiB",
            BODY >> 20,
            growth >> 20
        );
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    let edited: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(edited["stream_options"]["include_usage"], true, "the streamed body was edited");
    assert_eq!(edited["user"].as_str().map(str::len), Some(pads[0]), "and kept whole");
    assert_eq!(seen[2].body, padded_chat_body(BODY, false).0, "the other body went as sent");
}

/// One response parsed off the wire: its status, its headers (names lowercased) and its body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The response at the front of `wire` and the bytes after it. An answer to HEAD has no body whatever
/// its Content-Length says; every other answer here is length-framed.
fn next_response(wire: &[u8], to_head: bool) -> (Answer, Vec<u8>) {
    let end = find(wire, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(wire)))
        + 4;
    let head = std::str::from_utf8(&wire[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let body_len = if to_head { 0 } else { len };
    assert!(wire.len() >= end + body_len, "body cut short in {:?}", String::from_utf8_lossy(wire));
    let body = wire[end..end + body_len].to_vec();
    (Answer { status, headers, body }, wire[end + body_len..].to_vec())
}

#[test]
fn a_pipelined_head_healthz_answers_headers_only_and_the_next_answer_parses() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let wire = raw_exchange(
        gw.addr,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (head, rest) = next_response(&wire, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("15"), "the length a GET would get");
    assert!(
        rest.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "the next answer follows the head at once: {:?}",
        String::from_utf8_lossy(&rest)
    );
    let (get, rest) = next_response(&rest, false);
    assert_eq!((get.status, get.body.as_slice()), (200, &br#"{"status":"ok"}"#[..]));
    assert_eq!(get.header("connection"), Some("close"));
    assert!(rest.is_empty(), "nothing after the last answer: {:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn preconnect_heads_on_a_providers_base_url_are_answered_quietly_without_auth() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("RUST_LOG", "debug")]);
    // No credential: Claude Code's preconnect carries none. Pipelined on one connection, so any body
    // bytes in an answer to HEAD would break the parse of the ones after it.
    let wire = raw_exchange(
        gw.addr,
        b"HEAD /api/v2/aibridge/anthropic HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /api/v2/aibridge/openai/ HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /api/v2/aibridge/nosuch HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (probe, rest) = next_response(&wire, true);
    assert_eq!((probe.status, probe.header("content-length")), (200, Some("0")));
    let (probe, rest) = next_response(&rest, true);
    assert_eq!((probe.status, probe.header("content-length")), (200, Some("0")), "with a trailing slash");
    let (unknown, rest) = next_response(&rest, true);
    assert_eq!(unknown.status, 404, "an unknown NAME is still unknown");
    assert_ne!(unknown.header("content-length"), Some("0"), "announcing the error body it leaves out");
    let (health, rest) = next_response(&rest, false);
    assert_eq!((health.status, health.body.as_slice(), rest.len()), (200, &br#"{"status":"ok"}"#[..], 0));
    assert!(mock.requests().is_empty(), "probes reach no upstream");

    // Only the unknown NAME is logged as a refused route (logged before its answer was written).
    let mut log = Vec::new();
    wait_until("the 404 is logged", Duration::from_secs(10), || {
        log.extend(gw.drain_log());
        log.iter().any(|l| l.contains("request rejected") && l.contains("/api/v2/aibridge/nosuch"))
    });
    let rejected: Vec<&String> = log.iter().filter(|l| l.contains("request rejected")).collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
}

#[test]
fn http11_without_host_is_refused_and_http10_without_host_is_served() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let wire = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    let (refused, rest) = next_response(&wire, false);
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("connection"), Some("close"));
    let err: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("Host"), "{err}");
    assert!(rest.is_empty());

    // On a provider's route the refusal takes that provider's error shape, and nothing goes upstream.
    let wire =
        raw_exchange(gw.addr, b"POST /api/v2/aibridge/anthropic/v1/messages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    let (refused, _) = next_response(&wire, false);
    let err: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!((refused.status, err["type"].as_str()), (400, Some("error")), "{err}");
    assert!(mock.requests().is_empty());

    let wire = raw_exchange(gw.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    let (served, _) = next_response(&wire, false);
    assert_eq!(
        (served.status, served.body.as_slice()),
        (200, &br#"{"status":"ok"}"#[..]),
        "HTTP/1.0 has no Host requirement"
    );
}
