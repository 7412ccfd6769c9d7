//! Hostile clients and hostile upstreams: every bad input gets a clear answer in the provider's error
//! shape, never a crash, a hang or a lost record, and no secret reaches a log, a record or an error.
//! The hostile upstream is a tiny std::net server in this file, for what the mock cannot imitate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;

use crate::support::*;

const OPENAI_KEY: &str = "sk-robust-openai-SECRET-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-robust-SECRET-0123456789";
const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const MESSAGES: &str = "/api/v2/aibridge/anthropic/v1/messages";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
/// The hostile upstream serves at most this many connections, so its accept loop is bounded.
const HOSTILE_MAX_CONNS: usize = 64;

/// A gateway with an openai and an anthropic instance, both on `base` (an `http://host:port`).
fn gateway_on(base: &str, extra: &[(&str, &str)]) -> Gateway {
    Gateway::start_on(base, (OPENAI_KEY, ANTHROPIC_KEY), extra)
}

fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_alive(gw: &Gateway) {
    assert_eq!(request(gw.addr, "GET", "/healthz", &[], b"").status, 200, "the gateway still serves");
}

/// A hostile upstream: for each connection, reads one request head (and its Content-Length body unless
/// the mode starts with `early`), then lets `answer` write anything, chosen by the forwarded `x-hostile` header.
fn hostile(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(HOSTILE_MAX_CONNS) {
            let Ok(mut conn) = conn else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = Vec::new();
                let mut tmp = [0u8; 65536];
                let head_end = loop {
                    if let Some(i) = find(&buf, b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let mode = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-hostile:"))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if !mode.starts_with("early") {
                    while buf.len() < head_end + len {
                        match conn.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                }
                answer(&mode, &mut conn);
            });
        }
    });
    addr
}

const OK_BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

fn ok_json(extra_headers: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{OK_BODY}",
        OK_BODY.len()
    )
    .into_bytes()
}

#[test]
fn deeply_nested_json_is_refused_and_never_crashes_the_gateway() {
    let depth = 300_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let addr = hostile(move |mode, conn| {
        let body = format!(r#"{{"id":"x","usage":{{"prompt_tokens":1}},"pad":{deep}}}"#);
        let bytes = match mode {
            "deep-json" => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            _ => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\ndata: {body}\n\ndata: [DONE]\n\n",
                body.len() + 22
            ),
        };
        let _ = conn.write_all(bytes.as_bytes());
    });
    let gw = gateway_on(&format!("http://{addr}"), &[]);
    let token = gw.token("mallory");
    let auth = format!("Bearer {token}");

    // A client body nesting 300k levels: a 400 in each provider's shape, nothing sent upstream.
    let body = format!(r#"{{"model":"gpt-4o","messages":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
    let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("nests deeper"));
    let r = request(gw.addr, "POST", MESSAGES, &[("X-Api-Key", &token)], body.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], "[".repeat(1 << 20).as_bytes());
    assert_eq!(r.status, 400);
    assert_alive(&gw);

    // An upstream answering with such a body or stream event: relayed byte for byte, left unobserved.
    for (mode, req) in [("deep-json", CHAT_JSON), ("deep-sse", CHAT_STREAM)] {
        let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth), ("x-hostile", mode)], req.as_bytes());
        assert_eq!(r.status, 200, "{mode}");
        assert!(r.complete && r.body.len() > 2 * depth, "{mode}: the whole body reached the client");
        assert_alive(&gw);
    }
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", 2), 2);
}

