//! Overload protection across workers: `CODER_AIBRIDGE_MAX_CONCURRENCY` answers 503 exactly above the
//! number of intercepted requests in flight, `CODER_AIBRIDGE_RATE_LIMIT` answers 429 with `Retry-After`
//! above the per-token rate; neither reaches the upstream nor records an interception.

use std::time::{Duration, Instant};

use aibridged::mock::MockUpstream;

use crate::support::*;

const CHAT: &str = "/api/v2/aibridge/openai/v1/chat/completions";
const CHAT_JSON: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const KEYS: (&str, &str) = ("sk-central-openai-0123456789", "sk-ant-central-0123456789");

fn interceptions(gw: &Gateway) -> i64 {
    db(&gw.db).query_row("SELECT COUNT(*) FROM aibridge_interceptions", [], |r| r.get(0)).unwrap()
}

#[test]
fn max_concurrency_answers_503_exactly_above_the_limit() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), KEYS, &[("CODER_AIBRIDGE_MAX_CONCURRENCY", "2")]);
    let auth = format!("Bearer {}", gw.token("pia"));
    // Two slow streams held open at the mock (each on its own connection, so on either worker).
    let slow = [("Authorization", auth.as_str()), ("x-mock-delay-ms", "300"), ("x-mock-events", "200")];
    let mut held: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = Client::connect(gw.addr);
            c.send("POST", CHAT, &slow, CHAT_STREAM.as_bytes());
            assert!(c.read_until_seen(b"data: "), "the stream never started");
            c
        })
        .collect();

    for _ in 0..3 {
        let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"]["message"], "AI Bridge is currently at capacity");
    }
    // Pass-through routes are not intercepted requests: not limited.
    let r = request(gw.addr, "GET", "/api/v2/aibridge/openai/v1/models", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let chats = mock.requests().iter().filter(|q| q.path == "/v1/chat/completions").count();
    assert_eq!(chats, 2, "refused requests never reach the upstream");

    // One stream ends (its client leaves): a place comes free, and a new slow stream takes it (polled:
    // a request's place is given back when its handler finishes, just after its last byte was written).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    let third = loop {
        let mut c = Client::connect(gw.addr);
        c.send("POST", CHAT, &slow, CHAT_STREAM.as_bytes());
        assert!(c.read_until_seen(b"\r\n\r\n"), "no answer");
        if c.buffered().starts_with(b"HTTP/1.1 200") {
            assert!(c.read_until_seen(b"data: "), "the stream never started");
            break c;
        }
        assert_eq!(c.read_response().status, 503);
        assert!(Instant::now() < deadline, "no place came free after a client left");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Two held again: the next is refused.
    let r = request(gw.addr, "POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
    assert_eq!(r.status, 503, "{}", r.text());
    drop(held);
    drop(third);
    // Refusals are not interceptions: only the requests that went upstream are recorded.
    let upstream = mock.requests().iter().filter(|q| q.path == "/v1/chat/completions").count() as i64;
    wait_until("every admitted request is recorded", Duration::from_secs(20), || interceptions(&gw) == upstream);
}

#[test]
fn rate_limit_answers_429_with_retry_after_above_the_per_token_rate() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), KEYS, &[("CODER_AI_GATEWAY_RATE_LIMIT", "3")]);
    let (alice, bob) = (format!("Bearer {}", gw.token("alice")), format!("Bearer {}", gw.token("bob")));
    mock.clear();
    // Many connections, so both workers count against one budget.
    let mut conns: Vec<Client> = (0..8).map(|_| Client::connect(gw.addr)).collect();
    let started = Instant::now();
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..12 {
        let r = conns[i % 8].request("POST", CHAT, &[("Authorization", &alice)], CHAT_JSON.as_bytes());
        match r.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert_eq!(r.header("retry-after"), Some("1"), "the window is one second");
                assert!(r.json()["error"]["message"].as_str().unwrap().contains("rate limit"), "{}", r.text());
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let windows = started.elapsed().as_secs() as usize + 1;
    assert!(limited > 0, "12 requests in {windows} window(s) at 3 per second must be limited");
    assert!(ok <= 3 * (windows + 1), "{ok} admitted in {windows} window(s)");
    assert_eq!(mock.requests().len(), ok, "refused requests never reach the upstream");
    // Another token has its own budget.
    let r = request(gw.addr, "POST", CHAT, &[("Authorization", &bob)], CHAT_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // After the window, the first token may send again.
    wait_until("the next window admits the token again", Duration::from_secs(10), || {
        request(gw.addr, "POST", CHAT, &[("Authorization", &alice)], CHAT_JSON.as_bytes()).status == 200
    });
}

/// What a connection refused at accept shows its client: the connection ends (EOF or reset) with no byte
/// of an answer; a read timeout is not a refusal.
fn refused(addr: std::net::SocketAddr) -> bool {
    use std::io::{ErrorKind, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the kernel still completes the handshake");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got.is_empty(),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => got.is_empty(),
        Err(e) => panic!("neither served nor refused: {e} after {:?}", String::from_utf8_lossy(&got)),
    }
}

#[test]
fn max_connections_closes_connections_beyond_the_limit_at_once() {
    let mock = MockUpstream::start().unwrap();
    let gw = Gateway::start_on(&mock.base_url(), KEYS, &[("CODER_AIBRIDGE_MAX_CONNECTIONS", "3")]);
    let auth = format!("Bearer {}", gw.token("pia"));
    // Three keep-alive connections, each served once so each is counted (on whichever worker took it).
    // The harness's start-up probes closed their connections just before; a worker releases such a
    // place when it reads the close, so a connection refused meanwhile is retried (bounded).
    let mut open: Vec<Client> = Vec::new();
    while open.len() < 3 {
        wait_until("a connection under the limit is served", Duration::from_secs(30), || {
            let mut c = Client::connect(gw.addr);
            c.send("GET", "/healthz", &[], b"");
            let served = c.read_until_seen(b"HTTP/1.1 200");
            if served {
                // Consume the whole answer the check saw the start of.
                assert_eq!(c.read_response().status, 200);
                open.push(c);
            }
            served
        });
    }
    mock.clear();
    for _ in 0..4 {
        assert!(refused(gw.addr), "a fourth connection is closed without an answer");
    }
    // The open ones are unaffected and still carry requests.
    let r = open[0].request("POST", CHAT, &[("Authorization", &auth)], CHAT_JSON.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.requests().len(), 1, "only the admitted connection's request went upstream");
    // One leaves: a new connection is served again.
    drop(open.pop());
    wait_until("a new connection is served once one closed", Duration::from_secs(30), || {
        let mut c = Client::connect(gw.addr);
        c.send("GET", "/healthz", &[], b"");
        c.read_until_seen(b"HTTP/1.1 200")
    });
}
