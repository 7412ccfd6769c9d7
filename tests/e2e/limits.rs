//! Bad input gets a clear answer, never a crash or a hang: unknown routes, oversized heads and bodies,
//! smuggling-shaped framing, slow heads, malformed JSON, background responses, a disabled bridge.

use std::io::{Read, Write};
use std::time::Duration;

use aibridged::mock::MockUpstream;

use crate::support::*;

fn gateway(mock: &MockUpstream, extra: &[(&str, &str)]) -> Gateway {
    let base = format!("{}/v1", mock.base_url());
    let mut env = vec![
        ("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"),
        ("CODER_AIBRIDGE_OPENAI_BASE_URL", base.as_str()),
    ];
    env.extend_from_slice(extra);
    Gateway::start(&env)
}

fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn unknown_routes_are_404_json_naming_the_route() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[]);
    let token = gw.token("alice");
    let auth = format!("Bearer {token}");
    for path in
        ["/api/v2/aibridge/nosuch/v1/chat/completions", "/api/v2/aibridge/openai/v1/embeddings", "/somewhere/else"]
    {
        let r = request(gw.addr, "POST", path, &[("Authorization", &auth)], b"{}");
        assert_eq!(r.status, 404, "{path}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        let route = path.rsplit('/').next().unwrap();
        assert!(msg.contains(route), "{msg} names {route}");
    }
    assert!(mock.requests().is_empty());
}

#[test]
fn oversized_and_malformed_requests() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_MAX_BODY_SIZE", "1024")]);
    let token = gw.token("bob");
    let auth = format!("Bearer {token}");

    // 413: a body over the limit.
    let big = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(4096));
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413);
    assert!(r.json()["error"]["message"].is_string());

    // 431: a head over 64 KiB.
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let out = raw_exchange(gw.addr, huge.as_bytes());
    assert!(out.starts_with("HTTP/1.1 431"), "{}", &out[..out.len().min(200)]);

    // 400: Content-Length together with Transfer-Encoding (request smuggling shape).
    let out = raw_exchange(gw.addr, b"POST /api/v2/aibridge/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // 400: garbage instead of HTTP.
    let out = raw_exchange(gw.addr, b"\x16\x03\x01 this is not http\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // 400: malformed JSON on an intercepted route, in the provider's shape; nothing goes upstream.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &auth)],
        b"{\"model\": ",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].is_string());

    // 501: background responses.
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/responses",
        &[("Authorization", &auth)],
        br#"{"model":"gpt-5","input":"hi","background":true}"#,
    );
    assert_eq!(r.status, 501);
    assert!(mock.requests().is_empty(), "none of these reached the provider");

    // Chunked request bodies are accepted.
    let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /api/v2/aibridge/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        std::str::from_utf8(body).unwrap()
    );
    let out = raw_exchange(gw.addr, req.as_bytes());
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(mock.requests().last().unwrap().body, body);
}

#[test]
fn a_slow_head_gets_408() {
    // The head timeout is shortened from its 10 s default; the answer must come when it expires.
    const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
    let mock = MockUpstream::start().unwrap();
    let gw = gateway(&mock, &[("CODER_AIBRIDGE_REQUEST_HEAD_TIMEOUT", "1s")]);
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t0 = std::time::Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let waited = t0.elapsed();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(waited >= HEAD_TIMEOUT && waited < Duration::from_secs(8), "408 after {waited:?}");
}

#[test]
fn a_disabled_bridge_answers_404_but_stays_healthy() {
    let mock = MockUpstream::start().unwrap();
    let base = format!("{}/v1", mock.base_url());
    // A disabled bridge refuses before authenticating, so the token is made before the gateway starts
    // (and is in the snapshot it loads first) rather than waited for.
    let (gw, tokens) = Gateway::start_with_tokens(
        &[
            ("CODER_AIBRIDGE_OPENAI_KEY", "sk-central-openai-0123456789"),
            ("CODER_AIBRIDGE_OPENAI_BASE_URL", base.as_str()),
            ("CODER_AIBRIDGE_ENABLED", "false"),
        ],
        &["carol"],
    );
    let token = &tokens[0];
    let r = request(
        gw.addr,
        "POST",
        "/api/v2/aibridge/openai/v1/chat/completions",
        &[("Authorization", &format!("Bearer {token}"))],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("disabled"));
    assert_eq!(request(gw.addr, "GET", "/healthz", &[], b"").status, 200);
}