#[test]
fn dot_segments_and_encoded_separators_never_reach_the_upstream() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start(&[
        ("CODER_AIBRIDGE_PROVIDER_0_TYPE", "openai"),
        ("CODER_AIBRIDGE_PROVIDER_0_KEY", OPENAI_KEY),
        ("CODER_AIBRIDGE_PROVIDER_0_BASE_URL", &format!("{}/v1", mock.base_url())),
        ("CODER_AIBRIDGE_PROVIDER_1_TYPE", "anthropic"),
        ("CODER_AIBRIDGE_PROVIDER_1_KEY", ANTHROPIC_KEY),
        ("CODER_AIBRIDGE_PROVIDER_1_BASE_URL", &format!("{}/proxy/anthropic", mock.base_url())),
    ]);
    let token = gw.token("mallory");
    let auth = format!("Bearer {token}");
    for (method, path) in [
        // An unrecorded chat call dressed as a pass-through.
        ("POST", "/api/v2/aibridge/openai/v1/conversations/../chat/completions"),
        ("POST", "/api/v2/aibridge/openai/v1/models/%2e%2e/chat/completions"),
        ("POST", "/api/v2/aibridge/openai/v1/responses/x/%2E%2E/%2e%2e/chat/completions"),
        // Climbing out of the instance's base path on a shared upstream host.
        ("GET", "/api/v2/aibridge/anthropic/v1/models/../../../../admin"),
        ("GET", "/api/v2/aibridge/openai/v1/models/..%2f..%2fadmin"),
        ("GET", "/api/v2/aibridge/openai/v1/models/.%5C..%5Cadmin"),
        ("GET", "/api/v2/aibridge/openai/v1/models/./gpt-4o"),
        ("GET", "/api/v2/aibridge/openai/v1/models/..;/..;/admin"),
    ] {
        let r =
            request(gw.addr, method, path, &[("Authorization", &auth), ("X-Api-Key", &token)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(r.json()["error"]["message"].is_string(), "{path}");
    }
    assert!(mock.requests().is_empty(), "nothing reached the upstream: {:?}", mock.requests());
    // Ordinary model names with dots still pass (the mock itself knows no such model).
    request(gw.addr, "GET", "/api/v2/aibridge/openai/v1/models/gpt-4.1", &[("Authorization", &auth)], b"");
    assert_eq!(mock.requests()[0].path, "/v1/models/gpt-4.1");
}

#[test]
fn duplicate_fields_the_gateway_reads_are_refused_so_records_match_what_the_provider_runs() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let token = gw.token("mallory");
    let auth = format!("Bearer {token}");
    for (path, body) in [
        // Streams without the usage the gateway asks for, if the gateway reads the first `stream`.
        (CHAT, r#"{"model":"gpt-4o","stream":false,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#),
        (
            CHAT,
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"include_usage":false},"messages":[]}"#,
        ),
        // Records one model while the provider runs another.
        (MESSAGES, r#"{"model":"claude-haiku-4-5","model":"claude-opus-4-1","max_tokens":5,"messages":[]}"#),
    ] {
        let r = request(gw.addr, "POST", path, &[("Authorization", &auth)], body.as_bytes());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains("appears more than once"), "{}", r.text());
    }
    assert!(mock.requests().is_empty());
    let n: i64 = db(&gw.db).query_row("SELECT COUNT(*) FROM aibridge_interceptions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "refused requests are not interceptions");
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let token = gw.token("pip");
    let post = |auth: &str, body: &str, extra: &str| {
        format!(
            "POST {CHAT} HTTP/1.1\r\nHost: x\r\n{auth}{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let good = format!("Authorization: Bearer {token}\r\n");
    let mut wire = String::new();
    wire.push_str("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    wire.push_str(&post("Authorization: Bearer aibr_nope_nope\r\n", CHAT_JSON, ""));
    wire.push_str(&post(&good, CHAT_STREAM, ""));
    wire.push_str("GET /api/v2/aibridge/openai/v1/nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    wire.push_str(&post(&good, CHAT_JSON, ""));
    wire.push_str(&post("", CHAT_JSON, ""));
    wire.push_str(&post(&good, CHAT_JSON, "x-mock-status: 429\r\n"));
    wire.push_str(&post(&good, CHAT_STREAM, "Connection: close\r\n"));
    wire.push_str("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); // after close: never answered

    let mut c = Client::connect(gw.addr);
    c.stream.write_all(wire.as_bytes()).unwrap();
    let statuses: Vec<u16> = (0..8).map(|_| c.read_response().status).collect();
    assert_eq!(statuses, [200, 401, 200, 404, 200, 401, 429, 200]);
    assert!(c.is_closed(), "Connection: close ends the pipeline");
    assert_eq!(mock.requests().len(), 4, "only the authenticated proxied calls went upstream");
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", 4), 4);
}

/// A keep-alive upstream that, after its first answer on each connection, writes a second, unrequested
/// response a little later; later requests on that connection get `late`-free answers. Says on the
/// returned channel each time it wrote an unrequested response.
fn desyncing_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (late_tx, late_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(HOSTILE_MAX_CONNS) {
            let Ok(mut conn) = conn else { continue };
            let late_tx = late_tx.clone();
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = Vec::new();
                let mut tmp = [0u8; 65536];
                for n in 0..8 {
                    // One request: head plus Content-Length body.
                    let end = loop {
                        if let Some(i) = find(&buf, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= i + 4 + len {
                                break i + 4 + len;
                            }
                        }
                        match conn.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&tmp[..k]),
                        }
                    };
                    buf.drain(..end);
                    if conn.write_all(&ok_json("")).is_err() {
                        return;
                    }
                    if n == 0 {
                        // The misbehaviour under test: the extra response comes a little after the real
                        // one, once the gateway may have put the connection back in its pool.
                        std::thread::sleep(Duration::from_millis(100));
                        let late = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"smuggled\":\"yes!!!\"}";
                        let _ = conn.write_all(late.as_bytes());
                        let _ = late_tx.send(());
                    }
                }
            });
        }
    });
    (addr, late_rx)
}

#[test]
fn bytes_an_upstream_sends_after_its_response_never_answer_the_next_request() {
    let (addr, late) = desyncing_upstream();
    let gw = gateway_on(&format!("http://{addr}"), &[("CODER_AIBRIDGE_WORKERS", "1")]);
    let token = gw.token("victim");
    let auth = format!("Bearer {token}");
    for i in 0..4 {
        let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), OK_BODY, "request {i} got another request's answer");
        // The next request goes out only once the stray bytes sit on the connection it could reuse.
        late.recv_timeout(Duration::from_secs(10)).expect("the upstream wrote its unrequested response");
    }
}

#[test]
fn a_client_giving_up_on_a_silent_upstream_is_noticed_at_once() {
    // The gateway starts watching the client after 100 ms of upstream silence (default 500 ms).
    const WATCH_AFTER: &str = "100ms";
    for driver in ["io_uring", "epoll"] {
        let (closed_tx, closed_rx) = std::sync::mpsc::channel::<Duration>();
        let closed_tx = std::sync::Mutex::new(closed_tx);
        let (arrived_tx, arrived_rx) = std::sync::mpsc::channel::<()>();
        let arrived_tx = std::sync::Mutex::new(arrived_tx);
        let addr = hostile(move |_mode, conn| {
            // Accept the request, never answer; report when the gateway drops the upstream call.
            let _ = arrived_tx.lock().unwrap().send(());
            let t = Instant::now();
            let mut tmp = [0u8; 1];
            let _ = conn.read(&mut tmp);
            let _ = closed_tx.lock().unwrap().send(t.elapsed());
        });
        let gw = gateway_on(
            &format!("http://{addr}"),
            &[("AIBRIDGED_IO_DRIVER", driver), ("CODER_AIBRIDGE_CLIENT_WATCH_AFTER", WATCH_AFTER)],
        );
        let token = gw.token("quitter");
        let auth = format!("Bearer {token}");
        {
            let mut c = Client::connect(gw.addr);
            c.send("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
            arrived_rx.recv_timeout(Duration::from_secs(10)).expect("the request reached the upstream");
        } // the client gives up while the upstream is silent
        let held = closed_rx.recv_timeout(Duration::from_secs(10)).expect("the gateway dropped the upstream call");
        assert!(held < Duration::from_secs(5), "{driver}: upstream call held {held:?} after the client left");
        assert_eq!(
            wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1),
            1,
            "{driver}"
        );
        assert_alive(&gw);
    }

    // A pipelined request queued behind a slow one is not mistaken for a close: both get answers. The
    // upstream's 400 ms is well past the watch delay, so the watch is running when the second request lands.
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[("CODER_AIBRIDGE_CLIENT_WATCH_AFTER", WATCH_AFTER)]);
    let token = gw.token("patient");
    let auth = format!("Bearer {token}");
    let mut c = Client::connect(gw.addr);
    c.send("POST", CHAT, &[("Authorization", &auth), ("x-mock-delay-ms", "400")], CHAT_JSON.as_bytes());
    wait_until("the slow request reached the upstream", Duration::from_secs(10), || mock.requests().len() == 1);
    c.send("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().status, 200);
}

fn hostile_answer(mode: &str, conn: &mut TcpStream) {
    let bytes: Vec<u8> = match mode {
        "bad-status" => b"HTTP/1.1 2x0 WHAT\r\n\r\n".to_vec(),
        "status-000" => b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "status-999" => b"HTTP/1.1 999 Big\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "huge-head" => format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024)).into_bytes(),
        "nul-header" => b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        "cl-and-te" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        "bad-chunk" => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: {\r\nZZZ\r\n"
                .to_vec()
        }
        "huge-chunk" => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\ndata"
                .to_vec()
        }
        "short-body" => {
            let mut b = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", OK_BODY.len() + 100)
                .into_bytes();
            b.extend_from_slice(OK_BODY.as_bytes());
            b
        }
        // This upstream serves one request per connection, so these answers say so: a connection it closes
        // unannounced right after answering would be pooled, and the next request written on it would end
        // in a 502 (a request that may have reached an upstream is never sent twice).
        "continue" => {
            let mut b = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n".to_vec();
            b.extend(ok_json("Connection: close\r\n"));
            b
        }
        "early" => ok_json("Connection: close\r\n"),
        "early-413" => {
            let e = r#"{"error":{"message":"request too large","type":"invalid_request_error"}}"#;
            format!("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{e}", e.len()).into_bytes()
        }
        "hop-by-hop" => ok_json(
            "Connection: close, X-Hop\r\nX-Hop: secret-hop\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\n",
        ),
        "no-content-with-body" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        "switching" => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nRAW".to_vec(),
        "pause" => {
            // One event, then a long thinking pause (the upstream behaviour under test).
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            );
            std::thread::sleep(Duration::from_secs(30));
            b"data: [DONE]\n\n".to_vec()
        }
        "firehose" => {
            // 64 MiB of events, far more than the socket buffers between gateway and client hold.
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
            let event = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "x".repeat(64 * 1024));
            for _ in 0..1024 {
                if conn.write_all(event.as_bytes()).is_err() {
                    return;
                }
            }
            b"data: [DONE]\n\n".to_vec()
        }
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    };
    let _ = conn.write_all(&bytes);
    // Part of the upstream's behaviour, not a wait for the test: the close comes a moment after the bytes,
    // as a separate event (it ends close-delimited bodies).
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn hostile_upstreams_get_clear_errors_and_every_interception_ends() {
    let addr = hostile(hostile_answer);
    let gw = gateway_on(&format!("http://{addr}"), &[("CODER_AIBRIDGE_MAX_BODY_SIZE", "16777216")]);
    let token = gw.token("victim");
    let auth = format!("Bearer {token}");
    let call = |mode: &str, body: &str| {
        let mut c = Client::connect(gw.addr);
        let r = c.request("POST", CHAT, &[("Authorization", &auth), ("x-hostile", mode)], body.as_bytes());
        (r, c)
    };

    // Broken heads: a 502 in OpenAI's shape, naming the upstream as the culprit.
    for mode in ["bad-status", "status-000", "status-999", "huge-head", "nul-header", "cl-and-te", "switching"] {
        let (r, _) = call(mode, CHAT_JSON);
        assert_eq!(r.status, 502, "{mode}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "upstream_error", "{mode}");
    }
    // Broken bodies after a good head: the client sees a cut response, never a complete-looking one.
    for mode in ["bad-chunk", "huge-chunk", "short-body"] {
        let (r, mut c) = call(mode, CHAT_STREAM);
        assert_eq!(r.status, 200, "{mode}");
        assert!(!r.complete, "{mode}: a cut body must not look complete");
        assert!(c.is_closed(), "{mode}: the client connection is closed after a cut body");
    }
    // Interim answers are skipped; an answer sent before the body was read still arrives.
    for mode in ["continue", "early"] {
        let (r, _) = call(mode, CHAT_JSON);
        assert_eq!((r.status, r.text()), (200, OK_BODY.to_string()), "{mode}");
    }
    // An upstream refusing a big body before reading it: its own answer reaches the client, not a 502.
    let big = format!(r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(8 << 20));
    for _ in 0..2 {
        let (r, _) = call("early-413", &big);
        assert_eq!(r.status, 413, "{}", r.text());
        assert_eq!(r.json()["error"]["message"], "request too large");
    }

    // Upstream hop-by-hop headers never reach the client.
    let (r, mut c) = call("hop-by-hop", CHAT_JSON);
    assert_eq!(r.status, 200);
    for name in ["x-hop", "keep-alive", "upgrade", "trailer", "proxy-connection", "connection"] {
        assert_eq!(r.header(name), None, "{name} leaked to the client");
    }
    // The upstream's `Connection: close` closes only the upstream leg.
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200, "the client keeps its connection");
    // A 204 has no body, whatever the upstream claims; the keep-alive client connection stays usable.
    let (r, mut c) = call("no-content-with-body", CHAT_JSON);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None, "no Content-Length on a 204");
    let again = c.request("GET", "/healthz", &[], b"");
    assert_eq!((again.status, again.text()), (200, r#"{"status":"ok"}"#.to_string()));

    assert_alive(&gw);
    // 7 + 3 + 2 + 2 + 1 + 1 interceptions, every one ended; the failed ones say so.
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", 16), 16);
    let failed: i64 = db(&gw.db)
        .query_row("SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'failed'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 10, "broken heads and cut bodies are failed interceptions");
}

#[test]
fn no_secret_in_any_log_line_record_or_error_after_a_run_full_of_errors() {
    let mock = MockUpstream::start().unwrap();
    let dir = ScratchDir::new("secrets");
    let json_log = dir.0.join("log.json");
    let json_log_s = json_log.display().to_string();
    let mut gw = gateway_on(
        &mock.base_url(),
        &[
            ("RUST_LOG", "debug"),
            ("CODER_AIBRIDGE_STRUCTURED_LOGGING", "true"),
            ("CODER_LOGGING_JSON", json_log_s.as_str()),
        ],
    );
    let token = gw.token("keeper");
    let near_miss = format!("{}x", &token[..token.len() - 1]);
    let byok_key = "sk-client-own-BYOK-SECRET-987654321";
    let auth = format!("Bearer {token}");
    let mut answers = Vec::new();
    let mut call = |path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let r = request(gw.addr, "POST", path, headers, body);
        answers.push(r.text());
    };
    call(CHAT, &[("Authorization", &format!("Bearer {near_miss}"))], CHAT_JSON.as_bytes());
    call(CHAT, &[("X-Api-Key", &near_miss)], CHAT_JSON.as_bytes());
    call(CHAT, &[("Authorization", &auth)], b"{\"model\": ");
    call(CHAT, &[("Authorization", &auth), ("x-mock-status", "401")], CHAT_JSON.as_bytes());
    call(CHAT, &[("Authorization", &auth), ("x-mock-garbage", "1")], CHAT_JSON.as_bytes());
    call(CHAT, &[("Authorization", &auth), ("x-mock-reset-after", "2")], CHAT_STREAM.as_bytes());
    call(CHAT, &[("Authorization", &auth)], CHAT_STREAM.as_bytes());
    call(
        MESSAGES,
        &[("X-Api-Key", &token)],
        br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    call(
        MESSAGES,
        &[("X-Coder-AI-Governance-Token", &token), ("X-Api-Key", byok_key), ("x-mock-status", "401")],
        br#"{"model":"claude","max_tokens":5,"messages":[]}"#,
    );
    call("/api/v2/aibridge/openai/v1/embeddings", &[("Authorization", &auth), ("Proxy-Authorization", &auth)], b"{}");
    let raw = raw_exchange(
        gw.addr,
        format!("POST {CHAT} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nX-Bad: a\0b\r\n\r\n").as_bytes(),
    );
    answers.push(raw);
    assert_eq!(wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", 6), 6);
    assert!(gw.terminate(), "clean exit flushes every log");

    let secrets = [OPENAI_KEY, ANTHROPIC_KEY, token.as_str(), near_miss.as_str(), byok_key];
    // The token's secret part alone, too (it follows the public id).
    let token_secret = token.rsplit('_').next().unwrap().to_string();
    let check = |what: &str, text: &str| {
        for s in secrets.iter().copied().chain([token_secret.as_str()]) {
            assert!(!text.contains(s), "a secret ({}…) appears in {what}: {text}", &s[..8]);
        }
    };
    let stderr: Vec<String> = gw.drain_log();
    assert!(stderr.iter().any(|l| l.contains("DEBUG") || l.contains("debug")), "debug logging was on");
    for line in &stderr {
        check("a stderr log line", line);
    }
    let json = std::fs::read_to_string(&json_log).unwrap();
    assert!(json.contains("interception log"), "the JSON log has the records");
    for line in json.lines() {
        check("a JSON log line", line);
    }
    for answer in &answers {
        check("an answer to the client", answer);
    }
    let conn = db(&gw.db);
    for table in [
        "aibridge_interceptions",
        "aibridge_token_usages",
        "aibridge_user_prompts",
        "aibridge_tool_usages",
        "aibridge_model_thoughts",
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..cols {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                if let rusqlite::types::Value::Text(t) = v {
                    check(&format!("a {table} row"), &t);
                }
            }
        }
    }
}

#[test]
fn hundreds_of_concurrent_streams_with_disconnects_and_resets_lose_no_record() {
    const THREADS: usize = 60;
    const PER_THREAD: usize = 5;
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let token = gw.token("crowd");
    let auth = format!("Bearer {token}");
    let addr = gw.addr;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let auth = auth.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let mut c = Client::connect(addr);
                    match (t * PER_THREAD + i) % 5 {
                        0 => {
                            let r = c.request(
                                "POST",
                                CHAT,
                                &[("Authorization", &auth), ("x-mock-delay-ms", "10"), ("x-mock-events", "20")],
                                CHAT_STREAM.as_bytes(),
                            );
                            assert!(r.complete && r.text().contains("[DONE]"));
                        }
                        1 => {
                            // Leaves mid-stream.
                            c.send(
                                "POST",
                                CHAT,
                                &[("Authorization", &auth), ("x-mock-delay-ms", "20"), ("x-mock-events", "100")],
                                CHAT_STREAM.as_bytes(),
                            );
                            let mut first = [0u8; 32];
                            assert!(c.stream.read(&mut first).unwrap() > 0);
                        }
                        2 => {
                            let r = c.request(
                                "POST",
                                CHAT,
                                &[("Authorization", &auth), ("x-mock-reset-after", "2")],
                                CHAT_STREAM.as_bytes(),
                            );
                            assert!(!r.complete);
                        }
                        3 => {
                            let r = c.request("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
                            assert_eq!(r.status, 200);
                        }
                        _ => {
                            // Leaves before the upstream answers.
                            c.send(
                                "POST",
                                CHAT,
                                &[("Authorization", &auth), ("x-mock-delay-ms", "1000")],
                                CHAT_JSON.as_bytes(),
                            );
                            // The behaviour under test: a client that stays a moment, then leaves.
                            std::thread::sleep(Duration::from_millis(30));
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a client thread failed");
    }
    assert_alive(&gw);
    let total = (THREADS * PER_THREAD) as i64;
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE ended_at IS NOT NULL", total),
        total,
        "every interception has its end"
    );
    let by = |status: &str| -> i64 {
        db(&gw.db)
            .query_row("SELECT COUNT(*) FROM aibridge_interceptions WHERE status = ?1", [status], |r| r.get(0))
            .unwrap()
    };
    let fifth = total / 5;
    assert_eq!(by("completed"), 2 * fifth);
    assert_eq!(by("client_disconnected"), 2 * fifth);
    assert_eq!(by("failed"), fifth);
}

/// Starts the gateway under `ulimit -n fds`, so descriptor exhaustion is reachable with a few sockets.
fn gateway_with_fd_limit(fds: u32) -> Gateway {
    use std::io::BufRead;
    let dir = ScratchDir::new("fdlimit");
    let db = dir.0.join("aibridge.db");
    let mut child = std::process::Command::new("sh")
        .args(["-c", &format!("ulimit -n {fds} && exec \"$0\" server"), BIN])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CODER_HTTP_ADDRESS", "127.0.0.1:0")
        .env("CODER_AIBRIDGE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("CODER_AIBRIDGE_WORKERS", "1")
        // No sessions API: its sockets would count against the descriptor limit under test.
        .env("CODER_AIBRIDGE_ADMIN_ADDRESS", "")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log_lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = log_lines.recv_timeout(Duration::from_secs(20)).expect("gateway starts");
        if let Some(i) = line.find("listening on http://") {
            let rest: String = line[i + 20..].chars().take_while(|c| !c.is_whitespace()).collect();
            break rest.parse().unwrap();
        }
    };
    Gateway { child, addr, db, dir, log_lines, probe_path: None, startup_log: Vec::new(), admin_addr: None }
}

#[test]
fn descriptor_exhaustion_neither_floods_the_log_nor_outlives_the_flood() {
    let gw = gateway_with_fd_limit(64);
    let held: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(gw.addr).ok()).collect();
    // The flood lasts 2 s: the warning count below is per that span (the behaviour under test).
    std::thread::sleep(Duration::from_secs(2));
    drop(held);
    assert_alive(&gw);
    let warnings = gw.drain_log().iter().filter(|l| l.contains("accept failed")).count();
    assert!((1..=4).contains(&warnings), "{warnings} accept warnings in 2 s");
}

#[test]
fn smuggling_shapes_are_refused_with_json_and_never_reach_the_upstream() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let token = gw.token("smuggler");
    let head = format!("POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n");
    // Each is followed by a request that must never be answered, as a desync would answer it.
    let tail =
        format!("GET /api/v2/aibridge/openai/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let cases: Vec<(&str, u16, String)> = vec![
        ("TE listed twice", 400, format!("{head}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n")),
        ("space before colon", 400, format!("{head}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n")),
        ("obs-fold", 400, format!("{head}X-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{{}}")),
        ("CL with a space", 400, format!("{head}Content-Length: 1 0\r\n\r\n0123456789")),
        ("CL with a sign", 400, format!("{head}Content-Length: +2\r\n\r\n{{}}")),
        ("negative CL", 400, format!("{head}Content-Length: -1\r\n\r\n{{}}")),
        ("overflowing CL", 400, format!("{head}Content-Length: 99999999999999999999999\r\n\r\n{{}}")),
        ("differing CLs", 400, format!("{head}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}")),
        ("two Hosts", 400, format!("{head}Host: evil\r\nContent-Length: 2\r\n\r\n{{}}")),
        ("huge chunk size", 400, format!("{head}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n")),
        ("chunk without CRLF", 400, format!("{head}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}XX0\r\n\r\n")),
        ("NUL in a header", 400, format!("{head}X-A: a\0b\r\nContent-Length: 2\r\n\r\n{{}}")),
        ("TE identity with CL", 400, format!("{head}Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{{}}")),
        ("TE gzip", 501, format!("{head}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")),
        ("HTTP/0.9", 400, "GET /healthz\r\n\r\n".to_string()),
        ("HTTP/2 preface", 400, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string()),
        ("HTTP/2.0 version", 400, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n".to_string()),
    ];
    for (what, status, wire) in cases {
        let out = raw_exchange(gw.addr, format!("{wire}{tail}").as_bytes());
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{what}: exactly one answer, then close: {out}");
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert!(v["error"]["message"].is_string(), "{what}");
        assert!(!body.contains(&token), "{what}: the token is echoed");
    }
    assert!(mock.requests().is_empty(), "nothing reached the upstream: {:?}", mock.requests());

    // Chunk extensions and trailers are legal: the body goes upstream, the trailer does not.
    let wire = format!(
        "{head}Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{CHAT_JSON}\r\n0;x=y\r\nX-Trailer-Smuggle: 1\r\n\r\n",
        CHAT_JSON.len()
    );
    let out = raw_exchange(gw.addr, wire.as_bytes());
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, CHAT_JSON.as_bytes());
    assert_eq!(seen[0].header("x-trailer-smuggle"), None);
    assert_alive(&gw);
}

#[test]
fn credentials_and_hop_by_hop_headers_never_go_upstream() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let token = gw.token("leaky");
    let headers = [
        ("Authorization", format!("Bearer {token}")),
        ("Authorization", "Bearer second-client-credential".to_string()),
        ("X-Api-Key", "sk-client-own-key-without-byok".to_string()),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz".to_string()),
        ("Proxy-Connection", "keep-alive".to_string()),
        ("Connection", "keep-alive, X-Nominated".to_string()),
        ("X-Nominated", "hop-only".to_string()),
        ("Keep-Alive", "timeout=5".to_string()),
        ("TE", "trailers".to_string()),
        ("Upgrade", "h2c".to_string()),
        ("X-Forwarded-Custom", "kept".to_string()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = request(gw.addr, "POST", CHAT, &headers, CHAT_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // BYOK auth that brings no credential of its own: the governance token still stays here.
    let r = request(
        gw.addr,
        "POST",
        MESSAGES,
        &[("X-Coder-AI-Governance-Token", &token)],
        br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    let chat = &seen[0];
    let auths: Vec<&str> =
        chat.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(auths, [format!("Bearer {OPENAI_KEY}")], "only the instance key goes upstream");
    for name in ["x-api-key", "proxy-authorization", "proxy-connection", "x-nominated", "keep-alive", "te", "upgrade"] {
        assert_eq!(chat.header(name), None, "{name} went upstream");
    }
    assert_eq!(chat.header("x-forwarded-custom"), Some("kept"));
    assert_eq!(seen[1].header("x-api-key"), None, "BYOK never falls back to the instance key");
    for req in &seen {
        for (name, value) in &req.headers {
            assert!(!value.contains(&token), "the gateway token went upstream in {name}");
            assert!(!name.eq_ignore_ascii_case("x-coder-ai-governance-token"), "governance header went upstream");
        }
    }
}

#[test]
fn unparseable_heads_on_an_anthropic_route_get_anthropic_errors() {
    let mock = MockUpstream::start().unwrap();
    let gw = gateway_on(&mock.base_url(), &[]);
    let huge = format!("POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let nul = format!("POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n{{}}");
    let bad_cl = format!("POST {MESSAGES} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
    for (what, status, wire) in [("huge head", 431, huge), ("NUL", 400, nul), ("bad CL", 400, bad_cl)] {
        let out = raw_exchange(gw.addr, wire.as_bytes());
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {out}");
        let v: serde_json::Value = serde_json::from_str(&out[out.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        assert_eq!(v["type"], "error", "{what}: Anthropic's shape: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{what}");
    }
    // Elsewhere the default (OpenAI) shape stays.
    let out = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n");
    let v: serde_json::Value = serde_json::from_str(&out[out.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert!(v["error"]["message"].is_string() && v.get("type").is_none(), "{v}");
}

#[test]
fn a_client_leaving_during_a_long_upstream_pause_is_noticed() {
    let addr = hostile(hostile_answer);
    // The watch starts after 200 ms of upstream silence instead of the default 2 s.
    let gw = gateway_on(&format!("http://{addr}"), &[("CODER_AIBRIDGE_CLIENT_WATCH_AFTER_IDLE", "200ms")]);
    let token = gw.token("impatient");
    {
        let mut c = Client::connect(gw.addr);
        c.send(
            "POST",
            CHAT,
            &[("Authorization", &format!("Bearer {token}")), ("x-hostile", "pause")],
            CHAT_STREAM.as_bytes(),
        );
        let mut first = [0u8; 64];
        assert!(c.stream.read(&mut first).unwrap() > 0);
    } // leaves while the upstream thinks
    let t = Instant::now();
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1),
        1
    );
    assert!(t.elapsed() < Duration::from_secs(8), "noticed after {:?}", t.elapsed());
}

#[test]
fn a_client_that_stops_reading_is_given_up_and_recorded() {
    // The write timeout is shortened from its 60 s default so the test runs in CI; the behaviour is the same.
    const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
    let addr = hostile(hostile_answer);
    let gw = gateway_on(&format!("http://{addr}"), &[("CODER_AIBRIDGE_CLIENT_WRITE_TIMEOUT", "2s")]);
    let token = gw.token("stalled");
    let mut c = Client::connect(gw.addr);
    let t0 = Instant::now();
    c.send(
        "POST",
        CHAT,
        &[("Authorization", &format!("Bearer {token}")), ("x-hostile", "firehose")],
        CHAT_STREAM.as_bytes(),
    );
    // Never read, and keep the connection open: only the write timeout can end the interception.
    assert_eq!(
        wait_count(&gw.db, "SELECT COUNT(*) FROM aibridge_interceptions WHERE status = 'client_disconnected'", 1),
        1,
        "the stalled client's interception ended"
    );
    assert!(t0.elapsed() >= WRITE_TIMEOUT, "given up after {:?}, before the write timeout", t0.elapsed());
    assert_alive(&gw);
    drop(c);
}
